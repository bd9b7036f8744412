"""Driver and GPU facts through NVML (``nvidia-ml-py``), never by scraping ``nvidia-smi``.

NVML runs in a child process (``_nvml_child.py``) started first, so it overlaps with the rest of the probe and
the checker's imports, and a hung driver is killed after ``timeout`` seconds. Every failure (no library, no
driver, no GPU, no permission, a hung driver) becomes ``Nvidia(error=..., gpus=())``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from envdoctor.probe._nvml_child import cuda_version_from_int, describe
from envdoctor.snapshot import Gpu, Nvidia

__all__ = ["NvidiaProbe", "cuda_version_from_int", "nvidia_from_dict", "probe_nvidia", "start_nvidia_probe"]

_CHILD = Path(__file__).with_name("_nvml_child.py")


class NvidiaProbe:
    """The NVML child process; ``result(timeout)`` collects it or kills it."""

    def __init__(self) -> None:
        missing = nvml_library_missing()
        if missing:  # no driver library: nothing a child could find, so start none
            self._child, self._error = None, f"NVML unavailable: NVML Shared Library Not Found ({missing})"
            return
        try:
            self._child: subprocess.Popen[str] | None = subprocess.Popen(
                [sys.executable, str(_CHILD)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self._error = None
        except OSError as exc:
            self._child, self._error = None, f"could not start the NVML probe: {describe(exc)}"

    def result(self, timeout: float) -> Nvidia:
        if self._child is None:
            return Nvidia(error=self._error, gpus=())
        try:
            out, err = self._child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.communicate()
            return nvidia_timed_out(timeout)
        if self._child.returncode != 0:
            last = (err.strip().splitlines() or [f"exit code {self._child.returncode}"])[-1]
            return Nvidia(error=f"NVML probe crashed: {last}", gpus=())
        try:
            return nvidia_from_dict(json.loads(out))
        except (ValueError, TypeError, KeyError) as exc:
            return Nvidia(error=f"NVML probe gave unreadable output: {describe(exc)}", gpus=())


def nvml_library_missing() -> str | None:
    """Why ``libnvidia-ml.so.1`` cannot be loaded (pynvml's own name for it on Linux), or None when it can.

    Loading the library runs no driver code (``nvmlInit``, which can hang, is left to the child); elsewhere than
    Linux the child decides.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError as exc:
        return describe(exc)
    return None


def start_nvidia_probe() -> NvidiaProbe:
    return NvidiaProbe()


def probe_nvidia(timeout: float = 10.0) -> Nvidia:
    """Driver version, the highest CUDA the driver supports, and every GPU. Never raises."""
    return start_nvidia_probe().result(timeout)


def nvidia_timed_out(timeout: float) -> Nvidia:
    return Nvidia(error=f"NVML did not answer within {timeout:g} s (hung driver?)", gpus=())


def nvidia_from_dict(data: dict) -> Nvidia:
    gpus = tuple(Gpu(**gpu) for gpu in data.get("gpus") or ())
    return Nvidia(driver=data.get("driver"), cuda_driver=data.get("cuda_driver"), error=data.get("error"), gpus=gpus)
