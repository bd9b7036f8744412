"""How fast is ``envdoctor check --json`` (whole process) next to ``python -m torch.utils.collect_env``?

Usage: python benchmarks/check_speed.py [-n 7]
Targets: check median < 0.3 s, and >= 15x faster than collect_env. Exit 1 when a target is missed.
Runs with the interpreter that runs this script; add ``--snapshot FILE`` to time check without probing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
CHECK_TARGET_S = 0.3
RATIO_TARGET = 15.0


def time_command(argv: list[str], runs: int) -> list[float]:
    """Wall-clock seconds of ``runs`` executions; stdout is discarded, a crash stops the benchmark."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):
            sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=7)
    parser.add_argument("--snapshot", help="pass --snapshot FILE to check (times the checker without the probe)")
    args = parser.parse_args()
    check_argv = [sys.executable, "-m", "envdoctor", "check", "--json"]
    check_argv += ["--snapshot", args.snapshot] if args.snapshot else []
    check = statistics.median(time_command(check_argv, args.runs))
    print(f"envdoctor check --json: median {check:.3f} s over {args.runs} runs (target < {CHECK_TARGET_S} s)")
    ok = check < CHECK_TARGET_S
    if importlib.util.find_spec("torch") is None:
        print("torch is not installed: collect_env comparison skipped")
        return 0 if ok else 1
    collect = statistics.median(time_command([sys.executable, "-m", "torch.utils.collect_env"], args.runs))
    ratio = collect / check
    print(f"python -m torch.utils.collect_env: median {collect:.3f} s over {args.runs} runs")
    print(f"ratio: {ratio:.1f}x faster (target >= {RATIO_TARGET:g}x)")
    return 0 if ok and ratio >= RATIO_TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
