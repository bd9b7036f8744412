"""The CUDA toolkit (``nvcc``) on this machine, if any: what extension builds would compile with."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from envdoctor.snapshot import CudaToolkit

NVCC_TIMEOUT_S = 5.0
_RELEASE = re.compile(r"release (\d+\.\d+)")


def find_nvcc() -> Path | None:
    """nvcc on PATH, then $CUDA_HOME/bin, then /usr/local/cuda/bin; None when none exists."""
    on_path = shutil.which("nvcc")
    if on_path:
        return Path(on_path)
    candidates = [Path(home) / "bin" / "nvcc" for home in (os.environ.get("CUDA_HOME"),) if home]
    candidates.append(Path("/usr/local/cuda/bin/nvcc"))
    return next((c for c in candidates if os.access(c, os.X_OK)), None)


def probe_cuda_toolkit(nvcc: Path | None = None, timeout: float = NVCC_TIMEOUT_S) -> CudaToolkit:
    """``nvcc --version`` release and CUDA home; fields stay None when nvcc is absent, hangs or fails."""
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        return CudaToolkit(nvcc=None, home=os.environ.get("CUDA_HOME") or None)
    home = str(nvcc.resolve().parent.parent)
    return CudaToolkit(nvcc=read_nvcc_release(nvcc, timeout), home=home)


def read_nvcc_release(nvcc: Path, timeout: float) -> str | None:
    try:
        done = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):  # TimeoutExpired kills the child before raising
        return None
    return parse_nvcc_release(done.stdout)


def parse_nvcc_release(text: str) -> str | None:
    """"Cuda compilation tools, release 12.4, V12.4.131" -> "12.4"."""
    match = _RELEASE.search(text or "")
    return match.group(1) if match else None
