"""CPU-only PyPI distributions (platforms.toml [[cpu_only_distribution]]) where the environment has an NVIDIA GPU."""

from __future__ import annotations

from pathlib import Path

from envdoctor.checker import run_check

from .synth import H100, snapshot

RULE = "cpu-only-distribution-on-gpu-machine"


def _found(tmp_path: Path, packages: dict, **sections) -> dict[str, tuple[str, bool]]:
    snap = snapshot(packages, **sections)
    return {f.components[0]: (f.severity.value, f.verified) for f in run_check(snap, cwd=tmp_path).findings
            if f.rule == RULE}


def test_a_cpu_only_build_beside_a_gpu_warns_and_a_gpu_build_beside_it_does_not(tmp_path):
    assert _found(tmp_path, {"dgl": "2.1.0"}) == {"dgl": ("warn", True)}
    assert _found(tmp_path, {"dgl": None}) == {"dgl": ("warn", False)}  # another index's build is possible
    assert _found(tmp_path, {"dgl": "2.1.0+cu121"}) == {}  # a CUDA label: the project's own CUDA build
    assert _found(tmp_path, {"jaxlib": "0.5.3", "jax-cuda12-plugin": "0.5.3"}) == {}
    assert _found(tmp_path, {"onnxruntime": "1.19.2", "onnxruntime-gpu": "1.19.2"}) == {}


def test_a_cpu_build_often_meant_for_cpu_work_is_information(tmp_path):
    assert _found(tmp_path, {"onnxruntime": "1.19.2"}) == {"onnxruntime": ("info", True)}


def test_without_signs_of_a_gpu_a_cpu_build_is_what_the_machine_runs(tmp_path):
    no_gpu = {"driver": None, "error": "NVML Shared Library Not Found", "gpus": []}
    assert _found(tmp_path, {"dgl": "2.1.0"}, nvidia=no_gpu) == {}


def test_releases_outside_the_rows_range_are_not_judged(tmp_path):
    """Before jaxlib 0.5.0 JAX's index served CUDA builds of jaxlib itself; a pasted version may drop the label."""
    assert _found(tmp_path, {"jaxlib": "0.4.24"}) == {}
    assert _found(tmp_path, {"jaxlib": "0.5.3"}, nvidia={"gpus": [H100]}) == {"jaxlib": ("warn", True)}


def test_nvidias_nvcc_wheel_marks_jax_installed_with_its_cuda_extra(tmp_path):
    assert _found(tmp_path, {"jax": None, "jaxlib": None, "nvidia-cuda-nvcc-cu12": None}) == {}
