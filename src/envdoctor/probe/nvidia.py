"""Driver and GPU facts through NVML (``nvidia-ml-py``), never by scraping ``nvidia-smi``.

Every failure (no library, no driver, no GPU, no permission, a hung driver) becomes
``Nvidia(error=..., gpus=())`` so the checker can say why it could not verify GPU points.
"""

from __future__ import annotations

from typing import Any

from envdoctor.probe._background import BackgroundCall
from envdoctor.snapshot import Gpu, Nvidia


def start_nvidia_probe() -> BackgroundCall[Nvidia]:
    """Start the NVML probe in a daemon thread; collect it with ``.result(timeout, on_timeout)``."""
    return BackgroundCall(probe_nvidia, "nvml")


def nvidia_timed_out(timeout: float) -> Nvidia:
    return Nvidia(error=f"NVML did not answer within {timeout:g} s (hung driver?)", gpus=())


def probe_nvidia() -> Nvidia:
    """Driver version, the highest CUDA the driver supports, and every GPU. Never raises."""
    try:
        import pynvml
    except ImportError:
        return Nvidia(error="nvidia-ml-py (pynvml) is not installed: pip install nvidia-ml-py", gpus=())
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, _NoPermission, OSError...
        return Nvidia(error=f"NVML unavailable: {_describe(exc)}", gpus=())
    try:
        return _read_nvml(pynvml)
    except Exception as exc:
        return Nvidia(error=f"NVML query failed: {_describe(exc)}", gpus=())
    finally:
        _shutdown(pynvml)


def _read_nvml(nvml: Any) -> Nvidia:
    driver = _text(nvml.nvmlSystemGetDriverVersion())
    cuda_driver = cuda_version_from_int(nvml.nvmlSystemGetCudaDriverVersion_v2())
    gpus = tuple(_read_gpu(nvml, index) for index in range(nvml.nvmlDeviceGetCount()))
    error = None if gpus else "NVML found no GPU"
    return Nvidia(driver=driver, cuda_driver=cuda_driver, error=error, gpus=gpus)


def _read_gpu(nvml: Any, index: int) -> Gpu:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    total_bytes = nvml.nvmlDeviceGetMemoryInfo(handle).total
    return Gpu(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        compute_capability=f"{major}.{minor}",
        memory_mib=int(total_bytes) // (1024 * 1024),
    )


def cuda_version_from_int(value: int) -> str:
    """NVML's integer CUDA version to text: 13000 -> "13.0", 12040 -> "12.4"."""
    return f"{value // 1000}.{(value % 1000) // 10}"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:  # shutting down a half-initialised NVML has nothing useful to report
        pass
