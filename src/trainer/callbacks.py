"""Trainer callbacks: divergence guard, save-on-Ctrl-C, JSONL metrics with throughput, progress bar postfix."""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from trainer.deferred import DeferredScalar, defer


class DivergenceGuard(TrainerCallback):
    """Stops training when the logged loss is NaN/inf or the grad norm is non-finite or above `grad_norm_limit`.

    Every micro-step's loss and every optimizer step's gradient norm are checked, read off the GPU without waiting
    for it (`trainer.deferred`): a value is checked once its copy has landed, at the latest before a save, a log,
    an evaluation or the end, so a step after a bad one is never saved. Put it after the callbacks that may ask for a
    save (SaveOnInterrupt), so it sees their requests. `every_step`: wait at the end of every optimizer step (several
    processes: each must stop at the same step, and the all-reduced gradient norm makes them agree only then)."""

    def __init__(self, grad_norm_limit: float, every_step: bool = False) -> None:
        self.grad_norm_limit = grad_norm_limit
        self.every_step = every_step
        self.stop_reason: str | None = None
        self._pending: list[DeferredScalar] = []

    def observe_step_loss(self, loss: Any, step: int) -> None:
        """Every micro-step's loss (the Trainer's logged loss hides NaN steps behind an average)."""
        self.observe(defer("loss", loss, step))

    def observe_grad_norm(self, grad_norm: Any, step: int) -> None:
        """Every optimizer step's gradient norm (logs only carry the ones at --logging_steps)."""
        self.observe(defer("grad_norm", grad_norm, step))

    def observe(self, scalar: DeferredScalar) -> None:
        """Queues one deferred value and checks those that have landed."""
        self._pending.append(scalar)
        self.settle(wait=False)

    def settle(self, wait: bool) -> None:
        """Checks the values that have reached the host (`wait`: all of them, waiting for the GPU)."""
        while self._pending and (wait or self._pending[0].ready()):
            scalar = self._pending.pop(0)
            if self.stop_reason is None:
                self.stop_reason = self.check({scalar.name: scalar.value()}, scalar.step)

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.settle(wait=bool(self.every_step or control.should_save or control.should_log or control.should_evaluate
                              or control.should_training_stop))
        if self.stop_reason:
            control.should_training_stop = True
            control.should_save = False  # runs after DefaultFlowCallback: this step's weights are not saved
        return control

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.settle(wait=True)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
        reason = self.check(logs or {}, state.global_step)
        if reason and not self.stop_reason:
            self.stop_reason = reason
        if self.stop_reason:
            control.should_training_stop = True
            control.should_save = False  # the weights are suspect: keep the last good checkpoint as the newest
        return control

    def check(self, logs: dict[str, Any], step: int) -> str | None:
        loss, grad_norm = logs.get("loss"), logs.get("grad_norm")
        if isinstance(loss, float) and not math.isfinite(loss):
            return f"loss became {loss} at step {step}"
        if isinstance(grad_norm, float) and not math.isfinite(grad_norm):
            return f"gradient norm became {grad_norm} at step {step}"
        if isinstance(grad_norm, float) and grad_norm > self.grad_norm_limit:
            return f"gradient norm {grad_norm:.4g} exceeded --grad_norm_limit {self.grad_norm_limit:g} at step {step}"
        return None


class SaveOnInterrupt(TrainerCallback):
    """First Ctrl-C (SIGINT): save a checkpoint at the end of the current step and stop. A second one aborts."""

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Any = None

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return control

    def _handle(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if self.interrupted:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return control


class MetricsLogger(TrainerCallback):
    """Appends every log (plus tokens/s, seconds and tokens since training began) to OUTPUT_DIR/metrics.jsonl on the
    main process."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / "metrics.jsonl"
        self.started = time.perf_counter()
        self.start_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.started = time.perf_counter()
        self.start_tokens = state.num_input_tokens_seen or 0
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
        if logs is None:
            return control
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        seen = (state.num_input_tokens_seen or 0) - self.start_tokens
        logs["tokens_per_s"] = round(seen / elapsed, 1)
        if state.is_world_process_zero:  # elapsed_s/tokens_seen: rates between any two rows (benchmarks/scaling.py)
            record = {"step": state.global_step, **logs, "elapsed_s": round(elapsed, 3), "tokens_seen": seen}
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        return control


class StepClock(TrainerCallback):
    """When each optimizer step ended (host clock, from the start of training) and how many tokens had been trained
    by then, for the summary's warm-up / steady-state split. `counter()` returns the tokens so far (an int, or a
    device tensor: it is read without a sync through trainer.deferred, and landed values are kept as floats)."""

    def __init__(self, counter: Any = None) -> None:
        self.counter = counter
        self.started = time.perf_counter()
        self.step_ends: list[float] = []
        self._tokens: list[Any] = []  # floats, or DeferredScalars still on their way
        self._pending = 0  # index of the oldest value not yet a float

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.started = time.perf_counter()
        self.step_ends.clear()
        self._tokens.clear()
        self._pending = 0
        return control

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.step_ends.append(time.perf_counter() - self.started)
        self._tokens.append(defer("tokens", self.counter(), state.global_step) if self.counter else 0.0)
        self._settle(wait=False)
        return control

    def _settle(self, wait: bool) -> None:
        """Turns landed values into floats, oldest first (they land in order)."""
        while self._pending < len(self._tokens):
            item = self._tokens[self._pending]
            if isinstance(item, DeferredScalar):
                if not (wait or item.ready()):
                    return
                self._tokens[self._pending] = item.value()
            self._pending += 1

    def tokens_at_end(self) -> list[float]:
        self._settle(wait=True)
        return [float(value) for value in self._tokens]


class ThroughputProgress(ProgressCallback):
    """transformers' progress bar (with its ETA) plus loss, learning rate and tokens/s as the postfix."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
        bar = getattr(self, "training_bar", None)
        if state.is_world_process_zero and bar is not None and logs and "loss" in logs:
            bar.set_postfix(progress_postfix(logs), refresh=False)
        return super().on_log(args, state, control, logs=logs, **kwargs)


def progress_postfix(logs: dict[str, Any]) -> dict[str, str]:
    shown = {"loss": ("loss", "{:.4g}"), "learning_rate": ("lr", "{:.3g}"), "tokens_per_s": ("tok/s", "{:,.0f}")}
    present = {key: value for key, value in logs.items() if isinstance(value, (int, float))}
    return {label: form.format(present[key]) for key, (label, form) in shown.items() if key in present}
