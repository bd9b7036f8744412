"""Every example snapshot reaches the expected status and raises the findings it must, per stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.matrices import load_matrices
from envdoctor.snapshot import load_snapshot

DATA = Path(__file__).parent / "data" / "snapshots"
EXPECTED = json.loads((DATA / "expected.json").read_text())
CASES = [(name, stack, want) for name, stacks in EXPECTED.items() for stack, want in stacks.items()]


def _stacks(stack: str) -> list[str]:
    return load_matrices().stack_names() if stack == "*" else [stack]


@pytest.mark.parametrize(("name", "stack", "want"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_example(name: str, stack: str, want: dict, tmp_path: Path) -> None:
    snapshot = load_snapshot(DATA / f"{name}.json")
    for stack_name in _stacks(stack):
        report = run_check(snapshot, stack=stack_name, cwd=tmp_path)
        assert report.status.value == want["status"], (stack_name, [f.to_dict() for f in report.findings])
        for categories, component in want["must_flag"]:
            assert any(
                f.severity.rank >= 2 and f.category.value in categories
                and (component is None or component in f.components)
                for f in report.findings
            ), (stack_name, categories, component, [(f.rule, f.category.value, f.components) for f in report.findings])


def test_no_driver_is_said_once(tmp_path: Path) -> None:
    report = run_check(load_snapshot(DATA / "no-nvidia-driver.json"), stack="phase1a-2.0", cwd=tmp_path)
    gpu_failures = [f for f in report.findings if f.severity.value == "fail" and f.category.value
                    in ("driver", "gpu-arch", "resources", "cuda-build", "missing", "pin")]
    assert [f.rule for f in gpu_failures] == ["no-nvidia-gpu"]


def test_seed_flash_attn_flag_comes_from_companion_evidence(tmp_path: Path) -> None:
    report = run_check(load_snapshot(DATA / "seed-install-followed.json"), stack="phase1a-2.0", cwd=tmp_path)
    flagged = [f for f in report.findings if "flash-attn" in f.components and f.category.value == "abi"]
    assert [f.rule for f in flagged] == ["extension-torch-replaced"]
    assert "torch 2.6.0" in flagged[0].message and "torch 2.8.0" in flagged[0].message


@pytest.mark.parametrize("name", sorted(p.stem for p in DATA.glob("*.json") if p.stem != "expected"))
def test_without_a_stack_the_closest_is_only_named(name: str, tmp_path: Path) -> None:
    report = run_check(load_snapshot(DATA / f"{name}.json"), cwd=tmp_path)
    assert report.stack is None and "closest bundled stack is" in report.stack_reason
    assert not [f for f in report.findings if f.rule.startswith("stack-")]
