"""Where one ``envdoctor check --json`` spends its time, phase by phase and check by check, in this process.

Usage: python benchmarks/check_phases.py [--runs 5] [--top 15]
Prints the median milliseconds of: importing the CLI, the checker and the renderer (with the time spent creating
dataclasses and compiling regular expressions inside those imports), probing (the package scan, then the wait for
the NVML child and nvcc), ``run_check`` and rendering; then the slowest checks of ``run_checks``. The first run also
loads the tables, so the checks are timed on that first run (a fresh process pays it every time). Imports are
measured once (a module imports once per process): run the script again for another sample.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


@contextmanager
def counting(module: Any, name: str, into: dict[str, float]) -> Iterator[None]:
    """Adds the seconds spent in ``module.name`` while the block runs to ``into[name]``."""
    original = getattr(module, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into[name] += time.perf_counter() - start

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, original)


def timed_imports() -> dict[str, float]:
    spent: dict[str, float] = defaultdict(float)
    start = time.perf_counter()
    with counting(dataclasses, "_process_class", spent), counting(re, "_compile", spent):
        import envdoctor.checker  # noqa: F401
        import envdoctor.cli  # noqa: F401
        import envdoctor.render  # noqa: F401
    spent["imports"] = time.perf_counter() - start
    return spent


def wrap_checks(per_check: dict[str, list[float]]) -> None:
    """Each check the runner calls reports its seconds into ``per_check``."""
    from envdoctor.checks import runner

    def wrapped(check: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return check(*args, **kwargs)
            finally:
                per_check[f"{check.__module__.rsplit('.', 1)[-1]}.{check.__name__}"].append(
                    time.perf_counter() - start)
        return timed

    called = set(runner.run_checks.__code__.co_names)  # the names run_checks looks up, itself or as attributes
    for name, value in list(vars(runner).items()):
        if name in called and name.startswith("check_") and callable(value):
            setattr(runner, name, wrapped(value))
    for module in {value for value in vars(runner).values() if type(value) is type(sys)}:
        for name in called & set(vars(module)):
            if callable(getattr(module, name)):
                setattr(module, name, wrapped(getattr(module, name)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    imports = timed_imports()
    from envdoctor.checker import run_check
    from envdoctor.probe import probe_this_interpreter, start_probe
    from envdoctor.probe.packages import probe_packages
    from envdoctor.render import render

    per_check: dict[str, list[float]] = defaultdict(list)
    wrap_checks(per_check)
    phases: dict[str, list[float]] = defaultdict(list)
    first_checks: dict[str, float] = {}
    for run in range(args.runs):
        start = time.perf_counter()
        pending = start_probe()
        started = time.perf_counter()
        packages = probe_packages()
        scanned = time.perf_counter()
        snapshot = pending.finish()
        probed = time.perf_counter()
        report = run_check(snapshot, cwd=Path.cwd())
        checked = time.perf_counter()
        render(report, "json", color=False, ascii_only=True)
        rendered = time.perf_counter()
        if run == 0:
            first_checks = {name: times[0] for name, times in per_check.items()}
        for name, seconds in (("start the probe (NVML child, nvcc thread)", started - start),
                              ("package scan alone", scanned - started),
                              ("probe: scan again + wait for NVML and nvcc", probed - scanned),
                              ("run_check", checked - probed), ("render json", rendered - checked)):
            phases[name].append(seconds)
    del probe_this_interpreter
    print(f"python {sys.version.split()[0]}, {len(packages)} distributions on sys.path")
    print(f"imports (once): {imports['imports'] * 1e3:.0f} ms, of which dataclass creation "
          f"{imports['_process_class'] * 1e3:.0f} ms and regex compiling {imports['_compile'] * 1e3:.0f} ms")
    for name, times in phases.items():
        print(f"{name}: first {times[0] * 1e3:.0f} ms, median {statistics.median(times) * 1e3:.0f} ms")
    print(f"slowest checks on the first run (tables loaded there), of {len(first_checks)}:")
    for name, seconds in sorted(first_checks.items(), key=lambda item: -item[1])[:args.top]:
        later = statistics.median(per_check[name][1:]) if len(per_check[name]) > 1 else float("nan")
        print(f"  {seconds * 1e3:7.1f} ms  (later runs {later * 1e3:.1f} ms)  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
