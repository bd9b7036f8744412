"""The collator of unpacked batches: pads each batch to its longest row, rounded up to a multiple."""

from __future__ import annotations

from typing import Any

from trainer.types import IGNORE_INDEX

PAD_MULTIPLE = 8  # padded batch lengths: a multiple of 8 suits tensor cores
COMPILE_PAD_MULTIPLE = 256  # under --torch_compile: at most max_seq_length/256 batch shapes, so few recompiles


def pad_multiple(torch_compile: bool) -> int:
    """The multiple batch lengths are padded to: coarse under --torch_compile, so that few shapes recompile."""
    return COMPILE_PAD_MULTIPLE if torch_compile else PAD_MULTIPLE


class PadCollator:
    """Pads input_ids/labels to the longest sample in the batch (rounded up to a multiple) and adds the mask."""

    def __init__(self, pad_token_id: int, multiple: int = PAD_MULTIPLE) -> None:
        self.pad_token_id = pad_token_id
        self.multiple = multiple

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = -(-max(len(row["input_ids"]) for row in rows) // self.multiple) * self.multiple
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "attention_mask": []}
        for row in rows:
            missing = longest - len(row["input_ids"])
            batch["input_ids"].append(list(row["input_ids"]) + [self.pad_token_id] * missing)
            batch["labels"].append(list(row["labels"]) + [IGNORE_INDEX] * missing)
            batch["attention_mask"].append([1] * len(row["input_ids"]) + [0] * missing)
        return {name: torch.tensor(values, dtype=torch.long) for name, values in batch.items()}
