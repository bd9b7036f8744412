"""Upper bounds that a later patch release of the same series added: the maintainers' own word that the series
breaks with newer releases of a dependency.

For each installed package of known version in the PyPI tables, and each installed dependency of known version
that the installed release's own Requires-Dist accepts: when a later release of the same major.minor series
declares an upper bound on that dependency (``<``, ``<=``, ``==``, ``~=``) that the installed dependency is above,
the installed release most likely breaks with it too, though its metadata does not say so (trl 0.12.2 added
``transformers<4.47.0``; trl 0.12.1 fails with transformers 4.47.0 at its first logging step). An inferred
warning; the fix is the cap, or the owner's nearest later release that accepts the installed dependency.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.requirements import accepts, applicable_requirements, marker_environment
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import ReleaseFacts, release_facts, releases, releases_where
from envdoctor.rules import parse_version
from envdoctor.snapshot import normalize_name

CAP_OPERATORS = ("<", "<=", "==", "~=")


@dataclass(frozen=True)
class LaterCap:
    """A later release of the owner's series that caps a dependency below the installed version."""

    owner: str
    installed: ReleaseFacts
    capped_by: ReleaseFacts
    dependency: str
    dependency_version: str
    cap: str  # the specifier text of the capping requirement


def check_later_caps(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    known = {name: package.version for name, package in packages.items() if package.version}
    environment = marker_environment(ctx.snapshot)
    findings = []
    for owner, version in sorted(known.items()):
        installed = release_facts(owner, version, ctx.matrices.root)
        mine = parse_version(installed.version) if installed is not None else None
        if installed is None or installed.requires is None or mine is None:
            continue
        later = releases_where(owner, functools.partial(_later_in_series, mine), ctx.matrices.root,
                               series=(mine.release + (0,))[:2])
        series = [release for release in later if not release.yanked and release.requires is not None]
        for cap in later_caps(installed, series, known, environment):
            findings.append(_finding(ctx, cap, releases(owner, ctx.matrices.root), environment))
    return findings


def later_caps(installed: ReleaseFacts, series: list[ReleaseFacts], known: dict[str, str],
               environment: dict[str, str]) -> list[LaterCap]:
    """The first later release of the series capping each installed dependency below its installed version, for
    the dependencies the installed release itself accepts."""
    found: dict[str, LaterCap] = {}
    for release in series:
        for name, specifier in _requirements(release, environment).items():
            version = known.get(name)
            if version is None or name in found or name == installed.package:
                continue
            if not accepts(installed, name, version, environment) or not _caps_below(specifier, version):
                continue
            found[name] = LaterCap(installed.package, installed, release, name, version, specifier)
    return list(found.values())


def _requirements(release: ReleaseFacts, environment: dict[str, str]) -> dict[str, str]:
    """Each required package's specifier (several lines on one package joined), markers applied."""
    joined: dict[str, list[str]] = {}
    for requirement in applicable_requirements(release.requires or (), environment):
        if requirement.specifier:
            joined.setdefault(normalize_name(requirement.name), []).append(requirement.specifier)
    return {name: ",".join(parts) for name, parts in joined.items()}


def _caps_below(specifier: str, version: str) -> bool:
    """Whether an upper bound of ``specifier`` excludes ``version`` from above."""
    try:
        installed = Version(version.split("+", 1)[0])
        clauses = list(SpecifierSet(specifier))
    except (InvalidSpecifier, InvalidVersion):
        return False
    for clause in clauses:
        if clause.operator not in CAP_OPERATORS or clause.contains(installed, prereleases=True):
            continue
        bound = parse_version(clause.version.replace(".*", ""))
        if bound is not None and (installed > bound or (clause.operator == "<" and installed == bound)):
            return True
    return False


def _later_in_series(mine: Version, theirs: Version) -> bool:
    """A final release after the installed one (``mine``) with the same major.minor."""
    return theirs > mine and theirs.release[:2] == mine.release[:2] and not theirs.is_prerelease


def _finding(ctx: CheckContext, cap: LaterCap, history: tuple[ReleaseFacts, ...],
             environment: dict[str, str]) -> Finding:
    owner, installed, later = cap.owner, cap.installed, cap.capped_by
    accepting = _next_accepting(installed, history, cap.dependency, cap.dependency_version, environment)
    fixes = [requirement_install(ctx, cap.dependency, cap.cap)]
    if accepting is not None:
        fixes.append(requirement_install(ctx, owner, f">={accepting.version}"))
    return Finding(
        rule="declared-cap-added-later",
        category=ctx.matrices.policy.requirement_category.get(cap.dependency, Category.VERSION), severity=Severity.WARN,
        components=(cap.dependency, owner), sources=("pypi-metadata",), verified=False,
        message=f"{owner} {later.version} ({later.date}), a later release of the same series as the installed "
        f"{owner} {installed.version}, requires {cap.dependency}{cap.cap}: its maintainers capped {cap.dependency} "
        f"for this series, and {cap.dependency} {cap.dependency_version} is above the cap. {owner} "
        f"{installed.version} does not declare it, but most likely breaks with it too (inferred)",
        fix="   # or: ".join(fix for fix in fixes if fix) or None,
    )


def _next_accepting(installed: ReleaseFacts, history: tuple[ReleaseFacts, ...], name: str, version: str,
                    environment: dict[str, str]) -> ReleaseFacts | None:
    """The owner's first release after the installed series whose requirements accept the installed dependency."""
    mine = parse_version(installed.version)
    for release in history:
        parsed = parse_version(release.version)
        if mine is None or parsed is None or release.yanked or parsed.is_prerelease or release.requires is None \
                or parsed.release[:2] <= mine.release[:2]:
            continue
        if accepts(release, name, version, environment):
            return release
    return None
