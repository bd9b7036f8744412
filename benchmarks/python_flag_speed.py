"""How long does ``envdoctor check --python PATH`` take, whole process, for a venv envdoctor is not installed in?

Usage: python benchmarks/python_flag_speed.py [--python PATH] [--envdoctor COMMAND] [-n 9]

Without ``--python`` a throwaway venv is made (``python -m venv``, pip in it) and checked. ``--envdoctor`` is the
command to time (default: this interpreter's ``-m envdoctor``; pass e.g. ``~/.local/bin/envdoctor`` for a
``uv tool install`` / ``pipx install``). Prints the median and the range of ``-n`` runs beside ``check`` of
envdoctor's own environment; exits 1 when the median misses the 0.5 s target.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

TARGET_S = 0.5


def time_runs(argv: list[str], runs: int) -> list[float]:
    """Wall seconds of each whole-process run (after one untimed warm-up run)."""
    subprocess.run(argv, capture_output=True, check=False)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{shlex.join(argv)} exited {done.returncode}: {done.stderr.decode()[-300:]}")
    return times


def describe(label: str, times: list[float]) -> str:
    return f"{label:<48} median {statistics.median(times):.3f} s  (min {min(times):.3f}, max {max(times):.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="interpreter to check (default: a throwaway venv made here)")
    parser.add_argument("--envdoctor", default=f"{shlex.quote(sys.executable)} -m envdoctor",
                        help="the envdoctor command to time")
    parser.add_argument("-n", "--runs", type=int, default=9)
    args = parser.parse_args()
    command = shlex.split(args.envdoctor)
    with tempfile.TemporaryDirectory() as scratch:
        python = args.python
        if python is None:
            venv.EnvBuilder(with_pip=True).create(Path(scratch) / "venv")
            python = str(Path(scratch) / "venv" / "bin" / "python")
        other = time_runs([*command, "check", "--json", "--python", python], args.runs)
        own = time_runs([*command, "check", "--json"], args.runs)
    print(f"{args.runs} runs each; checked interpreter: {python}")
    print(describe("envdoctor check --python PATH", other))
    print(describe("envdoctor check (its own environment)", own))
    median = statistics.median(other)
    print(f"target: --python median < {TARGET_S} s: {'met' if median < TARGET_S else 'MISSED'}")
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
