"""Compiled packages built against a newer NumPy 1.x than the installed one (matrices/numpy1_floors.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.numpy1_floors import load_numpy1_floors
from envdoctor.findings import Finding, Report, Severity
from envdoctor.matrices import MatrixError, load_matrices
from envdoctor.snapshot import snapshot_from_dict

SCHEMA = "envdoctor.snapshot/1"
MATRICES = Path(__file__).resolve().parents[2] / "matrices"
LINUX = {"os": "linux", "arch": "x86_64"}


def check(tmp_path: Path, python: str | None, packages: dict[str, str | None], host: dict = LINUX) -> Report:
    sections: dict[str, object] = {"host": host, "packages": packages}
    if python:
        sections["python"] = {"version": python}
    return run_check(snapshot_from_dict({"schema": SCHEMA, **sections}), stack=None, cwd=tmp_path)


def found(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.rule == "numpy-older-than-build"]


def test_the_table_holds_releases_whose_wheels_need_more_than_they_declare() -> None:
    table = load_numpy1_floors(load_matrices(MATRICES))
    assert table is not None and len(table.packages) >= 20
    gensim = table.packages["gensim"]
    assert {str(v) for v in gensim} >= {"4.1.0", "4.3.0"} and not any(str(v) == "4.1.2" for v in gensim)


def test_gensim_4_1_0_built_against_numpy_1_20_fails_under_1_19(tmp_path: Path) -> None:
    """piskvorky/gensim#3226: gensim 4.1.0's wheels check an 88-byte ndarray (NumPy 1.20 headers) and declare
    numpy>=1.17.0; 4.1.2 was rebuilt against the oldest supported NumPy."""
    [finding] = found(check(tmp_path, "3.8.6", {"gensim": "4.1.0", "numpy": "1.19.5"}))
    assert finding.severity is Severity.FAIL and finding.verified is True
    assert finding.components == ("gensim", "numpy") and "Expected 88 from C header" in finding.message
    assert finding.fix == 'pip install "numpy>=1.20,<2"'
    assert not found(check(tmp_path, "3.8.6", {"gensim": "4.1.0", "numpy": "1.20.3"}))
    assert not found(check(tmp_path, "3.8.6", {"gensim": "4.1.2", "numpy": "1.19.5"}))
    assert not found(check(tmp_path, "3.8.6", {"gensim": "4.1.0", "numpy": None}))
    assert not found(check(tmp_path, "3.8.6", {"gensim": None, "numpy": "1.19.5"}))


def test_the_error_is_the_one_of_the_check_the_installed_numpy_fails(tmp_path: Path) -> None:
    """numba/numba#7339: numba 0.54's CPython 3.7 wheel calls import_array built with NumPy 1.20's C API (0xe)."""
    [finding] = found(check(tmp_path, "3.7", {"numba": "0.54", "numpy": "1.19"}))
    assert "module compiled against API version 0xe but this version of numpy is" in finding.message


def test_off_the_scanned_platform_or_python_the_finding_is_inferred(tmp_path: Path) -> None:
    [windows] = found(check(tmp_path, "3.8", {"gensim": "4.1.0", "numpy": "1.19.5"}, host={"os": "windows"}))
    assert windows.severity is Severity.WARN and windows.verified is False and "inferred" in windows.message
    # gensim 4.3.1: every scanned wheel needs NumPy 1.22, so an unknown Python does not matter; 4.3.0's CPython 3.9
    # wheel needs no more than it declares, so there the Python decides
    [unknown] = found(check(tmp_path, None, {"gensim": "4.3.1", "numpy": "1.21.6"}))
    assert unknown.verified is False and "1.22" in unknown.message
    assert not found(check(tmp_path, None, {"gensim": "4.3.0", "numpy": "1.21.6"}))
    assert found(check(tmp_path, "3.8", {"gensim": "4.3.0", "numpy": "1.21.6"}))


def test_a_malformed_row_names_its_key(tmp_path: Path) -> None:
    root = tmp_path / "matrices"
    shutil.copytree(MATRICES, root)
    path = root / "numpy1_floors.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["packages"]["gensim"][0]["numpy_floor"] = {"py38": "1.20"}
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(MatrixError, match=r"numpy1_floors.json: packages.gensim\[0\]"):
        load_numpy1_floors(load_matrices(root))
