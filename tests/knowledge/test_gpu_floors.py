"""The lowest compute capability each package release supports (matrices/gpu_floors.toml): a known release below
its floor fails; an unknown version fails below every release's floor and warns, inferred, below the newest's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.matrices import MatrixError, default_root, load_matrices
from envdoctor.snapshot import snapshot_from_dict
from envdoctor.table_validation import validate_matrices


def _findings(tmp_path: Path, cc: str, packages: dict[str, str | None], root: Path | None = None,
              rule: str = "package-gpu-too-old") -> list:
    snapshot = snapshot_from_dict({
        "schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"},
        "nvidia": {"gpus": [{"name": "GPU", "compute_capability": cc}]},
        "packages": {name: {"version": version} for name, version in packages.items()},
    })
    report = run_check(snapshot, stack=None, cwd=tmp_path, matrices=load_matrices(root) if root else None)
    return [f for f in report.findings if f.rule == rule]


def test_vllm_on_pascal_fails_whatever_the_release(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, "6.1", {"vllm": "0.9.1"})
    assert finding.severity.value == "fail" and finding.verified and finding.components == ("vllm", "gpu")
    assert "compute capability 7.0 and newer only" in finding.message
    (unknown,) = _findings(tmp_path, "6.1", {"vllm": None})
    assert unknown.severity.value == "fail" and unknown.verified  # below every release's floor


def test_a_floor_raised_later_is_per_release_and_inferred_for_an_unknown_version(tmp_path: Path) -> None:
    assert not _findings(tmp_path, "7.0", {"vllm": "0.14.0"})  # V100: 7.0 up to the docs of 0.14
    (finding,) = _findings(tmp_path, "7.0", {"vllm": "0.21.0"})
    assert finding.severity.value == "fail" and "7.5" in finding.message
    (unknown,) = _findings(tmp_path, "7.0", {"vllm": None})  # its current releases need 7.5
    assert unknown.severity.value == "warn" and not unknown.verified


def test_nothing_at_or_above_the_floor_or_without_a_gpu(tmp_path: Path) -> None:
    assert not _findings(tmp_path, "8.0", {"vllm": None, "flashinfer-python": "0.2.0"})
    assert not _findings(tmp_path, "7.5", {"flashinfer-python": None})


@pytest.mark.parametrize(("field", "kind", "rule", "package", "cc"), [
    ('min_compute_capability = "7.0"', "gpu_floor", "package-gpu-too-old", "vllm", "6.1"),
    ('max_compute_capability = "7.5"', "gpu_ceiling", "package-gpu-too-new", "tensorrt", "8.6")])
def test_a_bad_row_is_one_line_naming_the_file_and_row(tmp_path: Path, field: str, kind: str, rule: str,
                                                        package: str, cc: str) -> None:
    root = tmp_path / "matrices"
    shutil.copytree(default_root(), root)
    table = root / "gpu_floors.toml"
    table.write_text(table.read_text().replace(field, field.split('"')[0] + '"x"', 1))
    assert any(f"gpu_floors.toml: {kind}[0]" in problem for problem in validate_matrices(root))
    with pytest.raises(MatrixError, match=rf"gpu_floors.toml: {kind}\[0\]"):
        _findings(tmp_path, cc, {package: "7.0.0"}, root=root, rule=rule)


def test_a_supported_minimum_marked_warn_warns_and_replaces_the_triton_finding(tmp_path: Path) -> None:
    """Unsloth states compute capability 7.0 as its minimum while Pascal cards run it slowly: a verified warning,
    which makes the Triton-compiler warning for the same package redundant."""
    (finding,) = _findings(tmp_path, "6.1", {"unsloth": "2024.7"})
    assert finding.severity.value == "warn" and finding.verified and "parts of it fail or run slowly" in finding.message
    snapshot = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": {"os": "linux"},
                                   "nvidia": {"gpus": [{"name": "Tesla P40", "compute_capability": "6.1"}]},
                                   "packages": {"unsloth": None}})
    rules = [f.rule for f in run_check(snapshot, stack=None, cwd=tmp_path).findings if "gpu" in f.rule]
    assert rules == ["package-gpu-too-old"]
    assert not _findings(tmp_path, "7.5", {"unsloth": "2024.7"})


def _ceiling_findings(tmp_path: Path, cc: str, packages: dict[str, str | None], root: Path | None = None) -> list:
    return _findings(tmp_path, cc, packages, root, rule="package-gpu-too-new")


@pytest.mark.parametrize(("version", "cc"), [("7.0.0.11", "8.6"), ("8.4.1.5", "8.9"), ("10.7.0", "12.0"),
                                             ("8.2.1.8", "8.9"), ("7.1.3.4", "8.6")])
def test_a_tensorrt_release_refuses_a_gpu_newer_than_it_knows(tmp_path: Path, version: str, cc: str) -> None:
    (finding,) = _ceiling_findings(tmp_path, cc, {"tensorrt": version})
    assert finding.severity.value == "fail" and finding.verified and finding.components == ("tensorrt", "gpu")
    assert f"this GPU is {cc}" in finding.message


@pytest.mark.parametrize(("version", "cc"), [("8.5.1.7", "8.9"), ("10.8.0.43", "12.0"), ("8.4.1.5", "8.7"),
                                             ("7.2.3.4", "8.6"), ("8.6.1", "9.0")])
def test_a_tensorrt_release_that_knows_the_gpu_is_quiet(tmp_path: Path, version: str, cc: str) -> None:
    assert not _ceiling_findings(tmp_path, cc, {"tensorrt": version})


def test_an_unknown_release_on_a_gpu_only_later_releases_know_is_inferred(tmp_path: Path) -> None:
    """tensorrt-cu12 of unknown version on Blackwell: its releases before 10.8 stop at 9.0. On Ada every recorded
    tensorrt-cu12 release (10.x) knows the GPU: nothing to say."""
    (finding,) = _ceiling_findings(tmp_path, "12.0", {"tensorrt-cu12": None})
    assert finding.severity.value == "warn" and finding.verified is False
    assert "releases before 10.8" in finding.message and "up to 9.0" in finding.message
    assert not _ceiling_findings(tmp_path, "8.9", {"tensorrt-cu12": None})


def test_xformers_before_0_0_20_refuses_hopper(tmp_path: Path) -> None:
    (finding,) = _ceiling_findings(tmp_path, "9.0", {"xformers": "0.0.19"})
    assert finding.severity.value == "fail" and "cutlassF: no kernel found to launch!" in finding.message
    assert not _ceiling_findings(tmp_path, "9.0", {"xformers": "0.0.20"})


def test_tensorrt_floors_per_release_and_per_wheel_name(tmp_path: Path) -> None:
    assert not _findings(tmp_path, "6.1", {"tensorrt": "8.6.1"})  # Pascal: deprecated in 8.6, still there
    (pascal,) = _findings(tmp_path, "6.1", {"tensorrt-cu12": "10.0.1"})
    assert pascal.severity.value == "fail" and "7.0" in pascal.message
    (volta,) = _findings(tmp_path, "7.0", {"tensorrt": "10.5.0"})
    assert "7.5" in volta.message
    assert not _findings(tmp_path, "7.0", {"tensorrt": "10.4.0"})


def test_tensorrt_llm_below_ampere_is_a_warning_whatever_the_release(tmp_path: Path) -> None:
    (turing,) = _findings(tmp_path, "7.5", {"tensorrt-llm": None})
    assert turing.severity.value == "warn" and turing.verified and "8.0" in turing.message
    assert not _findings(tmp_path, "8.6", {"tensorrt-llm": "0.18.2"})
