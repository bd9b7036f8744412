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


def activation_bytes_saved(model: torch.nn.Module, memory_budget: float = 1.0) -> int:
    """Bytes of the distinct storages that one compiled (Inductor) training forward keeps for backward, not counting
    the parameters."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    inputs = batch(tokens=64, rows=4)
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
