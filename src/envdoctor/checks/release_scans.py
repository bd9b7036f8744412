"""Pieces shared by the tables read from each release of a package (NumPy names in ``numpy_aliases.py``, protobuf
gencode in ``protobuf_gencode.py``, standard-library removals in ``stdlib_removals.py``): reading their per-package
releases and rows, the uses ``check --online`` read from the code of a package such a table lacks, and sending each
installed package of a table to the check that fits which of its version and the dependency's version are known."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, TypeVar

from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.findings import Finding
from envdoctor.pypi_facts import ReleaseFacts, fetched_packages, newest_release, release_facts
from envdoctor.rules import parse_version
from envdoctor.snapshot import normalize_name

Row = TypeVar("Row")
Key = TypeVar("Key")
Use = tuple[str, bool, str]  # (name, used at import, "file:line")


def fetched_uses(ctx: CheckContext, tabled: Collection[str], uses_of: Callable[[ReleaseFacts], tuple[Use, ...]],
                 key_of: Callable[[str], Key | None]) -> list[tuple[str, ReleaseFacts, dict[Key, list[Use]]]]:
    """For each installed package outside ``tabled`` whose facts ``check --online`` fetched: the release read (the
    installed one, or the newest when the version is unknown) and its uses (``uses_of``) that the table knows, grouped
    by ``key_of(name)`` (None: not the table's); packages with no such use are left out. Only fetched facts carry
    uses: the bundled tables' packages need no look-up."""
    packages = ctx.snapshot.packages or {}
    found = []
    for name in sorted((set(fetched_packages()) & set(packages)) - set(tabled)):
        version = packages[name].version
        release = release_facts(name, version, ctx.matrices.root) if version else newest_release(name,
                                                                                                   ctx.matrices.root)
        groups: dict[Key, list[Use]] = {}
        for use in uses_of(release) if release is not None else ():
            key = key_of(use[0])
            if key is not None:
                groups.setdefault(key, []).append(use)
        if groups and release is not None:
            found.append((name, release, groups))
    return found


def public_version(version: str | None) -> Version | None:
    """``1.24.3`` of ``1.24.3+local``; None for an unknown or non-PEP 440 version."""
    parsed = parse_version(version) if version else None
    return Version(parsed.public) if parsed is not None else None


def read_package_rows(packages: Any, error: Callable[[str, str], None], read_row: Callable[[str, Any], Row | str],
                      releases_must_parse: bool = False
                      ) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[Row, ...]]]:
    """The releases read and the rows of each package of a table's ``packages`` object, by normalized name;
    ``read_row(name, item)`` gives a row or what is wrong with it. Each problem goes to ``error(key, problem)`` and
    leaves out the package or row."""
    releases: dict[str, tuple[str, ...]] = {}
    rows: dict[str, tuple[Row, ...]] = {}
    if not isinstance(packages, dict):
        error("packages", "expected an object")
        packages = {}
    for package, entry in packages.items():
        name = normalize_name(str(package))
        listed = entry.get("releases") if isinstance(entry, dict) else None
        if not isinstance(listed, list) or not all(
                isinstance(v, str) and (not releases_must_parse or parse_version(v)) for v in listed):
            error(f"packages.{package}.releases", "expected a list of version strings")
            continue
        items = entry.get("rows")
        if not isinstance(items, list) or (items and not listed):
            error(f"packages.{package}.rows", "expected a list of rows, over a non-empty list of releases")
            continue
        releases[name] = tuple(listed)
        found = []
        for i, item in enumerate(items):
            row = read_row(name, item)
            if isinstance(row, str):
                error(f"packages.{package}.rows[{i}]", row)
            else:
                found.append(row)
        rows[name] = tuple(found)
    return releases, rows


def findings_by_known_versions(installed: dict[str, Version | None], dependency: Version | None,
                               known: Callable[[str, Version, Version], Finding | None],
                               package_unknown: Callable[[str, Version], Finding | None],
                               dependency_unknown: Callable[[str, Version], Finding | None],
                               both_unknown: Callable[[str], Finding | None] | None = None) -> list[Finding]:
    """The findings of each installed package (name -> its release, None when unknown) beside the dependency:
    ``known(name, release, dependency)`` when both versions are known, ``package_unknown(name, dependency)`` or
    ``dependency_unknown(name, release)`` when one is, ``both_unknown(name)`` (when given) when neither is."""
    findings = []
    for name, release in installed.items():
        if dependency is not None and release is not None:
            finding = known(name, release, dependency)
        elif dependency is not None:
            finding = package_unknown(name, dependency)
        elif release is not None:
            finding = dependency_unknown(name, release)
        else:
            finding = both_unknown(name) if both_unknown is not None else None
        if finding is not None:
            findings.append(finding)
    return findings
