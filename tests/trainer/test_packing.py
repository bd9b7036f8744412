"""Packing: rows hold whole samples, samples cannot see each other, and the loss is the per-sample loss."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tiny import tiny_llama_in_memory  # noqa: E402

from trainer.packing import (  # noqa: E402
    PackedCollator,
    PackedRow,
    enable_packed_attention,
    pack_examples,
    packing_efficiency,
)
from trainer.types import IGNORE_INDEX, TokenizedExample  # noqa: E402

VOCAB = 96
ROW = 48
PAD_ID = 0


def tiny_llama(seed: int = 0) -> transformers.LlamaForCausalLM:
    return tiny_llama_in_memory(VOCAB, seed=seed).eval()


def sample(length: int, seed: int, prompt: int = 0) -> TokenizedExample:
    generator = torch.Generator().manual_seed(seed)
    ids = tuple(torch.randint(1, VOCAB, (length,), generator=generator).tolist())
    return TokenizedExample(ids, (IGNORE_INDEX,) * prompt + ids[prompt:])


def logits_of_last_sample(model: torch.nn.Module, before: TokenizedExample, target: TokenizedExample) -> torch.Tensor:
    """Logits of `target` packed right after `before` in one padded row (collator path, no attention mask)."""
    [row] = pack_examples([before, target], ROW)
    assert row.seq_lens == (len(before), len(target))
    batch = PackedCollator(ROW, PAD_ID)([row])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
    return logits[0, len(before):len(before) + len(target)]


def backends() -> list:
    on_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="FlexAttention on CPU (torch inductor C++) is not reliable here")
    return ["sdpa", "eager", pytest.param("flex", marks=on_cuda), pytest.param("rows", marks=on_cuda)]


@pytest.mark.parametrize("backend", backends())
def test_sample_logits_do_not_depend_on_neighbour(backend: str) -> None:
    model = tiny_llama()
    enable_packed_attention(model, backend)
    target = sample(10, seed=1)
    same_shape = [logits_of_last_sample(model, sample(14, seed=s), target) for s in (2, 3)]
    other_shape = logits_of_last_sample(model, sample(20, seed=4), target)
    assert torch.equal(same_shape[0], same_shape[1])
    torch.testing.assert_close(other_shape, same_shape[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["sdpa", "eager"])
def test_with_cache_samples_leak_into_each_other(backend: str) -> None:
    """Control: the isolation test above can fail. With use_cache=True transformers ignores the restarts."""
    model = tiny_llama()
    enable_packed_attention(model, backend)
    model.config.use_cache = True
    target = sample(10, seed=1)
    first, second = (logits_of_last_sample(model, sample(14, seed=s), target) for s in (2, 3))
    assert (first - second).abs().max().item() > 1e-3


def separate_losses(model: torch.nn.Module, samples: list[TokenizedExample]) -> torch.Tensor:
    """Token-weighted mean of the losses of each sample run alone."""
    total, count = torch.zeros(()), 0
    for one in samples:
        labels = torch.tensor([one.labels])
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([one.input_ids]), labels=labels).loss
        targets = int((labels[0, 1:] != IGNORE_INDEX).sum())
        total, count = total + loss * targets, count + targets
    return total / count


def test_packed_loss_equals_token_weighted_mean_of_separate_losses() -> None:
    model = tiny_llama()
    enable_packed_attention(model, "sdpa")
    samples = [sample(9, 5, prompt=3), sample(15, 6), sample(7, 7), sample(11, 8, prompt=5)]  # 7: no prompt
    [row] = pack_examples(samples, ROW)
    batch = PackedCollator(ROW, PAD_ID)([row])
    with torch.no_grad():
        packed = model(**batch).loss
    torch.testing.assert_close(packed, separate_losses(model, samples), atol=1e-5, rtol=1e-5)


def test_first_label_of_each_sample_is_not_a_target() -> None:
    [row] = pack_examples([sample(6, 1), sample(4, 2)], ROW)
    starts = [0, row.seq_lens[0]]
    assert [row.labels[i] for i in starts] == [IGNORE_INDEX, IGNORE_INDEX]
    assert row.position_ids == (0, 1, 2, 3, 4, 5, 0, 1, 2, 3)


def test_collator_pads_to_fixed_shape_without_attention_mask() -> None:
    rows = pack_examples([sample(30, 1), sample(20, 2), sample(5, 3)], ROW)
    batch = PackedCollator(ROW, PAD_ID)(rows)
    assert set(batch) == {"input_ids", "labels", "position_ids"}
    assert all(tensor.shape == (len(rows), ROW) for tensor in batch.values())
    used = len(rows[0])
    assert batch["position_ids"][0, used:].tolist() == list(range(ROW - used))
    assert set(batch["labels"][0, used:].tolist()) == {IGNORE_INDEX}
    assert set(batch["input_ids"][0, used:].tolist()) == {PAD_ID}


def test_rows_of_one_sample_are_plain_causal_rows() -> None:
    """A batch whose rows each hold one sample has no position_ids (SDPA's causal kernel runs it, trainer.attention),
    and its loss is the samples' own loss: the tail padding comes after the sample, which cannot attend to it."""
    model = tiny_llama()
    enable_packed_attention(model, "sdpa")
    samples = [sample(ROW, 1), sample(30, 2, prompt=4)]
    rows = pack_examples(samples, ROW)
    assert [len(row.seq_lens) for row in rows] == [1, 1]
    batch = PackedCollator(ROW, PAD_ID)(rows)
    assert set(batch) == {"input_ids", "labels"}
    with torch.no_grad():
        packed = model(**batch).loss
    torch.testing.assert_close(packed, separate_losses(model, samples), atol=1e-5, rtol=1e-5)


def test_collator_refuses_row_longer_than_row_tokens() -> None:
    row = PackedRow((1,) * 5, (1,) * 5, tuple(range(5)), (5,))
    with pytest.raises(ValueError, match="row_tokens=4"):
        PackedCollator(4, PAD_ID)([row])


@pytest.mark.parametrize("lengths, message", [([3, 49], "sample 1 has 49 tokens"), ([0], "sample 0 has 0 tokens")])
def test_unpackable_sample_is_named(lengths: list[int], message: str) -> None:
    examples = [TokenizedExample((1,) * n, (1,) * n) for n in lengths]
    with pytest.raises(ValueError, match=message):
        pack_examples(examples, ROW)


def test_enable_packed_attention_on_peft_model() -> None:
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny_llama(), peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert enable_packed_attention(model) == "sdpa"  # auto on CPU
    assert model.get_base_model().config.use_cache is False
    with pytest.raises(ValueError, match="unknown attention backend"):
        enable_packed_attention(model, "flash")


def test_auto_picks_flex_rows_for_a_model_still_on_the_cpu_when_training_will_run_on_a_gpu(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer chooses before transformers' Trainer moves the model to the GPU (the device run that found this
    packed with SDPA's dense mask); the CUDA answer is faked here, the choice is the code under test."""
    pytest.importorskip("torch.nn.attention.flex_attention")
    model = tiny_llama()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert enable_packed_attention(model) == "flex_attention+sdpa"  # FlexAttention for packed rows


lengths_strategy = st.lists(st.integers(min_value=1, max_value=ROW), min_size=0, max_size=60)


@settings(max_examples=200, deadline=None)
@given(lengths=lengths_strategy)
def test_packing_keeps_every_sample_whole_and_once(lengths: list[int]) -> None:
    examples = [TokenizedExample(tuple([i] * n), tuple([i] * n)) for i, n in enumerate(lengths)]
    rows = pack_examples(examples, ROW)
    seen: list[int] = []
    for row in rows:
        assert 0 < len(row) <= ROW and sum(row.seq_lens) == len(row)
        start = 0
        for n in row.seq_lens:
            ids = row.input_ids[start:start + n]
            assert len(set(ids)) == 1 and lengths[ids[0]] == n  # one whole sample, not split
            assert row.position_ids[start:start + n] == tuple(range(n))
            seen.append(ids[0])
            start += n
    assert sorted(seen) == list(range(len(lengths)))
    assert pack_examples(examples, ROW) == rows  # deterministic


@settings(max_examples=100, deadline=None)
@given(lengths=lengths_strategy)
def test_best_fit_never_leaves_two_rows_that_could_merge(lengths: list[int]) -> None:
    examples = [TokenizedExample((1,) * n, (1,) * n) for n in lengths]
    rows = pack_examples(examples, ROW)
    sizes = sorted(len(row) for row in rows)
    assert len(sizes) < 2 or sizes[0] + sizes[1] > ROW
    if rows:
        assert packing_efficiency(rows, ROW) == sum(lengths) / (len(rows) * ROW)


def test_samples_in_batch_counts_the_samples_of_packed_rows_and_the_rows_of_padded_batches() -> None:
    from trainer.packing import samples_in_batch

    examples = [TokenizedExample(tuple(range(5, 5 + n)), tuple(range(5, 5 + n))) for n in (4, 3, 6, 2, 5)]
    rows = pack_examples(examples, 10)
    packed = PackedCollator(10, pad_token_id=0)(rows)
    assert samples_in_batch(packed, pad_token_id=0) == 5  # the padding segments are not samples
    padded = {"input_ids": torch.zeros(3, 8, dtype=torch.long), "attention_mask": torch.ones(3, 8)}
    assert samples_in_batch(padded, pad_token_id=0) == 3


def test_padded_batch_fill_is_the_real_share_of_the_padded_batch_tokens() -> None:
    from trainer.packing import padded_batch_fill

    assert padded_batch_fill([8, 8, 8, 8], batch_size=2, multiple=8, seed=0) == 1.0
    # one batch of 4: padded to 16 (10 rounded up to a multiple of 8); real 2 + 4 + 6 + 10 = 22 of 64
    assert padded_batch_fill([2, 4, 6, 10], batch_size=4, multiple=8, seed=0) == pytest.approx(22 / 64)
    assert padded_batch_fill([], batch_size=4, multiple=8, seed=0) == 1.0
