"""Process-group facts from the launcher's environment (torchrun / accelerate launch), and the debug trace.

The debug trace (off unless TRAINER_DEBUG_DIR is set) lets tests see what every rank did: each rank appends to
TRAINER_DEBUG_DIR/<kind>-rank<R>.txt (the gate's verdict, the training sample ids it consumed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

DEBUG_DIR_VARIABLE = "TRAINER_DEBUG_DIR"
# NVLink SHARP / multicast paths hang or fail on some hosts (KINDS.md); harmless where absent, e.g. on CPU.
DISTRIBUTED_ENV_DEFAULTS = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                            "NVSHMEM_DISABLE_NVLS": "1"}
# Only rank 0 prints: the other ranks silence the libraries' warnings and progress bars.
QUIET_RANK_ENV = {"TRANSFORMERS_VERBOSITY": "error", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                  "DATASETS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return rank() == 0


def configure_distributed_env() -> None:
    """Under a multi-process launcher, set the NCCL/NVSHMEM defaults (values the user exported win) and quiet the
    libraries on every rank but 0. Call it before transformers or datasets is imported."""
    if world_size() <= 1:
        return
    for name, value in DISTRIBUTED_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if not is_main_process():
        import warnings

        os.environ.update(QUIET_RANK_ENV)
        warnings.simplefilter("ignore")


def wait_for_every_rank() -> None:
    """Under a process group, return when every rank has come here: after training and saving, so that no rank tears
    down its group while another still works with it (a rank exiting early aborts: 'terminate called without an
    active exception', exit -6 under torchrun). Nothing without a process group."""
    distributed = _initialized()
    if distributed is not None:
        distributed.barrier()


def shutdown_process_group() -> None:
    """Destroy the process group the run initialised (torch warns of leaked NCCL resources otherwise)."""
    distributed = _initialized()
    if distributed is not None:
        distributed.destroy_process_group()


def _initialized() -> Any:
    """``torch.distributed`` when this process has initialised a process group, else None (never imports torch)."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        return distributed
    return None


def debug_record(kind: str, lines: list[str]) -> None:
    """Append lines to TRAINER_DEBUG_DIR/<kind>-rank<R>.txt; does nothing unless the variable is set."""
    directory = os.environ.get(DEBUG_DIR_VARIABLE)
    if not directory or not lines:
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    with (Path(directory) / f"{kind}-rank{rank()}.txt").open("a", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


class RecordingCollator:
    """Wraps a collator; with TRAINER_DEBUG_DIR set, records the data-file line of every sample it batches."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, rows: list[Any]) -> Any:
        debug_record("samples", [str(row["line"]) for row in rows if isinstance(row, dict) and "line" in row])
        return self.inner(rows)


def debug_enabled() -> bool:
    return bool(os.environ.get(DEBUG_DIR_VARIABLE))
