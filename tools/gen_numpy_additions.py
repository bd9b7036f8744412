"""Regenerate ``matrices/numpy_additions.json``: which releases of libraries use NumPy names that exist only from
some NumPy release on (``np.isdtype``, ``np.concat``, ``np.trapezoid``, ``np.strings`` ... 2.0; ``np.exceptions``,
``np.dtypes`` 1.25; ``np.unstack``, ``np.cumulative_sum`` 2.1 ...), and whether a use runs at import or only when a
function is called.

Usage:
    python tools/gen_numpy_additions.py [--only NAME ...] [--threads N] [--out FILE]

The added names are read from NumPy itself: for the first release of each minor series from ``NUMPY_FLOOR`` on, its
manylinux x86_64 wheel on PyPI gives (by ranged reads) ``numpy/__init__.py``, ``numpy/__init__.pyi`` and its file
list. A release has a public name when its stub re-exports or defines it (``from m import x as x``, ``def``,
``class``, an assignment, ``__all__``), when its ``__init__.py`` binds it at module level (and does not ``del``
it), lists it in ``__all__`` or serves it as a deprecated attribute (``__deprecated_attrs__``); a public submodule
(``numpy/lib/array_utils.py``) counts by its dotted name (``lib.array_utils``). Names starting with ``_`` are left
out. A name is added in X when every read release before X lacks it and X and every later one have it. Names with a
gap (``np.bool``, ``np.long``: there until 1.23, back in 2.0) are left to ``numpy_aliases.json``; attributes naming
a submodule that every read release ships (``np.typing``: ``import numpy.typing`` always worked) are left out.

The packages are listed in ``tools/numpy_addition_packages.toml`` and read as ``tools/gen_numpy_aliases.py`` reads
them (wheel, else sdist; every shipped ``.py`` file parsed with ``ast``, nothing executed; the same at-import and
guard rules), from the first upload day of the oldest NumPy release that added a name on. A use is ``X.<name>`` (or
``X.<a>.<b>`` for an added submodule ``a.b``) with ``X`` bound to numpy, ``from numpy import <name>``, ``import
numpy.<module>`` or ``from numpy.<module> import ...``.
"""

from __future__ import annotations

import ast
import datetime
import functools
import json
import re
import sys
import zipfile
from collections.abc import Container, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from gen_numpy_aliases import (
    ROOT,
    Archive,
    Generator,
    archive_files,
    archives,
    package_rows,
    read_releases,
    regenerate,
    source_entry,
)
from packaging.version import Version

from envdoctor import pypi_release
from envdoctor.numpy_name_scan import (
    GUARD_TEST,
    ReleaseScan,
    Use,
    _UseFinder,
    numpy_bindings,
    scan_files,
    scanned_once,
)

OUT = ROOT / "matrices" / "numpy_additions.json"
PACKAGES = ROOT / "tools" / "numpy_addition_packages.toml"
GENERATOR = "tools/gen_numpy_additions.py"
NUMPY_INDEX = "https://pypi.org/pypi/numpy/json"
NUMPY_FLOOR = "1.22"  # the oldest NumPy minor series read; a name it lacks and all later ones have is "added"
NAMESPACE_SOURCE = "numpy-namespace-scan"  # the id of this generator's reading of NumPy's wheels
SCAN_SOURCE = "numpy-additions-scan"  # the id of its reading of the packages' code
SOURCES = [
    {"title": "PyPI JSON API for numpy and the manylinux x86_64 wheel of each minor series' first release "
              "(numpy/__init__.py, numpy/__init__.pyi and the file list)", "url": NUMPY_INDEX},
    {"title": "NumPy 2.0 release notes: array API standard compatible names added to the main namespace (isdtype, "
              "concat, permute_dims, pow, acos ..., unique_values ..., matrix_transpose, vecdot), np.strings, "
              "np.trapezoid, np.lib.array_utils", "url": "https://numpy.org/doc/stable/release/2.0.0-notes.html"},
    {"title": "PyPI JSON API and each release's wheel or sdist (the packages' code)", "url": "https://pypi.org/pypi/"},
]
# Guards of code that runs only with a newer NumPy: GUARD_TEST's, and version flags such as astropy's NUMPY_LT_2_0
# or NUMPY_GE_2_1 (``if not NUMPY_LT_2_0:``).
ADDITION_GUARD_TEST = re.compile(GUARD_TEST.pattern + r"|(?:np|numpy)_?(?:lt|le|gt|ge)_?\d", re.I)
_TYPE_PARAMETERS = re.compile(r"^([ \t]*)(type|def|class)([ \t]+)(\w+)\[", re.M)
_TYPE_ALIAS = re.compile(r"^([ \t]*)type[ \t]+(?=\w+[ \t]*=)", re.M)


# --- NumPy's public names (no network) ----------------------------------------------------------------


def without_type_parameters(text: str) -> str:
    """A stub with PEP 695 syntax (``type X = ...``, ``def f[T](...)``, ``class C[T]:``) rewritten so that Python
    3.11's ``ast`` parses it: the type parameters and the ``type`` keyword dropped; the names bound stay the same."""
    out, position = [], 0
    for match in _TYPE_PARAMETERS.finditer(text):
        if match.start() < position:
            continue
        depth, end = 0, match.end() - 1
        while end < len(text):
            depth += {"[": 1, "(": 1, "]": -1, ")": -1}.get(text[end], 0)
            if depth == 0:
                break
            end += 1
        keyword = "" if match.group(2) == "type" else match.group(2) + match.group(3)
        out += [text[position:match.start()], match.group(1) + keyword + match.group(4)]
        position = end + 1
    out.append(text[position:])
    return _TYPE_ALIAS.sub(r"\1", "".join(out))


def _module_level(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """The statements that run at module level, in order, through ``if``/``try`` blocks."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _module_level([*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            yield from _module_level([*node.body, *node.orelse, *node.finalbody,
                                      *(s for h in node.handlers for s in h.body)])


def _assigned_names(node: ast.stmt) -> set[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
        if isinstance(node, ast.AnnAssign | ast.AugAssign) else []
    return {n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)}


def _all_strings(tree: ast.Module) -> set[str]:
    """The strings written into ``__all__`` (assigned, added or extended with literals)."""
    found = set()
    for node in ast.walk(tree):
        value = None
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) and "__all__" in _assigned_names(node):
            value = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "__all__" \
                and node.func.attr in ("append", "extend", "update", "add"):
            value = ast.Tuple(node.args)
        if value is not None:
            found.update(c.value for c in ast.walk(value) if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return found


def stub_names(text: str) -> set[str]:
    """The public names ``numpy/__init__.pyi`` gives: re-exports (``import x as x``, ``from m import x as x``),
    definitions, assignments and ``__all__`` (a stub's bare imports are not re-exports)."""
    tree = ast.parse(without_type_parameters(text))
    names = _all_strings(tree)
    for node in _module_level(tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update(a.asname for a in node.names if a.asname and a.asname == a.name.split(".")[-1])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        else:
            names.update(_assigned_names(node))
    return {name for name in names if not name.startswith("_")}


def _deprecated_attributes(tree: ast.Module) -> set[str]:
    """Names the module's ``__getattr__`` serves with a deprecation warning: the keys put into
    ``__deprecated_attrs__`` (by subscript, by a dict literal, or by a comprehension over a list of tuples)."""
    lists = {target: node.value for node in _module_level(tree.body) if isinstance(node, ast.Assign)
             for target in _assigned_names(node)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) \
                and isinstance(node.value, ast.Name) and node.value.id == "__deprecated_attrs__" \
                and isinstance(node.slice, ast.Constant):
            found.add(node.slice.value)
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "__deprecated_attrs__"):
            continue
        for argument in node.args:
            if isinstance(argument, ast.Dict):
                found.update(k.value for k in argument.keys if isinstance(k, ast.Constant))
            elif isinstance(argument, ast.DictComp) and isinstance(argument.generators[0].iter, ast.Name):
                listed = lists.get(argument.generators[0].iter.id)
                for item in listed.elts if isinstance(listed, ast.List | ast.Tuple) else []:
                    if isinstance(item, ast.Tuple) and item.elts and isinstance(item.elts[0], ast.Constant):
                        found.add(item.elts[0].value)
    return {name for name in found if isinstance(name, str)}


def init_names(text: str) -> set[str]:
    """The public names ``numpy/__init__.py`` binds at module level and keeps, lists in ``__all__`` or serves as
    deprecated attributes (star imports are not followed: the stub lists what they bring)."""
    tree = ast.parse(text)
    names: set[str] = set()
    for node in _module_level(tree.body):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("numpy")):
            names.update(a.asname or a.name for a in node.names if a.name != "*")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            names.update(_assigned_names(node))
        elif isinstance(node, ast.Delete):
            names.difference_update(n.id for target in node.targets for n in ast.walk(target)
                                    if isinstance(n, ast.Name))
    names |= _all_strings(tree) | _deprecated_attributes(tree)
    return {name for name in names if not name.startswith("_")}


def public_modules(paths: Iterable[str]) -> set[str]:
    """Dotted names (below ``numpy``) of the public modules a NumPy wheel ships: ``lib.array_utils`` for
    ``numpy/lib/array_utils.py``; tests and ``_``-prefixed parts left out."""
    found = set()
    for path in paths:
        parts = path.split("/")
        if parts[0] != "numpy" or not path.endswith(".py"):
            continue
        parts = parts[1:-1] if parts[-1] == "__init__.py" else [*parts[1:-1], parts[-1][:-3]]
        if parts and not any(p.startswith("_") or p in ("tests", "conftest") for p in parts):
            found.add(".".join(parts))
    return found


@dataclass(frozen=True)
class NumpyRelease:
    version: str
    filename: str
    uploaded: str  # the day of its first upload
    names: frozenset[str]  # public attribute names and public submodules (dotted)
    modules: frozenset[str]


def namespace(version: str, filename: str, uploaded: str, init: str, stub: str, paths: Iterable[str]) -> NumpyRelease:
    modules = public_modules(paths)
    top = init_names(init) | stub_names(stub)
    return NumpyRelease(version, filename, uploaded, frozenset(top | {m for m in modules if "." in m}),
                        frozenset(modules))


def additions(read: list[NumpyRelease]) -> dict[str, str]:
    """name -> the first read release that has it, for each name the oldest read release lacks and that every read
    release from that one on has; attributes that name a submodule every read release ships are left out."""
    read = sorted(read, key=lambda r: Version(r.version))
    always_modules = frozenset.intersection(*(r.modules for r in read)) if read else frozenset()
    added = {}
    for name in sorted(read[-1].names if read else ()):
        has = [name in release.names for release in read]
        if has[0] or name in always_modules:
            continue
        first = has.index(True)
        if all(has[first:]):
            added[name] = ".".join(read[first].version.split(".")[:2])
    return added


# --- NumPy's releases on PyPI -------------------------------------------------------------------------


def numpy_wheel_files(version: str, files: list[dict[str, Any]]) -> tuple[str, str, str, str, str, list[str]]:
    """(version, wheel name, upload day, ``__init__.py``, ``__init__.pyi``, file list) of one release's wheel."""
    wheel = pypi_release.metadata_wheel(files)
    if wheel is None:
        raise ValueError(f"numpy {version}: no wheel on PyPI")
    remote = pypi_release.RangeFile(urljoin(NUMPY_INDEX, wheel["url"]), wheel["size"], pypi_release.http_get)
    with zipfile.ZipFile(remote) as archive:  # type: ignore[arg-type]
        init, stub = (archive.read(f"numpy/__init__.{ext}").decode() for ext in ("py", "pyi"))
        paths = archive.namelist()
    uploaded = min(f.get("upload_time_iso_8601") or f["upload_time"] for f in files)[:10]
    return version, wheel["filename"], uploaded, init, stub, paths


@functools.lru_cache(maxsize=1)
def numpy_read() -> tuple[NumpyRelease, ...]:
    """The first final release of each NumPy minor series from NUMPY_FLOOR on, read from PyPI."""
    index = json.loads(pypi_release.http_get(NUMPY_INDEX))["releases"]
    firsts: dict[tuple[int, int], str] = {}
    for version in pypi_release.kept_versions(index, NUMPY_FLOOR):
        parsed = Version(version)
        if not parsed.is_postrelease:
            firsts.setdefault((parsed.major, parsed.minor), version)
    # downloads in threads, parsing in this one: concurrent ast.parse of large files can raise CPython 3.11's
    # "SystemError: AST constructor recursion depth mismatch"
    with ThreadPoolExecutor(max_workers=4) as pool:
        fetched = list(pool.map(lambda v: numpy_wheel_files(v, index[v]), firsts.values()))
    return tuple(namespace(*files) for files in fetched)


@functools.lru_cache(maxsize=1)
def added_names() -> dict[str, str]:
    return additions(list(numpy_read()))


# --- the scan of one file (no network) ----------------------------------------------------------------


def _prefixes(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


class _AdditionFinder(_UseFinder):
    """``_UseFinder``'s walk (at import or deferred, guarded code left out), recording added names, also as dotted
    submodules (``np.lib.array_utils``, ``import numpy.exceptions``, ``from numpy.dtypes import ...``)."""

    guard_test = ADDITION_GUARD_TEST

    def __init__(self, numpy: set[str], lazy_annotations: bool, added: Container[str]) -> None:
        super().__init__(numpy, lazy_annotations)
        self.removed = added

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain, inner = [node.attr], node.value
        while isinstance(inner, ast.Attribute):
            chain.insert(0, inner.attr)
            inner = inner.value
        if isinstance(inner, ast.Name) and inner.id in self.numpy:
            for name in _prefixes(".".join(chain)):
                self._record(name, node.lineno)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.startswith("numpy."):
                for name in _prefixes(alias.name[len("numpy."):]):
                    self._record(name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or not (module == "numpy" or module.startswith("numpy.")):
            return
        below = module[len("numpy."):] if module != "numpy" else ""
        for name in _prefixes(below) if below else []:
            self._record(name, node.lineno)
        for alias in node.names:
            self._record(f"{below}.{alias.name}" if below else alias.name, node.lineno)


def scan_source(text: str, added: Container[str]) -> dict[str, Use]:
    """The ``added`` NumPy names a Python file uses (raises SyntaxError when it does not parse)."""
    tree = ast.parse(text)
    lazy = any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(alias.name == "annotations" for alias in node.names) for node in tree.body)
    finder = _AdditionFinder(numpy_bindings(tree), lazy, added)
    finder.visit(tree)
    return finder.uses


def _scan_with_read_names(text: str) -> dict[str, Use]:
    return scan_source(text, added_names())


@functools.lru_cache(maxsize=1)
def _may_use() -> re.Pattern[str]:
    """A file can use an added name only where it has ``.<name>`` or imports from numpy: most files are passed over
    without parsing."""
    last = sorted({name.split(".")[-1] for name in added_names()})
    return re.compile(r"\.\s*(?:" + "|".join(map(re.escape, last)) + r")\b|from\s+numpy|import\s+numpy\.")


def _scan_once(text: str) -> dict[str, Use] | None:
    if "numpy" not in text or not _may_use().search(text):
        return {}
    return scanned_once(text, _scan_with_read_names)


def read_release(archive: Archive) -> ReleaseScan:
    return scan_files(archive_files(archive.filename, pypi_release.http_get(archive.url)), _scan_once)


# --- the table ----------------------------------------------------------------------------------------


def study(name: str, since: str | None, threads: int) -> dict[str, Any]:
    added = added_names()
    first_day = min(r.uploaded for r in numpy_read() if r.version.startswith(tuple(f"{v}." for v in added.values())))
    url, found = archives(name, since, first_day)
    scans = read_releases(found, read_release, threads)
    versions = [a.version for a in found]
    print(f"{name}: {len(versions)} releases, {sum(1 for s in scans.values() if s.uses)} using added names",
          file=sys.stderr, flush=True)
    return {
        "source": source_entry(url, f"each release first uploaded on or after {first_day}: its wheel (else sdist), "
                               "every shipped .py file", found),
        "releases": versions,
        "unparsed_files": {v: s.unparsed for v, s in scans.items() if s.unparsed},
        "rows": package_rows(versions, scans, added, "names", "added_in"),
    }


WHAT = ("releases of libraries that use NumPy names that exist only from some NumPy release on (X.<name> with X bound "
        "to numpy, from numpy import <name>, import numpy.<module>), per adding release; at_import: the names whose "
        "use runs when a module of the package is imported (the others only inside functions); where: file:line of "
        "uses in the run's last release; first_free: the first later release using none of the row's names; the "
        "added names and their first release are read from NumPy's own wheels (numpy_read); the code with ast")


def document(packages: dict[str, dict[str, Any]], command: str, today: str | None = None,
             read: Iterable[NumpyRelease] | None = None) -> dict[str, Any]:
    read = list(read if read is not None else numpy_read())
    added = additions(read)
    return {
        "generator": GENERATOR, "command": command, "generated": today or datetime.date.today().isoformat(),
        "what": WHAT, "scan_source": SCAN_SOURCE, "sources": SOURCES,
        "numpy_read": {r.version: r.filename for r in read},
        "added": {name: {"added_in": added_in, "missing_in": f"<{added_in}", "source": NAMESPACE_SOURCE}
                  for name, added_in in sorted(added.items(), key=lambda item: (Version(item[1]), item[0]))},
        "packages": dict(sorted(packages.items())),
    }


def main(argv: list[str] | None = None) -> int:
    print(f"numpy: {len(added_names())} added names read from {len(numpy_read())} releases", file=sys.stderr)
    return regenerate(Generator(__doc__.splitlines()[0], GENERATOR, PACKAGES, OUT, study, document), argv)


if __name__ == "__main__":
    sys.exit(main())
