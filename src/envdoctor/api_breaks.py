"""Undeclared API breaks between two packages (``matrices/api_breaks.toml``).

One entry says: the releases of ``importer`` in ``importer_range`` use ``name`` from ``provider``, and the releases
of ``provider`` in ``provider_range`` lack it. Neither package declares that, so pip installs the pair and the
import fails. Each entry carries the readings of the projects' own source (git tags, PyPI wheels) that fixed its
boundaries; tools/verify_api_breaks.py re-reads them.

A malformed file raises :class:`envdoctor.matrices.MatrixError` naming the file and the key.

Example::

    for entry in api_breaks():
        print(entry.id, entry.importer, entry.importer_range, entry.provider, entry.provider_range)
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.matrices import RULE_ID, MatrixError, _all_sources, _Checker, default_root, read_toml
from envdoctor.snapshot import normalize_name

FILE = "api_breaks.toml"
BREAK_KEYS = {
    "id", "name", "importer", "importer_range", "provider", "provider_range", "error", "verified", "note", "sources",
    "evidence",
}
BREAK_REQUIRED = BREAK_KEYS - {"note", "evidence"}
EVIDENCE_KEYS = {"package", "version", "repo", "ref", "path", "pattern", "found", "in_range", "wheel_platform",
                 "wheel_python"}
EVIDENCE_REQUIRED = {"package", "version", "path", "pattern", "found", "in_range"}
# A range is a lower bound, an upper bound or both, so that leaving it is one command: ">=X" -> "<X".
RANGE_OPERATORS = (">=", "<", ">", "<=")
REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Evidence:
    """One reading of the primary source: in ``package`` ``version`` the file ``path`` (of git tag ``ref`` of
    ``repo``, or of the PyPI wheel when ``repo`` is None) does or does not match ``pattern``."""

    package: str
    version: str
    path: str
    pattern: str
    found: bool
    in_range: bool
    repo: str | None = None
    ref: str | None = None
    wheel_platform: str | None = None
    wheel_python: str | None = None  # the Python of that platform wheel ("3.8"); 3.10 when not given


@dataclass(frozen=True)
class ApiBreak:
    id: str
    name: str
    importer: str  # normalized package name
    importer_range: str
    provider: str  # normalized package name
    provider_range: str
    error: str
    verified: str
    sources: tuple[str, ...]
    evidence: tuple[Evidence, ...] = ()
    note: str | None = None

    def range_of(self, package: str) -> str:
        return self.importer_range if package == self.importer else self.provider_range


def api_breaks(root: Path | str | None = None) -> tuple[ApiBreak, ...]:
    """Every entry of ``<root>/api_breaks.toml`` (default: the bundled matrices); () when the file is absent.
    Raises MatrixError when the file is malformed."""
    return _load(Path(root if root is not None else default_root()) / FILE)


def validate_api_breaks(root: Path | str | None = None) -> list[str]:
    """Every problem in ``api_breaks.toml`` as 'path: key: problem' lines ([] when all is well or absent)."""
    base = Path(root if root is not None else default_root())
    path = base / FILE
    if not path.exists():
        return []
    errors: list[str] = []
    sources = _all_sources(base, errors)
    parse_api_breaks(path, errors, set(sources) if sources else None)
    return errors


def parse_api_breaks(path: Path, errors: list[str], known_sources: set[str] | None = None) -> tuple[ApiBreak, ...]:
    """The entries of one file; each problem is appended to ``errors`` naming the file and the key."""
    data = read_toml(path, errors)
    check = _Checker(path, errors)
    check.keys(data, {"break"}, "")
    raw = data.get("break", [])
    if not isinstance(raw, list):
        check.error("break", "should be an array of tables ([[break]])")
        return ()
    seen: set[str] = set()
    found = [_parse_break(check, item, i, seen, known_sources) for i, item in enumerate(raw)]
    return tuple(entry for entry in found if entry is not None)


@functools.lru_cache(maxsize=8)
def _load(path: Path) -> tuple[ApiBreak, ...]:
    if not path.exists():
        return ()
    errors: list[str] = []
    entries = parse_api_breaks(path, errors)
    if errors:
        raise MatrixError("\n".join(errors))
    return entries


def _parse_break(check: _Checker, raw: Any, index: int, seen: set[str],
                 known_sources: set[str] | None) -> ApiBreak | None:
    where = f"break[{index}]."
    if not isinstance(raw, dict):
        check.error(where.rstrip("."), "should be a table")
        return None
    before = len(check.errors)
    check.keys(raw, BREAK_KEYS, where, required=BREAK_REQUIRED)
    entry_id = check.text(raw, "id", where) or ""
    if entry_id and not RULE_ID.match(entry_id):
        check.error(f"{where}id", f"{entry_id!r} is not kebab-case (a-z, 0-9, '-')")
    elif entry_id in seen:
        check.error(f"{where}id", f"{entry_id!r} is used by an earlier entry")
    seen.add(entry_id)
    texts = {key: check.text(raw, key, where) or "" for key in ("name", "importer", "provider", "error", "verified")}
    ranges = {key: _range(check, raw.get(key), f"{where}{key}") for key in ("importer_range", "provider_range")}
    sources = check.strings(raw, "sources", where) if "sources" in raw else ()
    if "sources" in raw and not sources:
        check.error(f"{where}sources", "should name at least one source id")
    for source in sources:
        if known_sources is not None and source not in known_sources:
            check.error(f"{where}sources", f"source {source!r} is not in sources.toml")
    importer, provider = normalize_name(texts["importer"]), normalize_name(texts["provider"])
    if importer and importer == provider:
        check.error(f"{where}provider", "should differ from importer")
    evidence = _evidence(check, raw.get("evidence", []), where, {importer, provider})
    if len(check.errors) > before:
        return None
    return ApiBreak(
        id=entry_id, name=texts["name"], importer=importer, importer_range=ranges["importer_range"] or "",
        provider=provider, provider_range=ranges["provider_range"] or "", error=texts["error"],
        verified=texts["verified"], sources=sources, evidence=evidence, note=check.text(raw, "note", where),
    )


def _range(check: _Checker, value: Any, key: str) -> str | None:
    """A PEP 440 range made of lower and upper bounds only (>=, >, <, <=), at most one of each."""
    if not isinstance(value, str):
        check.error(key, f"should be a version specifier string, got {type(value).__name__}")
        return None
    try:
        specifiers = list(SpecifierSet(value))
    except InvalidSpecifier:
        check.error(key, f"bad version specifier {value!r} (write e.g. '>=0.26.0' or '>=2.0.0,<2.3.0')")
        return None
    lower = [s for s in specifiers if s.operator in (">=", ">")]
    upper = [s for s in specifiers if s.operator in ("<", "<=")]
    if not specifiers or len(lower) > 1 or len(upper) > 1 or len(lower) + len(upper) != len(specifiers):
        check.error(key, f"{value!r} should be one lower bound, one upper bound or both, using "
                    f"{', '.join(RANGE_OPERATORS)}")
        return None
    return value


def _evidence(check: _Checker, raw: Any, where: str, packages: set[str]) -> tuple[Evidence, ...]:
    if not isinstance(raw, list):
        check.error(f"{where}evidence", "should be an array of tables ([[break.evidence]])")
        return ()
    found = []
    for i, item in enumerate(raw):
        at = f"{where}evidence[{i}]."
        if not isinstance(item, dict):
            check.error(at.rstrip("."), "should be a table")
            continue
        before = len(check.errors)
        check.keys(item, EVIDENCE_KEYS, at, required=EVIDENCE_REQUIRED)
        texts = {key: check.text(item, key, at) for key in ("package", "version", "path", "pattern", "repo", "ref",
                                                             "wheel_platform", "wheel_python")}
        flags = {}
        for key in ("found", "in_range"):
            if key in item and not isinstance(item[key], bool):
                check.error(f"{at}{key}", f"should be true or false, got {type(item[key]).__name__}")
            flags[key] = item.get(key) is True
        package = normalize_name(texts["package"] or "")
        if texts["package"] and package not in packages:
            check.error(f"{at}package", f"{texts['package']!r} is neither the importer nor the provider")
        try:
            Version(texts["version"] or "")
        except InvalidVersion:
            check.error(f"{at}version", f"bad version {texts['version']!r}")
        try:
            re.compile(texts["pattern"] or "", re.M)
        except re.error as exc:
            check.error(f"{at}pattern", f"bad regular expression: {exc}")
        if texts["repo"] is not None and not REPO.match(texts["repo"]):
            check.error(f"{at}repo", f"{texts['repo']!r} should be owner/name")
        if (texts["repo"] is None) != (texts["ref"] is None):
            check.error(f"{at}ref", "repo and ref go together (a git tag of that repository)")
        if len(check.errors) == before:
            found.append(Evidence(
                package=package, version=texts["version"] or "", path=texts["path"] or "",
                pattern=texts["pattern"] or "", found=flags["found"], in_range=flags["in_range"],
                repo=texts["repo"], ref=texts["ref"], wheel_platform=texts["wheel_platform"],
                wheel_python=texts["wheel_python"],
            ))
    return tuple(found)
