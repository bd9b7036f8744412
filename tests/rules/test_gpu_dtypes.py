"""GPUs without bfloat16 beside runtimes that refuse bfloat16 models there (matrices/dtype_support.toml)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.gpu_dtypes import load_dtype_support
from envdoctor.matrices import MatrixError, load_matrices
from envdoctor.pypi_facts import forget_fetched_facts, read_fetched_facts
from envdoctor.snapshot import snapshot_from_dict

T4 = {"name": "Tesla T4", "compute_capability": "7.5"}
A10 = {"name": "NVIDIA A10", "compute_capability": "8.6"}


def found(tmp_path: Path, gpu: dict, packages: dict) -> list:
    snap = snapshot_from_dict({"host": {"os": "linux", "arch": "x86_64"}, "nvidia": {"gpus": [gpu]},
                               "packages": {name: {"version": v} for name, v in packages.items()}})
    return [f for f in run_check(snap, cwd=tmp_path).findings if f.rule == "gpu-without-bf16"]


def test_a_runtime_that_refuses_bf16_on_a_gpu_without_it(tmp_path: Path) -> None:
    [finding] = found(tmp_path, T4, {"vllm": "0.6.3"})
    assert finding.components == ("vllm",) and finding.verified is False
    assert "7.5" in finding.message and "--dtype half" in (finding.fix or "")
    assert not found(tmp_path, A10, {"vllm": "0.6.3"})
    assert not found(tmp_path, T4, {"transformers": "4.46.0"})  # loads float32 unless told otherwise


def test_a_package_requiring_the_runtime_is_named_with_it(tmp_path: Path) -> None:
    """A package the tables lack, whose fetched facts declare vllm (as orpheus-speech does), runs vllm's models."""
    document = {"package": "demo-tts", "generator": "envdoctor check --online", "generated": "2026-12-07",
                "source": {}, "floor": None, "requires_only": False,
                "releases": {"0.1.0": {"date": "2025-03-01", "requires_python": ">=3.10", "yanked": False,
                                       "requires": ["vllm==0.7.3", "snac"], "wheels": ["py3-any"], "sdist": True}}}
    (tmp_path / "demo-tts.json").write_text(json.dumps(document))
    read_fetched_facts(tmp_path, ("demo-tts",), {})
    try:
        [finding] = found(tmp_path, T4, {"demo-tts": "0.1.0"})
        assert finding.components == ("demo-tts", "vllm") and "requires vllm" in finding.message
        assert not found(tmp_path, A10, {"demo-tts": "0.1.0"})
    finally:
        forget_fetched_facts()


def test_a_broken_table_is_one_error(tmp_path: Path) -> None:
    root = tmp_path / "matrices"
    shutil.copytree(load_matrices().root, root)
    (root / "dtype_support.toml").write_text('bf16_min_compute_capability = "eight"\nsources = ["nowhere"]\n')
    with pytest.raises(MatrixError, match="dtype_support.toml"):
        load_dtype_support(load_matrices(root))


def test_fp8_packages_on_a_gpu_without_fp8(tmp_path: Path) -> None:
    """Transformer Engine exists to run FP8, which needs compute capability 8.9 (Ada, Hopper, Blackwell)."""
    snap = snapshot_from_dict({"host": {"os": "linux", "arch": "x86_64"}, "nvidia": {"gpus": [A10]},
                               "packages": {"transformer-engine": {"version": None}}})
    [finding] = [f for f in run_check(snap, cwd=tmp_path).findings if f.rule == "gpu-without-fp8"]
    assert finding.components == ("transformer-engine", "gpu") and finding.verified is False
    assert "8.6" in finding.message and "8.9" in finding.message
    l4 = snapshot_from_dict({"host": {"os": "linux", "arch": "x86_64"},
                             "nvidia": {"gpus": [{"name": "NVIDIA L4", "compute_capability": "8.9"}]},
                             "packages": {"transformer-engine": {"version": None}}})
    assert not [f for f in run_check(l4, cwd=tmp_path).findings if f.rule == "gpu-without-fp8"]


def test_a_runtime_with_its_own_float16_floor_refuses_float16_below_it(tmp_path: Path) -> None:
    """CTranslate2 allows float16 only from compute capability 7.0 (FP16 tensor cores); faster-whisper runs it."""
    pascal = {"name": "NVIDIA GeForce GTX 1050 Ti", "compute_capability": "6.1"}

    def fp16(gpu: dict, packages: dict) -> list:
        snap = snapshot_from_dict({"host": {"os": "linux", "arch": "x86_64"}, "nvidia": {"gpus": [gpu]},
                                   "packages": {name: {"version": v} for name, v in packages.items()}})
        return [f for f in run_check(snap, cwd=tmp_path).findings if f.rule == "gpu-below-fp16-floor"]

    [finding] = fp16(pascal, {"ctranslate2": "4.4.0"})
    assert finding.components == ("ctranslate2",) and finding.severity.value == "warn"
    assert "6.1" in finding.message and "7.0" in finding.message and "int8" in (finding.fix or "")
    [through] = fp16(pascal, {"faster-whisper": None})
    assert through.components == ("faster-whisper", "ctranslate2")
    assert [f.components for f in fp16(pascal, {"faster-whisper": None, "ctranslate2": None})] == [("ctranslate2",)]
    assert not fp16(T4, {"ctranslate2": "4.4.0", "faster-whisper": None})


def test_a_float16_floor_row_without_its_compute_capability_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "matrices"
    shutil.copytree(load_matrices().root, root)
    table = root / "dtype_support.toml"
    table.write_text(table.read_text().replace('min_compute_capability = "7.0"\n', ""))
    with pytest.raises(MatrixError, match="fp16_refused"):
        load_dtype_support(load_matrices(root))
