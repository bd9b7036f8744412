"""Run as a script in a child process: query NVML (``nvidia-ml-py``) and print the answers as JSON.

A child process (as conda does for libcuda) gives a hard timeout (a hung driver is killed) and runs in parallel
with the parent's own imports and package scan. It imports nothing from envdoctor, so it starts fast.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def query(nvml: Any) -> dict[str, Any]:
    """Driver version, the highest CUDA the driver supports, and every GPU, from an initialised NVML."""
    count = nvml.nvmlDeviceGetCount()
    return {
        "driver": _text(nvml.nvmlSystemGetDriverVersion()),
        "cuda_driver": cuda_version_from_int(nvml.nvmlSystemGetCudaDriverVersion_v2()),
        "error": None if count else "NVML found no GPU",
        "gpus": [_gpu(nvml, index) for index in range(count)],
    }


def _gpu(nvml: Any, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    return {
        "index": index,
        "name": _text(nvml.nvmlDeviceGetName(handle)),
        "compute_capability": f"{major}.{minor}",
        "memory_mib": int(memory.total) // (1024 * 1024),
        "memory_used_mib": _optional(lambda: int(memory.used) // (1024 * 1024)),
        "processes": _optional(lambda: len(nvml.nvmlDeviceGetComputeRunningProcesses(handle))),
    }


def _optional(read: Any) -> int | None:
    """A value some drivers, GPUs or containers do not give (no permission, not supported): None then."""
    try:
        return read()
    except Exception:
        return None


def cuda_version_from_int(value: int) -> str:
    """NVML's integer CUDA version to text: 13000 -> "13.0", 12040 -> "12.4"."""
    return f"{value // 1000}.{(value % 1000) // 10}"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _import_pynvml() -> Any:
    """``import pynvml`` without paying for ``ctypes.util`` up front.

    pynvml imports ``ctypes.util.find_library`` at module level but calls it only on Windows; importing
    ``ctypes.util`` (shutil, subprocess, re) is about half of this child's run time. A stand-in module defers that
    import to the first ``find_library`` call, which then gets the real function: behaviour is unchanged.
    """
    if "ctypes.util" not in sys.modules:
        import ctypes
        import types

        def find_library(name: str) -> str | None:
            del sys.modules["ctypes.util"]
            import ctypes.util as real

            return real.find_library(name)

        stand_in = types.ModuleType("ctypes.util")
        stand_in.find_library = find_library  # type: ignore[attr-defined]
        sys.modules["ctypes.util"] = stand_in
        ctypes.util = stand_in  # type: ignore[attr-defined]
    import pynvml

    return pynvml


def probe() -> dict[str, Any]:
    """Never raises: a missing library, driver or permission becomes ``error`` with no GPUs."""
    try:
        pynvml = _import_pynvml()
    except ImportError:
        return {"error": "nvidia-ml-py (pynvml) is not installed: pip install nvidia-ml-py", "gpus": []}
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, _NoPermission, OSError...
        return {"error": f"NVML unavailable: {describe(exc)}", "gpus": []}
    try:
        return query(pynvml)
    except Exception as exc:
        return {"error": f"NVML query failed: {describe(exc)}", "gpus": []}
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # shutting down a half-initialised NVML has nothing useful to report
            pass


if __name__ == "__main__":
    print(json.dumps(probe()))
