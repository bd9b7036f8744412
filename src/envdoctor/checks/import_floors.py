"""Names a library imports from a partner package when it is imported (``envdoctor.import_floors``), against the
installed release of the partner.

Both versions known and covered by the table: when the importer's release imports a name (or module) that the
installed partner release lacks, ``import <importer>`` fails (FAIL); for a namespace package the need names the
module whose import reaches it (``via``), and only code importing that module fails (WARN). A need that runs only
where another partner is installed (``when``: under ``if is_torch_available():``) counts where the snapshot lists
that partner. The fix is the partner range whose releases
have every missing name, or the importer release nearest to the installed one whose imports the installed partner
meets. The importer's version unknown: when its newest releases (the newest back to some release) all import a
name the installed partner lacks, a package installed or upgraded lately fails; an inferred warning
(``verified=false``). A name whose presence could not be read for that partner release counts as present here.
One cause, one finding: a pair that ``matrices/api_breaks.toml`` already judges at these versions is left to that
check, and a pair whose importer release declares a requirement the installed partner fails (a declared conflict,
which the declared-requirements check reports) is left to that one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from envdoctor.api_breaks import api_breaks
from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.requirements import marker_environment
from envdoctor.checks.torch_triton import installed_triton
from envdoctor.findings import Category, Finding, Severity
from envdoctor.import_floors import ImportNeed, ImportTable, import_table
from envdoctor.pypi_facts import release_facts, releases
from envdoctor.release_dates import days_between
from envdoctor.rules import matches_specifier
from envdoctor.snapshot import normalize_name

SOURCE = "import-floors"


@dataclass(frozen=True)
class Pair:
    """An installed importer and partner, as the table writes their releases (``importer_release`` None when the
    importer's version is unknown). Messages quote the table's release strings, never the snapshot's text."""

    importer: str
    importer_release: str | None
    partner: str
    partner_release: str
    partner_version: str


def check_import_floors(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    table = import_table(ctx.matrices.root, packages)
    if table is None:
        return []
    pinned_triton = installed_triton(ctx) if "triton" in table.partner_releases else None
    findings = []
    for importer in sorted(table.importer_releases):
        if importer not in packages:
            continue
        version = packages[importer].version
        for partner in sorted(table.partner_releases):
            if partner == importer:
                continue
            if partner == "triton" and partner not in packages and pinned_triton is not None \
                    and pinned_triton.inferred:
                finding = _against_partner(ctx, table, importer, version, partner, str(pinned_triton.release))
                if finding is not None:  # pip installs the Triton torch pins: the finding is inferred
                    findings.append(replace(finding, verified=False, message=f"{finding.message} (inferred: the "
                                            f"snapshot lists no triton; {pinned_triton.shown} is what pip installs "
                                            "beside it)"))
                continue
            if partner not in packages:
                continue
            if packages[partner].version is None:
                release = table.release(importer, version) if version is not None else None
                finding = _partner_unknown(ctx, table, importer, release, partner) if release else None
            else:
                finding = _against_partner(ctx, table, importer, version, partner, packages[partner].version or "")
            findings.extend([finding] if finding else [])
    return findings


def _against_partner(ctx: CheckContext, table: ImportTable, importer: str, version: str | None, partner: str,
                     partner_version: str) -> Finding | None:
    """The importer (its newest release when its version is unknown) against a partner release: a failure where
    the known release imports names the partner lacks, an inferred warning for an unknown one."""
    partner_release = table.release(partner, partner_version, partner=True)
    if partner_release is None:
        return None
    release = table.release(importer, version) if version is not None \
        else table.importer_releases[importer][-1]  # unknown: judged by its newest release
    if release is None or judged_elsewhere(ctx, importer, release, partner, partner_version):
        return None
    if version is None:
        return _inferred(ctx, table, Pair(importer, None, partner, partner_release, partner_version))
    pair = Pair(importer, release, partner, partner_release, partner_version)
    missing = _missing(table, pair, release, installed_names(ctx))
    return _broken(ctx, table, pair, missing) if missing else None


def judged_elsewhere(ctx: CheckContext, importer: str, release: str, partner: str, partner_version: str) -> bool:
    """Whether a hand-verified entry of api_breaks.toml speaks for this pair at these versions, or the importer
    release declares a requirement on the partner that the installed version fails."""
    for entry in api_breaks(ctx.matrices.root):
        if entry.importer == importer and entry.provider == partner \
                and matches_specifier(partner_version, entry.provider_range) \
                and matches_specifier(release, entry.importer_range):
            return True
    return declares_against(ctx, importer, release, partner, partner_version)


def declares_against(ctx: CheckContext, importer: str, release: str, partner: str, partner_version: str) -> bool:
    """Whether the importer release's Requires-Dist (bundled PyPI tables) excludes the installed partner."""
    facts = release_facts(importer, release, ctx.matrices.root)
    environment = marker_environment(ctx.snapshot)
    for line in (facts.requires or ()) if facts is not None else ():
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if normalize_name(requirement.name) == partner and requirement.specifier \
                and (requirement.marker is None or requirement.marker.evaluate(environment)) \
                and not matches_specifier(partner_version, str(requirement.specifier)):
            return True
    return False


def installed_names(ctx: CheckContext) -> frozenset[str]:
    """The snapshot's packages, by normalized name (what a need's ``when`` is matched against)."""
    return frozenset(ctx.snapshot.packages or {})


def _missing(table: ImportTable, pair: Pair, importer_release: str, present: frozenset[str]) -> list[ImportNeed]:
    """The needs of the importer release that the partner release lacks (a need that runs only beside another
    partner counts where that one is among the ``present`` packages); the first link of an attribute chain first
    (``torch.xpu`` missing before ``torch.xpu.empty_cache``), so the error quoted is the one raised. Needs met on
    every import come before those of a namespace package's modules (``via``)."""
    missing = [need for need in table.needs_of(pair.importer, importer_release)
               if need.partner == pair.partner and need.runs_beside(present)
               and table.status(need, pair.partner_release) == "absent"]
    return sorted(missing, key=lambda need: (bool(need.via), need.module.count(".")))


def _broken(ctx: CheckContext, table: ImportTable, pair: Pair, missing: list[ImportNeed]) -> Finding:
    fixes = [_partner_fix(ctx, table, pair, missing), _importer_fix(ctx, table, pair)]
    return Finding(  # a namespace package's module (``via``) fails only for code that imports that module
        rule="import-name-missing", category=Category.VERSION,
        severity=Severity.WARN if missing[0].via else Severity.FAIL,
        components=(pair.importer, pair.partner), sources=(SOURCE,),
        message=f"{pair.importer} {pair.importer_release} {_uses(missing)} {_listed(missing)} "
        f"{_when_imported(missing)} "
        f"({_files(missing)}), which {pair.partner} {pair.partner_release} lacks ({_having(table, missing)}; read from "
        f"{_source(table, pair)}; neither package declares this): `import {_module(pair.importer, missing)}` fails "
        f"with {missing[0].error}",
        fix="   # or: ".join(fix for fix in fixes if fix) or None,
    )


def _inferred(ctx: CheckContext, table: ImportTable, pair: Pair) -> Finding | None:
    """The importer's version is unknown: warn when a run of its releases each imports a name the installed
    partner lacks, and that run is one a user of this partner may have: the newest releases (the table's newest
    being the newest on PyPI), or releases made from RECENT_DAYS before the partner release on."""
    listed = table.importer_releases.get(pair.importer, ())
    present = installed_names(ctx)
    broken = {release: missing for release in listed if (missing := _missing(table, pair, release, present))}
    runs = release_runs(listed, set(broken))
    if not runs:
        return None
    newest_run = runs[-1][1] == len(listed) - 1
    if newest_run and is_newest_release(ctx, pair.importer, listed[-1]):
        first, last = runs[-1]
    else:
        recent = [run for run in runs if run[1] != len(listed) - 1 and _recent(ctx, pair, listed[run[1]])]
        if not recent:
            return None
        first, last = recent[-1]
    oldest, newest = listed[first], listed[last]
    newest_missing = broken[newest]
    imported = f"`import {_module(pair.importer, newest_missing)}`"
    releases_of = f"releases {oldest} to {newest}" if oldest != newest else f"release {newest}"
    each = "each import" if oldest != newest else "imports"
    if last == len(listed) - 1:
        which = f"(the newest) {each}"
        outcome = f"a {pair.importer} installed or upgraded lately fails {imported}"
        fixes = [_partner_fix(ctx, table, pair, newest_missing)]
        if first > 0:
            fixes.append(requirement_install(ctx, pair.importer, f"<{oldest}"))
    else:
        which = each
        outcome = f"a {pair.importer} of those releases fails {imported}"
        fixes = [requirement_install(ctx, pair.importer, f">={listed[last + 1]}"),
                 _partner_fix(ctx, table, pair, newest_missing)]
    return Finding(
        rule="import-name-missing-unknown-version", category=Category.VERSION, severity=Severity.WARN,
        components=(pair.importer, pair.partner), sources=(SOURCE,), verified=False,
        message=f"{pair.importer} is installed with an unknown version; its {releases_of} {which} from "
        f"{pair.partner} a name that {pair.partner} {pair.partner_release} lacks (the newest: "
        f"{_listed(newest_missing)}; {_having(table, newest_missing)}; read from {_source(table, pair)}). So "
        f"(inferred, not verified) {outcome} with {newest_missing[0].error}",
        fix="   # or: ".join(fix for fix in fixes if fix) or None,
    )


RECENT_DAYS = 365  # an importer release this much older than the installed partner release is still common beside it
# A partner release first having every name an importer release needs, made this close before the importer release:
# environments set up in the months before still hold an older partner, and pip does not upgrade it (undeclared).
NEW_FLOOR_DAYS = 183


def _partner_unknown(ctx: CheckContext, table: ImportTable, importer: str, release: str,
                     partner: str) -> Finding | None:
    """The importer's release is known and the partner's version is not: warn (inferred) when the importer imports
    names that only partner releases of the last NEW_FLOOR_DAYS before it have, and declares no requirement that
    keeps older partners out (pip would then upgrade the partner)."""
    listed = table.partner_releases.get(partner, ())
    needs = [need for need in table.needs_of(importer, release) if need.partner == partner]
    floor = len(listed)
    while floor > 0 and all(table.status(need, listed[floor - 1]) != "absent" for need in needs):
        floor -= 1
    if not needs or floor in (0, len(listed)):
        return None
    first, before = listed[floor], listed[floor - 1]
    importer_facts = release_facts(importer, release, ctx.matrices.root)
    first_facts = release_facts(partner, first, ctx.matrices.root)
    if importer_facts is None or first_facts is None or declares_against(ctx, importer, release, partner, before) \
            or not 0 <= days_between(first_facts.date, importer_facts.date) <= NEW_FLOOR_DAYS:
        return None
    missing = _missing(table, Pair(importer, release, partner, before, before), release, installed_names(ctx))
    return Finding(
        rule="import-name-missing-unknown-version", category=Category.VERSION, severity=Severity.WARN,
        components=(importer, partner), sources=(SOURCE,), verified=False,
        message=f"{importer} {release} {_uses(missing)} {_listed(missing)} {_when_imported(missing)} "
        f"({_files(missing)}), which {partner} has only from {first} (released {first_facts.date}, "
        f"{days_between(first_facts.date, importer_facts.date)} days before {importer} {release}; read from "
        f"{_source(table, Pair(importer, release, partner, first, first))}), and {partner} is installed with an "
        f"unknown version that {importer}'s requirements do not keep at {first} or newer: an older {partner} "
        f"(inferred, not verified) fails `import {_module(importer, missing)}` with {missing[0].error}",
        fix=requirement_install(ctx, partner, f">={first}"),
    )


def _recent(ctx: CheckContext, pair: Pair, importer_release: str) -> bool:
    """Whether an importer release was made no more than RECENT_DAYS before the installed partner release (or
    after it); False when either date is unknown."""
    importer = release_facts(pair.importer, importer_release, ctx.matrices.root)
    partner = release_facts(pair.partner, pair.partner_release, ctx.matrices.root)
    if importer is None or partner is None:
        return False
    return days_between(importer.date, partner.date) <= RECENT_DAYS


def _uses(missing: list[ImportNeed]) -> str:
    """"imports", "reads" (attributes of a partner module) or both."""
    accesses = {need.access for need in missing}
    return "imports or reads" if len(accesses) > 1 else "reads" if accesses == {"attribute"} else "imports"


def _listed(missing: list[ImportNeed]) -> str:
    shown = [need.what for need in missing[:4]]
    return ", ".join(shown) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")


def _files(missing: list[ImportNeed]) -> str:
    return ", ".join(dict.fromkeys(need.file for need in missing[:4]))


def _when_imported(missing: list[ImportNeed]) -> str:
    return f"when {missing[0].via} is imported" if missing[0].via else "when it is imported"


def _module(package: str, missing: list[ImportNeed]) -> str:
    """What is imported: the namespace package's module that reaches the need, else the importer's import name,
    the top folder of the file that imports (or reads) the name (``awq`` for autoawq)."""
    if missing[0].via:
        return missing[0].via
    top = missing[0].file.split("/", 1)[0].removesuffix(".py")
    return top if top.isidentifier() else package.replace("-", "_")


def _source(table: ImportTable, pair: Pair) -> str:
    return table.sources.get(pair.importer, "matrices/import_floors.json")


def _having(table: ImportTable, missing: list[ImportNeed]) -> str:
    """``transformers 4.30.0 to 5.2.0 have id_tensor_storage`` for each missing need (the first three)."""
    parts = []
    for need in missing[:3]:
        listed = table.partner_releases[need.partner]
        runs = release_runs(listed, set(table.having(need)))
        label = need.name or need.module
        if not runs:
            parts.append(f"no {need.partner} release from {listed[0]} to {listed[-1]} has {label}")
        else:
            spans = ", ".join(f"{listed[a]} to {listed[b]}" if a != b else listed[a] for a, b in runs[:3])
            parts.append(f"{need.partner} {spans} {'have' if len(runs) > 1 or runs[0][0] != runs[0][1] else 'has'} "
                         f"{label}")
    return "; ".join(parts)


def release_runs(listed: tuple[str, ...], members: set[str]) -> list[tuple[int, int]]:
    """Runs of consecutive releases in ``members``, as (first, last) positions in ``listed``."""
    runs: list[tuple[int, int]] = []
    for i, release in enumerate(listed):
        if release in members:
            if runs and runs[-1][1] == i - 1:
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((i, i))
    return runs


def _partner_fix(ctx: CheckContext, table: ImportTable, pair: Pair, missing: list[ImportNeed]) -> str | None:
    """The partner range, nearest to the installed release, whose releases have every missing name."""
    listed = table.partner_releases[pair.partner]
    good = {r for r in listed if all(table.status(need, r) == "present" for need in missing)}
    runs = release_runs(listed, good)
    if not runs:
        return None
    here = listed.index(pair.partner_release)
    first, last = min(runs, key=lambda run: min(abs(run[0] - here), abs(run[1] - here)))
    bounds = ([f">={listed[first]}"] if first > 0 else []) + ([f"<{listed[last + 1]}"] if last + 1 < len(listed)
                                                              else [])
    return requirement_install(ctx, pair.partner, ",".join(bounds)) if bounds else None


def _importer_fix(ctx: CheckContext, table: ImportTable, pair: Pair) -> str | None:
    """The importer release nearest to the installed one (newer ones first) whose imports from the partner the
    installed partner release all has, that no other installed partner of the table lacks an import of, and whose
    declared requirements the installed partner meets."""
    packages = ctx.snapshot.packages or {}
    installed = {partner: release for partner in table.partner_releases if partner in packages and
                 (release := table.release(partner, packages[partner].version, partner=True)) is not None}
    listed = table.importer_releases[pair.importer]
    here = listed.index(pair.importer_release) if pair.importer_release in listed else len(listed)
    for release in [*listed[here + 1:], *reversed(listed[:here])]:
        needs = [need for need in table.needs_of(pair.importer, release) if need.runs_beside(packages)]
        own = [need for need in needs if need.partner == pair.partner]
        if all(table.status(need, pair.partner_release) == "present" for need in own) \
                and not any(table.status(need, installed[need.partner]) == "absent"
                            for need in needs if need.partner in installed) \
                and not declares_against(ctx, pair.importer, release, pair.partner, pair.partner_version):
            return requirement_install(ctx, pair.importer, f"=={release}")
    return None


def is_newest_release(ctx: CheckContext, package: str, release: str) -> bool:
    """Whether ``release`` is at least the newest final release the bundled PyPI tables record (True when they do
    not record the package: the table is then the only list of releases)."""
    finals = []
    for facts in releases(package, ctx.matrices.root):
        try:
            version = Version(facts.version)
        except InvalidVersion:
            continue
        if not facts.yanked and not version.is_prerelease and not version.is_devrelease:
            finals.append(version)
    return not finals or Version(release) >= max(finals)
