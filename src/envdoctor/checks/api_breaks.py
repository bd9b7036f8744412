"""Undeclared API breaks (``matrices/api_breaks.toml``): a package release that uses a name another package
removed, or has not added yet, while neither declares the conflict.

Both versions known and in their ranges: the import fails (FAIL). One version unknown: when the known side is in
its range and the unknown side's current release (the newest in the bundled PyPI tables) is in its range, a
package installed or upgraded lately breaks; that is inferred, so it warns with ``verified=false``.

The fix is the smaller of the two changes (fewer recorded releases to cross), the other after ``# or:``.
"""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.api_breaks import ApiBreak, api_breaks
from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import releases
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
    return findings


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
    """One side known and in its range; the other unknown, judged on its newest recorded release."""
    known, unknown = ((entry.importer, importer_version), entry.provider) if importer_version is not None \
        else ((entry.provider, provider_version), entry.importer)
    known_name, known_version = known
    if known_version is None or not matches_specifier(known_version, entry.range_of(known_name)):
        return None
    current = _newest(ctx, unknown)
    if current is None or not matches_specifier(current, entry.range_of(unknown)):
        return None
    moves = [_move(ctx, unknown, entry.range_of(unknown), current),
             _move(ctx, known_name, entry.range_of(known_name), known_version)]
    side = "uses" if known_name == entry.importer else "lacks"
    return Finding(
        rule="api-break-unknown-version", category=Category.VERSION, severity=Severity.WARN,
        components=(unknown, known_name), sources=entry.sources, verified=False,
        message=f"{known_name} {known_version} {side} {entry.name} ({entry.importer} {entry.importer_range} "
        f"uses it from {entry.provider}; {entry.provider} {entry.provider_range} lacks it). {unknown} is installed "
        f"with an unknown version; its current release {current} is in {entry.range_of(unknown)}, so (inferred, "
        f"not verified) a {unknown} installed or upgraded lately fails with {entry.error}",
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


def _newest(ctx: CheckContext, package: str) -> str | None:
    """The release pip would pick today: the newest final, not yanked release in the bundled PyPI tables that
    accepts the snapshot's Python (when known); None when not recorded."""
    python = ctx.snapshot.python.version
    finals = [r.version for r in releases(package, ctx.matrices.root)
              if not r.yanked and _public(r.version) is not None and not Version(r.version).is_prerelease
              and not (python and r.requires_python and not matches_specifier(python, r.requires_python))]
    return max(finals, key=Version) if finals else None


def _public(version: str) -> Version | None:
    try:
        return Version(Version(version).public)
    except InvalidVersion:
        return None
