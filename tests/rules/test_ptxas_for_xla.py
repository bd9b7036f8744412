"""XLA (JAX, TensorFlow) needs ptxas at run time: from a CUDA toolkit or NVIDIA's nvidia-cuda-nvcc wheel."""

from __future__ import annotations

from pathlib import Path

from envdoctor.checker import run_check

from .synth import snapshot

NO_NVCC = {"nvcc": None}


def _rules(tmp_path: Path, packages: dict, **sections) -> set[str]:
    return {f.rule for f in run_check(snapshot(packages, **sections), cwd=tmp_path).findings
            if f.severity.value in ("warn", "fail")}


def test_xla_without_a_toolkit_or_the_nvcc_wheel_warns(tmp_path):
    assert "ptxas-missing-for-xla" in _rules(tmp_path, {"jax": "0.5.3", "jaxlib": "0.5.3"}, cuda_toolkit=NO_NVCC)
    assert "ptxas-missing-for-xla" in _rules(tmp_path, {"tensorflow": "2.13.0"}, cuda_toolkit=NO_NVCC)


def test_the_nvcc_wheel_a_toolkit_or_no_gpu_say_nothing_is_missing(tmp_path):
    with_wheel = {"jax": "0.5.3", "jaxlib": "0.5.3", "nvidia-cuda-nvcc-cu12": "12.8.93"}
    assert "ptxas-missing-for-xla" not in _rules(tmp_path, with_wheel, cuda_toolkit=NO_NVCC)
    assert "ptxas-missing-for-xla" not in _rules(tmp_path, {"jax": "0.5.3"}, cuda_toolkit={"nvcc": "12.8"})
    no_gpu = {"driver": None, "error": "NVML Shared Library Not Found", "gpus": []}
    assert "ptxas-missing-for-xla" not in _rules(tmp_path, {"jax": "0.5.3"}, cuda_toolkit=NO_NVCC, nvidia=no_gpu)
