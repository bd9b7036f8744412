"""The process environment variables that decide which GPUs, CUDA libraries and model cache a training run gets."""

from __future__ import annotations

import os
from collections.abc import Mapping

from envdoctor.snapshot import Environment

# Libraries of a CUDA toolkit (or conda's CUDA) that, found first on LD_LIBRARY_PATH, replace the ones pip's
# nvidia-* wheels ship beside a CUDA torch.
CUDA_LIBRARY_PREFIXES = ("libcudart.so", "libnvJitLink.so", "libcublas.so", "libcublasLt.so", "libcusparse.so",
                         "libcudnn.so", "libnccl.so")
# huggingface_hub's reading of a boolean variable (``constants._is_true``).
_TRUE_WORDS = {"1", "ON", "YES", "TRUE"}


def probe_environment(environ: Mapping[str, str] | None = None) -> Environment:
    """CUDA_VISIBLE_DEVICES, LD_LIBRARY_PATH (split into directories, and which of them hold CUDA libraries),
    HF_HUB_OFFLINE and HF_HOME; unset is None."""
    environ = os.environ if environ is None else environ
    library_path = environ.get("LD_LIBRARY_PATH")
    dirs = tuple(d for d in library_path.split(os.pathsep) if d) if library_path is not None else None
    offline = environ.get("HF_HUB_OFFLINE")
    return Environment(
        cuda_visible_devices=environ.get("CUDA_VISIBLE_DEVICES"),
        ld_library_path=dirs,
        cuda_library_dirs=tuple(d for d in dirs if holds_cuda_library(d)) if dirs is not None else None,
        hf_hub_offline=offline.strip().upper() in _TRUE_WORDS if offline is not None else None,
        hf_home=environ.get("HF_HOME") or None,
    )


def holds_cuda_library(directory: str) -> bool:
    """Whether ``directory`` holds one of the CUDA runtime libraries; an unreadable directory holds none."""
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    return any(name.startswith(CUDA_LIBRARY_PREFIXES) for name in names)
