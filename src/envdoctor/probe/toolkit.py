"""The CUDA toolkit (``nvcc``) on this machine, if any: what extension builds would compile with."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from pathlib import Path

from envdoctor.snapshot import CudaToolkit

NVCC_TIMEOUT_S = 5.0
NVCC_OUTPUT_LIMIT = 64 * 1024  # `nvcc --version` prints about 300 bytes; more is not nvcc
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
    """The release from ``nvcc --version``; None when it fails, hangs, or prints something else (bytes that are
    not text included: they are decoded with replacement, never raised)."""
    output = run_bounded([str(nvcc), "--version"], timeout, NVCC_OUTPUT_LIMIT)
    return parse_nvcc_release(output.decode("utf-8", "replace")) if output is not None else None


def run_bounded(argv: list[str], timeout: float, limit: int) -> bytes | None:
    """The first ``limit`` bytes of a command's stdout, or None when it cannot start or is not done within
    ``timeout``. The command runs in its own process group, killed whole when it overruns, so neither a hang,
    a grandchild holding the pipe, nor endless output can hold the probe."""
    try:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size, finished = 0, False
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while size < limit:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                break
            chunk = os.read(process.stdout.fileno(), min(65536, limit - size))
            if not chunk:
                finished = True
                break
            chunks.append(chunk)
            size += len(chunk)
    try:
        process.wait(max(0.0, deadline - time.monotonic()) if finished else 0)
    except subprocess.TimeoutExpired:
        finished = False
    if process.returncode is None:
        _kill_group(process)
    process.stdout.close()
    return b"".join(chunks) if finished else None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass
    process.wait()


def parse_nvcc_release(text: str) -> str | None:
    """"Cuda compilation tools, release 12.4, V12.4.131" -> "12.4"."""
    match = _RELEASE.search(text or "")
    return match.group(1) if match else None
