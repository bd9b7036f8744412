"""Probe this environment into a Snapshot without importing torch.

``start_probe()`` launches the slow parts (NVML in a child process, nvcc in a thread) and returns at once, so
the caller can import the checker meanwhile; ``PendingProbe.finish()`` reads packages and files and collects
them. A hung driver costs at most ``timeout`` seconds. Every failure becomes a value.
"""

from __future__ import annotations

from dataclasses import replace

from envdoctor.probe._background import BackgroundCall
from envdoctor.probe.deep import SMOKE_TIMEOUT_S, merge_torch_facts, run_smoke_tests
from envdoctor.probe.nvidia import start_nvidia_probe
from envdoctor.probe.packages import probe_packages
from envdoctor.probe.python_env import probe_host, probe_python
from envdoctor.probe.toolkit import NVCC_TIMEOUT_S, probe_cuda_toolkit
from envdoctor.probe.torch_build import probe_torch_build
from envdoctor.snapshot import CudaToolkit, Snapshot

__all__ = ["PendingProbe", "probe", "start_probe"]


class PendingProbe:
    """A probe whose NVML and nvcc queries are already running; ``finish()`` completes it."""

    def __init__(self, deep: bool, timeout: float, smoke_timeout: float) -> None:
        self.deep, self.timeout, self.smoke_timeout = deep, timeout, smoke_timeout
        self.nvidia_call = start_nvidia_probe()
        self.toolkit_call = BackgroundCall(probe_cuda_toolkit, "nvcc")

    def finish(self) -> Snapshot:
        packages = probe_packages()
        snapshot = Snapshot(
            host=probe_host(),
            python=probe_python(),
            cuda_toolkit=self.toolkit_call.result(NVCC_TIMEOUT_S + 1, CudaToolkit),
            packages=packages,
            torch=probe_torch_build() if "torch" in packages else None,
            nvidia=self.nvidia_call.result(self.timeout),
        )
        return _deepen(snapshot, self.smoke_timeout) if self.deep else snapshot


def start_probe(deep: bool = False, timeout: float = 10.0, smoke_timeout: float = SMOKE_TIMEOUT_S) -> PendingProbe:
    """Start the slow queries now; call ``.finish()`` for the Snapshot."""
    return PendingProbe(deep, timeout, smoke_timeout)


def probe(deep: bool = False, timeout: float = 10.0, smoke_timeout: float = SMOKE_TIMEOUT_S) -> Snapshot:
    """Everything the checker needs about this machine. Never raises for a missing driver or tool.

    ``timeout`` bounds the NVML query; ``deep`` also imports each compiled extension in its own
    subprocess, in parallel, ``smoke_timeout`` seconds each.
    """
    return start_probe(deep, timeout, smoke_timeout).finish()


def _deepen(snapshot: Snapshot, timeout: float) -> Snapshot:
    result = run_smoke_tests(set(snapshot.packages or {}), timeout)
    return _with(snapshot, smoke=result.smoke, torch=merge_torch_facts(snapshot.torch, result))


def _with(snapshot: Snapshot, **changes: object) -> Snapshot:
    return replace(snapshot, **changes)
