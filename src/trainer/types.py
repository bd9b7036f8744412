"""Data that flows between the trainer's stages (data -> packing -> recipe)."""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100  # label value that the loss skips (prompt tokens, padding)


@dataclass(frozen=True)
class TokenizedExample:
    """One training sample after tokenization: labels are IGNORE_INDEX where no loss is taken."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.input_ids)
