"""Checkpoints that cannot look complete after a crash: a COMPLETE marker is written last, atomically.

transformers' Trainer writes `checkpoint-N/`; after it has written everything (weights, optimizer, scheduler, RNG,
trainer_state.json) `CompleteMarkerCallback` adds `COMPLETE`. Resuming only ever uses a marked checkpoint.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

from envdoctor import write_atomic
from trainer.errors import BadInputError

COMPLETE_MARKER = "COMPLETE"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


class CheckpointError(BadInputError):
    """--resume_from_checkpoint names something that is not a complete checkpoint."""


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / COMPLETE_MARKER).is_file()


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) for every checkpoint-N directory, oldest first."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return sorted((step, path) for step, path in found if path.is_dir())


def newest_complete(output_dir: Path) -> Path | None:
    complete = [path for _step, path in list_checkpoints(output_dir) if is_complete(path)]
    return complete[-1] if complete else None


def remove_incomplete(output_dir: Path) -> list[Path]:
    """Delete checkpoint dirs that a crash left half-written; returns what was removed."""
    removed = [path for _step, path in list_checkpoints(output_dir) if not is_complete(path)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def resolve_resume(argument: str | None, output_dir: Path) -> Path | None:
    """None (fresh start), the newest complete checkpoint for 'auto', or the named one. Raises CheckpointError."""
    if not argument:
        return None
    if argument == "auto":
        return newest_complete(output_dir)
    path = Path(argument)
    if not path.is_dir():
        raise CheckpointError(f"--resume_from_checkpoint {argument}: no such directory; pass a checkpoint or 'auto'")
    if not is_complete(path):
        raise CheckpointError(f"--resume_from_checkpoint {argument}: incomplete checkpoint (no {COMPLETE_MARKER} "
                              "marker, the save was interrupted); pass an older one or 'auto'")
    return path


class CompleteMarkerCallback(TrainerCallback):
    """Marks checkpoint-N complete after the Trainer has finished writing it (main process only)."""

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201 (transformers' signature)
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir():
                write_atomic(checkpoint / COMPLETE_MARKER, f"step {state.global_step}\n")
        return control
