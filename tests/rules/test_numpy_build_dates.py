"""Compiled packages outside the NumPy table under NumPy 2, judged by the upload date of their wheels."""

from __future__ import annotations

from pathlib import Path

from envdoctor.checker import run_check
from envdoctor.snapshot import snapshot_from_dict


def found(tmp_path: Path, packages: dict[str, str]) -> list:
    snap = snapshot_from_dict({"host": {"os": "linux", "arch": "x86_64"}, "python": {"version": "3.10.12"},
                               "packages": {name: {"version": v} for name, v in packages.items()}})
    return [f for f in run_check(snap, cwd=tmp_path).findings if f.rule == "numpy1-build-by-date"]


def test_wheels_uploaded_before_any_numpy2_build_warn_under_numpy2(tmp_path: Path) -> None:
    """decord 0.6.0 (2021, CPython wheels, requires numpy) is outside the NumPy table."""
    [finding] = found(tmp_path, {"decord": "0.6.0", "numpy": "2.0.0"})
    assert finding.components == ("decord", "numpy") and finding.verified is False
    assert "2021-06-14" in finding.message and "numpy<2" in (finding.fix or "")
    assert not found(tmp_path, {"decord": "0.6.0", "numpy": "1.26.4"})


def test_torch_extensions_and_scanned_packages_are_left_out(tmp_path: Path) -> None:
    """xformers 0.0.25.post1 requires numpy and torch: its compiled code is a torch extension. scipy is in the
    NumPy table and judged there."""
    assert not found(tmp_path, {"xformers": "0.0.25.post1", "torch": "2.2.2", "numpy": "2.0.0"})
    assert not found(tmp_path, {"scipy": "1.11.4", "numpy": "2.0.0"})
