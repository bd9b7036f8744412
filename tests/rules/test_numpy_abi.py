"""matrices/numpy_abi.toml through the whole check: every row, both directions, unknown versions, OS rows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.version import Version

from envdoctor.checker import run_check
from envdoctor.checks.numpy_abi import NUMPY1_BUILD, NUMPY2_ONLY, load_numpy_abi
from envdoctor.findings import Severity
from envdoctor.matrices import MatrixError, load_matrices
from envdoctor.numpy_abi import NumpyAbiRow
from envdoctor.snapshot import snapshot_from_dict
from envdoctor.table_validation import validate_matrices

MATRICES = load_matrices()
TABLE = load_numpy_abi(MATRICES)
ROWS = {f"{row.package}-{row.os or 'any'}": row for row in TABLE.rows}
NUMPY2, NUMPY1 = "2.0.2", "1.26.4"


def _findings(packages: dict, tmp_path: Path, host_os: str | None = "linux") -> list:
    data = {"host": {"os": host_os} if host_os else {},
            "packages": {name: {"version": version} for name, version in packages.items()}}
    report = run_check(snapshot_from_dict(data), stack=None, cwd=tmp_path, matrices=MATRICES)
    return [f for f in report.findings if f.rule in (NUMPY1_BUILD, NUMPY2_ONLY)]


def _below(version: Version) -> str:
    """A release just older than ``version``."""
    parts = list(version.release)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] > 0:
            parts[i] -= 1
            return ".".join(str(p) for p in parts[:i + 1] + [99] * (len(parts) - i - 1))
    raise ValueError(version)


def _older_numpy1_build(row: NumpyAbiRow) -> str:
    return str(row.last_numpy1_build) if row.last_numpy1_build else _below(row.numpy2_from)


def test_table_covers_the_packages_people_run() -> None:
    covered = {row.package for row in TABLE.rows}
    assert {"torch", "pandas", "scipy", "scikit-learn", "matplotlib", "numba", "pyarrow", "h5py", "opencv-python",
            "onnxruntime", "tensorflow"} <= covered
    assert TABLE.rows_for("torch") and any(row.os == "windows" for row in TABLE.rows_for("torch"))


@pytest.mark.parametrize("key", sorted(ROWS))
def test_numpy1_build_under_numpy2_fails(key: str, tmp_path: Path) -> None:
    row = ROWS[key]
    old = _older_numpy1_build(row)
    (finding,) = _findings({row.package: old, "numpy": NUMPY2}, tmp_path, row.os or "linux")
    severity = Severity.FAIL if row.numpy1_failure == "import" else Severity.WARN  # pybind11: at the first array
    assert (finding.rule, finding.severity, finding.components) == (NUMPY1_BUILD, severity, (row.package, "numpy"))
    assert finding.verified and str(row.numpy2_from) in finding.message
    assert f'{row.package}>={row.numpy2_from}' in finding.fix and 'numpy<2' in finding.fix


@pytest.mark.parametrize("key", sorted(ROWS))
def test_first_numpy2_build_under_numpy2_is_quiet(key: str, tmp_path: Path) -> None:
    row = ROWS[key]
    assert _findings({row.package: str(row.numpy2_from), "numpy": NUMPY2}, tmp_path, row.os or "linux") == []


@pytest.mark.parametrize("key", sorted(k for k, row in ROWS.items() if row.numpy2_only_from))
def test_numpy2_only_build_under_numpy1_fails(key: str, tmp_path: Path) -> None:
    row = ROWS[key]
    (finding,) = _findings({row.package: str(row.numpy2_only_from), "numpy": NUMPY1}, tmp_path, row.os or "linux")
    assert (finding.rule, finding.severity) == (NUMPY2_ONLY, Severity.FAIL)
    assert f'{row.package}<{row.numpy2_only_from}' in finding.fix
    just_before = max(row.numpy2_from, Version(_below(row.numpy2_only_from)))
    assert _findings({row.package: str(just_before), "numpy": NUMPY1}, tmp_path, row.os or "linux") == []


@pytest.mark.parametrize("key", sorted(k for k, row in ROWS.items() if not row.numpy2_only_from))
def test_release_without_numpy2_floor_runs_on_numpy1(key: str, tmp_path: Path) -> None:
    row = ROWS[key]
    assert _findings({row.package: str(row.numpy2_from), "numpy": NUMPY1}, tmp_path, row.os or "linux") == []


def test_windows_row_holds_on_windows_only(tmp_path: Path) -> None:
    packages = {"torch": "2.4.0", "numpy": "2.1.0"}
    (windows,) = _findings(packages, tmp_path, "windows")
    assert windows.severity is Severity.FAIL and "2.4.1" in windows.message
    assert _findings(packages, tmp_path, "linux") == []
    (unknown_os,) = _findings(packages, tmp_path, None)
    assert unknown_os.severity is Severity.INFO and not unknown_os.verified and "host.os" in unknown_os.message


def test_torch_fix_keeps_its_cuda_index(tmp_path: Path) -> None:
    (finding,) = _findings({"torch": "2.2.2+cu121", "numpy": NUMPY2}, tmp_path)
    assert finding.fix.startswith('pip install "numpy<2"   # or: pip install "torch>=2.3.0,<2.4" '
                                  "--index-url https://download.pytorch.org/whl/cu121")


def test_patch_upgrade_comes_first_when_it_is_the_smaller_change(tmp_path: Path) -> None:
    (finding,) = _findings({"pandas": "2.2.1", "numpy": NUMPY2}, tmp_path)
    assert finding.fix == 'pip install "pandas>=2.2.2,<2.3"   # or: pip install "numpy<2"'


def test_numpy1_is_no_way_out_when_something_needs_numpy2(tmp_path: Path) -> None:
    needs2 = next(row for row in TABLE.rows if row.numpy2_only_from and row.os is None and row.package != "pandas")
    packages = {"pandas": "2.2.1", needs2.package: str(needs2.numpy2_only_from), "numpy": NUMPY2}
    (finding,) = _findings(packages, tmp_path)
    assert finding.components == ("pandas", "numpy") and "numpy<2 is no way out" in finding.fix
    assert needs2.package in finding.fix


def test_unknown_package_version_is_unverified_when_numpy_makes_it_matter(tmp_path: Path) -> None:
    (finding,) = _findings({"pandas": None, "numpy": NUMPY2}, tmp_path)  # NumPy 2 known: a warning, unverified
    assert (finding.rule, finding.severity, finding.verified) == (NUMPY1_BUILD, Severity.WARN, False)
    assert "version is unknown" in finding.message


def test_unknown_numpy_version_is_unverified_when_the_package_makes_it_matter(tmp_path: Path) -> None:
    (old,) = _findings({"pandas": "2.0.3", "numpy": None}, tmp_path)  # nothing caps NumPy: pip installs 2.x
    assert (old.rule, old.severity, old.verified) == (NUMPY1_BUILD, Severity.WARN, False)
    assert "no installed package of known version caps it below 2" in old.message
    capped = [f for f in _findings({"pandas": "2.0.3", "tensorflow": "2.15.0", "numpy": None}, tmp_path)
              if f.components[0] == "pandas"]  # tensorflow 2.15.0 declares numpy<2.0.0
    assert [(f.severity, f.verified) for f in capped] == [(Severity.INFO, False)]
    assert "tensorflow 2.15.0 keeps it below 2" in capped[0].message
    assert _findings({"pandas": "2.2.2", "numpy": None}, tmp_path) == []


def test_nothing_known_on_either_side_or_no_numpy_says_nothing(tmp_path: Path) -> None:
    assert _findings({"pandas": None, "numpy": None}, tmp_path) == []
    assert _findings({"pandas": "2.0.3"}, tmp_path) == []


def test_release_in_the_unscanned_gap_is_unverified(tmp_path: Path) -> None:
    row = next(r for r in TABLE.rows if r.last_numpy1_build and _below(r.numpy2_from) != str(r.last_numpy1_build)
               and Version(_below(r.numpy2_from)) > r.last_numpy1_build)
    (finding,) = _findings({row.package: _below(row.numpy2_from), "numpy": NUMPY2}, tmp_path, row.os or "linux")
    assert finding.severity is Severity.INFO and not finding.verified and "between" in finding.message


def test_one_cause_one_finding_with_declared_metadata(tmp_path: Path) -> None:
    """pandas 2.2.1 also declares numpy<2: the NumPy ABI finding makes the declared conflict redundant."""
    data = {"host": {"os": "linux"}, "packages": {"pandas": {"version": "2.2.1"}, "numpy": {"version": NUMPY2}}}
    report = run_check(snapshot_from_dict(data), stack=None, cwd=tmp_path, matrices=MATRICES)
    failing = [f.rule for f in report.findings if "pandas" in f.components and f.severity is Severity.FAIL]
    assert failing == [NUMPY1_BUILD]


def _broken(tmp_path: Path, row: str) -> Path:
    root = tmp_path / "matrices"
    for part in ("rules", "stacks"):
        (root / part).mkdir(parents=True)
    (root / "numpy_abi.toml").write_text(row)
    return root


@pytest.mark.parametrize(("row", "key"), [
    ('[[package]]\nname = "pandas"\nnumpy2_from = "two"\nsources = ["x"]\n', "package[0].numpy2_from"),
    ('[[package]]\nname = "pandas"\nnumpy2_from = "2.2.2"\n', "package[0].sources"),
    ('[[package]]\nname = "pandas"\nnumpy2_from = "2.2.2"\nos = "beos"\nsources = ["x"]\n', "package[0].os"),
    ('[[package]]\nname = "pandas"\nnumpy2_from = "2.2.2"\nnumpy2_only_from = "2.0"\nsources = ["x"]\n',
     "package[0].numpy2_only_from"),
    ('[[package]]\nname = "pandas"\nnumpy2_from = "2.2.2"\ncolour = "red"\nsources = ["x"]\n', "package[0].colour"),
    ('[[package]]\nname = "pandas"\nnumpy2_from = "2.2.2"\nnumpy1_failure = "later"\nsources = ["x"]\n',
     "package[0].numpy1_failure"),
])
def test_malformed_table_names_file_and_key(row: str, key: str, tmp_path: Path) -> None:
    root = _broken(tmp_path, row)
    with pytest.raises(MatrixError, match=re.escape(f"numpy_abi.toml: {key}")):
        load_numpy_abi(load_matrices(root))
    assert any("numpy_abi.toml" in line and key in line for line in validate_matrices(root))


def test_bundled_table_validates_with_known_sources() -> None:
    assert not [line for line in validate_matrices() if "numpy_abi.toml" in line]
