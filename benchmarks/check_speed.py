"""How fast is ``envdoctor check --json`` (whole process) next to ``python -m torch.utils.collect_env``?

Usage: python benchmarks/check_speed.py [-n 7]
Targets: check median < 0.3 s, and >= 15x faster than collect_env. Exit 1 when a target is missed.
Runs with the interpreter that runs this script; add ``--snapshot FILE`` to time check without probing.
``--emulate-gpu MS`` (for machines without a GPU): a stand-in NVML library and pynvml that answer like one H100
after an ``nvmlInit`` of MS milliseconds, so the NVML child process is on the clock as on a GPU machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
CHECK_TARGET_S = 0.3
RATIO_TARGET = 15.0


FAKE_PYNVML = """\
import time
class _Memory:
    total = 81559 * 1024 * 1024
def nvmlInit():
    time.sleep({seconds})
def nvmlShutdown():
    pass
def nvmlDeviceGetCount():
    return 1
def nvmlSystemGetDriverVersion():
    return "580.159.04"
def nvmlSystemGetCudaDriverVersion_v2():
    return 13000
def nvmlDeviceGetHandleByIndex(index):
    return index
def nvmlDeviceGetName(handle):
    return "NVIDIA H100 80GB HBM3"
def nvmlDeviceGetCudaComputeCapability(handle):
    return (9, 0)
def nvmlDeviceGetMemoryInfo(handle):
    return _Memory()
"""


def emulated_gpu(folder: Path, init_ms: float) -> dict[str, str]:
    """Environment in which libnvidia-ml.so.1 loads (libm under that name) and pynvml is the stand-in above."""
    import ctypes

    ctypes.CDLL("libm.so.6")
    libm = next(line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
                if line.rstrip().endswith("libm.so.6"))
    (folder / "libnvidia-ml.so.1").symlink_to(libm)
    (folder / "pynvml.py").write_text(FAKE_PYNVML.format(seconds=init_ms / 1000))
    return {"LD_LIBRARY_PATH": str(folder), "EMULATED_PYTHONPATH": str(folder)}


def time_command(argv: list[str], runs: int, extra_env: dict[str, str] | None = None) -> list[float]:
    """Wall-clock seconds of ``runs`` executions; stdout is discarded, a crash stops the benchmark."""
    extra = dict(extra_env or {})
    paths = [extra.pop("EMULATED_PYTHONPATH", None), str(SRC), os.environ.get("PYTHONPATH")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)), **extra)
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
    parser.add_argument("--emulate-gpu", type=float, metavar="MS",
                        help="stand-in NVML with an nvmlInit of MS ms (machines without a GPU)")
    args = parser.parse_args()
    check_argv = [sys.executable, "-m", "envdoctor", "check", "--json"]
    check_argv += ["--snapshot", args.snapshot] if args.snapshot else []
    with tempfile.TemporaryDirectory() as folder:
        extra = emulated_gpu(Path(folder), args.emulate_gpu) if args.emulate_gpu is not None else None
        check = statistics.median(time_command(check_argv, args.runs, extra))
    how = f", NVML emulated with a {args.emulate_gpu:g} ms nvmlInit" if args.emulate_gpu is not None else ""
    print(f"envdoctor check --json: median {check:.3f} s over {args.runs} runs{how} (target < {CHECK_TARGET_S} s)")
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
