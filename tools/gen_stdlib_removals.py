"""Regenerate ``matrices/stdlib_removals.json``: which releases of libraries import standard-library modules that
CPython removed (``distutils``, ``imp``, ``asyncore`` ... in 3.12; ``cgi``, ``imghdr``, ``pipes``, ``lib2to3`` ... in
3.13), and whether an import runs when the package is imported or only when a function is called.

Usage:
    python tools/gen_stdlib_removals.py [--only NAME ...] [--threads N] [--out FILE]

The packages and their floors are listed in ``tools/stdlib_removal_packages.toml``. Each release is read as
``tools/gen_numpy_aliases.py`` reads it (its wheel, else its sdist; every shipped ``.py`` file parsed with ``ast``,
nothing executed). A use is ``import X``, ``import X.sub`` or ``from X[.sub] import ...`` with ``X`` a removed
module. It runs at import when it is reached without calling a function; guarded imports are left out (in a
``try`` catching ``ImportError``/``Exception``, under an ``if`` looking at a version, ``TYPE_CHECKING`` or
``__main__``). ``--only NAME`` re-reads those packages and keeps the others of the existing file.
"""

from __future__ import annotations

import ast
import datetime
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gen_import_floors import catches
from gen_numpy_aliases import (
    GUARD_HANDLERS,
    ROOT,
    Archive,
    Generator,
    ReleaseScan,
    Use,
    _UseFinder,
    archive_files,
    archives,
    package_rows,
    regenerate,
    scan_files,
    scanned_once,
    shipped_code,
)

from envdoctor import pypi_release

OUT = ROOT / "matrices" / "stdlib_removals.json"
PACKAGES = ROOT / "tools" / "stdlib_removal_packages.toml"
GENERATOR = "tools/gen_stdlib_removals.py"
SCAN_SOURCE = "stdlib-removals-scan"
SETUP_SCRIPT = "setup.py"

# module -> (the CPython release that removed it, the id of the source in matrices/sources_facts.toml)
_PEP594_313 = ("aifc audioop cgi cgitb chunk crypt imghdr mailcap msilib nis nntplib ossaudiodev pipes sndhdr spwd "
               "sunau telnetlib uu xdrlib")
REMOVED: dict[str, tuple[str, str]] = {
    "distutils": ("3.12", "python-3-12-removed-distutils"),
    "imp": ("3.12", "python-3-12-removed-modules"),
    **{module: ("3.12", "python-3-12-removed-modules") for module in ("asynchat", "asyncore", "smtpd")},
    **{module: ("3.13", "python-3-13-removed-modules") for module in _PEP594_313.split()},
    "lib2to3": ("3.13", "python-3-13-removed-modules"),
}
SOURCES = [
    {"title": "What's New In Python 3.12: removed distutils (PEP 632; setuptools still provides it), imp, asynchat, "
              "asyncore and smtpd", "url": "https://docs.python.org/3/whatsnew/3.12.html"},
    {"title": "PEP 632: Deprecate distutils module (removed in 3.12)", "url": "https://peps.python.org/pep-0632/"},
    {"title": "What's New In Python 3.13: PEP 594 dead batteries removed (19 modules) and lib2to3",
     "url": "https://docs.python.org/3/whatsnew/3.13.html"},
    {"title": "PEP 594: Removing dead batteries from the standard library", "url": "https://peps.python.org/pep-0594/"},
    {"title": "PyPI JSON API and each release's wheel or sdist (the packages' code)", "url": "https://pypi.org/pypi/"},
]
PY2_SWITCH = re.compile(r"py(thon)?_?[23]", re.I)
# A file can import a removed module only where an import line names one: most files are passed over unparsed.
_MAY_IMPORT = re.compile(r"^[ \t]*(?:from|import)[ \t][^\n]*\b(?:" + "|".join(REMOVED) + r")\b", re.M)


# --- the scan of one file (no network) --------------------------------------------------------------


class _ImportFinder(_UseFinder):
    """``_UseFinder``'s walk (at import or deferred, guarded code left out), recording imports of removed
    modules."""

    removed = REMOVED

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._record(alias.name.split(".")[0], node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            self._record(node.module.split(".")[0], node.lineno)

    def visit_Try(self, node: ast.Try) -> None:
        """In a ``try`` that catches a failed import, neither the body nor the handlers count: the handlers are a
        fallback for the body (``try: from html import escape`` / ``except ImportError: from cgi import escape``)."""
        if catches(node, GUARD_HANDLERS):
            self._visit_all([*node.orelse, *node.finalbody])
        else:
            super().visit_Try(node)

    visit_TryStar = visit_Try

    def visit_If(self, node: ast.If) -> None:
        """Neither branch of a Python 2/3 switch (``if PY2:``, ``if py3k:``) counts, as for a version test."""
        if not PY2_SWITCH.search(ast.unparse(node.test)):
            super().visit_If(node)


def scan_source(text: str) -> dict[str, Use]:
    """The removed modules a Python file imports (raises SyntaxError when it does not parse)."""
    finder = _ImportFinder(set(), lazy_annotations=True)
    finder.visit(ast.parse(text))
    return finder.uses


def _scan_once(text: str) -> dict[str, Use] | None:
    return scanned_once(text, scan_source) if _MAY_IMPORT.search(text) else {}


def _code_or_setup_script(path: str) -> bool:
    return shipped_code(path) or path == SETUP_SCRIPT


def read_release(archive: Archive) -> tuple[ReleaseScan, ReleaseScan]:
    """The scan of the release's shipped code, and that of its ``setup.py`` when the release has no wheel (pip
    runs it to build the release; setuptools, installed for that build, provides ``distutils``)."""
    files = list(archive_files(archive.filename, pypi_release.http_get(archive.url), _code_or_setup_script))
    build = scan_files([f for f in files if f[0] == SETUP_SCRIPT and not archive.filename.endswith(".whl")],
                       _scan_once)
    build_uses = {m: use for m, use in build.uses.items() if m != "distutils"}
    return (scan_files([f for f in files if f[0] != SETUP_SCRIPT], _scan_once),
            ReleaseScan(build_uses, build.files, build.unparsed))


# --- the table ----------------------------------------------------------------------------------------


def study(name: str, since: str | None, threads: int) -> dict[str, Any]:
    url, found = archives(name, since)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        read = dict(zip([a.version for a in found], pool.map(read_release, found), strict=True))
    scans = {version: code for version, (code, _) in read.items()}
    versions = [a.version for a in found]
    removals = {m: removed_in for m, (removed_in, _) in REMOVED.items()}
    print(f"{name}: {len(versions)} releases, {sum(1 for s in scans.values() if s.uses)} importing removed modules",
          file=sys.stderr, flush=True)
    newest = found[-1] if found else None
    return {
        "source": {"url": url, "read": "each release's wheel (else sdist), every shipped .py file",
                   "newest_release": newest.version if newest else "",
                   "newest_file": newest.filename if newest else ""},
        "releases": versions,
        "unparsed_files": {v: s.unparsed for v, s in scans.items() if s.unparsed},
        "rows": package_rows(versions, scans, removals, "modules"),
        "build_rows": package_rows(versions, {v: build for v, (_, build) in read.items()}, removals, "modules"),
    }


WHAT = ("releases of libraries whose code imports standard-library modules that CPython removed, per removal; "
        "at_import: those imported when a module of the package is imported (the others only inside functions); "
        "where: file:line of imports in the run's last release; build_rows: the same for setup.py of releases "
        "without a wheel (distutils left out: setuptools provides it to the build); read with ast")


def document(packages: dict[str, dict[str, Any]], command: str, today: str | None = None) -> dict[str, Any]:
    removed = {module: {"removed_in": removed_in, "source": source} for module, (removed_in, source) in REMOVED.items()}
    generated, listed = today or datetime.date.today().isoformat(), dict(sorted(packages.items()))
    return {"generator": GENERATOR, "command": command, "generated": generated, "what": WHAT,
            "scan_source": SCAN_SOURCE, "sources": SOURCES, "removed": removed, "packages": listed}


def main(argv: list[str] | None = None) -> int:
    return regenerate(Generator(__doc__.splitlines()[0], GENERATOR, PACKAGES, OUT, study, document), argv)


if __name__ == "__main__":
    sys.exit(main())
