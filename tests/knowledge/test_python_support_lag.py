"""A package installed with an unknown version on a Python its releases supported only months after that Python came
out (matrices/python_releases.toml against the bundled PyPI tables): an inferred warning naming the first release
with support; silent when support came with the Python, when the snapshot postdates that support, or when the
version is known (the wheel checks judge a known release)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.python_support_lag import support_lag
from envdoctor.checks.wheels import target_of
from envdoctor.findings import Severity
from envdoctor.matrices import MatrixError, default_root, load_matrices
from envdoctor.pypi_facts import releases
from envdoctor.snapshot import snapshot_from_dict
from envdoctor.table_validation import validate_matrices

RULE = "python-support-came-later"


def _findings(tmp_path: Path, python: str, packages: dict[str, str | None], host: dict | None = None,
              root: Path | None = None) -> list:
    document = {
        "schema": "envdoctor.snapshot/1",
        "python": {"version": python},
        "packages": {name: {"version": version} for name, version in packages.items()},
    }
    if host is not None:
        document["host"] = host
    report = run_check(snapshot_from_dict(document), stack=None, cwd=tmp_path,
                       matrices=load_matrices(root) if root else None)
    return [f for f in report.findings if f.rule == RULE]


def test_numba_on_python_3_13_warns_inferred_with_the_first_release_that_supports_it(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, "3.13.0", {"numba": None})
    assert finding.severity is Severity.WARN and not finding.verified and finding.components == ("numba",)
    assert "until 0.61.0 (2025-01-20, 3 months after Python 3.13 came out)" in finding.message
    assert "0.60.0 and older do not" in finding.message
    assert finding.fix is not None and finding.fix.startswith('pip install "numba>=0.61.0"')


def test_a_platform_that_had_wheels_earlier_decides_on_an_unknown_host() -> None:
    # torch 1.13.0 had CPython 3.11 wheels for Linux only, 2.0.0 for every platform it builds for
    history = releases("torch")
    anywhere = support_lag(history, target_of(None, None, "3.11.1"), "2022-10-24")
    assert anywhere is not None and anywhere.supported_from.version == "2.0.0"
    on_linux = support_lag(history, target_of("linux", "x86_64", "3.11.1"), "2022-10-24")
    assert on_linux is None  # 1.13.0, four days after Python 3.11: no lag there


def test_a_known_version_or_a_later_environment_is_not_warned(tmp_path: Path) -> None:
    assert _findings(tmp_path, "3.13.0", {"numba": "0.60.0"}) == []  # a known release: the wheel checks judge it
    # a snapshot holding a release made after numba 0.61.0 (torch 2.7.0, 2025-04) postdates the support
    assert _findings(tmp_path, "3.13.0", {"numba": None, "torch": "2.7.0"}) == []
    assert len(_findings(tmp_path, "3.13.0", {"numba": None, "torch": "2.5.1"})) == 1  # 2024-10: before it


@pytest.mark.parametrize(("python", "packages"), [
    ("3.11.4", {"numpy": None}),  # numpy had CPython 3.11 wheels when Python 3.11 came out
    ("3.13.0", {"not-in-the-tables": None}),
    ("3.99.0", {"numba": None}),  # a Python the table does not list
])
def test_support_that_came_with_the_python_or_unknown_facts_say_nothing(tmp_path: Path, python: str,
                                                                        packages: dict[str, str | None]) -> None:
    assert _findings(tmp_path, python, packages) == []


def test_a_bad_row_of_the_table_is_one_line_naming_the_file_and_row(tmp_path: Path) -> None:
    root = tmp_path / "matrices"
    shutil.copytree(default_root(), root)
    table = root / "python_releases.toml"
    table.write_text(table.read_text().replace('date = "2024-10-07"', 'date = "October"'))
    problems = validate_matrices(root)
    assert any("python_releases.toml: release[7]" in problem for problem in problems)
    with pytest.raises(MatrixError, match=r"python_releases.toml: release\[7\]"):
        _findings(tmp_path, "3.13.0", {"numba": None}, root=root)


def test_a_short_lag_counts_within_the_range_an_installed_package_requires(tmp_path: Path) -> None:
    """tokenizers had cp313 wheels 28 days after Python 3.13 (0.20.2): too soon to warn on its own, but transformers
    4.45.2 allows only tokenizers 0.20.x, whose first two releases have none."""
    macos = {"os": "darwin", "arch": "x86_64"}
    assert _findings(tmp_path, "3.13", {"tokenizers": None}, host=macos) == []
    (finding,) = _findings(tmp_path, "3.13", {"tokenizers": None, "transformers": "4.45.2"}, host=macos)
    assert "transformers 4.45.2 requires tokenizers<0.21,>=0.20" in finding.message
    assert "until 0.20.2 (2024-11-04, 28 days after" in finding.message and "0.20.1 and older" in finding.message
    assert finding.fix is not None and finding.fix.startswith('pip install "tokenizers>=0.20.2"')
    # transformers 4.47.0 allows tokenizers 0.21, all of whose wheels are abi3 from cp39: nothing to say
    assert _findings(tmp_path, "3.13", {"tokenizers": None, "transformers": "4.47.0"}, host=macos) == []


def test_a_python_a_package_dropped_again_counts_only_a_long_wait(tmp_path: Path) -> None:
    """onnxruntime's releases after 1.24.3 require Python 3.11, but its Python 3.10 wheels came with 1.12.0, nine
    months after Python 3.10: a warning. torch's newest releases dropped Python 3.9 too, whose wheels came two months
    after it (1.7.1): too short a wait to speak of years later."""
    (finding,) = _findings(tmp_path, "3.10", {"onnxruntime": None})
    assert "until 1.12.0" in finding.message and not finding.verified
    assert not _findings(tmp_path, "3.9", {"torch": None}, host={"os": "linux", "arch": "x86_64"})
