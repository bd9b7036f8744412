"""Undeclared API breaks (``matrices/api_breaks.toml``): a package release that uses a name another package
removed, or has not added yet, while neither declares the conflict.

Both versions known and in their ranges: the import fails (FAIL). One version unknown: when the known side is in
its range, whether the import breaks depends on the unknown version; when the unknown side's current release (the
newest in the bundled PyPI tables for this Python) is in its range a package installed or upgraded lately breaks,
when only older releases are, one pinned or installed earlier breaks. Both are inferred: a warning with
``verified=false`` (information when those older releases are more than a year older than the known side). Both
versions unknown: a warning, inferred, when releases of the two ranges came out within a year of each other (an
old pin beside a later upgrade); nothing when they are years apart, or no installable release is in range.

The fix is the smaller of the two changes (fewer recorded releases to cross), the other after ``# or:``.
"""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.api_breaks import ApiBreak, api_breaks
from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import release_facts, releases
from envdoctor.release_dates import months_between
from envdoctor.rules import matches_specifier

ESCAPE = {">=": "<", ">": "<=", "<": ">=", "<=": ">"}


def check_api_breaks(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    findings = []
    for entry in api_breaks(ctx.matrices.root):
        importer, provider = packages.get(entry.importer), packages.get(entry.provider)
        if importer is None or provider is None:
            continue
        if importer.version is not None and provider.version is not None:
            if (matches_specifier(importer.version, entry.importer_range)
                    and matches_specifier(provider.version, entry.provider_range)):
                findings.append(_broken(ctx, entry, importer.version, provider.version))
        elif importer.version is not None or provider.version is not None:
            finding = _inferred(ctx, entry, importer.version, provider.version)
            if finding is not None:
                findings.append(finding)
        elif (entry.importer, entry.provider) not in {f.components for f in findings}:
            finding = _both_unknown(ctx, entry)
            if finding is not None:
                findings.append(finding)
    return findings


def _both_unknown(ctx: CheckContext, entry: ApiBreak) -> Finding | None:
    """Both versions unknown: warn (verified=false) when releases of the two ranges came out within
    CONTEMPORARY_MONTHS of each other, so a partial upgrade or an old pin puts them together."""
    spans = [_dates_in(ctx, package, entry.range_of(package)) for package in (entry.importer, entry.provider)]
    if not spans[0] or not spans[1]:
        return None
    (first_a, last_a), (first_b, last_b) = spans
    gap = max(0, months_between(last_a, first_b), months_between(last_b, first_a))
    if gap > CONTEMPORARY_MONTHS:
        return None
    return Finding(
        rule="api-break-unknown-version", category=Category.VERSION, severity=Severity.WARN,
        components=(entry.importer, entry.provider), sources=entry.sources, verified=False,
        message=f"{entry.importer} and {entry.provider} are installed with unknown versions; {entry.importer} "
        f"{entry.importer_range} uses {entry.name} from {entry.provider}, which {entry.provider} "
        f"{entry.provider_range} lacks (releases of both ranges came out {gap} months or less apart), so "
        f"(inferred, not verified) such a pair fails with {entry.error}",
        fix=f"pip show {entry.importer} {entry.provider}   # their versions; then envdoctor check again",
    )


def _dates_in(ctx: CheckContext, package: str, within: str) -> tuple[str, str] | None:
    """The first and last upload dates of the recorded releases of ``package`` in ``within``."""
    dates = sorted(r.date for r in releases(package, ctx.matrices.root)
                   if not r.yanked and matches_specifier(r.version, within))
    return (dates[0], dates[-1]) if dates else None


def _broken(ctx: CheckContext, entry: ApiBreak, importer_version: str, provider_version: str) -> Finding:
    # On a tie the importer moves: the provider is usually what the rest of the environment relies on.
    moves = sorted([_move(ctx, entry.importer, entry.importer_range, importer_version),
                    _move(ctx, entry.provider, entry.provider_range, provider_version)], key=lambda m: m[0])
    return Finding(
        rule="api-break", category=Category.VERSION, severity=Severity.FAIL,
        components=(moves[0][1], moves[1][1]), sources=entry.sources,
        message=f"{entry.importer} {importer_version} uses {entry.name} from {entry.provider}, which "
        f"{entry.provider} {provider_version} lacks ({entry.provider} {entry.provider_range}; neither package "
        f"declares this): it fails with {entry.error}",
        fix="   # or: ".join(command for _, _, command in moves if command) or None,
    )


def _inferred(ctx: CheckContext, entry: ApiBreak, importer_version: str | None,
              provider_version: str | None) -> Finding | None:
    """One side known and in its range; the other unknown. Whether the import breaks depends on the unknown
    version, so this warns (verified=false) when any release of the unknown side that installs on this Python lies
    in its range: its newest (a package installed or upgraded lately breaks), or older ones (one that a project
    pins, or that was installed before, breaks). Silent when no recorded release is in range."""
    known, unknown = ((entry.importer, importer_version), entry.provider) if importer_version is not None \
        else ((entry.provider, provider_version), entry.importer)
    known_name, known_version = known
    if known_version is None or not matches_specifier(known_version, entry.range_of(known_name)):
        return None
    installable = _installable(ctx, unknown)
    in_range = [v for v in installable if matches_specifier(v, entry.range_of(unknown))]
    if not in_range:
        return None
    current = installable[-1]
    moves = [_move(ctx, unknown, entry.range_of(unknown), in_range[-1]),
             _move(ctx, known_name, entry.range_of(known_name), known_version)]
    side = "uses" if known_name == entry.importer else "lacks"
    severity = Severity.WARN
    if in_range[-1] == current:
        which = (f"its current release {current} is in {entry.range_of(unknown)}, so (inferred, not verified) a "
                 f"{unknown} installed or upgraded lately")
    else:
        which = (f"its releases {in_range[0]} to {in_range[-1]} are in {entry.range_of(unknown)} (the current one, "
                 f"{current}, is not), so (inferred, not verified) an older {unknown}, as a project's pin or an "
                 "earlier install leaves it,")
        gap = _months_apart(ctx, (unknown, in_range[-1]), (known_name, known_version))
        if gap is not None and gap > CONTEMPORARY_MONTHS:
            severity = Severity.INFO  # the pair spans years: installed together only by a deliberate old pin
            which += f" (its last such release came out {gap} months before {known_name} {known_version})"
    return Finding(
        rule="api-break-unknown-version", category=Category.VERSION, severity=severity,
        components=(unknown, known_name), sources=entry.sources, verified=False,
        message=f"{known_name} {known_version} {side} {entry.name} ({entry.importer} {entry.importer_range} "
        f"uses it from {entry.provider}; {entry.provider} {entry.provider_range} lacks it). {unknown} is installed "
        f"with an unknown version; {which} fails with {entry.error}",
        fix="   # or: ".join(command for _, _, command in moves if command) or None,
    )


def _move(ctx: CheckContext, package: str, within: str, version: str) -> tuple[int, str, str | None]:
    """The nearest way out of ``within`` from ``version``: (recorded releases crossed, package, pip command)."""
    history = [Version(r.version) for r in releases(package, ctx.matrices.root) if not r.yanked]
    options = []
    for specifier in SpecifierSet(within):
        bound = Version(specifier.version)
        escape = f"{ESCAPE[specifier.operator]}{specifier.version}"
        options.append((_crossed(history, _public(version), bound), escape))
    crossed, escape = min(options)
    return crossed, package, requirement_install(ctx, package, escape)


def _crossed(history: list[Version], version: Version | None, bound: Version) -> int:
    """Recorded releases between the installed version and the bound (the releases a move passes over)."""
    if version is None:
        return len(history)
    low, high = sorted((version, bound))
    return sum(1 for release in history if low <= release < high) or 1


# An older release of the unknown side breaks with the known one; it warns when that release is at most this many
# months older than the known release (versions of one era, as a project's pins or a partial upgrade leave them).
CONTEMPORARY_MONTHS = 12


def _months_apart(ctx: CheckContext, older: tuple[str, str], newer: tuple[str, str]) -> int | None:
    """Whole months from the release date of ``older`` (package, version) to that of ``newer``; None if unrecorded."""
    dates = [release_facts(package, version, ctx.matrices.root) for package, version in (older, newer)]
    if dates[0] is None or dates[1] is None:
        return None
    return months_between(dates[0].date, dates[1].date)


def _installable(ctx: CheckContext, package: str) -> list[str]:
    """The releases pip can pick here, oldest first: final, not yanked releases in the bundled PyPI tables that
    accept the snapshot's Python (when known); [] when not recorded."""
    python = ctx.snapshot.python.version
    finals = [r.version for r in releases(package, ctx.matrices.root)
              if not r.yanked and _public(r.version) is not None and not Version(r.version).is_prerelease
              and not (python and r.requires_python and not matches_specifier(python, r.requires_python))]
    return sorted(finals, key=Version)


def _public(version: str) -> Version | None:
    try:
        return Version(Version(version).public)
    except InvalidVersion:
        return None
