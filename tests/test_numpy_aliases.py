"""NumPy names that NumPy removed (matrices/numpy_aliases.json): the generator's reading of code (ast, never run)
and the check that a package release using them beside a NumPy that lacks them fails, warns when a function uses
them, and warns, inferred, when either version is unknown."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.numpy_aliases import load_numpy_aliases
from envdoctor.matrices import MatrixError, default_root, load_matrices
from envdoctor.snapshot import snapshot_from_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
gen = importlib.import_module("gen_numpy_aliases")
name_scan = importlib.import_module("envdoctor.numpy_name_scan")

RULES = ("numpy-removed-name-used", "numpy-removed-name-unknown-version")


# --- the scan of one file (envdoctor.numpy_name_scan; no network) ---------------------------------------------


def _uses(text: str) -> dict[str, bool]:
    return {name: use.at_import for name, use in name_scan.scan_source(text).items()}


def test_module_level_uses_run_at_import_and_function_bodies_do_not() -> None:
    text = """
import numpy as np

TYPES = (np.float, np.int)

def convert(x, dtype=np.complex):
    return x.astype(np.object)

class Table:
    kind = np.str

    def method(self):
        return np.bool8(1)
"""
    assert _uses(text) == {"float": True, "int": True, "complex": True, "object": False, "str": True,
                           "bool8": False}


def test_a_name_used_at_import_somewhere_counts_at_import() -> None:
    text = "import numpy as np\ndef f():\n    return np.float\nX = np.float\n"
    assert _uses(text) == {"float": True}


def test_only_names_bound_to_numpy_count() -> None:
    assert _uses("import numpy\nx = numpy.float_(1)\n") == {"float_": True}
    assert _uses("import numpy as onp\ndef f():\n    return onp.NaN\n") == {"NaN": False}
    assert _uses("import jax.numpy as np\nx = np.float\n") == {}
    assert _uses("import cupy as np\nx = np.int\n") == {}
    assert _uses("import numpy as np\nimport torch as np\nx = np.float\n") == {}  # bound to two modules
    assert _uses("import numpy as np\nclass A:\n    float = 1\nx = A.float\n") == {}
    assert _uses("from numpy import float_, sometrue as any_\n") == {"float_": True, "sometrue": True}


def test_current_names_and_guarded_uses_do_not_count() -> None:
    text = """
import numpy as np
x = (np.float64, np.bool_, np.int_, np.object_, np.str_, np.nan, np.inf)
try:
    Y = np.float_
except AttributeError:
    Y = np.float64
if hasattr(np, "bool8"):
    B = np.bool8
if np.__version__ < "1.20":
    C = np.int
D = np.complex if NUMPY_LT_120_version else complex
if __name__ == "__main__":
    print(np.recfromcsv("data.csv"))
"""
    assert _uses(text) == {}


def test_names_that_came_back_in_numpy_2_are_missing_only_before_it() -> None:
    removed = name_scan.REMOVED
    assert removed["bool"].missing_in == ">=1.24,<2.0" and removed["long"].missing_in == ">=1.24,<2.0"
    assert name_scan.REMOVED["float"].missing_in == ">=1.24" and name_scan.REMOVED["float_"].missing_in == ">=2.0"
    assert name_scan.REMOVED["trapz"].removed_in == "2.4"
    assert "bool_" not in name_scan.REMOVED and "float64" not in name_scan.REMOVED
    assert _uses("import numpy as np\nx = np.bool\n") == {"bool": True}  # recorded; the check decides by NumPy


def test_postponed_annotations_do_not_run_at_import() -> None:
    assert _uses("import numpy as np\ndef f(x) -> np.float: ...\n") == {"float": True}
    lazy = "from __future__ import annotations\nimport numpy as np\ndef f(x) -> np.float: ...\n"
    assert _uses(lazy) == {}


def test_tests_examples_and_setup_scripts_are_not_shipped_code() -> None:
    shipped = name_scan.shipped_code
    assert shipped("librosa/core/spectrum.py")
    assert not shipped("sklearn/tests/test_base.py")
    assert not shipped("pkg/utils/test_helpers.py") and not shipped("pkg/conftest.py")
    assert not shipped("examples/demo.py") and not shipped("pkg/setup.py")
    assert not shipped("pl_examples/gan.py") and not shipped("pkg/sandbox/example_arma.py")
    assert shipped("pkg/exampleset.py") and shipped("pkg/textures.py")
    assert not shipped("pkg/data.json")


def _wheel(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return buffer.getvalue()


def _sdist(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"pkg-1.0/{path}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def test_wheels_and_sdists_are_read_without_tests_or_unparsable_files() -> None:
    files = {"pkg/__init__.py": "import numpy as np\nX = np.float\n", "pkg/tests/test_x.py": "import numpy as np\n"
             "np.int\n", "pkg/old.py": "import numpy\nprint 'py2'\nnumpy.int\n"}
    for filename, data in (("pkg-1.0-py3-none-any.whl", _wheel(files)), ("pkg-1.0.tar.gz", _sdist(files))):
        read = name_scan.scan_files(gen.archive_files(filename, data))
        assert read.uses == {"float": (True, "pkg/__init__.py:2")} and read.files == 2 and read.unparsed == 1


def test_rows_are_runs_of_releases_with_the_first_free_release() -> None:
    def scan(**uses: bool) -> object:
        return name_scan.ReleaseScan({n: (at, f"pkg/m.py:{i}") for i, (n, at) in enumerate(uses.items())}, 1, 0)

    versions = ["1.0", "1.1", "1.2", "2.0", "2.1"]
    scans = {"1.0": scan(float=True), "1.1": scan(float=True), "1.2": scan(float=False, NaN=False),
             "2.0": scan(NaN=False), "2.1": scan()}
    rows = gen.package_rows(versions, scans)
    assert [(r["versions"], r["removed_in"], r["names"], r["at_import"], r["first_free"]) for r in rows] == [
        (">=1.0,<=1.1", "1.24", ["float"], ["float"], "2.0"),  # 1.2 still uses it, inside a function
        ("==1.2", "1.24", ["float"], [], "2.0"),
        (">=1.2,<=2.0", "2.0", ["NaN"], [], "2.1"),
    ]


def test_dump_is_the_document_as_json() -> None:
    table = gen.document({"pkg": {"source": {}, "releases": ["1.0"], "unparsed_files": {}, "rows": []}},
                         "python tools/gen_numpy_aliases.py", "2026-12-06")
    assert json.loads(gen.dump(table)) == json.loads(json.dumps(table))


# --- the check ----------------------------------------------------------------------------------------


def _findings(tmp_path: Path, packages: dict[str, str | None], root: Path | None = None) -> list:
    snapshot = snapshot_from_dict({
        "schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"},
        "packages": {name: {"version": version} for name, version in packages.items()},
    })
    report = run_check(snapshot, stack=None, cwd=tmp_path, matrices=load_matrices(root) if root else None)
    return [f for f in report.findings if f.rule in RULES]


def _table_root(tmp_path: Path, rows: list[dict], releases: list[str]) -> Path:
    root = tmp_path / "matrices"
    shutil.copytree(default_root(), root)
    path = root / "numpy_aliases.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["packages"] = {"demo-pkg": {"source": {}, "releases": releases, "unparsed_files": {}, "rows": rows}}
    path.write_text(json.dumps(document), encoding="utf-8")
    return root


ROWS = [
    {"versions": ">=1.0,<=1.1", "removed_in": "1.24", "names": ["bool", "float"], "at_import": ["bool"],
     "first_free": "1.2", "where": ["demo/a.py:3"]},
    {"versions": ">=1.0,<=1.2", "removed_in": "2.0", "names": ["NaN"], "at_import": [], "first_free": "1.3",
     "where": ["demo/b.py:9"]},
]


def test_a_release_using_names_the_installed_numpy_lacks_fails_at_import(tmp_path: Path) -> None:
    root = _table_root(tmp_path, ROWS, ["1.0", "1.1", "1.2", "1.3"])
    (finding,) = _findings(tmp_path, {"numpy": "1.26.4", "demo-pkg": "1.1"}, root)
    assert finding.rule == "numpy-removed-name-used" and finding.severity.value == "fail" and finding.verified
    assert finding.category.value == "numpy" and finding.components == ("demo-pkg", "numpy")
    assert "np.bool, np.float (removed in NumPy 1.24)" in finding.message
    assert "uses np.bool at module level" in finding.message
    assert finding.fix == 'pip install "demo-pkg>=1.2"   # or: pip install "numpy<1.24"'
    assert "numpy-1-24-expired-aliases" in finding.sources


def test_numpy_2_lacks_the_2_0_names_but_has_np_bool_again(tmp_path: Path) -> None:
    root = _table_root(tmp_path, ROWS, ["1.0", "1.1", "1.2", "1.3"])
    (finding,) = _findings(tmp_path, {"numpy": "2.1.0", "demo-pkg": "1.1"}, root)
    assert finding.severity.value == "warn" and finding.verified  # np.bool is back; float and NaN only in functions
    assert "np.float (removed in NumPy 1.24); np.NaN (removed in NumPy 2.0)" in finding.message
    assert "np.bool," not in finding.message and "only inside functions" in finding.message
    assert finding.fix == 'pip install "demo-pkg>=1.3"   # or: pip install "numpy<1.24"'


def test_no_finding_below_the_removal_or_for_a_free_release(tmp_path: Path) -> None:
    root = _table_root(tmp_path, ROWS, ["1.0", "1.1", "1.2", "1.3"])
    assert not _findings(tmp_path, {"numpy": "1.23.5", "demo-pkg": "1.0"}, root)
    assert not _findings(tmp_path, {"numpy": "2.2.0", "demo-pkg": "1.3"}, root)
    assert not _findings(tmp_path, {"numpy": "1.26.4", "demo-pkg": "1.2+local"}, root)  # NaN is there until 2.0
    assert not _findings(tmp_path, {"demo-pkg": "1.0"}, root)  # no numpy installed


def test_unknown_versions_warn_inferred(tmp_path: Path) -> None:
    root = _table_root(tmp_path, ROWS, ["1.0", "1.1", "1.2", "1.3"])
    (unknown_package,) = _findings(tmp_path, {"numpy": "2.0.1", "demo-pkg": None}, root)
    assert unknown_package.rule == "numpy-removed-name-unknown-version" and not unknown_package.verified
    assert unknown_package.severity.value == "warn" and "releases 1.0 to 1.2 use" in unknown_package.message
    assert unknown_package.fix == 'pip install "demo-pkg>=1.3"   # or: pip install "numpy<1.24"'
    (unknown_numpy,) = _findings(tmp_path, {"numpy": None, "demo-pkg": "1.2"}, root)
    assert not unknown_numpy.verified and "a current NumPy" in unknown_numpy.message
    assert "np.NaN" in unknown_numpy.message
    (garbage,) = _findings(tmp_path, {"numpy": "$(reboot)", "demo-pkg": "1.2"}, root)  # not a version: unknown
    assert "$(reboot)" not in garbage.message and not garbage.verified
    assert not _findings(tmp_path, {"numpy": None, "demo-pkg": None}, root)


def test_both_versions_unknown_warn_only_when_the_newest_release_still_uses_them(tmp_path: Path) -> None:
    """What pip installs today: the newest release beside a current NumPy. Still using np.NaN there: inferred."""
    root = _table_root(tmp_path, ROWS, ["1.0", "1.1", "1.2"])
    (finding,) = _findings(tmp_path, {"numpy": None, "demo-pkg": None}, root)
    assert finding.rule == "numpy-removed-name-unknown-version" and not finding.verified
    assert "newest release read, 1.2, uses np.NaN" in finding.message
    assert finding.fix == 'pip install "numpy<2.0"'


def test_a_bad_row_is_one_line_naming_the_file_and_row(tmp_path: Path) -> None:
    root = _table_root(tmp_path, [{**ROWS[0], "names": ["no_such_name"]}], ["1.0", "1.1"])
    with pytest.raises(MatrixError, match=r"numpy_aliases.json: packages.demo-pkg.rows\[0\]"):
        load_numpy_aliases(load_matrices(root))


def test_the_bundled_table_holds_known_breakages(tmp_path: Path) -> None:
    """librosa 0.8.1 under NumPy 1.24 (np.complex in a default argument), chumpy with any NumPy from 1.24, gym
    0.26's np.bool8 under NumPy 2: read from the releases' code by the generator."""
    (librosa,) = _findings(tmp_path, {"numpy": "1.24.3", "librosa": "0.8.1"})
    assert librosa.severity.value == "fail" and "np.complex" in librosa.message
    assert "librosa>=0.10" in (librosa.fix or "")
    (chumpy,) = _findings(tmp_path, {"numpy": "1.26.4", "chumpy": None})
    assert not chumpy.verified and "chumpy" in chumpy.components
    (gym,) = _findings(tmp_path, {"numpy": "2.0.2", "gym": "0.26.2"})
    assert "np.bool8" in gym.message
    assert not _findings(tmp_path, {"numpy": "1.23.5", "librosa": "0.8.1"})
    table = load_numpy_aliases(load_matrices(default_root()))
    assert table is not None and len(table.releases) >= 40


@pytest.mark.network
def test_the_generator_reads_a_package_from_pypi() -> None:
    entry = gen.study("chumpy", "0.67", threads=4)
    assert entry["releases"][-1] == "0.70"
    (row,) = [row for row in entry["rows"] if row["removed_in"] == "1.24"]
    assert row["at_import"] and "float" in row["names"] and row["first_free"] is None


def test_numpy_below_the_removal_is_offered_only_where_such_a_numpy_installs() -> None:
    """librosa 0.8.1 uses np.complex: numpy<1.24 is a way out on Python 3.10, not on 3.12 (no such NumPy has a
    CPython 3.12 wheel); upgrading librosa is offered on both."""
    from envdoctor.checker import run_check
    from envdoctor.snapshot import snapshot_from_dict

    def fix(python: str) -> str:
        snapshot = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"},
                                       "python": {"version": python},
                                       "packages": {"librosa": {"version": "0.8.1"}, "numpy": {"version": "1.26.4"}}})
        [finding] = [f for f in run_check(snapshot).findings if f.rule == "numpy-removed-name-used"]
        return finding.fix or ""

    assert 'numpy<1.24' in fix("3.10.12") and 'librosa>=0.10.0' in fix("3.10.12")
    assert 'numpy<' not in fix("3.12.3") and 'librosa>=0.10.0' in fix("3.12.3")
