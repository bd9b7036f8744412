"""Probe this environment into a Snapshot without importing torch.

NVML runs in a daemon thread while packages and files are read, so a hung driver costs at most
``timeout`` seconds and a healthy one costs nothing extra. Every failure becomes a value.
"""

from __future__ import annotations

from dataclasses import replace

from envdoctor.probe._background import BackgroundCall
from envdoctor.probe.deep import SMOKE_TIMEOUT_S, merge_torch_facts, run_smoke_tests
from envdoctor.probe.nvidia import nvidia_timed_out, start_nvidia_probe
from envdoctor.probe.packages import probe_packages
from envdoctor.probe.python_env import probe_host, probe_python
from envdoctor.probe.toolkit import NVCC_TIMEOUT_S, probe_cuda_toolkit
from envdoctor.probe.torch_build import probe_torch_build
from envdoctor.snapshot import CudaToolkit, Snapshot

__all__ = ["probe"]


def probe(deep: bool = False, timeout: float = 10.0, smoke_timeout: float = SMOKE_TIMEOUT_S) -> Snapshot:
    """Everything the checker needs about this machine. Never raises for a missing driver or tool.

    ``timeout`` bounds the NVML query; ``deep`` also imports each compiled extension in its own
    subprocess, in parallel, ``smoke_timeout`` seconds each.
    """
    nvidia_call = start_nvidia_probe()
    toolkit_call = BackgroundCall(probe_cuda_toolkit, "nvcc")
    packages = probe_packages()
    torch = probe_torch_build() if "torch" in packages else None
    snapshot = Snapshot(
        host=probe_host(),
        python=probe_python(),
        cuda_toolkit=toolkit_call.result(NVCC_TIMEOUT_S + 1, CudaToolkit),
        packages=packages,
        torch=torch,
    )
    nvidia = nvidia_call.result(timeout, lambda: nvidia_timed_out(timeout))
    snapshot = _with(snapshot, nvidia=nvidia)
    return _deepen(snapshot, smoke_timeout) if deep else snapshot


def _deepen(snapshot: Snapshot, timeout: float) -> Snapshot:
    result = run_smoke_tests(set(snapshot.packages or {}), timeout)
    return _with(snapshot, smoke=result.smoke, torch=merge_torch_facts(snapshot.torch, result))


def _with(snapshot: Snapshot, **changes: object) -> Snapshot:
    return replace(snapshot, **changes)
