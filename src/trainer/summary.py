"""End-of-run summary (samples/hour, tokens/s overall and after warm-up, peak and estimated GPU memory, wall time)
and the loss plot."""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from envdoctor import write_atomic

WARMUP_FACTOR = 3.0  # a step slower than this many times the settled step time is still warming up
MIN_STEADY_STEPS = 3  # fewer settled steps than this: no steady-state figure


@dataclass(frozen=True)
class SteadyState:
    """Warm-up (the first steps, until step time settles: compilation, kernel tuning, loader start) apart from the
    steady state after it. Rates are None when fewer than MIN_STEADY_STEPS steps came after the warm-up."""

    warmup_steps: int
    warmup_seconds: float
    steady_steps: int
    steady_seconds: float
    steady_tokens_per_second: float | None
    steady_samples_per_hour: float | None

    def describe(self) -> str:
        warmup = f"warm-up {self.warmup_steps} steps in {self.warmup_seconds:.1f} s"
        if self.steady_tokens_per_second is None:
            return (f"{warmup}; steady state not reached ({self.steady_steps} settled steps, "
                    f"{MIN_STEADY_STEPS} needed): run more steps for a steady-state rate")
        return (f"{warmup}; steady state over {self.steady_steps} steps: {self.steady_tokens_per_second:,.0f} "
                f"tokens/s, {self.steady_samples_per_hour:,.0f} samples/h")


def warmup_steps(step_seconds: list[float], factor: float = WARMUP_FACTOR) -> int:
    """How many leading steps are warm-up: up to and including the last step that took more than `factor` times
    the median step time of the run's second half."""
    if not step_seconds:
        return 0
    settled = statistics.median(step_seconds[len(step_seconds) // 2:])
    slow = [index for index, seconds in enumerate(step_seconds) if seconds > factor * settled]
    return slow[-1] + 1 if slow else 0


def steady_state(step_ends: list[float], tokens_at_end: list[float], tokens_per_sample: float | None) -> SteadyState:
    """`step_ends`: seconds from the start of training to the end of each optimizer step; `tokens_at_end`: tokens
    trained by then. samples/h = steady tokens/s x 3,600 / the run's tokens per sample."""
    durations = [end - start for start, end in zip([0.0, *step_ends[:-1]], step_ends, strict=True)]
    warm = warmup_steps(durations)
    warm_seconds = step_ends[warm - 1] if warm else 0.0
    steady_steps = len(step_ends) - warm
    steady_seconds = (step_ends[-1] - warm_seconds) if steady_steps else 0.0
    if steady_steps < MIN_STEADY_STEPS or steady_seconds <= 0:
        return SteadyState(warm, round(warm_seconds, 3), steady_steps, round(steady_seconds, 3), None, None)
    tokens = tokens_at_end[-1] - (tokens_at_end[warm - 1] if warm else 0.0)
    rate = tokens / steady_seconds
    per_hour = rate * 3600 / tokens_per_sample if tokens_per_sample else None
    return SteadyState(warm, round(warm_seconds, 3), steady_steps, round(steady_seconds, 3), round(rate, 1),
                       round(per_hour, 1) if per_hour is not None else None)


@dataclass(frozen=True)
class MemoryReport:
    """The estimate made before the weights loaded, what was chosen from it, and the GPU's size."""

    estimated_peak_gib: float | None
    gpu_total_gib: float | None
    usable_gib: float | None
    choice: str  # the log line that says what was chosen and why
    flags: str | None  # the memory flags the run trained with


@dataclass(frozen=True)
class RunSummary:
    steps: int
    wall_seconds: float
    samples: int
    tokens: int
    samples_per_hour: float
    tokens_per_second: float
    peak_gpu_memory_gib: float | None
    final_loss: float | None
    final_eval_loss: float | None
    stopped_because: str | None = None
    warmup_steps: int | None = None
    warmup_seconds: float | None = None
    steady_steps: int | None = None
    steady_tokens_per_second: float | None = None
    steady_samples_per_hour: float | None = None
    estimated_peak_gpu_memory_gib: float | None = None
    gpu_memory_gib: float | None = None
    memory_choice: str | None = None
    memory_flags: str | None = None

    def describe(self) -> str:
        memory = f"{self.peak_gpu_memory_gib:.1f} GiB" if self.peak_gpu_memory_gib is not None else "n/a (CPU)"
        if self.estimated_peak_gpu_memory_gib is not None:
            memory += f" (estimated {self.estimated_peak_gpu_memory_gib:.1f} GiB before loading)"
        overall = (f"{self.steps} steps in {self.wall_seconds:.1f} s: {self.samples_per_hour:,.0f} samples/h, "
                   f"{self.tokens_per_second:,.0f} tokens/s overall, peak GPU memory {memory}, final loss "
                   f"{self.final_loss}")
        if self.warmup_steps is None:
            return overall
        steady = SteadyState(self.warmup_steps, self.warmup_seconds or 0.0, self.steady_steps or 0, 0.0,
                             self.steady_tokens_per_second, self.steady_samples_per_hour)
        return f"{overall}; {steady.describe()}"


def build_summary(steps: int, wall: float, samples: int, tokens: int, peak_gib: float | None,
                  metrics: list[dict], stopped_because: str | None = None, steady: SteadyState | None = None,
                  memory: MemoryReport | None = None) -> RunSummary:
    losses = [row["loss"] for row in metrics if "loss" in row]
    eval_losses = [row["eval_loss"] for row in metrics if "eval_loss" in row]
    wall = max(wall, 1e-9)
    timing = {} if steady is None else {
        "warmup_steps": steady.warmup_steps, "warmup_seconds": steady.warmup_seconds,
        "steady_steps": steady.steady_steps, "steady_tokens_per_second": steady.steady_tokens_per_second,
        "steady_samples_per_hour": steady.steady_samples_per_hour}
    sizes = {} if memory is None else {
        "estimated_peak_gpu_memory_gib": memory.estimated_peak_gib, "gpu_memory_gib": memory.gpu_total_gib,
        "memory_choice": memory.choice, "memory_flags": memory.flags}
    return RunSummary(steps, round(wall, 3), samples, tokens, round(samples * 3600 / wall, 1),
                      round(tokens / wall, 1), peak_gib, losses[-1] if losses else None,
                      eval_losses[-1] if eval_losses else None, stopped_because, **timing, **sizes)


def read_metrics(output_dir: Path) -> list[dict]:
    path = output_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_summary(output_dir: Path, summary: RunSummary) -> Path:
    path = output_dir / "summary.json"
    write_atomic(path, json.dumps(asdict(summary), indent=2) + "\n")
    return path


class PlotUnavailable(RuntimeError):
    """matplotlib is missing or cannot import (a wheel built for another NumPy): the run goes on without a plot."""


def plot_loss(output_dir: Path, metrics: list[dict]) -> Path | None:
    """loss.png: training loss (and eval loss when present) over steps; None when nothing was logged.

    Raises PlotUnavailable when matplotlib cannot be imported.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except (ImportError, AttributeError) as error:  # a NumPy-2 build of matplotlib under NumPy 1 fails either way
        raise PlotUnavailable(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from None

    train = [(row["step"], row["loss"]) for row in metrics if "loss" in row]
    evaluation = [(row["step"], row["eval_loss"]) for row in metrics if "eval_loss" in row]
    if not train and not evaluation:
        return None
    figure, axes = plt.subplots(figsize=(7, 4))
    for points, label in ((train, "train loss"), (evaluation, "eval loss")):
        if points:
            axes.plot([p[0] for p in points], [p[1] for p in points], label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.legend()
    staging = output_dir / f".loss.tmp-{os.getpid()}.png"
    figure.savefig(staging, dpi=100)
    plt.close(figure)
    os.replace(staging, output_dir / "loss.png")
    return output_dir / "loss.png"
