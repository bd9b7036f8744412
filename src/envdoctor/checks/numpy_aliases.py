"""Packages whose code uses NumPy names that the installed NumPy removed (``matrices/numpy_aliases.json``, written
by ``tools/gen_numpy_aliases.py`` from each release's code): ``np.float``, ``np.int``, ``np.object`` ... (removed
in 1.24; ``np.bool`` and ``np.long`` came back in 2.0), ``np.float_``, ``np.NaN``, ``np.bool8`` ... (removed in 2.0),
``np.in1d``, ``np.trapz`` (removed in 2.4).

A release in a row of the table, beside a NumPy that lacks some of the row's names, raises ``AttributeError:
module 'numpy' has no attribute ...``: at import when a use runs at module level (fail), else when a function that
uses one runs (warn, verified). When the package's version is unknown and some of its releases use names the
installed NumPy lacks, or NumPy's version is unknown and the installed release uses names a current NumPy lacks,
the warning is inferred (``verified: false``); with both unknown, so is it when the package's newest release still
uses names a current NumPy lacks. The fix is the package's first later release that uses none of the
missing names, or a NumPy from before their removal.

The table of names NumPy added (``matrices/numpy_additions.json``, checked by ``numpy_additions.py``) has the same
shape and is read and checked by the same code, parametrized by a ``NameTableKind``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.declared import marker_applies, parse_declared
from envdoctor.checks.release_scans import (
    fetched_uses,
    findings_by_known_versions,
    public_version,
    read_package_rows,
)
from envdoctor.checks.requirements import marker_environment
from envdoctor.checks.wheels import host_target, wheel_runs
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, parsed_or_raise, read_json_object
from envdoctor.pypi_facts import newest_release, releases
from envdoctor.rules import matches_specifier, parse_version
from envdoctor.snapshot import normalize_name


@dataclass(frozen=True)
class NameTableKind:
    """One table of NumPy names that some NumPy releases lack: its file, generator, the key of its names
    (``removed``/``added``, also the verb of messages) and the key of a name's release."""

    file: str
    generator: str
    names_key: str
    release_key: str

    @property
    def row_keys(self) -> set[str]:
        return {"versions", self.release_key, "names", "at_import", "first_free", "where"}


REMOVALS = NameTableKind("numpy_aliases.json", "tools/gen_numpy_aliases.py", "removed", "removed_in")
ADDITIONS = NameTableKind("numpy_additions.json", "tools/gen_numpy_additions.py", "added", "added_in")


@dataclass(frozen=True)
class ChangedName:
    """A NumPy name that NumPy ``changed_in`` removed (or added); ``missing_in`` is the NumPy releases that lack
    it."""

    name: str
    changed_in: str
    missing_in: str  # a specifier over NumPy releases
    source: str


@dataclass(frozen=True)
class AliasRow:
    """Releases ``versions`` of ``package`` use ``names`` (removed, or added, in NumPy ``changed_in``);
    ``at_import`` are those used when a module of the package is imported."""

    package: str
    versions: str
    changed_in: str
    names: tuple[str, ...]
    at_import: tuple[str, ...]
    first_free: str | None
    where: tuple[str, ...]


@dataclass(frozen=True)
class NumpyAliasTable:
    kind: NameTableKind
    generated: str
    changed: dict[str, ChangedName]
    releases: dict[str, tuple[str, ...]]  # normalized package -> releases read, oldest first
    rows: dict[str, tuple[AliasRow, ...]]
    scan_source: str

    def missing(self, names: tuple[str, ...] | set[str], numpy: Version) -> set[str]:
        """The ``names`` that NumPy ``numpy`` lacks."""
        return {n for n in names if SpecifierSet(self.changed[n].missing_in).contains(numpy, prereleases=True)}

    def uses(self, package: str, release: Version) -> tuple[AliasRow, ...]:
        return tuple(row for row in self.rows.get(package, ())
                     if SpecifierSet(row.versions).contains(release, prereleases=True))


def load_numpy_aliases(matrices: Matrices) -> NumpyAliasTable | None:
    """The table of the matrices folder (None when absent); a malformed one raises MatrixError naming the key."""
    return load_name_table(matrices, REMOVALS)


def load_name_table(matrices: Matrices, kind: NameTableKind) -> NumpyAliasTable | None:
    """The ``kind`` table of the matrices folder (None when absent); a malformed one raises MatrixError naming the
    key."""
    return _table(matrices.root / kind.file, frozenset(matrices.sources), kind)


@functools.lru_cache(maxsize=8)
def _table(path: Path, sources: frozenset[str], kind: NameTableKind) -> NumpyAliasTable | None:
    return parsed_or_raise(path, lambda where, errors: _parse(where, errors, sources, kind))


def _parse(path: Path, errors: list[str], sources: frozenset[str], kind: NameTableKind) -> NumpyAliasTable | None:
    raw = read_json_object(path, errors, kind.generator)
    if raw is None:
        return None

    def error(key: str, problem: str) -> None:
        errors.append(f"{path}: {key}: {problem}; regenerate it with {kind.generator}")

    changed: dict[str, ChangedName] = {}
    listed_names = raw.get(kind.names_key)
    for name, entry in (listed_names if isinstance(listed_names, dict) else {}).items():
        try:
            SpecifierSet(entry["missing_in"])
            Version(entry[kind.release_key])
            if entry["source"] not in sources:
                raise ValueError(f"source {entry['source']!r} is not in matrices/sources*.toml")
            changed[name] = ChangedName(name, entry[kind.release_key], entry["missing_in"], entry["source"])
        except (KeyError, TypeError, ValueError, InvalidSpecifier, InvalidVersion) as problem:
            error(f"{kind.names_key}.{name}",
                  f"needs {kind.release_key} (a version), missing_in (a specifier), source ({problem})")
    if not changed:
        error(kind.names_key, f"expected an object of {kind.names_key} names")
    scan_source = raw.get("scan_source")
    if scan_source not in sources:
        error("scan_source", f"{scan_source!r} is not in matrices/sources*.toml")
    releases, rows = read_package_rows(raw.get("packages"), error, lambda name, item: _row(name, item, changed, kind))
    return NumpyAliasTable(kind, str(raw.get("generated")), changed, releases, rows, str(scan_source))


def _row(package: str, item: Any, changed: dict[str, ChangedName], kind: NameTableKind) -> AliasRow | str:
    """The row, or what is wrong with it."""
    try:
        if not isinstance(item, dict) or set(item) != kind.row_keys:
            raise ValueError(f"expected the keys {', '.join(sorted(kind.row_keys))}")
        SpecifierSet(item["versions"])
        Version(item[kind.release_key])
        if item["first_free"] is not None:
            Version(item["first_free"])
        names, at_import = tuple(item["names"]), tuple(item["at_import"])
        unknown = [n for n in (*names, *at_import) if n not in changed]
        if unknown or not names or not set(at_import) <= set(names):
            raise ValueError(f"names {unknown or names!r}: each a {kind.names_key} name, at_import among them")
        return AliasRow(package, item["versions"], item[kind.release_key], names, at_import, item["first_free"],
                        tuple(str(w) for w in item["where"]))
    except (KeyError, TypeError, ValueError, InvalidSpecifier, InvalidVersion) as problem:
        return f"{problem}"


# --- the check ----------------------------------------------------------------------------------------


def check_numpy_aliases(ctx: CheckContext) -> list[Finding]:
    table = load_numpy_aliases(ctx.matrices)
    return check_name_table(ctx, _with_fetched_releases(ctx, table) if table is not None else None)


def _with_fetched_releases(ctx: CheckContext, table: NumpyAliasTable) -> NumpyAliasTable:
    """The table, plus a row per removal for each installed package it lacks whose release ``check --online`` read
    (``numpy_names`` of the fetched facts: the installed release, or the newest when the version is unknown)."""
    rows, read = dict(table.rows), dict(table.releases)
    for name, release, by_release in fetched_uses(
            ctx, {*table.rows, "numpy"}, lambda facts: facts.numpy_names,
            lambda used: table.changed[used].changed_in if used in table.changed else None):
        rows[name] = tuple(AliasRow(name, f"=={release.version}", changed_in, tuple(n for n, _, _ in group),
                                    tuple(n for n, at_import, _ in group if at_import), None,
                                    tuple(where for _, _, where in group))
                           for changed_in, group in sorted(by_release.items(), key=lambda item: Version(item[0])))
        read[name] = (release.version,)
    return replace(table, rows=rows, releases=read)


def check_name_table(ctx: CheckContext, table: NumpyAliasTable | None) -> list[Finding]:
    """The findings of one table of NumPy names (removed or added) for the installed packages."""
    packages = ctx.snapshot.packages or {}
    numpy = packages.get("numpy")
    if numpy is None or table is None:
        return []
    installed = {name: public_version(packages[name].version) for name in sorted(set(table.rows) & set(packages))
                 if name != "numpy" and table.rows[name]}
    return findings_by_known_versions(installed, public_version(numpy.version),
                                      functools.partial(_known, ctx, table),
                                      functools.partial(_package_unknown, ctx, table),
                                      functools.partial(_numpy_unknown, ctx, table),
                                      functools.partial(_both_unknown, ctx, table))


def _names(names: set[str]) -> str:
    return ", ".join(f"np.{n}" for n in sorted(names, key=str.lower))


def _changes(table: NumpyAliasTable, names: set[str]) -> str:
    """``np.float (removed in NumPy 1.24); np.NaN (removed in NumPy 2.0)`` grouped by release."""
    by_release: dict[str, set[str]] = {}
    for name in names:
        by_release.setdefault(table.changed[name].changed_in, set()).add(name)
    return "; ".join(f"{_names(group)} ({table.kind.names_key} in NumPy {release})"
                     for release, group in sorted(by_release.items(), key=lambda item: Version(item[0])))


def _numpy_with(table: NumpyAliasTable, names: set[str]) -> str:
    """The NumPy releases that have all of ``names``: before the first removal, or from the last addition on."""
    releases_of = [table.changed[n].changed_in for n in names]
    if table.kind is ADDITIONS:
        return f">={max(releases_of, key=Version)}"
    return f"<{min(releases_of, key=Version)}"


def _lacking(table: NumpyAliasTable, name: str, release: Version, numpy: Version) -> set[str]:
    """The names release ``release`` of ``name`` uses that NumPy ``numpy`` lacks."""
    return table.missing({n for row in table.uses(name, release) for n in row.names}, numpy)


def _free_release(table: NumpyAliasTable, name: str, around: Version, numpy: Version) -> str | None:
    """The first release read after ``around`` that uses none of the names ``numpy`` lacks; for added names, when
    every later one uses some, the newest earlier release that uses none (a package starts to use an added name at
    some release and keeps it). None when there is none."""
    free = [text for text in table.releases.get(name, ())
            if (release := parse_version(text)) is not None and release != around and not release.is_prerelease
            and not _lacking(table, name, release, numpy)]
    later = [text for text in free if Version(text) > around]
    earlier = [text for text in free if Version(text) < around] if table.kind is ADDITIONS else []
    return later[0] if later else earlier[-1] if earlier else None


def _current_numpy(ctx: CheckContext) -> Version | None:
    """A current NumPy: the newest release in the PyPI tables."""
    newest = newest_release("numpy", ctx.matrices.root)
    return parse_version(newest.version) if newest is not None else None


def _fix(ctx: CheckContext, table: NumpyAliasTable, name: str, free: str | None, names: set[str]) -> str | None:
    """The package's free release and the NumPy that has the names; for added names, the NumPy first when it
    installs here and no installed package's requirement keeps it out."""
    specifier = _numpy_with(table, names)
    package_fix = None
    if free is not None:
        package = (ctx.snapshot.packages or {}).get(name)
        installed = public_version(package.version) if package is not None else None
        earlier = installed is not None and Version(free) < installed
        package_fix = requirement_install(ctx, name, f"=={free}" if earlier else f">={free}")
    numpy_fix = requirement_install(ctx, "numpy", specifier) if _numpy_installs_here(ctx, specifier) else None
    if table.kind is ADDITIONS:
        fixes = [numpy_fix, package_fix] if not _numpy_held_back(ctx, name, specifier) else [package_fix]
    else:
        fixes = [package_fix, numpy_fix]
    return "   # or: ".join(fix for fix in fixes if fix) or None


def _numpy_held_back(ctx: CheckContext, name: str, specifier: str) -> bool:
    """Some installed package (``name`` itself aside) requires a NumPy that ``specifier`` excludes entirely
    (Requires-Dist in the snapshot, markers evaluated): moving NumPy would break it."""
    wanted = SpecifierSet(specifier)
    environment = marker_environment(ctx.snapshot)
    for other, package in (ctx.snapshot.packages or {}).items():
        for line in (package.requires or ()) if other not in (name, "numpy") else ():
            declared = parse_declared(line)
            if declared is None or normalize_name(declared.name) != "numpy" or not declared.specifier \
                    or not marker_applies(declared.marker, environment):
                continue
            candidates = [r.version for r in releases("numpy", ctx.matrices.root)
                          if wanted.contains(r.version, prereleases=False)]
            try:
                allowed = SpecifierSet(declared.specifier)
            except InvalidSpecifier:
                continue
            if candidates and not any(allowed.contains(v, prereleases=False) for v in candidates):
                return True
    return False


def _numpy_installs_here(ctx: CheckContext, specifier: str) -> bool:
    """Some NumPy release in ``specifier`` has a wheel for this Python and platform (every one counts when they are
    unknown): ``numpy<1.24`` is no way out on Python 3.12, which no such release was built for."""
    target = host_target(ctx.snapshot.host, ctx.snapshot.python.version)
    candidates = [r for r in releases("numpy", ctx.matrices.root) if matches_specifier(r.version, specifier)]
    return target is None or target.minor is None or any(wheel_runs(r, target) for r in candidates)


def _sources(table: NumpyAliasTable, names: set[str]) -> tuple[str, ...]:
    return (*sorted({table.changed[n].source for n in names}), table.scan_source)


def _known(ctx: CheckContext, table: NumpyAliasTable, name: str, release: Version,
           numpy: Version) -> Finding | None:
    rows = table.uses(name, release)
    missing = _lacking(table, name, release, numpy)
    if not missing:
        return None
    at_import = {n for row in rows for n in row.at_import} & missing
    where = sorted({w for row in rows if set(row.names) & missing for w in row.where})[:3]
    free = _free_release(table, name, release, numpy)
    first = sorted(at_import or missing)[0]
    error = f"AttributeError: module 'numpy' has no attribute '{first.split('.')[0]}'"
    if "." in first:
        error += f" (ModuleNotFoundError: No module named 'numpy.{first}' where it is imported by name)"
    if at_import:
        when = (f"it uses {_names(at_import)} at module level, so importing the module that does fails with {error}"
                + (" (ImportError where it is imported by name)" if "." not in first else ""))
    else:
        when = f"only inside functions: calling them fails with {error}"
    if free is None:
        upgrade = f"; no other release of {name} read up to {table.releases[name][-1]} is free of them"
    elif Version(free) > release:
        upgrade = f"; {name} {free} is the first later release without them"
    else:
        upgrade = f"; {name} {free} is the newest earlier release without them"
    return Finding(
        rule="numpy-added-name-used" if table.kind is ADDITIONS else "numpy-removed-name-used",
        category=Category.NUMPY,
        severity=Severity.FAIL if at_import else Severity.WARN, components=(name, "numpy"),
        sources=_sources(table, missing), verified=True,
        message=f"{name} {release} uses {_changes(table, missing)}, which numpy {numpy} lacks: {when} "
        f"(e.g. {', '.join(where)}){upgrade}",
        fix=_fix(ctx, table, name, free, missing),
    )


def _package_unknown(ctx: CheckContext, table: NumpyAliasTable, name: str, numpy: Version) -> Finding | None:
    """Removed names: any release read that uses names this NumPy lacks. Added names, which packages use only from
    some recent release on: most releases read do."""
    read = [release for text in table.releases[name] if (release := parse_version(text)) is not None]
    using = [Version(str(release)) for release in read if _lacking(table, name, release, numpy)]
    if not using or (table.kind is ADDITIONS and 2 * len(using) <= len(read)):
        return None
    missing = {n for release in using for n in _lacking(table, name, release, numpy)}
    free = _free_release(table, name, using[-1], numpy)
    later = f"{free} is the first later release without them" if free and Version(free) > using[-1] else \
        f"{free} is the newest earlier release without them" if free else \
        f"every release up to the newest read, {table.releases[name][-1]}, uses some"
    return _inferred(ctx, table, name, free, missing,
                     f"{name} is installed (version unknown); its releases {using[0]} to {using[-1]} use "
                     f"{_changes(table, missing)}, which numpy {numpy} lacks ({later}): with such a release, "
                     "importing it or calling the functions that use them fails with AttributeError: module 'numpy' "
                     f"has no attribute '{sorted(missing)[0].split('.')[0]}'")


def _numpy_unknown(ctx: CheckContext, table: NumpyAliasTable, name: str, release: Version) -> Finding | None:
    if table.kind is ADDITIONS:
        return _numpy_unknown_additions(ctx, table, name, release)
    current = _current_numpy(ctx)
    missing = _lacking(table, name, release, current) if current is not None else set()
    if current is None or not missing:
        return None
    return _inferred(ctx, table, name, _free_release(table, name, release, current), missing,
                     f"numpy is installed (version unknown); {name} {release} uses {_changes(table, missing)}, "
                     f"which a current NumPy ({current}) lacks: with such a NumPy, {name} fails with AttributeError: "
                     f"module 'numpy' has no attribute '{sorted(missing)[0]}'")


def _both_unknown(ctx: CheckContext, table: NumpyAliasTable, name: str) -> Finding | None:
    """Removed names, neither version known: what pip installs today, the package's newest release read beside a
    current NumPy. Said only when that newest release still uses names the current NumPy lacks (no release of the
    package is free of them to be on)."""
    newest = parse_version(table.releases[name][-1]) if table.kind is REMOVALS and table.releases.get(name) else None
    current = _current_numpy(ctx)
    if newest is None or current is None:
        return None
    missing = _lacking(table, name, newest, current)
    if not missing:
        return None
    return _inferred(ctx, table, name, None, missing,
                     f"{name} and numpy are installed (versions unknown); {name}'s newest release read, {newest}, "
                     f"uses {_changes(table, missing)}, which a current NumPy ({current}) lacks: with that NumPy, "
                     f"{name} fails with AttributeError: module 'numpy' has no attribute '{sorted(missing)[0]}'")


def _numpy_unknown_additions(ctx: CheckContext, table: NumpyAliasTable, name: str,
                             release: Version) -> Finding | None:
    """Added names with NumPy's version unknown: warn when most NumPy releases that install here (a wheel for this
    Python and platform) lack names the package release uses."""
    used = {n for row in table.uses(name, release) for n in row.names}
    if not used:
        return None
    target = host_target(ctx.snapshot.host, ctx.snapshot.python.version)
    candidates = [Version(r.version) for r in releases("numpy", ctx.matrices.root)
                  if parse_version(r.version) is not None and not Version(r.version).is_prerelease
                  and (target is None or target.minor is None or wheel_runs(r, target))]
    lacking = [numpy for numpy in candidates if table.missing(used, numpy)]
    if not candidates or 2 * len(lacking) <= len(candidates):
        return None
    missing = {n for numpy in lacking for n in table.missing(used, numpy)}
    return _inferred(ctx, table, name, None, missing,
                     f"numpy is installed (version unknown); {name} {release} uses {_changes(table, missing)}, "
                     f"which {len(lacking)} of the {len(candidates)} NumPy releases that install here lack: with "
                     f"such a NumPy, {name} fails with AttributeError: module 'numpy' has no attribute "
                     f"'{sorted(missing)[0].split('.')[0]}'")


def _inferred(ctx: CheckContext, table: NumpyAliasTable, name: str, free: str | None, missing: set[str],
              message: str) -> Finding:
    return Finding(
        rule="numpy-added-name-unknown-version" if table.kind is ADDITIONS else "numpy-removed-name-unknown-version",
        category=Category.NUMPY, severity=Severity.WARN,
        components=(name, "numpy"), sources=_sources(table, missing), verified=False, message=message,
        fix=_fix(ctx, table, name, free, missing),
    )
