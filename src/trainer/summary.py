"""End-of-run summary (samples/hour, tokens/s, peak GPU memory, wall time) and the loss plot."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from envdoctor import write_atomic


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

    def describe(self) -> str:
        memory = f"{self.peak_gpu_memory_gib:.1f} GiB" if self.peak_gpu_memory_gib is not None else "n/a (CPU)"
        return (f"{self.steps} steps in {self.wall_seconds:.1f} s: {self.samples_per_hour:,.0f} samples/h, "
                f"{self.tokens_per_second:,.0f} tokens/s, peak GPU memory {memory}, final loss {self.final_loss}")


def build_summary(steps: int, wall: float, samples: int, tokens: int, peak_gib: float | None,
                  metrics: list[dict], stopped_because: str | None = None) -> RunSummary:
    losses = [row["loss"] for row in metrics if "loss" in row]
    eval_losses = [row["eval_loss"] for row in metrics if "eval_loss" in row]
    wall = max(wall, 1e-9)
    return RunSummary(steps, round(wall, 3), samples, tokens, round(samples * 3600 / wall, 1),
                      round(tokens / wall, 1), peak_gib, losses[-1] if losses else None,
                      eval_losses[-1] if eval_losses else None, stopped_because)


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
