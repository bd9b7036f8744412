"""Packages whose code imports standard-library modules that the installed Python no longer has
(``matrices/stdlib_removals.json``, written by ``tools/gen_stdlib_removals.py`` from each release's code):
``distutils``, ``imp``, ``asynchat``, ``asyncore``, ``smtpd`` (removed in Python 3.12), the PEP 594 dead batteries
``cgi``, ``imghdr``, ``pipes``, ``telnetlib`` ... and ``lib2to3`` (removed in 3.13); or names removed from modules
that remain (``collections.Mapping`` in 3.10, ``inspect.getargspec`` in 3.11, ``pkgutil.ImpImporter`` in 3.12).
The table also holds modules a distribution stopped providing (``pkg_resources``, setuptools 82.0.0:
``provided``), which ``envdoctor.checks.provided_modules`` judges; this check leaves them out.

A release in a row of the table, on a Python at or past the removal, raises ``ModuleNotFoundError: No module named
...``: when the package is imported if an import runs at module level (fail), else when a function that imports one
runs (warn, verified). ``distutils`` is the exception: setuptools installs a ``distutils`` of its own, so with
setuptools listed an import of it works, and with setuptools not listed (``pip freeze`` leaves it out) the finding
is unverified. A package of unknown version some of whose releases import removed modules gives an inferred warning;
a Python of unknown minor version gives nothing. The fix is the package's first later release that imports none of
them, or a Python before the removal.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import pip_install, requirement_install
from envdoctor.checks.release_scans import fetched_uses
from envdoctor.checks.wheels import cpython_tag
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, parsed_or_raise, read_json_object
from envdoctor.rules import parse_version
from envdoctor.snapshot import normalize_name

FILE = "stdlib_removals.json"
GENERATOR = "tools/gen_stdlib_removals.py"
SHIMMED_BY_SETUPTOOLS = "distutils"
PYTHON = "python"  # the provider of standard-library modules


@dataclass(frozen=True)
class ImportRow:
    """Releases ``versions`` of a package import ``modules`` (removed in Python ``removed_in``); ``at_import`` are
    those imported when a module of the package is imported."""

    versions: SpecifierSet
    removed_in: Version
    modules: frozenset[str]
    at_import: frozenset[str]
    first_free: str | None
    where: tuple[str, ...]


@dataclass(frozen=True)
class ProvidedModule:
    """A module distribution ``provider`` installed until its release ``removed_in`` (``last_with``: the release
    before, whose wheel ships it); ``sources``: ids of the provider's word and of its wheels."""

    provider: str  # normalized distribution name
    removed_in: Version
    last_with: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class StdlibRemovalTable:
    removed: dict[str, tuple[Version, str]]  # module -> (the Python release that removed it, source id)
    releases: dict[str, tuple[str, ...]]  # normalized package -> releases read, oldest first
    rows: dict[str, tuple[ImportRow, ...]]
    build_rows: dict[str, tuple[ImportRow, ...]]  # the imports of setup.py of releases without a wheel
    scan_source: str
    provided: dict[str, ProvidedModule] = field(default_factory=dict)  # module -> the distribution it came from
    # normalized package -> release -> its Requires-Dist lines naming a provider
    provider_requires: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    def imported(self, package: str, release: Version, python: Version,
                 build: bool = False) -> tuple[set[str], set[str]]:
        """The modules release ``release`` imports (its setup.py with ``build``) that Python ``python`` lacks, and
        those of them imported at import."""
        rows = [row for row in (self.build_rows if build else self.rows).get(package, ())
                if row.versions.contains(release, prereleases=True)]
        lacking = {m for row in rows for m in row.modules if m in self.removed and python >= self.removed[m][0]}
        return lacking, {m for row in rows for m in row.at_import} & lacking

    def provided_imports(self, package: str, release: Version) -> tuple[set[str], set[str], list[str]]:
        """The modules of ``provided`` that release ``release`` imports, those of them imported at import, and
        file:line of some of those imports."""
        rows = [row for row in self.rows.get(package, ()) if row.versions.contains(release, prereleases=True)
                and row.modules & set(self.provided)]
        modules = {m for row in rows for m in row.modules if m in self.provided}
        return modules, {m for row in rows for m in row.at_import} & modules, \
            sorted({w for row in rows for w in row.where})[:3]


@functools.lru_cache(maxsize=8)
def _load(path: Path, sources: frozenset[str]) -> StdlibRemovalTable | None:
    return parsed_or_raise(path, functools.partial(_read, sources=sources))


def load_stdlib_removals(matrices: Matrices) -> StdlibRemovalTable | None:
    """The table of the matrices folder (None when absent); a malformed one raises MatrixError naming the key."""
    return _load(matrices.root / FILE, frozenset(matrices.sources))


def _read(path: Path, errors: list[str], sources: frozenset[str]) -> StdlibRemovalTable | None:
    if (raw := read_json_object(path, errors, GENERATOR)) is None:
        return None
    removed: dict[str, tuple[Version, str]] = {}
    provided: dict[str, ProvidedModule] = {}
    listed_removed = raw.get("removed")
    for module, entry in (listed_removed if isinstance(listed_removed, dict) else {}).items():
        try:
            listed = [entry["source"]] + ([entry["wheels_source"]] if entry["provider"] != PYTHON else [])
            if unknown := [source for source in listed if source not in sources]:
                raise ValueError(f"source {unknown[0]!r} is not in matrices/sources*.toml")
            if entry["provider"] == PYTHON:
                removed[module] = (Version(entry["removed_in"]), entry["source"])
            else:
                last = entry["last_with"]["version"]
                if Version(last) >= Version(entry["removed_in"]):
                    raise ValueError(f"last_with {last} is not before removed_in")
                provided[module] = ProvidedModule(normalize_name(str(entry["provider"])), Version(entry["removed_in"]),
                                                  str(last), tuple(listed))
        except (KeyError, TypeError, ValueError, InvalidVersion) as problem:
            errors.append(f"{path}: removed.{module}: needs provider (python or a distribution), removed_in (a "
                          f"release of it) and source, and for a distribution wheels_source and last_with.version "
                          f"({problem}); regenerate it with {GENERATOR}")
    if raw.get("scan_source") not in sources:
        errors.append(f"{path}: scan_source: {raw.get('scan_source')!r} is not in matrices/sources*.toml")
    releases: dict[str, tuple[str, ...]] = {}
    rows: dict[str, tuple[ImportRow, ...]] = {}
    build_rows: dict[str, tuple[ImportRow, ...]] = {}
    provider_requires: dict[str, dict[str, tuple[str, ...]]] = {}
    known = {**{m: release for m, (release, _) in removed.items()},
             **{m: module.removed_in for m, module in provided.items()}}
    packages = raw.get("packages")
    for package, entry in (packages if isinstance(packages, dict) else {}).items():
        name = normalize_name(str(package))
        try:
            releases[name] = tuple(str(v) for v in entry["releases"])
            rows[name] = tuple(_row(item, known) for item in entry["rows"])
            build_rows[name] = tuple(_row(item, known) for item in entry["build_rows"])
            if (rows[name] or build_rows[name]) and not releases[name]:
                raise ValueError("rows over an empty list of releases")
            provider_requires[name] = {str(release): _lines(lines) for release, lines in
                                       entry["provider_requires"].items()}
        except (KeyError, TypeError, ValueError, AttributeError, InvalidSpecifier, InvalidVersion) as problem:
            errors.append(f"{path}: packages.{package}: needs releases, rows and build_rows of versions, "
                          f"removed_in, modules (removed modules), at_import (among them), first_free, where, and "
                          f"provider_requires (release -> Requires-Dist lines) ({problem}); regenerate it with "
                          f"{GENERATOR}")
    if not isinstance(packages, dict):
        errors.append(f"{path}: packages: expected an object; regenerate it with {GENERATOR}")
    return StdlibRemovalTable(removed, releases, rows, build_rows, str(raw.get("scan_source")), provided,
                              provider_requires)


def _lines(lines: Any) -> tuple[str, ...]:
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise ValueError(f"{lines!r} is not a list of Requires-Dist lines")
    return tuple(lines)


def _row(item: dict[str, Any], known: dict[str, Version]) -> ImportRow:
    """``known``: every module of the table -> the release (of Python or of its provider) that removed it."""
    modules, at_import = frozenset(item["modules"]), frozenset(item["at_import"])
    if not modules or not modules <= set(known) or not at_import <= modules:
        raise ValueError(f"modules {sorted(modules)} must be removed modules, at_import {sorted(at_import)} among them")
    if {known[m] for m in modules} != {Version(item["removed_in"])}:
        raise ValueError(f"removed_in {item['removed_in']} is not when {sorted(modules)} were removed")
    free = item["first_free"]
    if free is not None:
        Version(free)
    return ImportRow(SpecifierSet(item["versions"]), Version(item["removed_in"]), modules, at_import, free,
                     tuple(str(w) for w in item["where"]))


# --- the check ----------------------------------------------------------------------------------------


def check_stdlib_removals(ctx: CheckContext) -> list[Finding]:
    python = _python_minor(ctx.snapshot.python.version)
    packages = ctx.snapshot.packages or {}
    table = load_stdlib_removals(ctx.matrices) if python is not None else None
    if table is None or python is None:
        return []
    table = _with_fetched_releases(ctx, table)
    shim = "setuptools" in packages
    findings = []
    for name in sorted(set(table.rows) & set(packages)):
        version = packages[name].version
        release = parse_version(version) if version else None
        if release is not None:
            found = [_known(ctx, table, name, Version(release.public), python, shim),
                     _known_build(ctx, table, name, Version(release.public), python)]
        else:
            found = [_unknown_version(ctx, table, name, python, shim)]
        findings += [finding for finding in found if finding is not None]
    return findings


def _with_fetched_releases(ctx: CheckContext, table: StdlibRemovalTable) -> StdlibRemovalTable:
    """The table, plus rows for each installed package it lacks whose release ``check --online`` read
    (``stdlib_names`` of the fetched facts: the installed release, or the newest when the version is unknown)."""
    rows, read = dict(table.rows), dict(table.releases)
    for name, release, by_release in fetched_uses(
            ctx, table.rows, lambda facts: facts.stdlib_names,
            lambda used: table.removed[used][0] if used in table.removed else None):
        rows[name] = tuple(ImportRow(SpecifierSet(f"=={release.version}"), removed_in,
                                     frozenset(n for n, _, _ in group), frozenset(n for n, at, _ in group if at),
                                     None, tuple(where for _, _, where in group))
                           for removed_in, group in sorted(by_release.items()))
        read[name] = (release.version,)
    return replace(table, rows=rows, releases=read, build_rows={name: () for name in rows} | table.build_rows)


def _python_minor(version: str | None) -> Version | None:
    """``3.12`` of ``3.12.4``; None when unknown or not ``3.N...``."""
    minor = cpython_tag(version)
    return Version(f"3.{minor}") if minor is not None else None


def _described(table: StdlibRemovalTable, modules: set[str]) -> str:
    """``imp, asyncore (removed in Python 3.12); cgi (removed in Python 3.13)``."""
    by_release: dict[Version, list[str]] = {}
    for module in sorted(modules):
        by_release.setdefault(table.removed[module][0], []).append(module)
    return "; ".join(f"{', '.join(group)} (removed in Python {release})"
                     for release, group in sorted(by_release.items()))


def _first_free(table: StdlibRemovalTable, name: str, after: Version, python: Version, shim: bool) -> str | None:
    """The first release read after ``after`` whose code and build import none of the modules ``python`` lacks."""
    for text in table.releases.get(name, ()):
        release = parse_version(text)
        if release is not None and release > after and not _lacking(table, name, release, python, shim)[0] \
                and not table.imported(name, release, python, build=True)[0]:
            return text
    return None


def _lacking(table: StdlibRemovalTable, name: str, release: Version, python: Version,
             shim: bool) -> tuple[set[str], set[str]]:
    """What ``table.imported`` gives for the release's code, without distutils when setuptools provides it, and
    without names removed from remaining modules that only functions use: those are most often compatibility
    paths never taken on Python 3 (fire's ``Py2GetArgSpec`` calls ``inspect.getargspec``)."""
    lacking, at_import = table.imported(name, release, python)
    drop = {SHIMMED_BY_SETUPTOOLS} if shim else set()
    drop |= {removed for removed in lacking if "." in removed and removed not in at_import}
    return lacking - drop, at_import - drop


def _fix(ctx: CheckContext, table: StdlibRemovalTable, name: str, free: str | None, modules: set[str]) -> str:
    oldest = min(table.removed[m][0] for m in modules)
    fixes = [requirement_install(ctx, name, f">={free}") if free else None,
             pip_install("setuptools") if modules == {SHIMMED_BY_SETUPTOOLS} else None,
             f"a Python before {oldest} (3.{oldest.minor - 1})"]
    return "   # or: ".join(fix for fix in fixes if fix)


def _sources(table: StdlibRemovalTable, modules: set[str]) -> tuple[str, ...]:
    return (*sorted({table.removed[m][1] for m in modules}), table.scan_source)


def _error(removed: str) -> str:
    """What Python raises at the use: a removed module, or a name removed from a module that remains
    (``pkgutil.ImpImporter``, used as an attribute or imported by name)."""
    module, _, name = removed.partition(".")
    if name:
        return f"AttributeError: module '{module}' has no attribute '{name}' (or ImportError: cannot import name " \
               f"'{name}' from '{module}')"
    return f"ModuleNotFoundError: No module named '{removed}'"


def _known(ctx: CheckContext, table: StdlibRemovalTable, name: str, release: Version, python: Version,
           shim: bool) -> Finding | None:
    lacking, at_import = _lacking(table, name, release, python, shim)
    if not lacking:
        return None
    rows = [row for row in table.rows[name] if row.versions.contains(release, prereleases=True)]
    where = sorted({w for row in rows if row.modules & lacking for w in row.where})[:3]
    free = _first_free(table, name, release, python, shim)
    certain = lacking - {SHIMMED_BY_SETUPTOOLS}
    if at_import:
        when = (f"it imports {', '.join(sorted(at_import))} at module level, so importing the module that does fails "
                f"with {_error(sorted(at_import)[0])}")
    else:
        when = f"only inside functions: calling them fails with {_error(sorted(lacking)[0])}"
    caveat = "" if not lacking - certain else \
        ("; setuptools is not listed in the snapshot (pip freeze leaves it out): when it is installed it provides "
         "distutils and that import works")
    later = f"; {name} {free} is the first later release without them" if free else \
        f"; no later release of {name} read (up to {table.releases[name][-1]}) is free of them"
    return Finding(
        rule="stdlib-removed-module-imported", category=Category.PYTHON,
        severity=Severity.FAIL if at_import & certain else Severity.WARN, components=(name, "python"),
        sources=_sources(table, lacking), verified=bool(certain),
        message=f"{name} {release} imports {_described(table, lacking)} and this is Python {python}: {when} "
        f"(e.g. {', '.join(where)}){caveat}{later}",
        fix=_fix(ctx, table, name, free, lacking),
    )


def _unknown_version(ctx: CheckContext, table: StdlibRemovalTable, name: str, python: Version,
                     shim: bool) -> Finding | None:
    def lacking_in(release: Version) -> set[str]:
        return _lacking(table, name, release, python, shim)[0] | table.imported(name, release, python, build=True)[0]

    using = [release for text in table.releases[name] if (release := parse_version(text)) is not None
             and lacking_in(release)]
    if not using:
        return None
    lacking = {m for release in using for m in lacking_in(release)}
    free = _first_free(table, name, using[-1], python, shim)
    later = f"{free} is the first later release without them" if free else \
        f"every release up to the newest read, {table.releases[name][-1]}, imports some"
    return Finding(
        rule="stdlib-removed-module-unknown-version", category=Category.PYTHON, severity=Severity.WARN,
        components=(name, "python"), sources=_sources(table, lacking), verified=False,
        message=f"{name} is installed (version unknown) on Python {python}; its releases {using[0]} to {using[-1]} "
        f"import {_described(table, lacking)} in their code or, without a wheel, in setup.py ({later}): with such "
        f"a release, importing it, calling the functions that import them or building it fails with "
        f"{_error(sorted(lacking)[0])}",
        fix=_fix(ctx, table, name, free, lacking),
    )


def _known_build(ctx: CheckContext, table: StdlibRemovalTable, name: str, release: Version,
                 python: Version) -> Finding | None:
    lacking = table.imported(name, release, python, build=True)[0]
    if not lacking:
        return None
    free = _first_free(table, name, release, python, shim=True)
    return Finding(
        rule="stdlib-removed-module-in-build", category=Category.PYTHON, severity=Severity.WARN,
        components=(name, "python"), sources=_sources(table, lacking), verified=True,
        message=f"{name} {release} has no wheel on PyPI and its setup.py imports {_described(table, lacking)}: "
        f"installing or reinstalling it on Python {python} fails while pip builds it, with "
        f"{_error(sorted(lacking)[0])} (installs of packages that require {name} fail the same way)",
        fix=_fix(ctx, table, name, free, lacking),
    )
