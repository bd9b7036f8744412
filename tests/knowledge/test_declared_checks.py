"""Declared requirements from the bundled PyPI metadata, on snapshots that carry versions only (as issue threads do)."""

from __future__ import annotations

from packaging.requirements import Requirement

from envdoctor.checker import run_check
from envdoctor.checks import CheckContext
from envdoctor.checks.requirements import check_declared
from envdoctor.facts import Facts
from envdoctor.findings import Finding
from envdoctor.matrices import load_matrices
from envdoctor.pypi_facts import release_facts
from envdoctor.snapshot import Snapshot, snapshot_from_dict

LINUX = {"os": "linux", "arch": "x86_64"}
MATRICES = load_matrices()


def snapshot(packages: dict, host: dict = LINUX, python: str | None = "3.11.9") -> Snapshot:
    return snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": host,
                               "python": {"version": python} if python else {}, "packages": packages})


def declared(snap: Snapshot) -> list[Finding]:
    """The declared-requirements check alone (no other check can supersede its findings)."""
    return check_declared(CheckContext(snapshot=snap, matrices=MATRICES, facts=Facts(MATRICES.root)))


def found(findings: list[Finding], rule: str) -> list[tuple[tuple[str, ...], str]]:
    return [(f.components, f.severity.value) for f in findings if f.rule == rule]


def test_torchvision_pairs_with_one_torch() -> None:
    snap = snapshot({"torch": "2.4.0", "torchvision": "0.18.1"})
    assert found(declared(snap), "declared-requirement-conflict") == [(("torch", "torchvision"), "fail")]
    assert found(declared(snapshot({"torch": "2.3.1", "torchvision": "0.18.1"})), "declared-requirement-conflict") == []
    # Through the whole checker, without a stack, the pairing is reported on both packages.
    report = run_check(snap, stack=None)
    assert [f for f in report.findings if {"torch", "torchvision"} <= set(f.components) and f.severity.value == "fail"]


def test_pairings_come_from_every_release_not_a_table() -> None:
    pairs = [("torchaudio", "2.1.0", "2.3.1"), ("xformers", "0.0.27.post2", "2.5.1"), ("torch", "2.4.0", None)]
    for owner, version, torch in pairs:
        if torch is None:  # torch pins triton on Linux x86_64
            snap = snapshot({"torch": version, "triton": "2.3.1"})
            assert found(declared(snap), "declared-requirement-conflict") == [(("triton", "torch"), "fail")]
            continue
        snap = snapshot({owner: version, "torch": torch})
        assert found(declared(snap), "declared-requirement-conflict") == [(("torch", owner), "fail")], owner


def test_markers_are_evaluated_for_the_snapshot_platform() -> None:
    mac = {"os": "darwin", "arch": "arm64"}
    assert declared(snapshot({"torch": "2.4.0", "triton": "2.3.1"}, host=mac)) == []
    # torch 2.4.0 pins triton only below Python 3.13
    assert found(declared(snapshot({"torch": "2.4.0", "triton": "2.3.1"}, python="3.13.0")),
                 "declared-requirement-conflict") == []


def test_cuda_runtime_pins_hold_only_for_the_pypi_build() -> None:
    old_cudnn = {"nvidia-cudnn-cu12": "8.9.2.26"}
    assert found(declared(snapshot({"torch": "2.4.0", **old_cudnn})), "declared-requirement-conflict") == [
        (("nvidia-cudnn-cu12", "torch"), "fail")]
    assert declared(snapshot({"torch": "2.4.0+cu118", **old_cudnn})) == []  # another index, other CUDA libraries
    assert declared(snapshot({"torch": "2.4.0", **old_cudnn}, host={"os": "linux", "arch": "aarch64"})) == []


def test_snapshot_requires_take_precedence() -> None:
    snap = snapshot({"torch": "2.4.0", "torchvision": {"version": "0.18.1", "requires": ["torch==2.4.0"]}})
    assert declared(snap) == []


def test_absent_requirements_only_from_the_package_metadata() -> None:
    # A version-only listing (from an issue thread) is partial: torch's sympy may be installed all the same.
    assert found(declared(snapshot({"torch": "2.3.1"})), "declared-requirement-missing") == []
    own = snapshot({"torch": "2.3.1", "torchvision": {"version": "0.18.1", "requires": ["torch==2.3.1", "pillow"]}})
    assert found(declared(own), "declared-requirement-missing") == [(("pillow", "torchvision"), "warn")]


def test_unknown_versions() -> None:
    snap = snapshot({"torch": None, "torchvision": "0.18.1", "torchaudio": "2.3.1", "peft": None})
    findings = declared(snap)
    (info,) = [f for f in findings if f.rule == "declared-requirement-unverified"]
    assert info.components == ("torch",) and info.verified is False and info.severity.value == "info"
    assert "torchvision 0.18.1 requires torch==2.3.1" in info.message and "torchaudio 2.3.1" in info.message
    assert [f for f in findings if f.rule != "declared-requirement-unverified"] == []  # peft's own needs: unknown


def test_fix_changes_the_side_fewer_packages_rely_on() -> None:
    snap = snapshot({"torch": "2.4.0", "torchvision": "0.18.1", "torchaudio": "2.4.0", "xformers": "0.0.27.post2"})
    (finding,) = [f for f in declared(snap) if f.rule == "declared-requirement-conflict"]
    assert finding.fix.startswith('pip install "torchvision==0.19.0"'), finding.fix
    snap = snapshot({"torch": "2.4.0", "triton": "2.3.1", "xformers": "0.0.27.post2"})
    (finding,) = [f for f in declared(snap) if f.rule == "declared-requirement-conflict"]
    assert finding.fix.startswith('pip install "triton==3.0.0"'), finding.fix


def test_fix_release_accepts_the_installed_version() -> None:
    snap = snapshot({"transformers": "4.40.0", "tokenizers": "0.21.0", "peft": "0.10.0", "trl": "0.8.6"})
    (finding,) = [f for f in declared(snap) if f.rule == "declared-requirement-conflict"]
    assert finding.components == ("tokenizers", "transformers")
    first, alternative = finding.fix.split("   # or: ")
    assert first == 'pip install "tokenizers<0.20,>=0.19"'  # peft and trl rely on transformers: it stays
    version = alternative.removeprefix('pip install "transformers==').rstrip('"')
    wanted = [Requirement(line) for line in release_facts("transformers", version).requires]
    (tokenizers,) = [r for r in wanted if r.name == "tokenizers"]
    assert tokenizers.specifier.contains("0.21.0") and version != "4.40.0"


def test_conflict_outside_the_stack_never_uninstalls_envdoctor_dependencies(tmp_path) -> None:
    rich = {"version": "13.7.1", "requires": ["pygments<3.0.0,>=2.13.0"]}
    snap = snapshot({"torch": "2.11.0+cu130", "rich": rich, "pygments": "2.10.0"})
    report = run_check(snap, stack="lora-cu130-2026.11", cwd=tmp_path)
    (finding,) = [f for f in report.findings if f.rule == "declared-requirement-conflict-outside-stack"]
    assert "uninstall" not in finding.fix and finding.fix == 'pip install "pygments<3.0.0,>=2.13.0"'
