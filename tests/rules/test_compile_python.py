"""torch.compile's Python support per torch release (matrices/torch_compile.toml): every row's boundary fires
above its max_python and stays quiet at it; a torch newer than the table is unverified, never green or red."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.compile_python import RULE, load_dynamo_python
from envdoctor.findings import Finding, Severity
from envdoctor.matrices import default_root, load_matrices
from envdoctor.table_validation import validate_matrices

from .synth import snapshot

ROWS = load_dynamo_python(load_matrices())


def _compile_findings(torch: str, python: str, tmp_path: Path) -> list[Finding]:
    report = run_check(snapshot({"torch": torch}, python={"version": python}), stack=None, cwd=tmp_path)
    return [finding for finding in report.findings if finding.rule == RULE]


def _first_release(row) -> str:  # noqa: ANN001
    lowest = min(spec.version for spec in row.torch if spec.operator == ">=")
    return f"{lowest}.0+cu121" if lowest.count(".") == 1 else f"{lowest}+cu121"


@pytest.mark.parametrize("row", ROWS, ids=lambda row: str(row.torch))
def test_each_row_fires_one_minor_above_its_python_and_not_at_it(row, tmp_path: Path) -> None:  # noqa: ANN001
    torch = _first_release(row)
    top = row.max_python
    assert _compile_findings(torch, f"{top.major}.{top.minor}.4", tmp_path) == []
    [finding] = _compile_findings(torch, f"{top.major}.{top.minor + 1}.1", tmp_path)
    assert finding.severity is Severity.WARN and finding.verified
    assert f"supports Python up to {top}" in finding.message and finding.components == ("torch", "python")


def test_the_moshi_thread_torch_2_3_on_python_3_12(tmp_path: Path) -> None:
    [finding] = _compile_findings("2.3.1+cu121", "3.12", tmp_path)
    assert "Dynamo is not supported on Python 3.12+" in finding.message


def test_a_torch_newer_than_the_table(tmp_path: Path) -> None:
    newest = max(row.max_python for row in ROWS)
    assert _compile_findings("9.1.0", f"{newest.major}.{newest.minor}.0", tmp_path) == []  # support never goes back
    [finding] = _compile_findings("9.1.0", f"{newest.major}.{newest.minor + 1}.0", tmp_path)
    assert finding.severity is Severity.INFO and not finding.verified


@pytest.mark.parametrize("torch", [None, "1.13.1+cu117"])
def test_unknown_or_pre_compile_torch_is_not_judged(torch: str | None, tmp_path: Path) -> None:
    assert _compile_findings(torch, "3.13.0", tmp_path) == []


def test_a_broken_row_is_named_by_the_validator(tmp_path: Path) -> None:
    root = tmp_path / "matrices"
    shutil.copytree(default_root(), root)
    table = root / "torch_compile.toml"
    table.write_text(table.read_text().replace('max_python = "3.12"', 'max_python = "three"'), encoding="utf-8")
    problems = [line for line in validate_matrices(root) if "torch_compile.toml" in line]
    assert problems and "dynamo_python[2]" in problems[0]
