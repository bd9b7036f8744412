"""Triton's bundled ptxas (matrices/triton_ptxas.json) against the GPU's architecture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.triton_ptxas import load_triton_ptxas
from envdoctor.findings import Finding, Report
from envdoctor.matrices import MatrixError, load_matrices
from envdoctor.snapshot import snapshot_from_dict

SCHEMA = "envdoctor.snapshot/1"
MATRICES = Path(__file__).resolve().parents[2] / "matrices"
LINUX = {"os": "linux", "arch": "x86_64"}
RTX_5090 = {"gpus": [{"name": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0"}]}
GB10 = {"gpus": [{"name": "NVIDIA GB10", "compute_capability": "12.1"}]}
H100 = {"gpus": [{"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}]}


def check(tmp_path: Path, **sections: object) -> Report:
    return run_check(snapshot_from_dict({"schema": SCHEMA, **sections}), stack=None, cwd=tmp_path)


def found(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.rule == "triton-ptxas-predates-gpu"]


def test_the_table_reads_every_release_with_its_newest_ptxas() -> None:
    table = load_triton_ptxas(load_matrices(MATRICES))
    assert table is not None and len(table.newest) >= 18
    assert all(ptxas is None or ptxas.major >= 12 for ptxas in table.newest.values())


def test_the_triton_torch_pins_is_judged_when_the_snapshot_names_none(tmp_path: Path) -> None:
    """torch 2.8 pins triton 3.4.0, whose ptxas (CUDA 12.8) predates sm_121 (CUDA 12.9), while torch's cu129
    build runs there; torch 2.9 pins 3.5.0 (also 12.8), torch 2.10 pins 3.6.0 (ptxas-blackwell from CUDA 12.9)."""
    [finding] = found(check(tmp_path, host=LINUX, nvidia=GB10, packages={"torch": "2.8.0+cu129"}))
    assert finding.components == ("torch", "triton", "gpu") and finding.verified is False
    assert "CUDA 12.8" in finding.message and "'sm_121a'" in finding.message
    assert "3.6.0" in (finding.fix or "")
    assert not found(check(tmp_path, host=LINUX, nvidia=GB10, packages={"torch": "2.10.0+cu130"}))
    assert not found(check(tmp_path, host=LINUX, nvidia=H100, packages={"torch": "2.8.0+cu129"}))
    # torch's Triton pin holds for Linux x86_64 only
    assert not found(check(tmp_path, host={"os": "windows"}, nvidia=GB10, packages={"torch": "2.8.0+cu129"}))


def test_a_torch_built_before_the_arch_is_left_to_the_torch_arch_check(tmp_path: Path) -> None:
    """torch 2.6's cu126 build has no sm_120 kernels: that is the failure, not the Triton it pins (3.2.0, CUDA 12.4)."""
    report = check(tmp_path, host=LINUX, nvidia=RTX_5090, packages={"torch": "2.6.0+cu126"})
    assert not found(report) and [f.rule for f in report.findings if f.rule == "gpu-arch-not-in-torch"]
    installed = check(tmp_path, host=LINUX, nvidia=RTX_5090, packages={"torch": "2.6.0+cu126", "triton": "3.2.0"})
    assert [f.components for f in found(installed)] == [("triton", "gpu")]


def test_an_installed_triton_is_judged_on_its_own_ptxas(tmp_path: Path) -> None:
    nightly = {"torch": "2.10.0.dev20251024+cu130", "pytorch-triton": "3.5.0+git7416ffcb"}
    [finding] = found(check(tmp_path, host=LINUX, nvidia=GB10, packages=nightly))
    assert finding.components == ("pytorch-triton", "gpu") and finding.verified is True
    assert "sm_121" in finding.message and "CUDA 12.9" in finding.message
    assert not found(check(tmp_path, host=LINUX, nvidia=GB10, packages={"triton": "3.6.0"}))


def test_a_system_ptxas_that_knows_the_arch_is_the_fix(tmp_path: Path) -> None:
    report = check(tmp_path, host=LINUX, nvidia=GB10, cuda_toolkit={"nvcc": "13.0"}, packages={"triton": "3.5.0"})
    [finding] = found(report)
    assert (finding.fix or "").startswith('export TRITON_PTXAS_PATH="$(command -v ptxas)"')


def test_a_malformed_table_names_the_release(tmp_path: Path) -> None:
    root = tmp_path / "matrices"
    shutil.copytree(MATRICES, root)
    path = root / "triton_ptxas.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["releases"]["3.5.0"]["newest"] = "twelve"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(MatrixError, match=r"releases\.3\.5\.0"):
        load_triton_ptxas(load_matrices(root))
