"""Packages whose code uses NumPy names that the installed NumPy removed (``matrices/numpy_aliases.json``, written
by ``tools/gen_numpy_aliases.py`` from each release's code): ``np.float``, ``np.int``, ``np.object`` ... (removed
in 1.24; ``np.bool`` and ``np.long`` came back in 2.0), ``np.float_``, ``np.NaN``, ``np.bool8`` ... (removed in 2.0),
``np.in1d``, ``np.trapz`` (removed in 2.4).

A release in a row of the table, beside a NumPy that lacks some of the row's names, raises ``AttributeError:
module 'numpy' has no attribute ...``: at import when a use runs at module level (fail), else when a function that
uses one runs (warn, verified). When the package's version is unknown and some of its releases use names the
installed NumPy lacks, or NumPy's version is unknown and the installed release uses names a current NumPy lacks,
the warning is inferred (``verified: false``). The fix is the package's first later release that uses none of the
missing names, or a NumPy from before their removal.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.wheels import target_of, wheel_runs
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, parsed_or_raise, read_json_object
from envdoctor.pypi_facts import newest_release, releases
from envdoctor.rules import matches_specifier, parse_version
from envdoctor.snapshot import normalize_name

FILE = "numpy_aliases.json"
GENERATOR = "tools/gen_numpy_aliases.py"
ROW_KEYS = {"versions", "removed_in", "names", "at_import", "first_free", "where"}


@dataclass(frozen=True)
class RemovedName:
    name: str
    removed_in: str
    missing_in: str  # a specifier over NumPy releases
    source: str


@dataclass(frozen=True)
class AliasRow:
    """Releases ``versions`` of ``package`` use ``names`` (removed in NumPy ``removed_in``); ``at_import`` are those
    used when a module of the package is imported."""

    package: str
    versions: str
    removed_in: str
    names: tuple[str, ...]
    at_import: tuple[str, ...]
    first_free: str | None
    where: tuple[str, ...]


@dataclass(frozen=True)
class NumpyAliasTable:
    generated: str
    removed: dict[str, RemovedName]
    releases: dict[str, tuple[str, ...]]  # normalized package -> releases read, oldest first
    rows: dict[str, tuple[AliasRow, ...]]
    scan_source: str

    def missing(self, names: tuple[str, ...] | set[str], numpy: Version) -> set[str]:
        """The ``names`` that NumPy ``numpy`` lacks."""
        return {n for n in names if SpecifierSet(self.removed[n].missing_in).contains(numpy, prereleases=True)}

    def uses(self, package: str, release: Version) -> tuple[AliasRow, ...]:
        return tuple(row for row in self.rows.get(package, ())
                     if SpecifierSet(row.versions).contains(release, prereleases=True))


def load_numpy_aliases(matrices: Matrices) -> NumpyAliasTable | None:
    """The table of the matrices folder (None when absent); a malformed one raises MatrixError naming the key."""
    return _table(matrices.root / FILE, frozenset(matrices.sources))


@functools.lru_cache(maxsize=8)
def _table(path: Path, sources: frozenset[str]) -> NumpyAliasTable | None:
    return parsed_or_raise(path, lambda where, errors: _parse(where, errors, sources))


def _parse(path: Path, errors: list[str], sources: frozenset[str]) -> NumpyAliasTable | None:
    raw = read_json_object(path, errors, GENERATOR)
    if raw is None:
        return None

    def error(key: str, problem: str) -> None:
        errors.append(f"{path}: {key}: {problem}; regenerate it with {GENERATOR}")

    removed: dict[str, RemovedName] = {}
    listed_removed = raw.get("removed")
    for name, entry in (listed_removed if isinstance(listed_removed, dict) else {}).items():
        try:
            SpecifierSet(entry["missing_in"])
            Version(entry["removed_in"])
            if entry["source"] not in sources:
                raise ValueError(f"source {entry['source']!r} is not in matrices/sources*.toml")
            removed[name] = RemovedName(name, entry["removed_in"], entry["missing_in"], entry["source"])
        except (KeyError, TypeError, ValueError, InvalidSpecifier, InvalidVersion) as problem:
            error(f"removed.{name}", f"needs removed_in (a version), missing_in (a specifier), source ({problem})")
    if not removed:
        error("removed", "expected an object of removed names")
    scan_source = raw.get("scan_source")
    if scan_source not in sources:
        error("scan_source", f"{scan_source!r} is not in matrices/sources*.toml")
    releases: dict[str, tuple[str, ...]] = {}
    rows: dict[str, tuple[AliasRow, ...]] = {}
    packages = raw.get("packages")
    if not isinstance(packages, dict):
        error("packages", "expected an object")
        packages = {}
    for package, entry in packages.items():
        name = normalize_name(str(package))
        listed = entry.get("releases") if isinstance(entry, dict) else None
        if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
            error(f"packages.{package}.releases", "expected a list of version strings")
            continue
        items = entry.get("rows") or []
        if not isinstance(items, list) or (items and not listed):
            error(f"packages.{package}.rows", "expected a list of rows, over a non-empty list of releases")
            continue
        releases[name] = tuple(listed)
        found = []
        for i, item in enumerate(items):
            row = _row(name, item, removed)
            if isinstance(row, str):
                error(f"packages.{package}.rows[{i}]", row)
            else:
                found.append(row)
        rows[name] = tuple(found)
    return NumpyAliasTable(str(raw.get("generated")), removed, releases, rows, str(scan_source))


def _row(package: str, item: Any, removed: dict[str, RemovedName]) -> AliasRow | str:
    """The row, or what is wrong with it."""
    try:
        if not isinstance(item, dict) or set(item) != ROW_KEYS:
            raise ValueError(f"expected the keys {', '.join(sorted(ROW_KEYS))}")
        SpecifierSet(item["versions"])
        Version(item["removed_in"])
        if item["first_free"] is not None:
            Version(item["first_free"])
        names, at_import = tuple(item["names"]), tuple(item["at_import"])
        unknown = [n for n in (*names, *at_import) if n not in removed]
        if unknown or not names or not set(at_import) <= set(names):
            raise ValueError(f"names {unknown or names!r}: each a removed name, at_import among them")
        return AliasRow(package, item["versions"], item["removed_in"], names, at_import, item["first_free"],
                        tuple(str(w) for w in item["where"]))
    except (KeyError, TypeError, ValueError, InvalidSpecifier, InvalidVersion) as problem:
        return f"{problem}"


# --- the check ----------------------------------------------------------------------------------------


def check_numpy_aliases(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    numpy = packages.get("numpy")
    if numpy is None:
        return []
    table = load_numpy_aliases(ctx.matrices)
    if table is None:
        return []
    numpy_version = _public(numpy.version)
    findings = []
    for name in sorted(set(table.rows) & set(packages)):
        if name == "numpy" or not table.rows[name]:
            continue
        release = _public(packages[name].version)
        if numpy_version is not None and release is not None:
            finding = _known(ctx, table, name, release, numpy_version)
        elif numpy_version is not None:
            finding = _package_unknown(ctx, table, name, numpy_version)
        elif release is not None:
            finding = _numpy_unknown(ctx, table, name, release)
        else:
            finding = None
        if finding is not None:
            findings.append(finding)
    return findings


def _public(version: str | None) -> Version | None:
    """``1.24.3`` of ``1.24.3+local``; None for an unknown or non-PEP 440 version."""
    parsed = parse_version(version) if version else None
    return Version(parsed.public) if parsed is not None else None


def _names(names: set[str]) -> str:
    return ", ".join(f"np.{n}" for n in sorted(names, key=str.lower))


def _removals(table: NumpyAliasTable, names: set[str]) -> str:
    """``np.float (removed in NumPy 1.24), np.NaN (removed in NumPy 2.0)`` grouped by release."""
    by_release: dict[str, set[str]] = {}
    for name in names:
        by_release.setdefault(table.removed[name].removed_in, set()).add(name)
    return "; ".join(f"{_names(group)} (removed in NumPy {release})"
                     for release, group in sorted(by_release.items(), key=lambda item: Version(item[0])))


def _numpy_below(table: NumpyAliasTable, names: set[str]) -> str:
    return f"<{min((table.removed[n].removed_in for n in names), key=Version)}"


def _lacking(table: NumpyAliasTable, name: str, release: Version, numpy: Version) -> set[str]:
    """The names release ``release`` of ``name`` uses that NumPy ``numpy`` lacks."""
    return table.missing({n for row in table.uses(name, release) for n in row.names}, numpy)


def _first_free(table: NumpyAliasTable, name: str, after: Version, numpy: Version) -> str | None:
    """The first release read after ``after`` that uses none of the names ``numpy`` lacks; None when every later
    release uses some."""
    for text in table.releases.get(name, ()):
        release = parse_version(text)
        if release is not None and release > after and not release.is_prerelease \
                and not _lacking(table, name, release, numpy):
            return text
    return None


def _current_numpy(ctx: CheckContext) -> Version | None:
    """A current NumPy: the newest release in the PyPI tables."""
    newest = newest_release("numpy", ctx.matrices.root)
    return parse_version(newest.version) if newest is not None else None


def _fix(ctx: CheckContext, table: NumpyAliasTable, name: str, free: str | None, names: set[str]) -> str | None:
    below = _numpy_below(table, names)
    fixes = [requirement_install(ctx, name, f">={free}") if free is not None else None,
             requirement_install(ctx, "numpy", below) if _numpy_installs_here(ctx, below) else None]
    return "   # or: ".join(fix for fix in fixes if fix) or None


def _numpy_installs_here(ctx: CheckContext, specifier: str) -> bool:
    """Some NumPy release in ``specifier`` has a wheel for this Python and platform (every one counts when they are
    unknown): ``numpy<1.24`` is no way out on Python 3.12, which no such release was built for."""
    target = target_of(ctx.snapshot.host.os, ctx.snapshot.host.arch, ctx.snapshot.python.version)
    candidates = [r for r in releases("numpy", ctx.matrices.root) if matches_specifier(r.version, specifier)]
    return target is None or target.minor is None or any(wheel_runs(r, target) for r in candidates)


def _sources(table: NumpyAliasTable, names: set[str]) -> tuple[str, ...]:
    return (*sorted({table.removed[n].source for n in names}), table.scan_source)


def _known(ctx: CheckContext, table: NumpyAliasTable, name: str, release: Version,
           numpy: Version) -> Finding | None:
    rows = table.uses(name, release)
    missing = _lacking(table, name, release, numpy)
    if not missing:
        return None
    at_import = {n for row in rows for n in row.at_import} & missing
    where = sorted({w for row in rows if set(row.names) & missing for w in row.where})[:3]
    free = _first_free(table, name, release, numpy)
    if at_import:
        when = (f"it uses {_names(at_import)} at module level, so importing the module that does fails with "
                f"AttributeError: module 'numpy' has no attribute '{sorted(at_import)[0]}' (ImportError where it is "
                "imported by name)")
    else:
        when = ("only inside functions: calling them fails with AttributeError: module 'numpy' has no attribute "
                f"'{sorted(missing)[0]}'")
    upgrade = f"; {name} {free} is the first later release without them" if free else \
        f"; no later release of {name} read up to {table.releases[name][-1]} is free of them"
    return Finding(
        rule="numpy-removed-name-used", category=Category.NUMPY,
        severity=Severity.FAIL if at_import else Severity.WARN, components=(name, "numpy"),
        sources=_sources(table, missing), verified=True,
        message=f"{name} {release} uses {_removals(table, missing)}, which numpy {numpy} lacks: {when} "
        f"(e.g. {', '.join(where)}){upgrade}",
        fix=_fix(ctx, table, name, free, missing),
    )


def _package_unknown(ctx: CheckContext, table: NumpyAliasTable, name: str, numpy: Version) -> Finding | None:
    using = [Version(text) for text in table.releases[name]
             if (release := parse_version(text)) is not None and _lacking(table, name, release, numpy)]
    if not using:
        return None
    missing = {n for release in using for n in _lacking(table, name, release, numpy)}
    free = _first_free(table, name, using[-1], numpy)
    later = f"{free} is the first later release without them" if free else \
        f"every release up to the newest read, {table.releases[name][-1]}, uses some"
    return _inferred(ctx, table, name, free, missing,
                     f"{name} is installed (version unknown); its releases {using[0]} to {using[-1]} use "
                     f"{_removals(table, missing)}, which numpy {numpy} lacks ({later}): with such a release, "
                     "importing it or calling the functions that use them fails with AttributeError: module 'numpy' "
                     f"has no attribute '{sorted(missing)[0]}'")


def _numpy_unknown(ctx: CheckContext, table: NumpyAliasTable, name: str, release: Version) -> Finding | None:
    current = _current_numpy(ctx)
    missing = _lacking(table, name, release, current) if current is not None else set()
    if current is None or not missing:
        return None
    return _inferred(ctx, table, name, _first_free(table, name, release, current), missing,
                     f"numpy is installed (version unknown); {name} {release} uses {_removals(table, missing)}, "
                     f"which a current NumPy ({current}) lacks: with such a NumPy, {name} fails with AttributeError: "
                     f"module 'numpy' has no attribute '{sorted(missing)[0]}'")


def _inferred(ctx: CheckContext, table: NumpyAliasTable, name: str, free: str | None, missing: set[str],
              message: str) -> Finding:
    return Finding(
        rule="numpy-removed-name-unknown-version", category=Category.NUMPY, severity=Severity.WARN,
        components=(name, "numpy"), sources=_sources(table, missing), verified=False, message=message,
        fix=_fix(ctx, table, name, free, missing),
    )
