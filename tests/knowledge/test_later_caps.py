"""An upper bound a later release of the installed package's own series added (bundled PyPI tables): the installed
release most likely breaks above it too, an inferred warning with the cap and the owner's next accepting release
as fixes; nothing when the installed release declares the bound itself (the declared check says that), when the
later release raised a floor, or when the dependency is below the cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.later_caps import _caps_below
from envdoctor.findings import Category, Severity
from envdoctor.snapshot import snapshot_from_dict

RULE = "declared-cap-added-later"


def _findings(tmp_path: Path, packages: dict[str, str], rules: tuple[str, ...] = (RULE,)) -> list:
    snapshot = snapshot_from_dict({
        "schema": "envdoctor.snapshot/1",
        "host": {"os": "linux", "arch": "x86_64"},
        "python": {"version": "3.11.9"},
        "packages": {name: {"version": version} for name, version in packages.items()},
    })
    return [f for f in run_check(snapshot, stack=None, cwd=tmp_path).findings if f.rule in rules]


def test_trl_0_12_1_beside_transformers_4_47_warns_from_trl_0_12_2s_cap(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, {"trl": "0.12.1", "transformers": "4.47.0"})
    assert finding.severity is Severity.WARN and not finding.verified
    assert finding.category is Category.VERSION and finding.components == ("transformers", "trl")
    assert "trl 0.12.2 (2024-12-06)" in finding.message and "transformers<4.47.0" in finding.message
    assert finding.fix is not None
    assert 'pip install "transformers<4.47.0"' in finding.fix and 'pip install "trl>=0.13.0"' in finding.fix


def test_a_numpy_cap_is_filed_under_numpy(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, {"pandas": "2.1.1", "numpy": "2.0.0"})
    assert finding.category is Category.NUMPY and "pandas 2.1.2" in finding.message and "numpy<2" in finding.message


@pytest.mark.parametrize("packages", [
    {"trl": "0.12.1", "transformers": "4.46.3"},  # below the cap
    {"trl": "0.13.0", "transformers": "4.47.0"},  # a later series: no cap there
    {"trl": "0.12.1"},  # the dependency is not installed
])
def test_nothing_is_said_below_the_cap_or_outside_the_series(tmp_path: Path, packages: dict[str, str]) -> None:
    assert _findings(tmp_path, packages) == []


def test_a_release_that_declares_the_cap_itself_is_the_declared_checks_case(tmp_path: Path) -> None:
    found = _findings(tmp_path, {"trl": "0.12.2", "transformers": "4.47.0"},
                      rules=(RULE, "declared-requirement-conflict"))
    assert [f.rule for f in found] == ["declared-requirement-conflict"]


@pytest.mark.parametrize(("specifier", "version", "capped"), [
    ("<4.47.0", "4.47.0", True),
    ("<=1.2", "1.3", True),
    ("~=4.46.0", "4.47.1", True),
    ("==2.1.2", "2.2.0", True),
    ("==2.1.2", "2.1.1", False),  # below a pin: a floor, not a cap
    (">=4.48", "4.47.0", False),  # a raised floor
    ("<2,>=1.26", "1.25.0", False),
    ("not a specifier", "1.0", False),
])
def test_only_upper_bounds_count_as_caps(specifier: str, version: str, capped: bool) -> None:
    assert _caps_below(specifier, version) is capped
