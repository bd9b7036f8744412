"""trainer.attention: packed rows get FlexAttention's document mask, plain rows SDPA with the same results."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("torch.nn.attention.flex_attention")

from tiny import tiny_llama_in_memory  # noqa: E402
from torch.nn.attention.flex_attention import BlockMask  # noqa: E402
from transformers.masking_utils import create_causal_mask  # noqa: E402

from trainer.attention import ROWS_ATTENTION, document_mask, enable_rows_attention, packed_rows_mask  # noqa: E402
from trainer.packing import enable_packed_attention  # noqa: E402

VOCAB, TOKENS = 96, 24


def tiny_llama(attention: str, hidden_size: int = 32) -> transformers.LlamaForCausalLM:
    model = tiny_llama_in_memory(VOCAB, hidden=hidden_size, use_cache=False)
    if attention == ROWS_ATTENTION:
        enable_rows_attention(model)
    else:
        model.set_attn_implementation(attention)
    return model


def plain_batch(padded: bool) -> dict[str, torch.Tensor]:
    """Two rows of one sample each; with `padded`, the second ends in 5 padding tokens."""
    ids = torch.randint(1, VOCAB, (2, TOKENS), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    if padded:
        mask[1, -5:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def loss_and_grads(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list]:
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("padded", [False, True], ids=["no-padding", "padded"])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled-layers"])
def test_plain_rows_train_as_with_sdpa(padded: bool, compiled: bool) -> None:
    """The SDPA branch (under sdpa_kernel, also traced by Dynamo inside compiled layers) gives SDPA's loss and
    gradients."""
    batch = plain_batch(padded)
    reference = loss_and_grads(tiny_llama("sdpa"), batch)
    model = tiny_llama(ROWS_ATTENTION)
    if compiled:
        torch._dynamo.reset()
        for layer in model.model.layers:
            layer.compile(backend="aot_eager", fullgraph=True)  # a graph break in the branch fails here
    loss, grads = loss_and_grads(model, batch)
    torch.testing.assert_close(loss, reference[0])
    for got, want in zip(grads, reference[1], strict=True):
        torch.testing.assert_close(got, want)


def mask_for(model: torch.nn.Module, position_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> object:
    embeddings = torch.zeros(position_ids.shape[0], position_ids.shape[1], model.config.hidden_size)
    return create_causal_mask(config=model.config, inputs_embeds=embeddings, attention_mask=attention_mask,
                              past_key_values=None, position_ids=position_ids)


def test_each_kind_of_row_gets_its_mask() -> None:
    """Packed rows: a block-sparse document mask (FlexAttention); one sample a row: none (SDPA's is_causal, where
    cuDNN may run); padding: a boolean mask (SDPA without cuDNN)."""
    model = tiny_llama(ROWS_ATTENTION)
    plain = torch.arange(12)[None]
    packed = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2]])
    assert mask_for(model, plain, None) is None
    padding = mask_for(model, plain, torch.tensor([[1] * 10 + [0] * 2]))
    assert isinstance(padding, torch.Tensor) and padding.dtype == torch.bool and not padding[0, 0, 11, 10]
    document = mask_for(model, packed, None)
    assert isinstance(document, BlockMask)
    query, key = torch.arange(12)[:, None], torch.arange(12)[None, :]
    sample = torch.tensor([0] * 5 + [1] * 4 + [2] * 3)
    allowed = document.mask_mod(torch.tensor(0), torch.tensor(0), query, key)
    assert torch.equal(allowed, (sample[:, None] == sample[None, :]) & (query >= key))


@pytest.mark.slow
def test_document_mask_is_the_mask_transformers_builds_for_packed_rows() -> None:
    """The fused loss passes document_mask (no host sync); it must be the block mask transformers would build."""
    model = tiny_llama(ROWS_ATTENTION)
    segments = [list(range(100)) + list(range(150)) + list(range(6)), list(range(256))]
    position_ids = torch.tensor(segments)
    ours, theirs = document_mask(position_ids), mask_for(model, position_ids, None)
    assert ours.shape == theirs.shape == (2, 1, 256, 256)
    for name in ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices"):
        assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
    query, key = torch.arange(256)[:, None], torch.arange(256)[None, :]
    for row in range(2):
        batch = torch.tensor(row)
        torch.testing.assert_close(ours.mask_mod(batch, torch.tensor(0), query, key),
                                   theirs.mask_mod(batch, torch.tensor(0), query, key))
    assert packed_rows_mask(tiny_llama("sdpa"), position_ids) is None  # transformers builds SDPA's own mask


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention on CPU (torch inductor C++) is not reliable")
def test_fused_loss_mask_keeps_packed_samples_apart_on_cuda() -> None:
    """Through causal_lm_loss's path (document_mask, FlexAttention): a sample's hidden states do not change when
    the sample before it in the row changes."""
    model = tiny_llama(ROWS_ATTENTION, hidden_size=64).cuda()  # FlexAttention's CUDA kernels need head dim >= 16
    target = torch.randint(1, VOCAB, (10,), generator=torch.Generator().manual_seed(2))
    states = []
    for seed in (3, 4):
        before = torch.randint(1, VOCAB, (14,), generator=torch.Generator().manual_seed(seed))
        ids = torch.cat([before, target, torch.zeros(TOKENS * 2 - 24, dtype=torch.long)])[None].cuda()
        position_ids = torch.tensor([list(range(14)) + list(range(10)) + list(range(TOKENS * 2 - 24))]).cuda()
        with torch.no_grad():
            hidden = model.model(input_ids=ids, position_ids=position_ids,
                                 attention_mask=packed_rows_mask(model, position_ids)).last_hidden_state
        states.append(hidden[0, 14:24])
    assert torch.equal(states[0], states[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the cuDNN kernel needs a GPU")
def test_padded_batch_backward_stays_finite_on_cuda() -> None:
    """pytorch/pytorch#196678: torch 2.11's cuDNN backward gives NaN in d(q) with an explicit mask at lengths 64 past
    a multiple of 128 when a row's logsumexp is below -88.7. The padded-batch branch must not take cuDNN."""
    from trainer.attention import rows_attention

    length, dim = 704, 64
    generator = torch.Generator(device="cuda").manual_seed(0)

    def tensor(scale: float) -> torch.Tensor:
        return torch.randn(1, 1, length, dim, device="cuda", dtype=torch.bfloat16, generator=generator) * scale

    query, key, value = tensor(0.1), tensor(0.1), tensor(1.0)
    query[..., 0], key[..., 0] = 1.0, -120 * dim ** 0.5  # every score about -120
    query.requires_grad_()
    mask = torch.ones(length, length, dtype=torch.bool, device="cuda").tril()[None, None]
    module = torch.nn.Module()
    module.is_causal, module.training = True, True
    out, _ = rows_attention(module, query, key.requires_grad_(), value.requires_grad_(), mask)
    out.backward(torch.ones_like(out))
    assert torch.isfinite(query.grad).all()


def test_packed_attention_rows_backend_registers_with_transformers() -> None:
    model = tiny_llama("sdpa")
    assert enable_packed_attention(model, "rows") == ROWS_ATTENTION
    assert model.config._attn_implementation == ROWS_ATTENTION and model.config.use_cache is False
