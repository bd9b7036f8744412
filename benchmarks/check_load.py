"""How does ``check`` scale with the number of installed packages (and findings)?

Usage: python benchmarks/check_load.py [--packages 1000,5000,20000] [--runs 3] [--cli-packages 500000]

For each N it writes a snapshot (one H100, torch 2.3.1+cu121, NumPy 2.0.1, and N packages ``pkg-i 1.0`` each
declaring ``numpy<2``, so every package draws a finding) and prints the median time of ``run_check`` in-process,
the time of ``drop_superseded`` alone on those findings, and the number of findings (no stack is chosen, so every
declared conflict is a finding of its own). ``--cli-packages N`` also
times a whole ``envdoctor check --json --snapshot FILE`` process on a snapshot of N packages (500,000 make about
50 MB: past the 32 MiB input bound, so it is refused, and the point is how fast). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
sys.path.insert(0, str(SRC))


def snapshot_dict(packages: int) -> dict:
    installed = {
        "torch": {"version": "2.3.1+cu121"},
        "numpy": {"version": "2.0.1"},
        "transformers": {"version": "4.43.3"},
    }
    for i in range(packages):
        installed[f"pkg-{i}"] = {"version": "1.0", "requires": ["numpy<2", "torch>=2.0"]}
    return {
        "schema": "envdoctor.snapshot/1",
        "host": {"os": "linux", "arch": "x86_64", "glibc": "2.35"},
        "python": {"version": "3.10.12", "implementation": "cpython", "venv": True},
        "nvidia": {"driver": "550.54.15", "cuda_driver": "12.4",
                   "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
                             "memory_mib": 81559}]},
        "cuda_toolkit": {"nvcc": None, "home": None},
        "packages": installed,
        "torch": {"version": "2.3.1+cu121", "cuda": "12.1", "cxx11abi": False},
    }


def time_in_process(path: Path, runs: int) -> tuple[float, float, int]:
    """(median run_check seconds, drop_superseded seconds on its input, findings)."""
    from envdoctor import finding_ids
    from envdoctor.checker import drop_superseded, run_check
    from envdoctor.checks import CheckContext
    from envdoctor.checks.runner import run_checks
    from envdoctor.facts import Facts
    from envdoctor.matrices import load_matrices
    from envdoctor.rules import evaluate
    from envdoctor.snapshot import load_snapshot

    matrices = load_matrices()
    snapshot = load_snapshot(path)
    times = []
    report = None
    for _ in range(runs):
        start = time.perf_counter()
        report = run_check(snapshot, stack=None, matrices=matrices, cwd=path.parent)
        times.append(time.perf_counter() - start)
    ctx = CheckContext(snapshot=snapshot, matrices=matrices, facts=Facts(matrices.root), stack=None)
    findings = evaluate(matrices.rules, snapshot) + run_checks(ctx)
    supersedes = finding_ids.supersedes()
    start = time.perf_counter()
    drop_superseded(findings, supersedes)
    dedup = time.perf_counter() - start
    return statistics.median(times), dedup, len(report.findings) if report else 0


def time_cli(path: Path) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "envdoctor", "check", "--json", "--snapshot", str(path)],
                          capture_output=True, text=True, check=False,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}, cwd=path.parent)
    last = (done.stderr.strip().splitlines() or [""])[-1]
    return time.perf_counter() - start, done.returncode, last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", default="1000,5000,20000", help="comma-separated package counts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cli-packages", type=int, default=0, help="also time a whole CLI run on N packages")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envdoctor-load-") as tmp:
        print(f"{'packages':>9} {'findings':>9} {'run_check s':>12} {'drop_superseded s':>18} {'MB':>6}")
        for count in (int(n) for n in args.packages.split(",") if n):
            path = Path(tmp) / f"snapshot-{count}.json"
            path.write_text(json.dumps(snapshot_dict(count)), encoding="utf-8")
            median, dedup, findings = time_in_process(path, args.runs)
            size = path.stat().st_size / 1e6
            print(f"{count:>9} {findings:>9} {median:>12.3f} {dedup:>18.4f} {size:>6.1f}", flush=True)
        if args.cli_packages:
            path = Path(tmp) / f"snapshot-{args.cli_packages}.json"
            path.write_text(json.dumps(snapshot_dict(args.cli_packages), indent=1), encoding="utf-8")
            seconds, code, last = time_cli(path)
            print(f"CLI, {args.cli_packages} packages ({path.stat().st_size / 1e6:.1f} MB): {seconds:.2f} s, "
                  f"exit {code}: {last[:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
