"""Driver and GPU facts through NVML (``nvidia-ml-py``), never by scraping ``nvidia-smi``.

NVML runs in a child process (``_nvml_child.py``) started first, so it overlaps with the rest of the probe and
the checker's imports, and a hung driver is killed after ``timeout`` seconds. Every failure (no library, no
driver, no GPU, no permission, a hung driver) becomes ``Nvidia(error=..., gpus=())``.
"""

from __future__ import annotations

import json
import subprocess

from envdoctor.nvml_launch import claim
from envdoctor.probe._nvml_child import cuda_version_from_int, describe
from envdoctor.snapshot import Gpu, Nvidia

__all__ = ["NvidiaProbe", "cuda_version_from_int", "nvidia_from_dict", "probe_nvidia", "start_nvidia_probe"]

class NvidiaProbe:
    """The NVML child process; ``result(timeout)`` collects it or kills it."""

    def __init__(self) -> None:
        launched = claim()  # started by `envdoctor check` before its imports, or now
        self._child, self._error = launched.child, launched.error

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
