"""Builds an operating system lacks (matrices/platforms.toml): Linux-only packages elsewhere, and releases with no
NVIDIA GPU build for the OS beside signs of a GPU (a CPU-only TensorFlow on native Windows, JAX on Windows)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.matrices import MatrixError, default_root, load_matrices
from envdoctor.snapshot import snapshot_from_dict
from envdoctor.table_validation import validate_matrices

RULES = ("no-build-for-os", "no-gpu-build-for-os")
GPU = {"gpus": [{"name": "NVIDIA GeForce GTX 1050 Ti", "compute_capability": "6.1"}]}


def _findings(tmp_path: Path, os: str, packages: dict[str, str | None], nvidia: dict | None = None,
              root: Path | None = None) -> list:
    document: dict = {"schema": "envdoctor.snapshot/1", "host": {"os": os, "arch": "x86_64"},
                      "packages": {name: {"version": version} for name, version in packages.items()}}
    if nvidia is not None:
        document["nvidia"] = nvidia
    report = run_check(snapshot_from_dict(document), stack=None, cwd=tmp_path,
                       matrices=load_matrices(root) if root else None)
    return [f for f in report.findings if f.rule in RULES]


def test_tensorflow_from_2_11_on_windows_beside_a_gpu_runs_on_the_cpu(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, "windows", {"tensorflow": "2.12.0"}, GPU)
    assert finding.rule == "no-gpu-build-for-os" and finding.severity.value == "warn" and finding.verified
    assert finding.category.value == "platform" and "native Windows" in finding.message
    assert "WSL2" in (finding.fix or "") and finding.sources == ("tensorflow-2-11-windows-gpu",)
    assert not _findings(tmp_path, "windows", {"tensorflow": "2.10.1"}, GPU)  # the last with Windows GPU support
    assert not _findings(tmp_path, "linux", {"tensorflow": "2.12.0"}, GPU)
    assert not _findings(tmp_path, "windows", {"tensorflow": "2.12.0"})  # no sign of a GPU: CPU is what it wants


def test_an_unknown_version_is_judged_on_the_current_releases_inferred(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, "windows", {"tensorflow": None}, {"driver": "546.33"})
    assert not finding.verified and "version unknown" in finding.message


def test_a_cuda_build_tag_is_itself_the_sign_of_a_gpu(tmp_path: Path) -> None:
    found = _findings(tmp_path, "windows", {"jaxlib": "0.4.9+cuda12.cudnn88"})
    assert [(f.rule, f.components) for f in found] == [("no-gpu-build-for-os", ("jaxlib",))]


def test_linux_only_packages_elsewhere_warn_whatever_the_version(tmp_path: Path) -> None:
    found = _findings(tmp_path, "windows", {"mamba-ssm": "1.0.1", "causal-conv1d": None, "torch": "2.1.0"})
    assert sorted(f.components for f in found) == [("causal-conv1d",), ("mamba-ssm",)]
    assert all(f.rule == "no-build-for-os" and f.verified for f in found)
    assert not _findings(tmp_path, "linux", {"mamba-ssm": "1.0.1", "vllm": None})


def test_a_bad_row_is_one_line_naming_the_file_and_row(tmp_path: Path) -> None:
    root = tmp_path / "matrices"
    shutil.copytree(default_root(), root)
    table = root / "platforms.toml"
    table.write_text(table.read_text().replace('os = "windows"', 'os = "beos"', 1))
    assert any("platforms.toml: cpu_only_on[0]" in problem for problem in validate_matrices(root))
    with pytest.raises(MatrixError, match=r"platforms.toml: cpu_only_on\[0\]"):
        _findings(tmp_path, "windows", {"tensorflow": "2.12.0"}, GPU, root=root)
