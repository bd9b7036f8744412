"""What the trackers of a run recorded: TensorBoard event files under OUTPUT_DIR/runs and ClearML's offline session.

    python tracker_outputs.py OUTPUT_DIR

Prints the scalars each holds (tag: number of points, last value) and exits 1 when either has no training loss.
ClearML's offline sessions are zips under ~/.clearml/cache/offline (CLEARML_CACHE_DIR overrides ~/.clearml/cache);
the newest is read.
"""

from __future__ import annotations

import argparse
import json
import os
import zipfile
from pathlib import Path


def tensorboard_scalars(output: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[float]] = {}
    for events in sorted(output.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            scalars.setdefault(tag, []).extend(event.value for event in accumulator.Scalars(tag))
    return scalars


def clearml_scalars() -> tuple[Path | None, dict[str, list[float]]]:
    cache = Path(os.environ.get("CLEARML_CACHE_DIR", Path.home() / ".clearml" / "cache"))
    sessions = sorted((cache / "offline").glob("*.zip"), key=lambda path: path.stat().st_mtime)
    if not sessions:
        return None, {}
    scalars: dict[str, list[float]] = {}
    with zipfile.ZipFile(sessions[-1]) as archive:
        for name in archive.namelist():
            if name.endswith("metrics.jsonl"):
                for line in archive.read(name).decode("utf-8").splitlines():
                    for event in json.loads(line) if line.strip() else []:
                        if event.get("type") == "training_stats_scalar":
                            scalars.setdefault(f"{event['metric']}/{event['variant']}", []).append(event["value"])
    return sessions[-1], scalars


def show(where: str, scalars: dict[str, list[float]]) -> None:
    for tag, values in sorted(scalars.items()):
        print(f"{where}  {tag}: {len(values)} points, last {values[-1]:.4g}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output_dir", type=Path, help="the trainer's --output_dir")
    args = parser.parse_args(argv)
    board = tensorboard_scalars(args.output_dir)
    session, clearml = clearml_scalars()
    show("tensorboard", board)
    show(f"clearml ({session.name if session else 'no offline session'})", clearml)
    ok = any(tag.endswith("loss") for tag in board) and any(tag.endswith("/loss") for tag in clearml)
    print("both trackers hold the training loss" if ok else "a tracker holds no training loss")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
