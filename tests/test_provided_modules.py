"""pkg_resources, which setuptools removed in 82.0.0 (a module of matrices/stdlib_removals.json whose provider is a
distribution): the generator's reading of imports and Requires-Dist, and the check that a release importing it
fails with setuptools 82+ (or none, in a probe's full listing), warns unverified when setuptools is unknown or
absent from a pasted snapshot on Python 3.12+, and names the fix that fits the installed requirements."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from envdoctor import stdlib_scan
from envdoctor.checker import run_check
from envdoctor.checks.provided_modules import caps_below
from envdoctor.checks.stdlib_removals import load_stdlib_removals
from envdoctor.matrices import MatrixError, default_root, load_matrices
from envdoctor.snapshot import snapshot_from_dict
from envdoctor.table_validation import validate_matrices

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
gen = importlib.import_module("gen_stdlib_removals")

RULES = {"provided-module-imported", "provided-module-unverified", "provided-module-unknown-version"}


# --- the generator's scan (no network) ----------------------------------------------------------------


def _imports(text: str) -> dict[str, bool]:
    return {module: use.at_import for module, use in stdlib_scan.scan_source(text).items()}


def test_pkg_resources_at_import_in_functions_and_guarded() -> None:
    assert _imports("import pkg_resources\n") == {"pkg_resources": True}
    assert _imports("from pkg_resources import resource_filename\n") == {"pkg_resources": True}
    assert _imports("import pkg_resources.extern\n") == {"pkg_resources": True}
    assert _imports("def version():\n    import pkg_resources\n    return pkg_resources\n") == {"pkg_resources": False}
    assert _imports("class Registry:\n    def load(self):\n        from pkg_resources import iter_entry_points\n") \
        == {"pkg_resources": False}
    guarded = """
try:
    from importlib.metadata import version
except ImportError:
    from pkg_resources import get_distribution
try:
    import pkg_resources
except Exception:
    pkg_resources = None
if sys.version_info < (3, 8):
    import pkg_resources
"""
    assert _imports(guarded) == {}
    assert _imports("from . import pkg_resources\nimport pkg_resources_helper\n") == {}


def test_requirements_on_the_provider_are_read_from_metadata() -> None:
    metadata = ("Metadata-Version: 2.1\nName: demo\nRequires-Dist: numpy\nRequires-Dist: setuptools (>=41.0.0)\n"
                "Requires-Dist: setuptools<70; python_version >= '3.12'\nRequires-Dist: setuptools-scm\n\n"
                "Requires-Dist: setuptools in the README body\n")
    assert gen.provider_requirements(metadata) == ["setuptools (>=41.0.0)", "setuptools<70; python_version >= '3.12'"]
    assert gen.METADATA_FILES.match("demo-1.0.dist-info/METADATA") and gen.METADATA_FILES.match("PKG-INFO")
    assert not gen.METADATA_FILES.match("demo/PKG-INFO")


def test_rows_of_a_provided_module_carry_the_provider_release() -> None:
    scan = gen.ReleaseScan({"pkg_resources": (True, "demo/__init__.py:3"), "imp": (False, "demo/x.py:9")}, 1, 0)
    removals = {**{m: release for m, (release, _) in stdlib_scan.REMOVED.items()},
                **{m: p.removed_in for m, p in stdlib_scan.PROVIDED.items()}}
    rows = gen.package_rows(["1.0", "2.0"], {"1.0": scan, "2.0": gen.ReleaseScan({}, 1, 0)}, removals, "modules")
    assert [(r["removed_in"], r["modules"], r["at_import"], r["first_free"]) for r in rows] == [
        ("3.12", ["imp"], [], "2.0"), ("82.0.0", ["pkg_resources"], ["pkg_resources"], "2.0")]


# --- the check on a table written here ----------------------------------------------------------------


def _row(versions: str, at_import: bool, free: str | None) -> dict[str, Any]:
    return {"versions": versions, "removed_in": "82.0.0", "modules": ["pkg_resources"],
            "at_import": ["pkg_resources"] if at_import else [], "first_free": free, "where": ["demo/__init__.py:4"]}


def _root(tmp_path: Path, demo: dict[str, Any] | None = None, pkg_resources: dict[str, Any] | None = None) -> Path:
    """A matrices folder with the bundled tables and a stdlib_removals.json holding only the package ``demo``:
    1.0 imports pkg_resources at import, 1.5 only in a function, 2.0 and 2.1 not at all."""
    root = tmp_path / "matrices"
    root.mkdir(parents=True, exist_ok=True)
    for path in default_root().iterdir():
        if not (root / path.name).exists():
            (root / path.name).symlink_to(path)
    (root / "stdlib_removals.json").unlink()
    document = json.loads((default_root() / "stdlib_removals.json").read_text(encoding="utf-8"))
    document["removed"]["pkg_resources"] |= pkg_resources or {}
    document["packages"] = {"demo": demo or {
        "releases": ["1.0", "1.5", "2.0", "2.1"], "build_rows": [], "provider_requires": {},
        "rows": [_row("==1.0", True, "2.0"), _row("==1.5", False, "2.0")]}}
    (root / "stdlib_removals.json").write_text(json.dumps(document), encoding="utf-8")
    return root


def _check(root: Path, packages: dict[str, str | None], python: str = "3.12.4", probed: bool = False,
           requires: dict[str, list[str]] | None = None) -> list:
    """``probed``: a probe's snapshot (the interpreter named, every package's Requires-Dist given)."""
    listed = {name: {"version": version, **({"requires": (requires or {}).get(name, [])} if probed else {})}
              for name, version in packages.items()}
    python_info = {"version": python, **({"executable": "/venv/bin/python"} if probed else {})}
    snapshot = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"},
                                   "python": python_info, "packages": listed})
    report = run_check(snapshot, stack=None, cwd=root.parent, matrices=load_matrices(root))
    return [f for f in report.findings if f.rule in RULES]


def test_setuptools_82_fails_an_import_time_use_and_81_does_not(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (finding,) = _check(root, {"demo": "1.0", "setuptools": "82.0.1"})
    assert finding.rule == "provided-module-imported" and finding.severity.value == "fail" and finding.verified
    assert finding.category.value == "version" and finding.components == ("demo", "setuptools")
    assert "No module named 'pkg_resources'" in finding.message and "setuptools 82.0.0 removed" in finding.message
    assert finding.fix == 'pip install "setuptools<82"   # or: pip install "demo>=2.0"'
    assert "setuptools-82-removed-pkg-resources" in finding.sources
    assert not _check(root, {"demo": "1.0", "setuptools": "81.0.0"})
    assert not _check(root, {"demo": "2.0", "setuptools": "82.0.1"})
    (in_function,) = _check(root, {"demo": "1.5", "setuptools": "84.0.0"})
    assert in_function.severity.value == "warn" and in_function.verified
    assert "only inside functions" in in_function.message


def test_absent_setuptools_fails_in_a_probe_and_is_unverified_in_a_pasted_snapshot(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (probed,) = _check(root, {"demo": "1.0"}, probed=True)
    assert probed.severity.value == "fail" and probed.verified and "not installed" in probed.message
    (pasted,) = _check(root, {"demo": "1.0"}, python="3.12.4")
    assert pasted.rule == "provided-module-unverified" and pasted.severity.value == "warn" and not pasted.verified
    assert "not listed" in pasted.message and "does not ask for setuptools" in pasted.message
    assert not _check(root, {"demo": "1.0"}, python="3.11.9")  # venvs of 3.11 get a setuptools with pkg_resources
    (unknown,) = _check(root, {"demo": "1.0", "setuptools": None}, python="3.10.12")
    assert unknown.rule == "provided-module-unverified" and not unknown.verified


def test_a_release_capping_setuptools_below_82_is_protected_unless_82_is_installed(tmp_path: Path) -> None:
    demo = {"releases": ["1.0", "2.0"], "build_rows": [], "rows": [_row("==1.0", True, "2.0")],
            "provider_requires": {"1.0": ["setuptools<70; python_version >= '3.8'"]}}
    root = _root(tmp_path, demo)
    assert not _check(root, {"demo": "1.0", "setuptools": None})
    assert not _check(root, {"demo": "1.0"})
    (broken,) = _check(root, {"demo": "1.0", "setuptools": "82.0.0"})
    assert broken.severity.value == "fail" and "caps setuptools at <70" in broken.message
    uncapped = {**demo, "provider_requires": {"1.0": ["setuptools>=40"]}}
    (warned,) = _check(_root(tmp_path / "b", uncapped), {"demo": "1.0", "setuptools": None})
    assert "setuptools>=40, with no cap below 82.0.0" in warned.message and not warned.verified


def test_the_fix_fits_the_installed_requirements(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (upgrade,) = _check(root, {"demo": "1.0", "setuptools": "82.0.0", "tool": "1.0"}, probed=True,
                        requires={"tool": ["setuptools>=82"]})
    assert upgrade.fix == 'pip install "demo>=2.0"' and "tool requires setuptools>=82" in upgrade.message
    (pin,) = _check(root, {"demo": "1.0", "setuptools": "82.0.0", "app": "1.0"}, probed=True,
                    requires={"app": ["demo<2"]})
    assert pin.fix == 'pip install "setuptools<82"' and "app requires demo<2" in pin.message


def test_unknown_package_version_warns_only_when_most_releases_import_it(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert not _check(root, {"demo": None, "setuptools": "82.0.0"})  # 2 of 4 releases: not most
    demo = {"releases": ["1.0", "1.5", "2.0"], "build_rows": [], "provider_requires": {},
            "rows": [_row("==1.0", True, "2.0"), _row("==1.5", False, "2.0")]}
    (finding,) = _check(_root(tmp_path / "b", demo), {"demo": None, "setuptools": "82.0.0"})
    assert finding.rule == "provided-module-unknown-version" and not finding.verified
    assert "2 of the 3 releases" in finding.message and finding.fix is not None and "setuptools<82" in finding.fix


def test_specifier_caps() -> None:
    bound = Version("82.0.0")
    assert all(caps_below(spec, bound) for spec in ("<82", "<=81.0.0", "==80.9.0", "==81.*", "~=70.1", ">=40,<60"))
    assert not any(caps_below(spec, bound) for spec in ("", ">=40", "<83", "!=82.0.0", "==82.*", "<=82.0.0", "x"))


def test_a_bad_provider_entry_is_one_line_naming_the_module(tmp_path: Path) -> None:
    root = _root(tmp_path, pkg_resources={"wheels_source": "no-such-source"})
    with pytest.raises(MatrixError, match=r"stdlib_removals.json: removed.pkg_resources: .*no-such-source"):
        load_stdlib_removals(load_matrices(root))
    assert any("removed.pkg_resources" in problem for problem in validate_matrices(root))


# --- the bundled table ----------------------------------------------------------------------------------


def test_the_bundled_table_records_the_removal_from_the_wheels() -> None:
    document = json.loads((default_root() / "stdlib_removals.json").read_text(encoding="utf-8"))
    entry = document["removed"]["pkg_resources"]
    assert entry["provider"] == "setuptools" and entry["removed_in"] == "82.0.0"
    assert entry["last_with"]["version"] == "81.0.0" and entry["last_with"]["ships"] == "pkg_resources/__init__.py"
    assert entry["first_without"]["wheel"] == "setuptools-82.0.0-py3-none-any.whl"
    table = load_stdlib_removals(load_matrices(default_root()))
    assert table is not None and table.provided["pkg_resources"].provider == "setuptools"
    users = [name for name in table.rows if any("pkg_resources" in row.modules for row in table.rows[name])]
    assert len(users) >= 10


def test_real_releases_read_from_their_wheels(tmp_path: Path) -> None:
    """torchmetrics 0.11.4 (utilities/imports.py:22) and tensorboard 2.20.0 (default.py:30) import pkg_resources at
    module level, outside their package's __init__ (a warning: plain imports may not load those modules; tensorboard's
    serves only its CLI); pytorch-lightning 2.1.0 only inside a function; torchmetrics 1.0.0 not at all."""
    root = default_root()
    (torchmetrics,) = _check(root, {"torchmetrics": "0.11.4", "setuptools": "82.0.0"})
    assert torchmetrics.severity.value == "warn" and torchmetrics.verified
    assert "torchmetrics/utilities/imports.py:22" in torchmetrics.message
    (cli_only,) = _check(root, {"tensorboard": "2.20.0", "setuptools": "84.2.1"})
    assert cli_only.rule == "provided-module-imported" and cli_only.severity.value == "warn"
    assert torchmetrics.fix == 'pip install "setuptools<82"   # or: pip install "torchmetrics>=1.0.0"'
    assert not _check(root, {"torchmetrics": "1.0.0", "setuptools": "82.0.0"})
    (tensorboard,) = _check(root, {"tensorboard": "2.20.0"}, python="3.12.3")  # pasted: setuptools not listed
    assert tensorboard.rule == "provided-module-unverified" and not tensorboard.verified
    assert "setuptools>=41.0.0, with no cap below 82.0.0" in tensorboard.message
    (lightning,) = _check(root, {"pytorch-lightning": "2.1.0", "setuptools": "82.0.0"})
    assert lightning.severity.value == "warn" and lightning.verified and "only inside functions" in lightning.message


@pytest.mark.network
def test_the_generator_verifies_the_removal_from_pypi() -> None:
    evidence = gen.provider_evidence("pkg_resources", stdlib_scan.PROVIDED["pkg_resources"])
    assert evidence["last_with"]["version"] == "81.0.0" and evidence["first_without"]["version"] == "82.0.0"
