"""Sequence packing: several tokenized samples per fixed-length row, isolated from each other.

How isolation works (transformers 5.x): when a batch carries `position_ids` that restart at 0 for each sample and
NO `attention_mask`, and the model builds no KV cache, transformers derives a per-sample (block-diagonal causal)
mask from the restarts. A cache is built whenever `use_cache` is true, and `use_cache` defaults to
`model.config.use_cache`, which is `True` for every causal LM, even in training. With a cache (or with an
all-ones attention mask) the packed samples silently attend to each other. So a packed model must have
`config.use_cache = False`: call `enable_packed_attention(model)` before training.

Rows are padded to exactly `row_tokens` so every step has the same shape (no recompiles under FlexAttention or
`torch.compile`); the tail padding restarts its positions at 0, which makes it a segment of its own, and its
labels are IGNORE_INDEX.

Labels: causal-LM losses shift labels left by one across the whole row, so the last token of one sample would be
trained to predict the first token of the next. The first label of every sample is therefore set to IGNORE_INDEX;
run on its own, a sample's first label is never a target either, so the loss is unchanged.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainer.peft_model import base_model
from trainer.types import IGNORE_INDEX, TokenizedExample

if TYPE_CHECKING:
    import torch

# "rows": FlexAttention for packed rows, SDPA (cuDNN first) for plain causal ones (trainer.attention)
ATTENTION_BACKENDS = {"sdpa": "sdpa", "flex": "flex_attention", "eager": "eager", "rows": "flex_attention+sdpa"}


@dataclass(frozen=True)
class PackedRow:
    """Samples laid end to end, not yet padded. `seq_lens` lists the samples' lengths in row order."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    position_ids: tuple[int, ...]
    seq_lens: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.input_ids)


def pack_examples(examples: Sequence[TokenizedExample], row_tokens: int) -> list[PackedRow]:
    """Best-fit-decreasing bin packing of whole samples into rows of at most `row_tokens` tokens.

    Deterministic: ties in length keep input order. Rows come out in the order they were opened (longest first);
    shuffle them with the training seed. Raises ValueError for an empty sample or one longer than `row_tokens`
    (the caller drops or truncates those before packing).
    """
    _check_packable(examples, row_tokens)
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i]), i))
    return [_build_row([examples[i] for i in members]) for members in _best_fit(order, examples, row_tokens)]


def _check_packable(examples: Sequence[TokenizedExample], row_tokens: int) -> None:
    if row_tokens < 1:
        raise ValueError(f"row_tokens must be a positive number of tokens, got {row_tokens}")
    for index, example in enumerate(examples):
        if not 0 < len(example) <= row_tokens:
            raise ValueError(
                f"sample {index} has {len(example)} tokens; packing needs 1..{row_tokens} "
                "(drop empty samples and truncate long ones before packing)"
            )


def _best_fit(order: list[int], examples: Sequence[TokenizedExample], row_tokens: int) -> list[list[int]]:
    """Put each sample into the open row with the least free space that still fits it."""
    rows: list[list[int]] = []
    rows_by_free: dict[int, list[int]] = {}  # free tokens -> row numbers with exactly that much room
    free_sizes: list[int] = []  # sorted keys of rows_by_free whose list is non-empty
    for index in order:
        need = len(examples[index])
        slot = bisect.bisect_left(free_sizes, need)
        if slot == len(free_sizes):
            row, free = len(rows), row_tokens
            rows.append([])
        else:
            free = free_sizes[slot]
            row = rows_by_free[free].pop()
            if not rows_by_free[free]:
                del free_sizes[slot]
        rows[row].append(index)
        _add_free_row(rows_by_free, free_sizes, row, free - need)
    return rows


def _add_free_row(rows_by_free: dict[int, list[int]], free_sizes: list[int], row: int, free: int) -> None:
    if free == 0:
        return
    bucket = rows_by_free.setdefault(free, [])
    if not bucket:
        bisect.insort(free_sizes, free)
    bucket.append(row)


def _build_row(samples: Sequence[TokenizedExample]) -> PackedRow:
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for sample in samples:
        input_ids.extend(sample.input_ids)
        labels.append(IGNORE_INDEX)  # never predict a sample's first token from the previous sample
        labels.extend(sample.labels[1:])
        position_ids.extend(range(len(sample)))
    seq_lens = tuple(len(sample) for sample in samples)
    return PackedRow(tuple(input_ids), tuple(labels), tuple(position_ids), seq_lens)


class PackedCollator:
    """Turns PackedRows into a batch of fixed shape (len(rows), row_tokens).

    Returns `input_ids`, `labels` and `position_ids` as int64 tensors and deliberately no `attention_mask`
    (a mask would switch off transformers' per-sample masking). The model needs `config.use_cache = False`.
    When every row holds one sample (samples as long as the rows), the batch has no `position_ids`: those rows are
    plain causal rows (the tail padding comes after the sample, which cannot see it), and SDPA's causal kernel runs
    them faster than a document mask (trainer.attention).
    """

    def __init__(self, row_tokens: int, pad_token_id: int) -> None:
        if row_tokens < 1:
            raise ValueError(f"row_tokens must be a positive number of tokens, got {row_tokens}")
        self.row_tokens = row_tokens
        self.pad_token_id = pad_token_id

    def __call__(self, rows: Sequence[PackedRow]) -> dict[str, torch.Tensor]:
        import torch

        padded = [self._pad(row) for row in rows]
        names = ("input_ids", "labels", "position_ids") if any(len(row.seq_lens) > 1 for row in rows) else \
            ("input_ids", "labels")
        return {name: torch.tensor([fields[i] for fields in padded], dtype=torch.long) for i, name in enumerate(names)}

    def _pad(self, row: PackedRow) -> tuple[list[int], list[int], list[int]]:
        missing = self.row_tokens - len(row)
        if missing < 0:
            raise ValueError(f"packed row has {len(row)} tokens, more than row_tokens={self.row_tokens}")
        return (
            [*row.input_ids, *([self.pad_token_id] * missing)],
            [*row.labels, *([IGNORE_INDEX] * missing)],
            [*row.position_ids, *range(missing)],  # restarts at 0: the padding is a segment of its own
        )


def enable_packed_attention(model: Any, backend: str = "auto") -> str:
    """Make `model` (a transformers model or a PEFT wrapper of one) isolate packed samples.

    Sets `config.use_cache = False` and the attention implementation: "sdpa", "flex" (FlexAttention, block-sparse
    document mask), "rows" (FlexAttention for packed rows, SDPA for rows of one sample: trainer.attention) or
    "eager"; "auto" picks rows on CUDA when torch offers FlexAttention, else sdpa. Returns the transformers name of
    the implementation chosen. Raises ValueError for an unknown backend.
    """
    if backend != "auto" and backend not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; use auto, {', '.join(ATTENTION_BACKENDS)}")
    base = base_model(model)
    chosen = _auto_backend(base) if backend == "auto" else backend
    base.config.use_cache = False
    if chosen == "rows":
        from trainer.attention import enable_rows_attention

        return enable_rows_attention(base)
    base.set_attn_implementation(ATTENTION_BACKENDS[chosen])
    return ATTENTION_BACKENDS[chosen]


def _auto_backend(model: Any) -> str:
    """rows (FlexAttention for packed rows) when the model trains on CUDA: it is there already, or it is still on
    the CPU (transformers' Trainer moves it at the start of training) and a GPU is available."""
    import torch

    device = next(model.parameters()).device.type
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return "sdpa"
    trains_on_cuda = device == "cuda" or (device == "cpu" and torch.cuda.is_available())
    return "rows" if trains_on_cuda else "sdpa"


def packing_efficiency(rows: Sequence[PackedRow], row_tokens: int) -> float:
    """Share of the padded rows' tokens that are real tokens (1.0 = no padding)."""
    return sum(len(row) for row in rows) / (len(rows) * row_tokens) if rows else 0.0


def padded_batch_fill(lengths: Sequence[int], batch_size: int, multiple: int, seed: int) -> float:
    """Share of real tokens when `lengths`, shuffled (seeded) into batches of `batch_size`, are padded to each batch's
    longest row rounded up to `multiple` (what the unpacked path does; 1.0 = no padding)."""
    import random

    order = list(lengths)
    random.Random(seed).shuffle(order)
    padded = 0
    for start in range(0, len(order), max(1, batch_size)):
        batch = order[start:start + batch_size]
        padded += len(batch) * -(-max(batch) // multiple) * multiple
    return sum(order) / padded if padded else 1.0


def samples_in_batch(batch: dict[str, Any], pad_token_id: int | None) -> int | torch.Tensor:
    """How many training samples a collated batch holds: its rows, or for packed rows (position_ids, no attention
    mask) the segments that restart at position 0, less the padding segments (they start with the pad token).

    Packed rows give a 0-dim tensor on the batch's device, so counting every step never waits for the GPU; sum the
    counts and read the total once (int(total))."""
    input_ids = batch["input_ids"]
    if "position_ids" not in batch or "attention_mask" in batch:
        return int(input_ids.shape[0])
    starts = batch["position_ids"] == 0
    if pad_token_id is not None:
        starts = starts & (input_ids != pad_token_id)
    return starts.sum()
