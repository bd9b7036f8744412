"""torch releases older than the arch tables, judged by the newest CUDA their builds used."""

from __future__ import annotations

from pathlib import Path

from envdoctor.checker import run_check
from envdoctor.findings import Finding, Report, Severity
from envdoctor.snapshot import snapshot_from_dict

SCHEMA = "envdoctor.snapshot/1"
LINUX = {"os": "linux", "arch": "x86_64"}
RTX_3080 = {"gpus": [{"name": "GeForce RTX 3080", "compute_capability": "8.6"}]}
A100 = {"gpus": [{"name": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0"}]}


def check(tmp_path: Path, torch: str, nvidia: dict) -> Report:
    snapshot = {"schema": SCHEMA, "host": LINUX, "nvidia": nvidia, "packages": {"torch": torch}}
    return run_check(snapshot_from_dict(snapshot), stack=None, cwd=tmp_path)


def era(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.rule == "gpu-arch-not-in-torch" and "predates" in f.message]


def test_a_release_built_before_the_gpu_arch_existed_has_no_kernels_for_it(tmp_path: Path) -> None:
    """pytorch/pytorch#45021: torch 1.1.0 (CUDA 9.0 and 10.0 builds) on an RTX 3080 (compute capability 8.6 runs
    sm_80 code, which came with CUDA 11.0)."""
    [finding] = era(check(tmp_path, "1.1.0", RTX_3080))
    assert finding.severity is Severity.WARN and finding.verified is False
    assert "CUDA 10.0" in finding.message and "8.6" in finding.message
    assert "sm_80, first in CUDA 11.0" in finding.message
    [tagged] = era(check(tmp_path, "1.1.0+cu100", RTX_3080))
    assert tagged.severity is Severity.FAIL and tagged.verified is True


def test_a_release_with_a_build_for_a_cuda_that_knows_the_arch_is_not_flagged(tmp_path: Path) -> None:
    """torch 1.7.1 has a CUDA 11.0 build, and sm_80 came with CUDA 11.0; its CUDA 10.2 build has none."""
    assert not era(check(tmp_path, "1.7.1", A100))
    assert era(check(tmp_path, "1.7.1+cu102", A100))
    assert not era(check(tmp_path, "1.1.0+cpu", RTX_3080))
    assert not era(check(tmp_path, "1.8.1+rocm4.0.1", RTX_3080))  # a ROCm build is another question
    # sm_80 code (CUDA 11.0) runs on an sm_86 GPU: torch 1.7.1's CUDA 11.0 build has kernels for an RTX 3080
    assert not era(check(tmp_path, "1.7.1+cu110", RTX_3080))
