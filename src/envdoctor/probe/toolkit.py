"""The CUDA toolkit (``nvcc``) on this machine, if any, and the gcc it compiles host code with: what extension
builds would compile with."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from envdoctor.snapshot import GCC_VERSION, CudaToolkit

NVCC_TIMEOUT_S = 5.0
NVCC_OUTPUT_LIMIT = 64 * 1024  # `nvcc --version` prints about 300 bytes; more is not nvcc
_RELEASE = re.compile(r"release (\d+\.\d+)")


@dataclass(frozen=True)
class ToolkitFacts:
    toolkit: CudaToolkit
    gcc: str | None  # the host compiler's version; read only where nvcc is found


def probe_toolkit_facts(timeout: float = NVCC_TIMEOUT_S) -> ToolkitFacts:
    """The toolkit, and the gcc nvcc would use when there is an nvcc."""
    toolkit = probe_cuda_toolkit(timeout=timeout)
    return ToolkitFacts(toolkit, read_host_gcc(timeout) if toolkit.nvcc else None)


def host_compiler() -> str | None:
    """What nvcc compiles host code with: ``$NVCC_CCBIN`` (a compiler, or the directory holding ``gcc``), else ``gcc``
    on PATH; None when that is not a gcc (clang, or nothing)."""
    chosen = os.environ.get("NVCC_CCBIN")
    if chosen:
        path = Path(chosen) / "gcc" if Path(chosen).is_dir() else Path(chosen)
        return str(path) if "clang" not in path.name else None
    return shutil.which("gcc")


def read_host_gcc(timeout: float, compiler: str | None = None) -> str | None:
    """``gcc -dumpfullversion -dumpversion`` ("11.4.0"; gcc before 7 prints the version for ``-dumpversion``);
    None when there is no gcc, or it fails, hangs or prints something else."""
    compiler = compiler or host_compiler()
    if compiler is None:
        return None
    output = run_bounded([compiler, "-dumpfullversion", "-dumpversion"], timeout, NVCC_OUTPUT_LIMIT)
    text = output.decode("utf-8", "replace").strip() if output is not None else ""
    return text if GCC_VERSION.fullmatch(text) else None


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
