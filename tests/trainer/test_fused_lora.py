"""Fused LoRA projections give PEFT's outputs and gradients, keep the module tree, and fall back where they must."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from trainer.kernels import fused_lora  # noqa: E402

_SharedInputLoRA = fused_lora._SharedInputLoRA  # the autograd op itself, for gradcheck
enable_fused_lora, disable_fused_lora = fused_lora.enable_fused_lora, fused_lora.disable_fused_lora

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_model(dropout: float = 0.0, dtype: torch.dtype = torch.float32, layers: int = 2,
               **lora: object) -> torch.nn.Module:
    """A tiny random Llama with LoRA whose B is random too (PEFT starts B at zero, which would hide the B path)."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False)
    base = LlamaForCausalLM(config).to(dtype)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules=TARGETS,
                                            task_type="CAUSAL_LM", **lora))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.3)
    return model


@contextmanager
def compiled_layers(model: torch.nn.Module, **compile_options: object) -> Iterator[None]:
    """The model's decoder layers compiled in place from a fresh Dynamo cache, uncompiled again afterwards."""
    layers = model.get_base_model().model.layers
    torch._dynamo.reset()
    for layer in layers:
        layer.compile(**compile_options)
    try:
        yield
    finally:
        for layer in layers:
            layer._compiled_call_impl = None


def batch(tokens: int = 11, rows: int = 2) -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 97, (rows, tokens), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "labels": ids}


def loss_and_grads(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    loss = model(**inputs, use_cache=False).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def assert_same_training(model: torch.nn.Module, inputs: dict[str, torch.Tensor], **tolerance: float) -> None:
    disable_fused_lora(model)
    want_loss, want_grads = loss_and_grads(model, inputs)
    report = enable_fused_lora(model)
    assert report.fused_modules == 14
    got_loss, got_grads = loss_and_grads(model, inputs)
    torch.testing.assert_close(got_loss, want_loss, **tolerance)
    assert got_grads.keys() == want_grads.keys() and len(got_grads) == 28  # A and B of 7 projections x 2 layers
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, **tolerance, msg=lambda m, n=name: f"{n}: {m}")


def test_loss_and_every_lora_gradient_match_peft() -> None:
    assert_same_training(lora_model(), batch(), atol=1e-5, rtol=1e-5)


def test_groups_share_one_op_per_input() -> None:
    report = enable_fused_lora(lora_model())
    # per layer: q,k,v together, gate,up together, o and down alone
    assert (report.fused_modules, report.groups, report.kept) == (14, 8, {})
    assert "14 projections in 8 groups" in report.describe()


def test_module_tree_and_adapter_files_are_unchanged(tmp_path: Path) -> None:
    model = lora_model()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    enable_fused_lora(model)
    assert model.state_dict().keys() == before.keys()
    model.save_pretrained(str(tmp_path / "adapter"))
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert len(saved) == 28 and all("lora_" in key for key in saved)
    assert disable_fused_lora(model) == 14
    from peft.tuners.lora import Linear as LoraLinear

    lora_layers = [module for module in model.modules() if isinstance(module, LoraLinear)]
    assert len(lora_layers) == 14 and all(type(module) is LoraLinear for module in lora_layers)  # PEFT's class back
    assert not any("_fused_members" in vars(module) for module in lora_layers)


def train_steps(model: torch.nn.Module, steps: int, through_decoder: bool = False) -> list[float]:
    """AdamW steps; through_decoder: the loss as the trainer's fused loss computes it, entering at get_decoder()."""
    from trainer.kernels.fused_ce import causal_lm_loss

    # fused, as transformers picks it on a GPU: its step does not bump the parameters' version counters
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05, fused=True)
    losses = []
    for step in range(steps):
        inputs = batch(tokens=9 + step)
        if through_decoder:
            loss = causal_lm_loss(model, inputs["input_ids"], inputs["labels"])
        else:
            loss = model(**inputs, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def test_each_optimizer_step_reaches_the_next_forward() -> None:
    """B must be read at every forward: a copy of it cached by version counter would go stale under fused AdamW
    (benchmarks/README.md, section 7) and train on the first step's B."""
    plain, fused = lora_model(), lora_model()
    enable_fused_lora(fused)
    want, got = train_steps(plain, 4), train_steps(fused, 4)
    assert want[0] != want[-1]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    plain_state = {n: p for n, p in plain.named_parameters() if "lora_" in n}
    for name, param in fused.named_parameters():
        if "lora_" in name:
            torch.testing.assert_close(param, plain_state[name], atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("through_decoder", [False, True])
def test_compiled_training_sees_each_step(through_decoder: bool) -> None:
    """Compiled layers, fused AdamW steps, and the forward entering through the PEFT wrapper or, as the trainer's
    fused loss does, through get_decoder(): every step's B reaches the next forward."""
    plain, fused = lora_model(), lora_model()
    enable_fused_lora(fused)
    with compiled_layers(fused, backend="aot_eager", fullgraph=True):
        got = train_steps(fused, 3, through_decoder)
    torch.testing.assert_close(got, train_steps(plain, 3, through_decoder), atol=1e-5, rtol=1e-5)


@contextmanager
def trainer_compiled_layers(model: torch.nn.Module, memory_budget: float = 1.0) -> Iterator[None]:
    """The decoder layers compiled by the trainer's compile_decoder_layers (Inductor), from a fresh Dynamo cache;
    uncompiled, and the process-wide memory budget back at 1, afterwards."""
    from trainer.compiling import compile_decoder_layers

    torch._dynamo.reset()
    try:
        compile_decoder_layers(model, "inductor", memory_budget=memory_budget)
        yield
    finally:
        torch._functorch.config.activation_memory_budget = 1.0
        for layer in model.get_base_model().model.layers:
            layer._compiled_call_impl = None


def activation_bytes_saved(model: torch.nn.Module, memory_budget: float = 1.0, device: str = "cpu") -> int:
    """Bytes of the distinct storages that one compiled (Inductor) training forward keeps for backward, not counting
    the parameters."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    inputs = {name: tensor.to(device) for name, tensor in batch(tokens=64, rows=4).items()}
    saved: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with trainer_compiled_layers(model, memory_budget):
        model(**inputs, use_cache=False)  # compiles
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
            loss = model(**inputs, use_cache=False).loss
        loss.backward()
    return sum(saved.values())


@pytest.mark.slow
def test_compiled_fused_layers_keep_no_more_activations_than_peft() -> None:
    """The fused op keeps its input, which the compiler recomputes from what the layer keeps anyway, like PEFT's. A
    variant that kept [x | xA^T] (benchmarks/README.md, joined GEMMs) cost 13 GiB more on the device for an 8B
    model; this test fails for it."""
    plain = activation_bytes_saved(lora_model())
    fused_model = lora_model()
    enable_fused_lora(fused_model)
    # within 2%: the fused op keeps its rank-r activations for the group (tokens x 3r), PEFT its own per projection;
    # keeping [x | xA^T] was 7% more here
    assert activation_bytes_saved(fused_model) <= 1.02 * plain


@pytest.mark.slow
def test_activation_memory_budget_makes_compiled_layers_keep_less() -> None:
    """--activation_memory_budget: the compiler recomputes instead of keeping; the training result stays the same."""
    model = lora_model()
    enable_fused_lora(model)
    full = activation_bytes_saved(model)
    assert activation_bytes_saved(model, memory_budget=0.3) < 0.8 * full  # 45% of it here
    want_loss, want_grads = loss_and_grads(model, batch())
    with trainer_compiled_layers(model, memory_budget=0.3):
        budget_loss, budget_grads = loss_and_grads(model, batch())
    torch.testing.assert_close(budget_loss, want_loss, atol=1e-5, rtol=1e-5)
    for name, grad in want_grads.items():
        torch.testing.assert_close(budget_grads[name], grad, atol=1e-5, rtol=1e-5)


def test_merge_and_unload_of_a_fused_model_saves_what_peft_merges(tmp_path: Path) -> None:
    plain, fused = lora_model(), lora_model()
    enable_fused_lora(fused)
    train_steps(fused, 1)
    train_steps(plain, 1)
    inputs = batch()
    merged = fused.merge_and_unload()
    assert not any(type(m) is fused_lora.fused_lora_class() for m in merged.modules())
    merged.save_pretrained(str(tmp_path / "merged"))  # safetensors: needs contiguous, unshared weights
    with torch.no_grad():
        want = plain.merge_and_unload()(**inputs).logits
        got = type(merged).from_pretrained(str(tmp_path / "merged"))(**inputs).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_dropout_in_eval_mode_is_off_and_matches_peft() -> None:
    model = lora_model(dropout=0.3)
    model.eval()
    assert_same_training(model, batch(), atol=1e-5, rtol=1e-5)


def test_dropout_in_training_drops_and_still_trains() -> None:
    model = lora_model(dropout=0.5)
    model.train()
    enable_fused_lora(model)
    inputs = batch()
    torch.manual_seed(3)
    first, grads = loss_and_grads(model, inputs)
    torch.manual_seed(4)
    second, _ = loss_and_grads(model, inputs)
    assert first != second  # a different mask each call
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values())


def test_kernel_dropout_without_cuda_keeps_torch_dropout() -> None:
    """enable_fused_lora(kernel_dropout=True) on a CPU model: torch's dropout as before (the kernel needs CUDA)."""
    model = lora_model(dropout=0.5)
    model.train()
    report = enable_fused_lora(model, kernel_dropout=True)
    assert report.fused_modules == 14
    assert report.kernel_dropout is fused_lora.kernel_dropout_available()  # on a CUDA machine: still CPU inputs
    torch.manual_seed(3)
    first, grads = loss_and_grads(model, batch())
    torch.manual_seed(3)
    again, _ = loss_and_grads(model, batch())
    assert first == again and all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values())
    assert disable_fused_lora(model) == 14
    assert not any("_fused_dropout_op" in vars(module) for module in model.modules())


def test_dropout_gradient_matches_a_reference_with_the_same_mask() -> None:
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(9, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    mask = (torch.rand(9, 6, generator=generator) > 0.4).double() / 0.6
    weights = [torch.randn(5, 6, generator=generator, dtype=torch.float64) for _ in range(2)]
    a = torch.randn(4, 6, generator=generator, dtype=torch.float64, requires_grad=True)  # 2 blocks of rank 2
    bs = [torch.randn(5, 2, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    dropped = x * mask
    outs = _SharedInputLoRA.apply(x, dropped, a, 1.5, *weights, None, None, *bs)
    want = [x @ w.t() + 1.5 * (dropped @ a[2 * i:2 * i + 2].t()) @ b.t()
            for i, (w, b) in enumerate(zip(weights, bs, strict=True))]
    upstream = [torch.randn(9, 5, generator=generator, dtype=torch.float64) for _ in range(2)]
    got_grads = torch.autograd.grad(outs, (x, a, *bs), upstream, retain_graph=True)
    want_grads = torch.autograd.grad(want, (x, a, *bs), upstream)
    for got, expected in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(got, expected)


def test_gradcheck_of_the_group_op_with_bias_and_an_unused_output() -> None:
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(5, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    a = torch.randn(6, 4, generator=generator, dtype=torch.float64, requires_grad=True)  # 3 blocks of rank 2
    weights = [torch.randn(d, 4, generator=generator, dtype=torch.float64) for d in (3, 2, 2)]
    biases = [torch.randn(d, generator=generator, dtype=torch.float64) for d in (3, 2, 2)]
    bs = [torch.randn(d, 2, generator=generator, dtype=torch.float64, requires_grad=True) for d in (3, 2, 2)]

    def first_two(x, a, *bs):  # the third output unused: its gradient arrives as None
        return _SharedInputLoRA.apply(x, None, a, 0.7, *weights, *biases, *bs)[:2]

    assert torch.autograd.gradcheck(first_two, (x, a, *bs))


def test_bf16_base_with_fp32_adapter_is_close_to_peft() -> None:
    model = lora_model(dtype=torch.bfloat16)
    assert {p.dtype for n, p in model.named_parameters() if "lora_" in n} == {torch.float32}  # PEFT upcasts
    assert_same_training(model, batch(tokens=16), atol=0.05, rtol=0.05)


def test_gradient_checkpointing_recomputes_through_the_fused_op() -> None:
    model = lora_model()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.train()
    assert_same_training(model, batch(), atol=1e-5, rtol=1e-5)


def test_compiled_layers_match_and_run_the_fused_op() -> None:
    from torch._dynamo.utils import counters

    model = lora_model()
    inputs = batch()
    want_loss, want_grads = loss_and_grads(model, inputs)
    enable_fused_lora(model)
    counters.clear()
    # fullgraph: the group hand-off must not break graphs
    with compiled_layers(model, backend="aot_eager", fullgraph=True):
        got_loss, got_grads = loss_and_grads(model, inputs)
    assert counters["stats"]["calls_captured"] > 0
    torch.testing.assert_close(got_loss, want_loss, atol=1e-5, rtol=1e-5)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, atol=1e-5, rtol=1e-5)


def test_one_compiled_graph_serves_every_layer() -> None:
    """Guards must not pin a layer's own modules: 4 layers compile at most twice (the first layer's input does not
    require grad, the others' do), else the recompile limit is hit on a 32-layer model and layers run uncompiled."""
    from torch._dynamo.utils import counters

    model = lora_model(layers=4)
    enable_fused_lora(model)
    counters.clear()
    with compiled_layers(model, backend="aot_eager"):
        loss_and_grads(model, batch())
        loss_and_grads(model, batch())
    assert counters["stats"]["unique_graphs"] <= 2


def test_disabled_adapters_and_merged_weights_use_peft_forward() -> None:
    model = lora_model()
    enable_fused_lora(model)
    inputs = batch()
    with torch.no_grad():
        with model.disable_adapter():
            fused_off = model(**inputs).logits
        disable_fused_lora(model)
        with model.disable_adapter():
            plain_off = model(**inputs).logits
    torch.testing.assert_close(fused_off, plain_off)


def test_dora_and_several_adapters_keep_peft_forward() -> None:
    model = lora_model(use_dora=True)
    report = enable_fused_lora(model)
    assert report.fused_modules == 0 and len(report.kept) == 14
    assert set(report.kept.values()) == {"a LoRA variant (DoRA or similar)"}
    assert "kept PEFT's forward" in report.describe()
    assert fused_lora.plain_lora_problem(torch.nn.Linear(2, 2)) == "not a PEFT LoRA linear"


def test_a_member_called_alone_or_out_of_order_gets_its_own_output() -> None:
    model = lora_model()
    attention = model.get_base_model().model.layers[0].self_attn
    x = torch.randn(1, 5, 32)
    with torch.no_grad():
        want = {name: getattr(attention, name)(x) for name in ("q_proj", "k_proj", "v_proj")}
        enable_fused_lora(model)
        other = torch.randn(1, 5, 32)
        got_v_first = attention.v_proj(x)  # v before q: computes the group, hands q and k out later
        got_k_other = attention.k_proj(other)  # another input: not the pending one
        got_q, got_k = attention.q_proj(x), attention.k_proj(x)
    torch.testing.assert_close(got_v_first, want["v_proj"])
    torch.testing.assert_close(got_q, want["q_proj"])
    torch.testing.assert_close(got_k, want["k_proj"])
    assert got_k_other.shape == want["k_proj"].shape and not torch.allclose(got_k_other, want["k_proj"])


def test_fp32_model_under_bf16_autocast_trains_close_to_peft() -> None:
    model = lora_model()
    inputs = batch(tokens=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want_loss, want_grads = loss_and_grads(model, inputs)
        enable_fused_lora(model)
        got_loss, got_grads = loss_and_grads(model, inputs)
    torch.testing.assert_close(got_loss, want_loss, atol=0.05, rtol=0.02)
    for name, grad in want_grads.items():
        assert got_grads[name].dtype == torch.float32
        torch.testing.assert_close(got_grads[name], grad, atol=0.05, rtol=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on the device)")
def test_bf16_fused_lora_matches_peft_on_cuda() -> None:
    """cuBLAS's GEMMs in the fused op, compiled by Inductor, against PEFT in bf16."""
    model = lora_model(dtype=torch.bfloat16).cuda()
    inputs = {name: tensor.cuda() for name, tensor in batch(tokens=64, rows=4).items()}
    want_loss, want_grads = loss_and_grads(model, inputs)
    enable_fused_lora(model)
    with compiled_layers(model, dynamic=False):
        got_loss, got_grads = loss_and_grads(model, inputs)
    torch.testing.assert_close(got_loss, want_loss, atol=0.02, rtol=0.01)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, atol=0.05, rtol=0.05, msg=lambda m, n=name: f"{n}: {m}")


# ---------------------------------------------------------------- LoRA dropout drawn in the kernel (CUDA + Triton)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on the device)")


def kernel_dropout_module():
    """trainer.kernels.lora_dropout (imported: its ops registered), or a skip where Triton is missing."""
    pytest.importorskip("triton")
    from trainer.kernels import lora_dropout

    return lora_dropout


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.float() - want.float()).norm() / want.float().norm()).item()


@needs_cuda
@pytest.mark.parametrize(("tokens", "width", "outs", "p", "input_grad"),
                         [(300, 1000, (96, 40, 40), 0.05, True), (517, 4096, (64,), 0.3, True),
                          (256, 208, (48, 48), 0.05, False)])
def test_kernel_dropout_matches_a_reference_with_its_own_mask_on_cuda(tokens: int, width: int, outs: tuple[int, ...],
                                                                       p: float, input_grad: bool) -> None:
    """The bf16 op with the mask drawn in the kernel against fp32 arithmetic with the very mask the kernel drew
    (lora_dropout.keep_mask of the same seed): the outputs and d(x), d(A), d(B) of every projection. Token counts
    and widths that are no multiple of the tiles, a group of three and projections alone, bias, an unused output."""
    lora_dropout = kernel_dropout_module()
    rank, scaling = 16, 2.0
    generator = torch.Generator(device="cuda").manual_seed(7)

    def randn(*shape: int, std: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator, device="cuda") * std).to(torch.bfloat16)

    x = randn(tokens, width).requires_grad_(input_grad)
    weights = [randn(out, width, std=width ** -0.5) for out in outs]
    biases = [randn(out) if index == 0 else None for index, out in enumerate(outs)]
    a = randn(rank * len(outs), width, std=width ** -0.5).requires_grad_()
    bs = [randn(out, rank, std=rank ** -0.5).requires_grad_() for out in outs]
    seed = lora_dropout.new_seed(x.device)
    got = fused_lora._SharedInputLoRAKernelDropout.apply(x, seed, p, a, scaling, *weights, *biases, *bs)
    mask = lora_dropout.keep_mask(seed, tokens, width, p)
    assert mask.shape == (tokens, width) and mask.dtype == torch.bool

    x32, a32 = x.detach().float().requires_grad_(input_grad), a.detach().float().requires_grad_()
    bs32 = [b.detach().float().requires_grad_() for b in bs]
    dropped = x32 * mask / (1 - p)
    want = [x32 @ w.float().t() + (0 if bias is None else bias.float())
            + scaling * (dropped @ a32[i * rank:(i + 1) * rank].t()) @ b.t()
            for i, (w, bias, b) in enumerate(zip(weights, biases, bs32, strict=True))]
    for got_out, want_out in zip(got, want, strict=True):
        assert got_out.dtype == torch.bfloat16 and relative_error(got_out, want_out) < 1e-2
    used = len(outs) if len(outs) == 1 else len(outs) - 1  # the last output unused: its gradient arrives as None
    upstream = [randn(tokens, out) for out in outs[:used]]
    inputs, inputs32 = [a, *bs], [a32, *bs32]
    if input_grad:
        inputs, inputs32 = [x, *inputs], [x32, *inputs32]
    got_grads = torch.autograd.grad(got[:used], inputs, upstream)
    want_grads = torch.autograd.grad(want[:used], inputs32, [u.float() for u in upstream], allow_unused=True)
    names = (["x"] if input_grad else []) + ["A"] + [f"B{i}" for i in range(len(outs))]
    for name, got_grad, want_grad in zip(names, got_grads, want_grads, strict=True):
        if name == f"B{len(outs) - 1}" and used < len(outs):
            assert got_grad.abs().max() == 0
            continue
        assert relative_error(got_grad, want_grad) < 1e-2, name
    if input_grad:  # d(x) is zero through the LoRA path exactly where the mask dropped: check it against the base
        base_only = sum(u.float() @ w.float() for u, w in zip(upstream, weights, strict=False))
        lora_part = got_grads[0].float() - base_only
        assert lora_part[~mask].abs().max() < 0.05 * lora_part[mask].abs().max()


@needs_cuda
def test_kernel_dropout_keeps_one_minus_p_and_each_seed_draws_another_mask_on_cuda() -> None:
    lora_dropout = kernel_dropout_module()
    p, rows, cols = 0.05, 4096, 4096
    seeds = [torch.tensor([value], dtype=torch.int64, device="cuda") for value in (1, 2, 2 ** 61 + 12345)]
    masks = [lora_dropout.keep_mask(seed, rows, cols, p) for seed in seeds]
    elements = rows * cols
    bound = 6 * (p * (1 - p) / elements) ** 0.5  # six standard deviations of the keep rate
    for mask in masks:
        assert abs(mask.float().mean().item() - (1 - p)) < bound
        quarter = cols // 4  # each quarter of the columns takes another of Philox's four words
        for lane in range(4):
            rate = mask[:, lane * quarter:(lane + 1) * quarter].float().mean().item()
            assert abs(rate - (1 - p)) < 2 * bound
        both_dropped = (~mask[:, :-1] & ~mask[:, 1:]).float().mean().item()  # neighbours independent: p^2
        assert abs(both_dropped - p * p) < 6 * (p * p / (elements - rows)) ** 0.5
    assert torch.equal(masks[0], lora_dropout.keep_mask(seeds[0], rows, cols, p))  # a seed repeats its mask
    for first, second in ((0, 1), (0, 2), (1, 2)):  # other seeds: independent masks
        agree = (masks[first] == masks[second]).float().mean().item()
        want = p * p + (1 - p) ** 2
        assert abs(agree - want) < 6 * (want * (1 - want) / elements) ** 0.5
    x = torch.randn(64, 512, device="cuda", dtype=torch.bfloat16)
    a = torch.randn(16, 512, device="cuda", dtype=torch.bfloat16)
    assert not torch.equal(lora_dropout.dropout_rank(x, a, seeds[0], p), lora_dropout.dropout_rank(x, a, seeds[1], p))
    with pytest.raises(ValueError):
        lora_dropout.keep_threshold(1.0)


@needs_cuda
def test_compiled_layers_with_kernel_dropout_train_like_peft_on_cuda() -> None:
    """The trainer's compile (Inductor) of layers whose fused LoRA draws its dropout in the kernel: with p so small
    that nothing is dropped it gives PEFT's loss and gradients without dropout; with p = 0.3 each seed of torch's
    generator gives its own mask, the same seed the same step, and every gradient is finite and moves."""
    kernel_dropout_module()
    from torch._dynamo.utils import counters

    model = lora_model(dropout=1e-9, dtype=torch.bfloat16).cuda()
    inputs = {name: tensor.cuda() for name, tensor in batch(tokens=64, rows=4).items()}
    model.eval()
    want_loss, want_grads = loss_and_grads(model, inputs)
    model.train()
    report = enable_fused_lora(model, kernel_dropout=True)
    assert report.kernel_dropout and "dropout masks drawn in the LoRA kernel" in report.describe()
    counters.clear()
    with trainer_compiled_layers(model):
        got_loss, got_grads = loss_and_grads(model, inputs)
    assert counters["stats"]["calls_captured"] > 0
    torch.testing.assert_close(got_loss, want_loss, atol=0.02, rtol=0.01)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, atol=0.05, rtol=0.05, msg=lambda m, n=name: f"{n}: {m}")

    model = lora_model(dropout=0.3, dtype=torch.bfloat16).cuda()
    model.train()
    enable_fused_lora(model, kernel_dropout=True)
    with trainer_compiled_layers(model):
        runs = []
        for seed in (3, 4, 3):
            torch.manual_seed(seed)
            runs.append(loss_and_grads(model, inputs))
    (first, grads), (second, _), (again, grads_again) = runs
    assert first != second and first == again
    for name, grad in grads.items():
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
        assert relative_error(grads_again[name], grad) < 1e-3, name  # attention's backward may use atomics


@needs_cuda
def test_kernel_dropout_keeps_no_more_activations_than_no_dropout_on_cuda() -> None:
    """Compiled (Inductor) layers keep neither a dropped copy of the input nor a mask: about what they keep without
    dropout, where torch's dropout keeps more."""
    kernel_dropout_module()

    def saved(dropout: float, kernel: bool) -> int:
        model = lora_model(dropout=dropout, dtype=torch.bfloat16).cuda()
        model.train()
        enable_fused_lora(model, kernel_dropout=kernel)
        return activation_bytes_saved(model, device="cuda")

    without, torch_dropout, kernel = saved(0.0, False), saved(0.1, False), saved(0.1, True)
    assert torch_dropout > 1.05 * without
    assert kernel <= 1.02 * without
