"""The trainer's exit codes, its one error base class (each kind carries its exit code) and `log`; imports nothing of
the trainer, so every module can use it.

The CLI catches `TrainerError` and exits with `error.exit_code`; nothing else maps errors to exit codes.
"""

from __future__ import annotations

import os
import sys

EXIT_OK = 0
EXIT_FAILED = 1  # the --merge logit check or --validate failed
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3  # the gate, or a merge that would be corrupt by construction
EXIT_DIVERGED = 4
EXIT_OUT_OF_MEMORY = 5  # progress saved; the message names the peak and flags that fit
EXIT_INTERRUPTED = 130  # checkpoint saved


class TrainerError(Exception):
    """Base of every error the trainer reports to the user; the message is what to print, `exit_code` the status."""

    exit_code = EXIT_FAILED


class BadInputError(TrainerError, ValueError):
    """Bad flags, config or input files; the message names the flag, file or line and what to change."""

    exit_code = EXIT_BAD_INPUT


class RefusedError(TrainerError):
    """The run (or merge) would be wrong by construction, so it is refused before it starts."""

    exit_code = EXIT_REFUSED


class CheckFailedError(TrainerError):
    """A check on a result failed: the merged model's logits, or the validation of the merged model."""

    exit_code = EXIT_FAILED


class DivergedError(TrainerError):
    """Training stopped on a non-finite loss or an exploding gradient norm; the last good checkpoint is kept."""

    exit_code = EXIT_DIVERGED


class GPUOutOfMemoryError(TrainerError):
    """Training ran out of GPU memory; the last finished step is saved and the message names flags that fit."""

    exit_code = EXIT_OUT_OF_MEMORY


class RunInterruptedError(TrainerError):
    """Training was interrupted (Ctrl-C or SIGTERM) and a checkpoint was saved."""

    exit_code = EXIT_INTERRUPTED


def is_main_process() -> bool:
    """Rank 0 of a torchrun/accelerate launch, or the only process (RANK unset)."""
    return int(os.environ.get("RANK", "0")) == 0


def log(message: str) -> None:
    """One progress line on stderr, from rank 0 only."""
    if is_main_process():
        print(f"[trainer] {message}", file=sys.stderr, flush=True)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its class name when the message is empty)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
