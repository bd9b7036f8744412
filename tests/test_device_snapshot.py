"""Snapshots probed on the lent devices (an H100 on 2026-11-25, an H200 on 2026-11-30; both driver 580.159.04,
torch 2.11.0+cu130, NumPy 2.5.2, Python 3.12), checked against every bundled stack: what must be flagged, and what
must not be (the hardware is fine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.snapshot import load_snapshot

SNAPSHOTS = Path(__file__).parent / "data" / "snapshots"
SNAPSHOT = load_snapshot(SNAPSHOTS / "h100-device-2026-11-25.json")
H200 = load_snapshot(SNAPSHOTS / "h200-device-2026-11-30.json")


def _failures(stack: str, tmp_path: Path, snapshot: object = SNAPSHOT) -> set[tuple[str, str]]:
    report = run_check(snapshot, stack=stack, cwd=tmp_path)
    assert report.status.value == "fail"
    return {(f.category.value, f.components[0]) for f in report.findings if f.severity.value == "fail"}


def test_probe_read_the_h100_right() -> None:
    assert SNAPSHOT.nvidia.driver == "580.159.04" and SNAPSHOT.nvidia.cuda_driver == "13.0"
    assert [g.compute_capability for g in SNAPSHOT.nvidia.gpus] == ["9.0"]
    assert (SNAPSHOT.torch.version, SNAPSHOT.torch.cuda, SNAPSHOT.torch.cxx11abi) == ("2.11.0+cu130", "13.0", True)
    assert SNAPSHOT.package_version("numpy") == "2.5.2"


def test_probe_read_the_h200_right() -> None:
    assert H200.nvidia.driver == "580.159.04" and H200.nvidia.cuda_driver == "13.0"
    assert [(g.name, g.compute_capability, g.memory_mib) for g in H200.nvidia.gpus] == [("NVIDIA H200", "9.0", 143771)]
    assert (H200.torch.version, H200.torch.cuda, H200.torch.cxx11abi) == ("2.11.0+cu130", "13.0", True)


@pytest.mark.parametrize("device", ["h100", "h200"])
@pytest.mark.parametrize("stack", ["phase1a-2.0", "lora-cu128-2026.11", "lora-cu130-2026.11", "cpu-test"])
def test_numpy2_is_flagged_and_the_hardware_is_not(stack: str, device: str, tmp_path: Path) -> None:
    failures = _failures(stack, tmp_path, SNAPSHOT if device == "h100" else H200)
    assert ("numpy", "numpy") in failures
    assert not {c for c, _ in failures} & {"driver", "gpu-arch", "cuda-build", "abi", "resources"}


def test_phase1a_also_needs_another_python(tmp_path: Path) -> None:
    assert ("python", "python") in _failures("phase1a-2.0", tmp_path)


@pytest.mark.parametrize("device", ["h100", "h200"])
def test_the_device_stack_only_lacks_the_numpy1_data_stack(device: str, tmp_path: Path) -> None:
    assert _failures("lora-cu130-2026.11", tmp_path, SNAPSHOT if device == "h100" else H200) == {
        ("numpy", "numpy"), ("missing", "datasets")}
