"""Packages whose shipped ``*_pb2.py`` modules do not import under the installed protobuf
(``matrices/protobuf_gencode.json``, written by ``tools/gen_protobuf_gencode.py`` from each release's wheel).

A ``_pb2.py`` module is written by one protoc generation, and each generation imports under a range of protobuf
releases: modules that build descriptors directly (protoc < 3.19) fail under protobuf >= 4.21.0 with ``TypeError:
Descriptors cannot not be created directly``; modules that import ``google.protobuf.internal.builder`` (protoc >=
3.20) need protobuf >= 3.20.0; modules that call ``runtime_version.ValidateProtobufRuntimeVersion`` (protoc >= 27)
need a protobuf runtime at least their gencode version. An installed release outside its range fails at import.
When the package's version is unknown and most of its releases read would fail, or protobuf's version is unknown
and most protobuf releases installable here would fail with the installed release, the warning is inferred
(``verified: false``).
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
from envdoctor.checks.release_scans import findings_by_known_versions, public_version, read_package_rows
from envdoctor.checks.wheels import host_target, wheel_runs
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, Problem, generated_json_table
from envdoctor.pypi_facts import releases
from envdoctor.rules import parse_version

FILE = "protobuf_gencode.json"
GENERATOR = "tools/gen_protobuf_gencode.py"
ERAS = ("direct", "pool", "builder", "versioned")
ROW_KEYS = {"versions", "eras", "protobuf", "protobuf_core", "gencode_version", "picks_by_protobuf", "where",
            "outliers"}


@dataclass(frozen=True)
class GencodeRow:
    """Releases ``versions`` of ``package`` ship ``_pb2.py`` modules of the generations ``eras``: all of them
    import under the protobuf releases ``protobuf``, those of the most common generations under ``protobuf_core``
    (specifiers; "" for any); ``outliers`` are some modules outside the core."""

    package: str
    versions: str
    eras: tuple[str, ...]
    protobuf: str
    protobuf_core: str
    gencode_version: str | None
    picks_by_protobuf: bool
    where: str
    outliers: tuple[str, ...]

    def imports_under(self, protobuf: Version) -> bool:
        """The core modules import under ``protobuf``."""
        return SpecifierSet(self.protobuf_core).contains(protobuf, prereleases=True)

    def all_import_under(self, protobuf: Version) -> bool:
        return SpecifierSet(self.protobuf).contains(protobuf, prereleases=True)


@dataclass(frozen=True)
class ProtobufGencodeTable:
    generated: str
    era_sources: dict[str, tuple[str, ...]]
    releases: dict[str, tuple[str, ...]]  # normalized package -> releases read, oldest first
    rows: dict[str, tuple[GencodeRow, ...]]
    scan_source: str

    def row(self, package: str, release: Version) -> GencodeRow | None:
        """The row of ``release``; None when it ships no generated module or was not read."""
        return next((row for row in self.rows.get(package, ())
                     if SpecifierSet(row.versions).contains(release, prereleases=True)), None)

    def imports_under(self, package: str, release: Version, protobuf: Version) -> bool:
        row = self.row(package, release)
        return row is None or row.imports_under(protobuf)

    def sources(self, row: GencodeRow) -> tuple[str, ...]:
        return (*sorted({s for era in row.eras for s in self.era_sources[era]}), self.scan_source)


def load_protobuf_gencode(matrices: Matrices) -> ProtobufGencodeTable | None:
    """The table of the matrices folder (None when absent); a malformed one raises MatrixError naming the key."""
    return _table(matrices.root / FILE, frozenset(matrices.sources))


@functools.lru_cache(maxsize=8)
def _table(path: Path, sources: frozenset[str]) -> ProtobufGencodeTable | None:
    return generated_json_table(path, GENERATOR, lambda raw, error: _parse(raw, error, sources))


def _parse(raw: dict[str, Any], error: Problem, sources: frozenset[str]) -> ProtobufGencodeTable | None:
    era_sources: dict[str, tuple[str, ...]] = {}
    eras = raw.get("eras")
    for era in ERAS:
        entry = eras.get(era) if isinstance(eras, dict) else None
        listed = entry.get("sources") if isinstance(entry, dict) else None
        if not isinstance(listed, list) or not listed or not all(isinstance(s, str) and s in sources for s in listed):
            error(f"eras.{era}.sources", "expected a non-empty list of ids in matrices/sources*.toml")
            continue
        era_sources[era] = tuple(listed)
    scan_source = raw.get("scan_source")
    if scan_source not in sources:
        error("scan_source", f"{scan_source!r} is not in matrices/sources*.toml")
    releases_read, rows = read_package_rows(raw.get("packages"), error, _row, releases_must_parse=True)
    return ProtobufGencodeTable(str(raw.get("generated")), era_sources, releases_read, rows, str(scan_source))


def _row(package: str, item: Any) -> GencodeRow | str:
    """The row, or what is wrong with it."""
    try:
        if not isinstance(item, dict) or set(item) != ROW_KEYS:
            raise ValueError(f"expected the keys {', '.join(sorted(ROW_KEYS))}")
        SpecifierSet(item["versions"])
        SpecifierSet(item["protobuf"])
        SpecifierSet(item["protobuf_core"])
        if item["gencode_version"] is not None:
            Version(item["gencode_version"])
        eras = item["eras"]
        if not isinstance(eras, dict) or not eras or not set(eras) <= set(ERAS) \
                or not all(isinstance(n, int) and n > 0 for n in eras.values()):
            raise ValueError(f"eras {eras!r}: an object of module counts per generation ({', '.join(ERAS)})")
        outliers = item["outliers"]
        if not isinstance(item["picks_by_protobuf"], bool) or not isinstance(item["where"], str) \
                or not isinstance(outliers, list) or not all(isinstance(o, str) for o in outliers):
            raise ValueError("picks_by_protobuf is a boolean, where a path and outliers a list of paths")
        return GencodeRow(package, item["versions"], tuple(eras), item["protobuf"], item["protobuf_core"],
                          item["gencode_version"], item["picks_by_protobuf"], item["where"], tuple(outliers))
    except (KeyError, TypeError, ValueError, InvalidSpecifier, InvalidVersion) as problem:
        return f"{problem}"


# --- the check ----------------------------------------------------------------------------------------


def check_protobuf_gencode(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    protobuf = packages.get("protobuf")
    if protobuf is None:
        return []
    table = load_protobuf_gencode(ctx.matrices)
    if table is None:
        return []
    protobuf_version = public_version(protobuf.version)
    installed = {name: public_version(packages[name].version) for name in sorted(set(table.rows) & set(packages))
                 if table.rows[name]}
    return findings_by_known_versions(installed, protobuf_version, functools.partial(_known, ctx, table, installed),
                                      functools.partial(_package_unknown, ctx, table),
                                      functools.partial(_protobuf_unknown, ctx, table))


def _bounds(specifier: str) -> tuple[Version | None, Version | None]:
    """The floor (>=) and ceiling (<) of a row's protobuf range."""
    floor = ceiling = None
    for item in SpecifierSet(specifier):
        if item.operator == ">=":
            floor = Version(item.version)
        elif item.operator == "<":
            ceiling = Version(item.version)
    return floor, ceiling


def _error(row: GencodeRow, protobuf: Version, specifier: str | None = None) -> str:
    """What importing the release's modules raises under ``protobuf`` (outside ``specifier``, the row's core range
    by default)."""
    floor, ceiling = _bounds(row.protobuf_core if specifier is None else specifier)
    if ceiling is not None and protobuf >= ceiling:
        return ("its _pb2 modules build descriptors directly (protoc < 3.19), so importing them fails with TypeError: "
                "Descriptors cannot not be created directly ... your generated code is out of date and must be "
                "regenerated with protoc >= 3.19.0 (protobuf >= 4.21.0 refuses them unless "
                "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python selects the slow pure-Python implementation)")
    if "versioned" in row.eras and floor is not None and floor == Version(row.gencode_version or "0"):
        if protobuf < Version("5.27.0"):
            return (f"its _pb2 modules were generated for protobuf {row.gencode_version} (protoc >= 27), so importing "
                    "them fails with ImportError: cannot import name 'runtime_version' from 'google.protobuf'")
        return (f"its _pb2 modules were generated for protobuf {row.gencode_version}, so importing them fails with "
                "google.protobuf.runtime_version.VersionError: Detected incompatible Protobuf Gencode/Runtime "
                "versions ... Runtime version cannot be older than the linked gencode version")
    if floor == Version("3.20.0"):
        return ("its _pb2 modules use the builder of protoc >= 3.20, so importing them fails with ImportError: "
                "cannot import name 'builder' from 'google.protobuf.internal'")
    if floor == Version("3.19.0"):
        return ("its _pb2 modules (protoc 3.19) take the file descriptor from DescriptorPool.AddSerializedFile, "
                "which returns none before protobuf 3.19.0: importing them fails with AttributeError")
    return ("its _pb2 modules pass create_key=_descriptor._internal_create_key (protoc >= 3.12): importing them fails "
            "with AttributeError: module 'google.protobuf.descriptor' has no attribute '_internal_create_key'")


def _releases_read(table: ProtobufGencodeTable, name: str) -> list[Version]:
    return [v for text in table.releases.get(name, ()) if (v := parse_version(text)) is not None
            and not v.is_prerelease]


def _nearest_release(table: ProtobufGencodeTable, name: str, release: Version,
                     protobuf: Version) -> tuple[str, Version] | None:
    """("later", the first later release) or ("earlier", the newest earlier one) of ``name`` whose modules import
    under ``protobuf``: a later one when there is one."""
    works = [v for v in _releases_read(table, name) if table.imports_under(name, v, protobuf)]
    later = [v for v in works if v > release]
    if later:
        return "later", later[0]
    earlier = [v for v in works if v < release]
    return ("earlier", earlier[-1]) if earlier else None


def _installable_protobufs(ctx: CheckContext) -> list[Version]:
    """Final, not yanked protobuf releases of the PyPI tables with a wheel for this Python and platform (every one
    when those are unknown), oldest first."""
    target = host_target(ctx.snapshot.host, ctx.snapshot.python.version)
    found = []
    for facts in releases("protobuf", ctx.matrices.root):
        version = parse_version(facts.version)
        if version is None or version.is_prerelease or facts.yanked:
            continue
        if target is None or target.minor is None or facts.wheels is None or wheel_runs(facts, target):
            found.append(version)
    return found


def _nearest_protobuf(ctx: CheckContext, table: ProtobufGencodeTable, installed: dict[str, Version | None],
                      protobuf: Version, downward: bool) -> Version | None:
    """The protobuf release nearest the installed one (below it when ``downward``, else above, when there is one
    there) under which every installed package of the table of known version imports, among those installable
    here; None when there is none."""
    candidates = [v for v in _installable_protobufs(ctx) if all(
        release is None or table.imports_under(name, release, v) for name, release in installed.items())]
    below = [v for v in candidates if v < protobuf]
    above = [v for v in candidates if v > protobuf]
    if downward:
        return below[-1] if below else above[0] if above else None
    return above[0] if above else below[-1] if below else None


def _known(ctx: CheckContext, table: ProtobufGencodeTable, installed: dict[str, Version | None], name: str,
           release: Version, protobuf: Version) -> Finding | None:
    row = table.row(name, release)
    if row is None or row.all_import_under(protobuf):
        return None
    if row.imports_under(protobuf):
        return _outliers_fail(table, row, name, release, protobuf)
    ceiling = _bounds(row.protobuf_core)[1]
    too_new = ceiling is not None and protobuf >= ceiling
    other = _nearest_release(table, name, release, protobuf)
    nearest = _nearest_protobuf(ctx, table, installed, protobuf, downward=too_new)
    package_fix = requirement_install(ctx, name, f"=={other[1]}") if other else None
    protobuf_fix = requirement_install(ctx, "protobuf", f"=={nearest}") if nearest else None
    # Old generated code under a new protobuf: move the package forward to a release regenerated for it (protobuf
    # stays, so nothing else that needs it moves). Otherwise move protobuf to the nearest release that fits every
    # installed package of the table, else the package to the nearest release that imports under this protobuf.
    if other is not None and (too_new and other[0] == "later" or nearest is None):
        chosen, alternative = package_fix, protobuf_fix
        why = (f"{name} {other[1]} is the {'first later' if other[0] == 'later' else 'newest earlier'} release read "
               f"whose _pb2 modules import under protobuf {protobuf}, which then stays as the other packages have it")
        if nearest is None:
            why = f"no protobuf release installable here imports the modules of every installed scanned package; {why}"
    elif nearest is not None:
        chosen, alternative = protobuf_fix, package_fix
        why = (f"protobuf {nearest} is the nearest release installable here under which the installed release of "
               "every scanned package imports")
    else:
        chosen = alternative = None
        why = (f"no protobuf release installable here imports the modules of every installed scanned package, and no "
               f"release of {name} read imports under protobuf {protobuf}")
    fixes = [fix for fix in (chosen, alternative) if fix]
    return _finding(
        table, row, name, rule="protobuf-gencode-mismatch", severity=Severity.FAIL, verified=True,
        message=f"{name} {release} does not import under protobuf {protobuf}: {_error(row, protobuf)} (e.g. "
        f"{row.where}; its modules import under protobuf {row.protobuf_core}). Fix: {why}",
        fix="   # or: ".join(fixes) or None,
    )


def _outliers_fail(table: ProtobufGencodeTable, row: GencodeRow, name: str, release: Version,
                   protobuf: Version) -> Finding:
    """Most modules import under ``protobuf``; a few of an older generation, left unregenerated, do not."""
    floor, ceiling = _bounds(row.protobuf)
    every = "no protobuf release imports all of them" if floor and ceiling and floor >= ceiling else \
        f"all of them import only under protobuf {row.protobuf}"
    return _finding(
        table, row, name, rule="protobuf-gencode-mismatch", severity=Severity.WARN, verified=True,
        message=f"{name} {release}: most of its _pb2 modules import under protobuf {protobuf}, but some (e.g. "
        f"{', '.join(row.outliers)}) do not: {_error(row, protobuf, row.protobuf)}; only code that imports those "
        f"fails ({every})",
        fix=None,
    )


def _package_unknown(ctx: CheckContext, table: ProtobufGencodeTable, name: str, protobuf: Version) -> Finding | None:
    read = _releases_read(table, name)
    failing = [v for v in read if not table.imports_under(name, v, protobuf)]
    if not read or len(failing) * 2 <= len(read):
        return None
    rows: dict[GencodeRow, int] = {}
    for version in failing:
        row = table.row(name, version)
        if row is not None:
            rows[row] = rows.get(row, 0) + 1
    commonest = max(rows, key=lambda row: rows[row])
    needs = "; ".join(f"{row.versions} need protobuf {row.protobuf_core}" for row in rows)
    working = [v for v in read if v not in failing]
    newest = f"{working[-1]} is the newest release read that does" if working else "none read does"
    return _finding(
        table, commonest, name, rule="protobuf-gencode-unknown-version", severity=Severity.WARN, verified=False,
        message=f"{name} is installed (version unknown); {len(failing)} of its {len(read)} releases read "
        f"({read[0]} to {read[-1]}) ship _pb2 modules that do not import under protobuf {protobuf} ({needs}; "
        f"{newest}): with such a release, importing it fails (releases {commonest.versions}: "
        f"{_error(commonest, protobuf)})",
        fix=requirement_install(ctx, name, f"=={working[-1]}") if working else None,
    )


def _protobuf_unknown(ctx: CheckContext, table: ProtobufGencodeTable, name: str, release: Version) -> Finding | None:
    row = table.row(name, release)
    candidates = _installable_protobufs(ctx)
    if row is None or not candidates:
        return None
    failing = [v for v in candidates if not row.imports_under(v)]
    if len(failing) * 2 <= len(candidates):
        return None
    working = [v for v in candidates if row.imports_under(v)]
    return _finding(
        table, row, name, rule="protobuf-gencode-unknown-version", severity=Severity.WARN, verified=False,
        message=f"protobuf is installed (version unknown); {name} {release} ships _pb2 modules that import only "
        f"under protobuf {row.protobuf_core}, and {len(failing)} of the {len(candidates)} protobuf releases "
        f"installable here fall outside it: with such a protobuf, importing it fails ({_error(row, failing[-1])})",
        fix=requirement_install(ctx, "protobuf", f"=={working[-1]}") if working else None,
    )


def _finding(table: ProtobufGencodeTable, row: GencodeRow, name: str, *, rule: str, severity: Severity,
             verified: bool, message: str, fix: str | None) -> Finding:
    """A finding of ``name`` beside protobuf, with the sources of ``row``."""
    return Finding(
        rule=rule, category=Category.VERSION, severity=severity, components=(name, "protobuf"),
        sources=table.sources(row), verified=verified, message=message, fix=fix,
    )
