"""Standard-library modules CPython removed (matrices/stdlib_removals.json): the generator's reading of imports
(ast, never run) and the check that a package release importing them on a Python without them fails at import,
warns when only functions import them, leaves distutils to setuptools' copy, and warns, inferred, when the package's
version is unknown."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from envdoctor import stdlib_scan
from envdoctor.checker import run_check
from envdoctor.checks.stdlib_removals import load_stdlib_removals
from envdoctor.matrices import MatrixError, default_root, load_matrices
from envdoctor.snapshot import snapshot_from_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
gen = importlib.import_module("gen_stdlib_removals")

RULES = {"stdlib-removed-module-imported", "stdlib-removed-module-in-build", "stdlib-removed-module-unknown-version"}


# --- the generator's scan (no network) ----------------------------------------------------------------


def _imports(text: str) -> dict[str, bool]:
    return {module: use.at_import for module, use in stdlib_scan.scan_source(text).items()}


def test_module_level_imports_run_at_import_and_function_imports_do_not() -> None:
    text = """
import os, imp
from distutils.util import strtobool

def play(path):
    import audioop
    from cgi import escape
    return audioop, escape

class Player:
    import sunau
"""
    assert _imports(text) == {"imp": True, "distutils": True, "audioop": False, "cgi": False, "sunau": True}


def test_submodules_and_current_modules() -> None:
    assert _imports("import distutils.version\n") == {"distutils": True}
    assert _imports("from distutils.version import LooseVersion\n") == {"distutils": True}
    assert _imports("import importlib\nimport impala\nimport pipes_and_filters\n") == {}
    assert _imports("from . import imp\nfrom .cgi import handler\n") == {}  # the package's own modules
    assert _imports("def f():\n    import imp\nimport imp\n") == {"imp": True}  # at import somewhere wins


def test_guarded_imports_do_not_count() -> None:
    text = """
import sys
try:
    import imp
except ImportError:
    imp = None
if sys.version_info < (3, 12):
    from distutils.util import strtobool
try:
    import cgi
except Exception:
    pass
if __name__ == "__main__":
    import telnetlib
if _PY2:
    import imp
else:
    import importlib.util
if py3k:
    import io
else:
    from imp import new_module
"""
    assert _imports(text) == {}
    assert _imports("try:\n    from html import escape\nexcept ImportError:\n    from cgi import escape\n") == {}
    assert _imports("try:\n    import imp\nexcept KeyError:\n    pass\n") == {"imp": True}  # not an import guard


def test_names_removed_from_remaining_modules_are_read_as_attributes_and_imports() -> None:
    """pip 22.3's vendored pkg_resources registers ``pkgutil.ImpImporter`` at import (removed in 3.12); ``from
    collections import Mapping`` (removed in 3.10) fails at import too, unless a try falls back to collections.abc."""
    assert _imports("import pkgutil\nregister(pkgutil.ImpImporter, find)\n") == {"pkgutil.ImpImporter": True}
    assert _imports("import inspect as i\ndef f(g):\n    return i.getargspec(g)\n") == {"inspect.getargspec": False}
    assert _imports("from collections import Mapping, OrderedDict\n") == {"collections.Mapping": True}
    assert _imports("try:\n    from collections import Mapping\nexcept ImportError:\n"
                    "    from collections.abc import Mapping\n") == {}
    assert _imports("import collections.abc\nx = collections.Mapping\n") == {}  # collections bound otherwise too
    assert _imports("pkgutil = object()\npkgutil.ImpImporter\n") == {}  # not the module
    # a Python 2/3 fallback in an except block (pip's vendored distlib before 22.2)
    assert _imports("try:\n    callable = callable\nexcept NameError:\n    from collections import Callable\n") == {}


def test_every_removed_module_has_a_release_and_a_listed_source() -> None:
    sources = load_matrices(default_root()).sources
    assert {release for release, _ in stdlib_scan.REMOVED.values()} == {"3.12", "3.13"}
    assert all(source in sources for _, source in stdlib_scan.REMOVED.values()) and gen.SCAN_SOURCE in sources
    assert all(source in sources for _, source in stdlib_scan.REMOVED_NAMES.values())
    removed_in_313 = [m for m, (release, _) in stdlib_scan.REMOVED.items() if release == "3.13"]
    assert len(removed_in_313) == 20  # 19 of PEP 594, lib2to3


def test_rows_name_modules_and_the_first_release_free_of_them() -> None:
    def scan(**uses: bool) -> object:
        return gen.ReleaseScan({m: (at, f"pkg/m.py:{i}") for i, (m, at) in enumerate(uses.items())}, 1, 0)

    versions = ["0.1", "0.2", "0.3"]
    rows = gen.package_rows(versions, {"0.1": scan(imp=True, cgi=False), "0.2": scan(cgi=False), "0.3": scan()},
                            {m: release for m, (release, _) in stdlib_scan.REMOVED.items()}, "modules")
    assert [(r["versions"], r["removed_in"], r["modules"], r["at_import"], r["first_free"]) for r in rows] == [
        ("==0.1", "3.12", ["imp"], ["imp"], "0.2"), (">=0.1,<=0.2", "3.13", ["cgi"], [], "0.3")]


# --- the check ----------------------------------------------------------------------------------------


def _check(tmp_path: Path, python: str | None, packages: dict[str, str | None], root: Path | None = None) -> list:
    snapshot = snapshot_from_dict({
        "schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"}, "python": {"version": python},
        "packages": {name: {"version": version} for name, version in packages.items()},
    })
    report = run_check(snapshot, stack=None, cwd=tmp_path, matrices=load_matrices(root) if root else None)
    return [f for f in report.findings if f.rule in RULES]


def test_pathtools_cannot_be_built_on_python_3_12_and_can_on_3_11(tmp_path: Path) -> None:
    """wandb 0.15.12 requires pathtools, whose releases have no wheel and whose setup.py imports imp."""
    (finding,) = _check(tmp_path, "3.12.4", {"pathtools": "0.1.2", "wandb": "0.15.12", "setuptools": "69.0.0"})
    assert finding.rule == "stdlib-removed-module-in-build" and finding.severity.value == "warn" and finding.verified
    assert finding.category.value == "python" and finding.components == ("pathtools", "python")
    assert "imp (removed in Python 3.12)" in finding.message and "No module named 'imp'" in finding.message
    assert "setup.py" in finding.message and "python-3-12-removed-modules" in finding.sources
    assert finding.fix == "a Python before 3.12 (3.11)"
    assert not _check(tmp_path, "3.11.9", {"pathtools": "0.1.2"})
    assert not _check(tmp_path, None, {"pathtools": "0.1.2"})  # a Python of unknown minor: nothing


def test_a_module_imported_at_module_level_fails(tmp_path: Path) -> None:
    (nose,) = _check(tmp_path, "3.12.4", {"nose": "1.3.7"})
    assert nose.rule == "stdlib-removed-module-imported" and nose.severity.value == "fail" and nose.verified
    assert "imports imp at module level" in nose.message and "nose/importer.py" in nose.message
    (mmcv,) = _check(tmp_path, "3.12.4", {"mmcv": "1.7.2"})  # distutils only inside a function, no setuptools
    assert mmcv.severity.value == "warn" and "only inside functions" in mmcv.message
    assert mmcv.fix is not None and mmcv.fix.startswith('pip install "mmcv>=2.0.0"')


def test_a_3_13_removal_fails_only_from_3_13_and_names_the_free_release(tmp_path: Path) -> None:
    (fire,) = _check(tmp_path, "3.13.1", {"fire": "0.6.0"})
    assert fire.severity.value == "fail" and "pipes (removed in Python 3.13)" in fire.message
    assert fire.fix is not None and fire.fix.startswith('pip install "fire>=0.7.0"')
    assert not _check(tmp_path, "3.12.7", {"fire": "0.6.0"}) and not _check(tmp_path, "3.13.1", {"fire": "0.7.0"})


def test_distutils_is_left_to_setuptools_when_it_is_listed(tmp_path: Path) -> None:
    assert not _check(tmp_path, "3.12.1", {"numba": "0.56.4", "setuptools": "75.1.0"})
    (unlisted,) = _check(tmp_path, "3.12.1", {"numba": "0.56.4"})
    assert unlisted.severity.value == "warn" and not unlisted.verified
    assert "setuptools is not listed" in unlisted.message and "distutils" in unlisted.message
    assert unlisted.fix is not None and 'pip install "numba>=0.57.0"' in unlisted.fix
    assert "pip install setuptools" in unlisted.fix


def test_unknown_versions_warn_inferred_and_untrusted_strings_stay_out(tmp_path: Path) -> None:
    (unknown,) = _check(tmp_path, "3.12.0", {"pathtools": None})
    assert unknown.rule == "stdlib-removed-module-unknown-version" and not unknown.verified
    assert unknown.severity.value == "warn" and "version unknown" in unknown.message
    (garbage,) = _check(tmp_path, "3.12.0", {"pathtools": "$(reboot)"})  # not a version: unknown
    assert "$(reboot)" not in garbage.message and "$(reboot)" not in (garbage.fix or "")
    assert not _check(tmp_path, "3.12.$(x)", {"pathtools": "0.1.2"})  # not a Python version: its minor is unknown


def test_a_bad_table_is_one_line_naming_the_file_and_package(tmp_path: Path) -> None:
    root = tmp_path / "matrices"
    root.mkdir()
    for path in default_root().iterdir():
        (root / path.name).symlink_to(path)
    (root / "stdlib_removals.json").unlink()
    document = json.loads((default_root() / "stdlib_removals.json").read_text(encoding="utf-8"))
    document["packages"] = {"demo": {"releases": ["1.0"], "build_rows": [], "rows": [
        {"versions": "==1.0", "removed_in": "3.12", "modules": ["os"], "at_import": [], "first_free": None,
         "where": []}]}}
    (root / "stdlib_removals.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(MatrixError, match=r"stdlib_removals.json: packages.demo: .*removed modules"):
        load_stdlib_removals(load_matrices(root))


def test_the_bundled_table_covers_the_listed_packages() -> None:
    table = load_stdlib_removals(load_matrices(default_root()))
    assert table is not None and len(table.releases) >= 40
    assert all(table.rows[name] for name in ("audioread", "fire", "numba", "deepspeed", "nose"))
    assert table.build_rows["pathtools"] and not table.rows["pathtools"]


@pytest.mark.network
def test_the_generator_reads_a_package_from_pypi() -> None:
    entry = gen.study("pathtools", "0.1", threads=2)
    (row,) = entry["build_rows"]
    assert not entry["rows"]
    assert row["modules"] == ["imp"] and row["at_import"] == ["imp"] and row["first_free"] is None
