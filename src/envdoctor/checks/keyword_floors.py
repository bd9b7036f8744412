"""Keyword arguments a library passes to a trainer-level callable of a provider package (``SFTTrainer``,
``TrainingArguments``, ``LoraConfig``, ``Accelerator``...), against the installed provider release
(``envdoctor.keyword_floors``).

Both versions known and covered by the table: when the importer release writes a keyword at a call that the
installed provider release does not accept (no such parameter or dataclass field, no ``**kwargs``, no
``@deprecate_kwarg`` for it), the call fails with ``TypeError: X.__init__() got an unexpected keyword argument`` (FAIL).
The fix is the provider range, nearest to the installed release, that accepts every keyword this importer release
passes to it, or the importer release nearest to the installed one whose keywords the installed provider accepts.

The provider's version unknown (installed, version not recorded): pip gave it the newest release the importer's
Requires-Dist admits (as the table read it, else the bundled PyPI tables; the table's newest when neither says); when
that release lacks a keyword, an inferred warning (``verified=false``). The importer's version unknown: it is judged
as its newest release when that is the newest PyPI has (an inferred warning too). Both unknown: nothing. A keyword
whose acceptance could not be told counts as accepted.

One cause, one finding: a pair that ``matrices/api_breaks.toml`` already judges at these versions, or whose importer
release declares a requirement the provider release fails (in the table or the bundled PyPI tables), is left to those
checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.import_floors import declares_against, is_newest_release, judged_elsewhere, release_runs
from envdoctor.findings import Category, Finding, Severity
from envdoctor.keyword_floors import KeywordTable, KeywordUse, keyword_table
from envdoctor.pypi_facts import release_facts
from envdoctor.snapshot import normalize_name

SOURCE = "keyword-floors"


@dataclass(frozen=True)
class Pair:
    """An installed importer and provider, as the table writes their releases (``provider_release``: the installed
    one, or the one pip would have chosen when its version is unknown)."""

    importer: str
    importer_release: str
    provider: str
    provider_release: str
    installed: dict[str, str | None]  # provider -> installed release (None: version unknown)
    unknown: str | None = None  # the package whose version is unknown, if one is


def check_keyword_floors(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    table = keyword_table(ctx.matrices.root, packages)
    if table is None:
        return []
    installed = {provider: table.release(provider, packages[provider].version, provider=True)
                 for provider in table.provider_releases if provider in packages}
    findings = []
    for importer in sorted(table.importer_releases):
        if importer not in packages:
            continue
        importer_known = packages[importer].version is not None
        newest = table.importer_releases[importer][-1]
        if importer_known:
            release = table.release(importer, packages[importer].version)
        else:  # judged as its newest release, when that is the newest PyPI has
            release = newest if is_newest_release(ctx, importer, newest) else None
        if release is None:
            continue
        for provider in sorted(installed):
            if provider == importer or not table.uses_of(importer, release, provider):
                continue
            known = packages[provider].version is not None
            if not known and not importer_known:
                continue  # both unknown: nothing to pair
            provider_release = installed[provider] if known else _pip_choice(ctx, table, importer, release, provider)
            if provider_release is None or _declared_against(table, importer, release, provider, provider_release) \
                    or judged_elsewhere(ctx, importer, release, provider, provider_release):
                continue
            unknown = None if known and importer_known else provider if not known else importer
            pair = Pair(importer, release, provider, provider_release, installed, unknown)
            missing = [use for use in table.uses_of(importer, release, provider)
                       if table.accepts(use, provider_release, installed) == "no"]
            if missing:
                findings.append(_finding(ctx, table, pair, missing))
    return findings


def _declared_against(table: KeywordTable, importer: str, release: str, provider: str, provider_release: str) -> bool:
    """Whether the importer release's Requires-Dist, as the table read it, excludes the provider release (a declared
    conflict: the declared-requirements check's finding)."""
    specifier = table.declared(importer, release, provider)
    return specifier is not None and not specifier.contains(Version(provider_release), prereleases=True)


def _pip_choice(ctx: CheckContext, table: KeywordTable, importer: str, release: str, provider: str) -> str | None:
    """The newest provider release in the table that the importer release's Requires-Dist admits (read by the
    table's generator, else from the bundled PyPI tables)."""
    specifier = table.declared(importer, release, provider)
    facts = release_facts(importer, release, ctx.matrices.root) if specifier is None else None
    for line in (facts.requires or ()) if facts is not None else ():
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if normalize_name(requirement.name) == provider and requirement.marker is None:
            specifier = requirement.specifier
    listed = table.provider_releases[provider]
    admitted = [r for r in listed if specifier is None or specifier.contains(Version(r), prereleases=True)]
    return admitted[-1] if admitted else None


def _finding(ctx: CheckContext, table: KeywordTable, pair: Pair, missing: list[KeywordUse]) -> Finding:
    first = missing[0]
    facts = table.facts(first)
    called = facts.signature if facts is not None else f"{first.callable}()"
    error = f"TypeError: {called} got an unexpected keyword argument '{first.keyword}'"
    passed = f"{pair.importer} {pair.importer_release} passes {_listed(missing)} ({_where(missing)})"
    read = f"read from {table.sources.get(pair.importer, '?')} and {table.sources.get(pair.provider, '?')}"
    fixes = [_provider_fix(ctx, table, pair)]
    if pair.unknown != pair.provider:
        fixes.append(_importer_fix(ctx, table, pair))
    if pair.unknown is None:
        return Finding(
            rule="keyword-missing", category=Category.VERSION, severity=Severity.FAIL,
            components=(pair.importer, pair.provider), sources=(SOURCE,),
            message=f"{passed}, which {pair.provider} {pair.provider_release} does not accept "
            f"({_having(table, missing)}; {read}; neither package declares this): the call fails with {error}",
            fix="   # or: ".join(fix for fix in fixes if fix) or None)
    if pair.unknown == pair.provider:
        judged = f"{pair.provider} {pair.provider_release} (the newest release {pair.importer} " \
                 f"{pair.importer_release} admits)"
    else:
        judged = f"{pair.provider} {pair.provider_release}"
        passed = f"its newest release {passed.removeprefix(pair.importer + ' ')}"
    return Finding(
        rule="keyword-missing-unknown-version", category=Category.VERSION, severity=Severity.WARN,
        components=(pair.importer, pair.provider), sources=(SOURCE,), verified=False,
        message=f"{pair.unknown} is installed with an unknown version; {passed}, which {judged} does not accept "
        f"({_having(table, missing)}; {read}). So (inferred, not verified) a {pair.unknown} installed or upgraded "
        f"lately fails with {error}",
        fix="   # or: ".join(fix for fix in fixes if fix) or None)


def _listed(missing: list[KeywordUse]) -> str:
    shown = [f"{use.keyword}= to {use.callable}" for use in missing[:4]]
    return ", ".join(shown) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")


def _where(missing: list[KeywordUse]) -> str:
    return ", ".join(dict.fromkeys(use.where for use in missing[:3]))


def _having(table: KeywordTable, missing: list[KeywordUse]) -> str:
    """``trl 0.8.6 to 0.12.2 accept max_seq_length`` for the first three missing keywords."""
    parts = []
    for use in missing[:3]:
        listed = table.provider_releases[use.provider]
        runs = release_runs(listed, set(table.accepting(use)))
        if not runs:
            parts.append(f"no {use.provider} release from {listed[0]} to {listed[-1]} accepts {use.keyword}")
            continue
        spans = ", ".join(f"{listed[a]} to {listed[b]}" if a != b else listed[a] for a, b in runs[:3])
        parts.append(f"{use.provider} {spans} accept{'' if len(runs) > 1 or runs[0][0] != runs[0][1] else 's'} "
                     f"{use.keyword}")
    return "; ".join(parts)


def _provider_fix(ctx: CheckContext, table: KeywordTable, pair: Pair) -> str | None:
    """The provider range, nearest to the release judged, that accepts every keyword this importer release passes
    to the provider, within what the importer release declares."""
    listed = table.provider_releases[pair.provider]
    uses = table.uses_of(pair.importer, pair.importer_release, pair.provider)
    good = {r for r in listed if all(table.accepts(use, r, pair.installed) != "no" for use in uses)
            and not _declared_against(table, pair.importer, pair.importer_release, pair.provider, r)
            and all(r in facts.defined for use in uses if (facts := table.facts(use)) is not None)}
    runs = release_runs(listed, good)
    if not runs:
        return None
    here = listed.index(pair.provider_release)
    first, last = min(runs, key=lambda run: min(abs(run[0] - here), abs(run[1] - here)))
    bounds = ([f">={listed[first]}"] if first > 0 else []) + ([f"<{listed[last + 1]}"] if last + 1 < len(listed)
                                                              else [])
    return requirement_install(ctx, pair.provider, ",".join(bounds)) if bounds else None


def _importer_fix(ctx: CheckContext, table: KeywordTable, pair: Pair) -> str | None:
    """The importer release nearest to the installed one (newer first) whose keywords the installed provider
    release accepts, and whose declared requirements it meets."""
    listed = table.importer_releases[pair.importer]
    here = listed.index(pair.importer_release)
    for release in [*listed[here + 1:], *reversed(listed[:here])]:
        uses = table.uses_of(pair.importer, release, pair.provider)
        if all(table.accepts(use, pair.provider_release, pair.installed) == "yes" for use in uses) \
                and not _declared_against(table, pair.importer, release, pair.provider, pair.provider_release) \
                and not declares_against(ctx, pair.importer, release, pair.provider, pair.provider_release):
            return requirement_install(ctx, pair.importer, f"=={release}")
    return None
