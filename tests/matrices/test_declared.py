"""Unsloth's declared pins in the matrices equal its wheel METADATA; check fails on what a release refuses
(read from the bundled PyPI metadata when the snapshot does not carry Requires-Dist)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from envdoctor.checker import run_check
from envdoctor.matrices import BackendRule, backend_rules, load_matrices
from envdoctor.snapshot import Snapshot, snapshot_from_dict

DATA = Path(__file__).parents[1] / "data" / "requires_dist"
MATRICES = load_matrices()
RELEASES = sorted(p.stem for p in DATA.glob("*.txt"))  # "unsloth-2026.10.9", "unsloth_zoo-2025.11.1", ...


def _metadata_lines(stem: str) -> list[str]:
    return [line for line in (DATA / f"{stem}.txt").read_text().splitlines() if line.strip()]


def _checked(lines: list[str]) -> list[str]:
    """The unconditional lines that constrain a version: what the matrix must carry."""
    return [line for line in lines if "extra ==" not in line and str(Requirement(line).specifier)]


def _release(stem: str):
    package, version = stem.split("-")
    return MATRICES.declared[(package.replace("_", "-"), version)]


@pytest.mark.parametrize("stem", RELEASES)
def test_matrix_pins_equal_the_recorded_metadata(stem: str) -> None:
    release = _release(stem)
    assert list(release.requires) == _checked(_metadata_lines(stem))
    assert stem in release.source


def test_unsloth_2024_8_pins_live_in_its_huggingface_extra() -> None:
    release = _release("unsloth-2024.8")
    extra = [line.split(";")[0].strip() for line in _metadata_lines("unsloth-2024.8") if "'huggingface'" in line]
    assert release.requires == ()
    assert list(release.extras["huggingface"]) == [line for line in extra if str(Requirement(line).specifier)]
    assert "trl <0.9.0,>=0.7.9" in release.extras["huggingface"]


@pytest.mark.network
@pytest.mark.parametrize("stem", RELEASES)
def test_recorded_metadata_equals_pypi(stem: str, tmp_path: Path) -> None:
    package, version = stem.split("-")
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(tmp_path), f"{package}=={version}"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    wheels = list(tmp_path.glob("*.whl"))
    if download.returncode != 0 or not wheels:
        pytest.skip(f"PyPI not reachable: {download.stderr.strip().splitlines()[-1:] or download.returncode}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        header = wheel.read(name).decode().split("\n\n")[0].splitlines()
    assert [h.split(":", 1)[1].strip() for h in header if h.startswith("Requires-Dist:")] == _metadata_lines(stem)


def snapshot(packages: dict, **sections) -> Snapshot:
    h100 = {"index": 0, "name": "H100", "compute_capability": "9.0", "memory_mib": 81559}
    return snapshot_from_dict({"host": {"os": "linux", "arch": "x86_64"}, "python": {"version": "3.11.9"},
                               "nvidia": {"driver": "580.159.04", "cuda_driver": "13.0", "gpus": [h100]},
                               "packages": packages, **sections})


def _unsloth(requires: list[str] | None = None, **packages: str):
    entry = {"version": "2026.10.9", **({"requires": requires} if requires is not None else {})}
    base = {"unsloth": entry, "unsloth-zoo": "2026.10.9", "torch": "2.11.0+cu130", "trl": "1.15.0",
            "peft": "0.21.0", "datasets": "4.7.0", "bitsandbytes": "0.49.0", "accelerate": "1.15.0",
            "transformers": "5.17.0"}
    return snapshot({**base, **packages}, torch={"cuda": "13.0"})


def _conflicts(snap, tmp_path: Path, stack: str = "lora-cu130-2026.11") -> list[tuple[str, tuple[str, ...]]]:
    report = run_check(snap, stack=stack, cwd=tmp_path, matrices=MATRICES)
    return [(f.rule, f.components) for f in report.findings if "requirement-conflict" in f.rule]


def test_installed_unsloth_refuses_newer_transformers(tmp_path: Path) -> None:
    assert _conflicts(_unsloth(), tmp_path, "phase1a-2.0") == []
    bad = _conflicts(_unsloth(transformers="5.23.0", bitsandbytes="0.48.0"), tmp_path, "phase1a-2.0")
    assert ("declared-requirement-conflict", ("transformers", "unsloth")) in bad
    assert ("declared-requirement-conflict", ("transformers", "unsloth-zoo")) in bad
    assert ("declared-requirement-conflict", ("bitsandbytes", "unsloth")) in bad  # a known-bad '!=' release


def test_recorded_torch_fix_keeps_the_index(tmp_path: Path) -> None:
    report = run_check(_unsloth(torch="2.15.0+cu130"), stack="phase1a-2.0", cwd=tmp_path)
    (finding,) = [f for f in report.findings if f.rule == "declared-requirement-conflict"
                  and f.components == ("torch", "unsloth")]
    assert 'pip install "torch<2.15.0,>=2.4.0" --index-url https://download.pytorch.org/whl/cu130' in finding.fix


def test_snapshot_requires_take_precedence_no_duplicate(tmp_path: Path) -> None:
    snap = _unsloth(requires=["transformers<=5.17.0,>=4.52.4"], transformers="5.23.0")
    # unsloth is outside lora-cu130-2026.11's dependency closure: pip's conflict is reported once, as a warning,
    # and the recorded requirement (covered by the snapshot's own Requires-Dist) adds nothing.
    assert [(r, c) for r, c in _conflicts(snap, tmp_path) if "unsloth-zoo" not in c and "transformers" in c] == [
        ("declared-requirement-conflict-outside-stack", ("transformers",))]


def test_backend_rules_are_the_measured_ones() -> None:
    rules = backend_rules()
    assert all(isinstance(r, BackendRule) and "perf-reference.md" in r.source for r in rules)
    first = {}
    for rule in rules:
        first.setdefault((rule.data_shape, rule.when_installed), rule.backend)
    assert first[("fixed", True)] == "unsloth" and first[("packed", False)] == "hf"


def test_recorded_conflict_fails_only_inside_the_stack(tmp_path: Path) -> None:
    bad = _unsloth(transformers="5.23.0")
    outside = run_check(bad, stack="lora-cu130-2026.11", cwd=tmp_path, matrices=MATRICES)
    conflicts = {(f.rule, f.severity.value) for f in outside.findings if "requirement-conflict" in f.rule}
    # unsloth is installed but not part of this stack: --backend hf still runs
    assert conflicts == {("declared-requirement-conflict-outside-stack", "warn")}
    no_stack = run_check(bad, stack="phase1a-2.0", cwd=tmp_path, matrices=MATRICES)  # phase1a carries unsloth
    assert "fail" in {f.severity.value for f in no_stack.findings if f.rule == "declared-requirement-conflict"}
