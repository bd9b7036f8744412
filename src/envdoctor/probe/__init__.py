"""Probe this environment into a Snapshot without importing torch.

``start_probe()`` launches the slow parts (NVML in a child process, nvcc in a thread) and returns at once, so
the caller can import the checker meanwhile; ``PendingProbe.finish()`` reads packages and files and collects
them. A hung driver costs at most ``timeout`` seconds. Every failure becomes a value.

With ``python=PATH`` the environment part of the probe (packages, torch build, interpreter, host, environment
variables) runs in that interpreter instead (``probe.interpreter``), while NVML and nvcc, which are machine-wide, are
still queried from here, in parallel with it. Modules are imported where they are used, so that the other
interpreter loads only what its part needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from envdoctor.snapshot import Nvidia, Snapshot

if TYPE_CHECKING:
    from envdoctor.probe._background import BackgroundCall
    from envdoctor.probe.toolkit import ToolkitFacts

__all__ = ["PendingProbe", "probe", "probe_this_interpreter", "start_probe"]


class PendingProbe:
    """A probe whose NVML and nvcc queries (and the other interpreter's probe) are already running; ``finish()``
    completes it."""

    def __init__(self, deep: bool, timeout: float, smoke_timeout: float | None, python: str | None = None) -> None:
        from envdoctor.probe.nvidia import start_nvidia_probe

        self.deep, self.timeout, self.smoke_timeout = deep, timeout, _smoke_timeout(smoke_timeout)
        self.nvidia_call = start_nvidia_probe()
        self.other = None
        if python is not None:
            from envdoctor.probe.interpreter import start_interpreter_probe

            self.other = start_interpreter_probe(python, deep=deep, smoke_timeout=self.smoke_timeout)
        self.toolkit_call = start_toolkit_probe()

    def finish(self) -> Snapshot:
        """The snapshot; raises ``InterpreterError`` when the other interpreter could not be probed."""
        if self.other is not None:
            snapshot = self.other.finish()
            facts = finish_toolkit_probe(self.toolkit_call)
            return _with(snapshot, cuda_toolkit=facts.toolkit, host=replace(snapshot.host, gcc=facts.gcc),
                         nvidia=self.nvidia_call.result(self.timeout))
        return probe_this_interpreter(self.deep, self.smoke_timeout, self.toolkit_call,
                                      lambda: self.nvidia_call.result(self.timeout))


def probe_this_interpreter(deep: bool, smoke_timeout: float | None = None,
                           toolkit_call: BackgroundCall[ToolkitFacts] | None = None,
                           nvidia: Callable[[], Nvidia | None] = lambda: None) -> Snapshot:
    """Everything about the running interpreter's environment; ``nvidia()`` supplies the NVML part, and the CUDA
    toolkit is left unknown without a ``toolkit_call``."""
    from envdoctor.probe.environment import probe_environment
    from envdoctor.probe.packages import probe_packages
    from envdoctor.probe.python_env import probe_host, probe_python
    from envdoctor.probe.torch_build import probe_torch_build

    packages = probe_packages()
    facts = finish_toolkit_probe(toolkit_call) if toolkit_call is not None else None
    snapshot = Snapshot(
        host=replace(probe_host(), gcc=facts.gcc if facts is not None else None),
        python=probe_python(),
        cuda_toolkit=facts.toolkit if facts is not None else None,
        packages=packages,
        torch=probe_torch_build() if "torch" in packages else None,
        nvidia=nvidia(),
        env=probe_environment(),
    )
    return _deepen(snapshot, _smoke_timeout(smoke_timeout)) if deep else snapshot


def start_toolkit_probe() -> BackgroundCall[ToolkitFacts]:
    from envdoctor.probe._background import BackgroundCall
    from envdoctor.probe.toolkit import probe_toolkit_facts

    return BackgroundCall(probe_toolkit_facts, "nvcc")


def finish_toolkit_probe(call: BackgroundCall[ToolkitFacts]) -> ToolkitFacts:
    from envdoctor.probe.toolkit import NVCC_TIMEOUT_S, ToolkitFacts
    from envdoctor.snapshot import CudaToolkit

    return call.result(2 * NVCC_TIMEOUT_S + 1, lambda: ToolkitFacts(CudaToolkit(), None))


def start_probe(deep: bool = False, timeout: float = 10.0, smoke_timeout: float | None = None,
                python: str | None = None) -> PendingProbe:
    """Start the slow queries now; call ``.finish()`` for the Snapshot. ``python``: probe that interpreter's
    environment instead of this one's."""
    return PendingProbe(deep, timeout, smoke_timeout, python)


def probe(deep: bool = False, timeout: float = 10.0, smoke_timeout: float | None = None,
          python: str | None = None) -> Snapshot:
    """Everything the checker needs about this machine. Never raises for a missing driver or tool.

    ``timeout`` bounds the NVML query; ``deep`` also imports each compiled extension in its own
    subprocess, in parallel, ``smoke_timeout`` seconds each (default ``deep.SMOKE_TIMEOUT_S``). ``python`` (a path)
    probes that interpreter's environment, without installing anything into it; a path that cannot be probed raises
    ``InterpreterError``.
    """
    return start_probe(deep, timeout, smoke_timeout, python).finish()


def _smoke_timeout(value: float | None) -> float:
    from envdoctor.probe.deep import SMOKE_TIMEOUT_S

    return SMOKE_TIMEOUT_S if value is None else value


def _deepen(snapshot: Snapshot, timeout: float) -> Snapshot:
    from envdoctor.probe.deep import merge_torch_facts, run_smoke_tests

    result = run_smoke_tests(set(snapshot.packages or {}), timeout)
    return _with(snapshot, smoke=result.smoke, torch=merge_torch_facts(snapshot.torch, result))


def _with(snapshot: Snapshot, **changes: object) -> Snapshot:
    return replace(snapshot, **changes)
