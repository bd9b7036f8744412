"""The chunked fused linear cross-entropy gives the plain loss and the plain gradients."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny import tiny_llama_in_memory  # noqa: E402

from trainer.kernels.fused_ce import causal_lm_loss, chunked_linear_cross_entropy  # noqa: E402
from trainer.packing import PackedCollator, enable_packed_attention, pack_examples  # noqa: E402
from trainer.types import TokenizedExample  # noqa: E402

IGNORE = -100


def inputs(tokens: int = 37, dim: int = 16, vocab: int = 50, dtype: torch.dtype = torch.float64):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(tokens, dim, generator=generator, dtype=dtype, requires_grad=True)
    weight = torch.randn(vocab, dim, generator=generator, dtype=dtype, requires_grad=True)
    targets = torch.randint(0, vocab, (tokens,), generator=generator)
    targets[::5] = IGNORE
    return hidden, weight, targets


def plain(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, reduction: str) -> torch.Tensor:
    return torch.nn.functional.cross_entropy((hidden @ weight.t()).float(), targets, reduction=reduction)


@pytest.mark.parametrize("chunk", [1, 8, 36, 1000])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_value_and_gradients_match_plain_loss(chunk: int, reduction: str) -> None:
    hidden, weight, targets = inputs()
    expected = plain(hidden, weight, targets, reduction)
    expected_grads = torch.autograd.grad(expected, (hidden, weight))
    fused = chunked_linear_cross_entropy(hidden, weight, targets, chunk_tokens=chunk, reduction=reduction)
    fused_grads = torch.autograd.grad(fused, (hidden, weight))
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    for got, want in zip(fused_grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_chunk_arithmetic_matches_eager(dtype: torch.dtype) -> None:
    """What runs on a GPU: the per-chunk softmax arithmetic compiled (here Inductor on CPU), with a shorter last
    chunk (37 tokens in chunks of 16: two compiled shapes) and ignored targets."""
    torch._dynamo.reset()
    results = []
    for compiled in (False, True):
        hidden, weight, targets = (t.detach().to(dtype).requires_grad_() if t.is_floating_point() else t
                                   for t in inputs(dtype=torch.float32))
        loss = chunked_linear_cross_entropy(hidden, weight, targets, chunk_tokens=16, compiled=compiled)
        results.append((loss, *torch.autograd.grad(3.0 * loss, (hidden, weight))))
    tolerance = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    for got, want in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(got, want, **tolerance)


def test_upstream_gradient_scales_the_result() -> None:
    hidden, weight, targets = inputs()
    (3.0 * chunked_linear_cross_entropy(hidden, weight, targets, chunk_tokens=8)).backward()
    want = torch.autograd.grad(3.0 * plain(hidden, weight, targets, "mean"), hidden)[0]
    torch.testing.assert_close(hidden.grad, want, atol=1e-5, rtol=1e-5)


def test_bf16_close_to_fp32_reference() -> None:
    hidden, weight, targets = inputs(dtype=torch.float32)
    low = [t.detach().bfloat16().requires_grad_() for t in (hidden, weight)]
    fused = chunked_linear_cross_entropy(low[0], low[1], targets, chunk_tokens=8)
    fused.backward()
    expected = plain(hidden, weight, targets, "mean")
    expected.backward()
    assert fused.dtype == torch.float32 and low[0].grad.dtype == torch.bfloat16
    torch.testing.assert_close(fused, expected, atol=0.05, rtol=0.02)
    torch.testing.assert_close(low[0].grad.float(), hidden.grad, atol=0.02, rtol=0.05)


def test_all_ignored_gives_zero_loss_and_zero_gradient() -> None:
    hidden, weight, targets = inputs()
    loss = chunked_linear_cross_entropy(hidden, weight, torch.full_like(targets, IGNORE))
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad.abs().max().item() == 0.0


def test_bad_shapes_are_named() -> None:
    hidden, weight, targets = inputs()
    with pytest.raises(ValueError, match="shapes do not fit"):
        chunked_linear_cross_entropy(hidden, weight, targets[:-1])


def tiny_llama() -> transformers.LlamaForCausalLM:
    return tiny_llama_in_memory(64)


def packed_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    examples = []
    for length, prompt in ((9, 3), (14, 0), (6, 2)):
        ids = tuple(torch.randint(1, 64, (length,), generator=generator).tolist())
        examples.append(TokenizedExample(ids, (IGNORE,) * prompt + ids[prompt:]))
    return PackedCollator(40, 0)(pack_examples(examples, 40))


def test_causal_lm_loss_matches_model_loss_on_packed_lora_model() -> None:
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny_llama(), peft.LoraConfig(r=4, target_modules=["q_proj", "down_proj"],
                                                              init_lora_weights=False))
    enable_packed_attention(model, "sdpa")
    batch = packed_batch()
    trainable = [p for p in model.parameters() if p.requires_grad]
    expected = model(**batch).loss
    expected_grads = torch.autograd.grad(expected, trainable)
    fused = causal_lm_loss(model, batch["input_ids"], batch["labels"], batch["position_ids"], chunk_tokens=7)
    fused_grads = torch.autograd.grad(fused, trainable)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    for got, want in zip(fused_grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_fused_loss_through_ddp_with_fp32_outputs(tmp_path: Path) -> None:
    """Under DDP the loss runs the wrapper's forward, and transformers' Trainer (accelerate, bf16 mixed precision)
    converts that forward's outputs to fp32: the hidden states then met a bf16 lm_head. The first 2-GPU device run
    with --packing stopped there (`expected mat1 and mat2 to have the same dtype`)."""
    from accelerate.utils import convert_outputs_to_fp32

    distributed = torch.distributed
    model = tiny_llama().to(torch.bfloat16)
    enable_packed_attention(model, "sdpa")
    batch = packed_batch()
    expected = causal_lm_loss(model, batch["input_ids"], batch["labels"], batch["position_ids"])
    distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    wrapped = None
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        model.forward = convert_outputs_to_fp32(model.forward)
        loss = causal_lm_loss(wrapped, batch["input_ids"], batch["labels"], batch["position_ids"])
        loss.backward()
    finally:
        # the DDP reducer holds the process group: release it first, so the group's threads stop while it is alive
        # (destroyed afterwards by the garbage collector, ProcessGroupGloo's destructor can wait forever on them)
        del wrapped
        gc.collect()
        distributed.destroy_process_group()
    torch.testing.assert_close(loss, expected)
    assert model.model.layers[0].self_attn.q_proj.weight.grad is not None


def test_num_items_replaces_token_count() -> None:
    model, batch = tiny_llama(), packed_batch()
    enable_packed_attention(model, "sdpa")
    counted = int((batch["labels"][:, 1:] != IGNORE).sum())
    mean = causal_lm_loss(model, batch["input_ids"], batch["labels"], batch["position_ids"])
    scaled = causal_lm_loss(model, batch["input_ids"], batch["labels"], batch["position_ids"], num_items=2 * counted)
    torch.testing.assert_close(scaled * 2, mean)


def test_refuses_models_that_transform_logits() -> None:
    model = tiny_llama()
    model.config.final_logit_softcapping = 30.0
    batch = packed_batch()
    with pytest.raises(ValueError, match="final_logit_softcapping"):
        causal_lm_loss(model, batch["input_ids"], batch["labels"], batch["position_ids"])
