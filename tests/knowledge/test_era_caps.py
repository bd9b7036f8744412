"""A package of unknown version judged on its release of the time of another installed package (bundled PyPI
tables): while numpy 1.25.0 was numpy's newest release, numba's newest release capped numpy below it, so a numba
installed then refuses it; an inferred warning naming the first numba that accepts it. Nothing when the release of
that time accepts the installed version, or when the other package's version is still its newest."""

from __future__ import annotations

from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.findings import Category, Severity
from envdoctor.snapshot import snapshot_from_dict


def _era_findings(tmp_path: Path, packages: dict[str, str | None]) -> list:
    snapshot = snapshot_from_dict({
        "schema": "envdoctor.snapshot/1",
        "host": {"os": "windows", "arch": "x86_64"},
        "packages": {name: {"version": version} for name, version in packages.items()},
    })
    return [f for f in run_check(snapshot, stack=None, cwd=tmp_path).findings
            if f.rule == "declared-requirement-conflict-unknown-version" and "newest release (" in f.message]


def test_numba_of_unknown_version_beside_numpy_1_25_0_warns_from_numba_of_that_time(tmp_path: Path) -> None:
    (finding,) = _era_findings(tmp_path, {"numba": None, "numpy": "1.25.0"})
    assert finding.severity is Severity.WARN and not finding.verified
    assert finding.category is Category.NUMPY and finding.components == ("numpy", "numba")
    assert "numba was 0.57.1" in finding.message and "numpy<1.25" in finding.message
    assert "from 0.58.0" in finding.message and finding.fix == 'pip install "numba>=0.58.0"'


@pytest.mark.parametrize("numpy", [
    "1.24.4",  # numba 0.57.1, newest while numpy 1.24.4 was newest, accepts it
    "2.5.2",  # the tables' numba of that time accepts it (or it is still numpy's newest)
])
def test_nothing_when_the_release_of_that_time_accepts_it(tmp_path: Path, numpy: str) -> None:
    assert _era_findings(tmp_path, {"numba": None, "numpy": numpy}) == []


def test_nothing_for_a_known_numba(tmp_path: Path) -> None:
    assert _era_findings(tmp_path, {"numba": "0.58.1", "numpy": "1.25.0"}) == []
