"""NumPy names that NumPy added (matrices/numpy_additions.json): the generator's reading of NumPy's namespace and of
package code (ast, never run), and the check that a package release using an added name beside a NumPy that lacks
it fails at import, warns when only a function uses it, and warns, inferred, only when most candidates break."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from envdoctor.checks import CheckContext
from envdoctor.checks.numpy_additions import check_numpy_additions, load_numpy_additions
from envdoctor.facts import facts_at
from envdoctor.matrices import MatrixError, default_root, load_matrices
from envdoctor.snapshot import snapshot_from_dict
from envdoctor.table_validation import validate_matrices

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
gen = importlib.import_module("gen_numpy_additions")

ADDED = {"isdtype": "2.0", "concat": "2.0", "exceptions": "1.25", "lib.array_utils": "2.0", "unstack": "2.1",
         "future_name": "9.0"}


# --- NumPy's namespace (no network) -------------------------------------------------------------------


def test_a_stub_gives_re_exports_and_definitions_not_bare_imports() -> None:
    stub = """
from typing import Self
from builtins import bool as py_bool
from numpy._core.numeric import isdtype as isdtype, concat as concat
from numpy import exceptions as exceptions
import numpy.typing as _nt
def unstack(x): ...
class ndarray: ...
type _Alias = int
def pick[T](x: T) -> T: ...
class Box[T: (int, str)]: ...
newaxis: None
"""
    assert gen.stub_names(stub) == {"isdtype", "concat", "exceptions", "unstack", "ndarray", "pick", "Box",
                                    "newaxis"}


def test_init_keeps_bindings_not_deleted_and_deprecated_attributes() -> None:
    init = """
__deprecated_attrs__ = {}
_type_info = [("object", ""), ("bool", "use bool_")]
__deprecated_attrs__.update({n: (getattr(_builtins, n), m) for n, m in _type_info})
__deprecated_attrs__["long"] = (int, "msg")
if not setup:
    from .core import *
    from . import linalg
    from ._core import isdtype as isdtype
    def hugepage_setup():
        pass
    del hugepage_setup
    __all__ = ["show_runtime", "_private"]
"""
    assert gen.init_names(init) == {"object", "bool", "long", "linalg", "isdtype", "show_runtime"}


def test_submodules_count_by_dotted_name_without_tests_or_private_parts() -> None:
    paths = ["numpy/__init__.py", "numpy/lib/__init__.py", "numpy/lib/array_utils.py", "numpy/lib/_utils_impl.py",
             "numpy/lib/tests/test_io.py", "numpy/_core/numeric.py", "numpy/exceptions.py", "numpy/core/x.pyi"]
    assert gen.public_modules(paths) == {"lib", "lib.array_utils", "exceptions"}


def _release(version: str, names: set[str], modules: set[str] = frozenset()) -> object:
    return gen.NumpyRelease(version, f"numpy-{version}.whl", "2024-01-01", frozenset(names), frozenset(modules))


def test_a_name_is_added_only_when_absent_in_every_earlier_release() -> None:
    read = [
        _release("1.22.0", {"bool", "long", "core", "float"}, {"typing", "lib"}),
        _release("1.24.0", {"core"}, {"typing", "lib"}),
        _release("1.25.0", {"core", "exceptions", "dtypes"}, {"typing", "lib", "exceptions", "dtypes"}),
        _release("2.0.0", {"bool", "long", "exceptions", "dtypes", "isdtype", "typing", "lib.array_utils"},
                 {"typing", "lib", "exceptions", "dtypes", "lib.array_utils"}),
        _release("2.1.0", {"bool", "long", "exceptions", "dtypes", "isdtype", "typing", "lib.array_utils",
                           "unstack"}, {"typing", "lib", "exceptions", "dtypes", "lib.array_utils"}),
    ]
    # bool and long were there in 1.22 (deprecated aliases): not added; typing is a submodule every release
    # ships (import numpy.typing always worked); core is gone from the newest release.
    assert gen.additions(read) == {"exceptions": "1.25", "dtypes": "1.25", "isdtype": "2.0",
                                   "lib.array_utils": "2.0", "unstack": "2.1"}


# --- the scan of package code (no network) ------------------------------------------------------------


def _uses(text: str) -> dict[str, bool]:
    return {name: use.at_import for name, use in gen.scan_source(text, ADDED).items()}


def test_an_added_name_at_import_in_a_function_and_guarded() -> None:
    text = """
import numpy as np

isdtype = np.isdtype

def join(arrays):
    return np.concat(arrays)

if hasattr(np, "unstack"):
    unstack = np.unstack
else:
    def unstack(x):
        return tuple(x)
"""
    assert _uses(text) == {"isdtype": True, "concat": False}


def test_submodule_imports_and_attribute_chains() -> None:
    text = """
import numpy as np
from numpy.exceptions import AxisError

def normalize(axis, ndim):
    return np.lib.array_utils.normalize_axis_index(axis, ndim)
"""
    assert _uses(text) == {"exceptions": True, "lib.array_utils": False}
    assert _uses("import numpy.exceptions\n") == {"exceptions": True}
    assert _uses("from numpy.lib import array_utils\n") == {"lib.array_utils": True}


def test_guarded_imports_and_version_switches_do_not_count() -> None:
    text = """
import numpy as np
try:
    from numpy.exceptions import AxisError
except ImportError:
    from numpy import AxisError
if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
    concat = np.concat
concat2 = np.concat if NUMPY_GE_2 else np.concatenate
if not NUMPY_LT_2_0:
    from numpy.lib.array_utils import normalize_axis_index
"""
    assert _uses(text) == {}
    assert _uses("import numpy as np\nif not FLAG:\n    concat = np.concat\n") == {"concat": True}


def test_pep_695_stubs_parse_on_this_python() -> None:
    text = "type _A[T] = tuple[T, T]\ndef f[T: (int, str)](x: T) -> T: ...\nclass C[*Ts]:\n    type B = int\n"
    assert gen.without_type_parameters(text) == ("_A = tuple[T, T]\ndef f(x: T) -> T: ...\nclass C:\n"
                                                 "    B = int\n")


def test_rows_carry_the_adding_release() -> None:
    def scan(**uses: bool) -> object:
        return gen.ReleaseScan({n: (at, f"pkg/m.py:{i}") for i, (n, at) in enumerate(uses.items())}, 1, 0)

    versions = ["1.0", "1.1", "1.2"]
    scans = {"1.0": scan(), "1.1": scan(isdtype=True), "1.2": scan(isdtype=False)}
    rows = gen.package_rows(versions, scans, ADDED, "names", "added_in")
    assert [(r["versions"], r["added_in"], r["names"], r["at_import"], r["first_free"]) for r in rows] == [
        ("==1.1", "2.0", ["isdtype"], ["isdtype"], None), ("==1.2", "2.0", ["isdtype"], [], None)]


def test_dump_is_the_document_as_json() -> None:
    read = [_release("1.24.0", set()), _release("2.0.0", {"isdtype"})]
    table = gen.document({"pkg": {"source": {}, "releases": ["1.0"], "unparsed_files": {}, "rows": []}},
                         "python tools/gen_numpy_additions.py", "2026-12-06", read)
    assert table["added"] == {"isdtype": {"added_in": "2.0", "missing_in": "<2.0", "source": "numpy-namespace-scan"}}
    assert json.loads(importlib.import_module("gen_numpy_aliases").dump(table)) == json.loads(json.dumps(table))


# --- the check ----------------------------------------------------------------------------------------


ROWS = [
    {"versions": ">=1.1,<=1.2", "added_in": "2.0", "names": ["isdtype"], "at_import": ["isdtype"],
     "first_free": None, "where": ["demo/__init__.py:4"]},
    {"versions": ">=1.1,<=1.3", "added_in": "1.25", "names": ["exceptions"], "at_import": [], "first_free": None,
     "where": ["demo/b.py:9"]},
    {"versions": "==1.5", "added_in": "9.0", "names": ["future_name"], "at_import": [], "first_free": None,
     "where": ["demo/c.py:2"]},
]


def _table_root(tmp_path: Path, rows: list[dict], releases: list[str]) -> Path:
    root = tmp_path / "matrices"
    shutil.copytree(default_root(), root)
    (root / "numpy_additions.json").write_text(json.dumps({
        "generator": "tools/gen_numpy_additions.py", "generated": "2026-12-06", "scan_source": "numpy-additions-scan",
        "added": {name: {"added_in": added_in, "missing_in": f"<{added_in}", "source": "numpy-namespace-scan"}
                  for name, added_in in ADDED.items()},
        "packages": {"demo-pkg": {"source": {}, "releases": releases, "unparsed_files": {}, "rows": rows}},
    }), encoding="utf-8")
    return root


def _findings(root: Path, packages: dict[str, str | None], python: str = "3.11.9",
              requires: dict[str, list[str]] | None = None) -> list:
    snapshot = snapshot_from_dict({
        "schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"}, "python": {"version": python},
        "packages": {name: {"version": version, **({"requires": requires[name]} if name in (requires or {}) else {})}
                     for name, version in packages.items()},
    })
    matrices = load_matrices(root)
    return check_numpy_additions(CheckContext(snapshot=snapshot, matrices=matrices, facts=facts_at(root)))


def test_a_release_using_an_added_name_at_import_fails_beside_an_older_numpy(tmp_path: Path) -> None:
    root = _table_root(tmp_path, ROWS, ["1.0", "1.1", "1.2", "1.3", "1.4"])
    (finding,) = _findings(root, {"numpy": "1.26.4", "demo-pkg": "1.2"})
    assert finding.rule == "numpy-added-name-used" and finding.severity.value == "fail" and finding.verified
    assert finding.components == ("demo-pkg", "numpy") and finding.category.value == "numpy"
    assert "np.isdtype (added in NumPy 2.0)" in finding.message
    assert "no attribute 'isdtype'" in finding.message and "np.exceptions" not in finding.message
    assert finding.fix == 'pip install "numpy>=2.0"   # or: pip install "demo-pkg>=1.3"'  # 1.3 uses only np.exceptions
    assert finding.sources == ("numpy-namespace-scan", "numpy-additions-scan")


def test_in_functions_only_warns_and_the_nearest_free_release_may_be_earlier(tmp_path: Path) -> None:
    root = _table_root(tmp_path, ROWS, ["1.0", "1.1", "1.2", "1.3"])
    (finding,) = _findings(root, {"numpy": "1.24.4", "demo-pkg": "1.3"})
    assert finding.severity.value == "warn" and "only inside functions" in finding.message
    assert "np.exceptions (added in NumPy 1.25)" in finding.message
    assert "demo-pkg 1.0 is the newest earlier release without them" in finding.message
    assert finding.fix == 'pip install "numpy>=1.25"   # or: pip install "demo-pkg==1.0"'


def test_an_installed_cap_on_numpy_leaves_the_package_fix(tmp_path: Path) -> None:
    root = _table_root(tmp_path, ROWS, ["1.0", "1.1", "1.2", "1.3", "1.4"])
    (finding,) = _findings(root, {"numpy": "1.26.4", "demo-pkg": "1.2", "other": "3.0"},
                           requires={"other": ["numpy<2", "tqdm"]})
    assert finding.fix == 'pip install "demo-pkg>=1.3"'


def test_no_finding_with_a_numpy_that_has_the_names(tmp_path: Path) -> None:
    root = _table_root(tmp_path, ROWS, ["1.0", "1.1", "1.2", "1.3"])
    assert not _findings(root, {"numpy": "2.0.2", "demo-pkg": "1.2"})
    assert not _findings(root, {"numpy": "1.26.4", "demo-pkg": "1.3"})  # exceptions is there from 1.25
    assert not _findings(root, {"numpy": "1.22.4", "demo-pkg": "1.0"})
    assert not _findings(root, {"demo-pkg": "1.2"})  # no numpy installed


def test_unknown_versions_warn_only_when_most_candidates_break(tmp_path: Path) -> None:
    root = _table_root(tmp_path, ROWS, ["1.0", "1.1", "1.2", "1.3"])
    (unknown_package,) = _findings(root, {"numpy": "1.24.4", "demo-pkg": None})  # 1.1 to 1.3 of 4 releases
    assert unknown_package.rule == "numpy-added-name-unknown-version" and not unknown_package.verified
    assert "releases 1.1 to 1.3 use" in unknown_package.message
    assert not _findings(root, {"numpy": "1.26.4", "demo-pkg": None})  # only 1.1 and 1.2 lack isdtype: 2 of 4
    # NumPy's version unknown: most NumPy releases with a wheel for Python 3.11 have np.exceptions (1.25+) ...
    assert not _findings(root, {"numpy": None, "demo-pkg": "1.3"})
    # ... and none has a name only a future NumPy adds
    (unknown_numpy,) = _findings(root, {"numpy": None, "demo-pkg": "1.5"})
    assert unknown_numpy.rule == "numpy-added-name-unknown-version" and not unknown_numpy.verified
    assert "np.future_name (added in NumPy 9.0)" in unknown_numpy.message
    assert not _findings(root, {"numpy": None, "demo-pkg": None})


def test_a_bad_table_is_one_line_naming_the_file_and_key(tmp_path: Path) -> None:
    root = _table_root(tmp_path, [{**ROWS[0], "names": ["no_such_name"]}], ["1.0", "1.1"])
    with pytest.raises(MatrixError, match=r"numpy_additions.json: packages.demo-pkg.rows\[0\]"):
        load_numpy_additions(load_matrices(root))
    problems = [line for line in validate_matrices(root) if "numpy_additions.json" in line]
    assert len(problems) == 1 and "\n" not in problems[0] and "gen_numpy_additions.py" in problems[0]
    (root / "numpy_additions.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(MatrixError, match=r"numpy_additions.json"):
        load_numpy_additions(load_matrices(root))


@pytest.mark.network
def test_numpy_s_own_wheels_give_the_array_api_names_in_2_0() -> None:
    added = gen.added_names()
    assert added["isdtype"] == "2.0" and added["exceptions"] == "1.25" and added["unstack"] == "2.1"
    assert "bool" not in added and "long" not in added
