"""Read ``matrices/numpy_abi.toml``: per compiled package, the first release built against NumPy 2.

A release older than ``numpy2_from`` was built against the NumPy 1.x C API and fails at import under NumPy 2;
a release at or above ``numpy2_only_from`` needs NumPy 2 at run time. A row with ``os`` holds on that OS only
and replaces the package's row without ``os`` there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from envdoctor.snapshot import normalize_name

ROW_KEYS = frozenset({
    "name", "os", "numpy2_from", "numpy2_only_from", "numpy2_only_evidence", "last_numpy1_build", "numpy1_failure",
    "method", "wheel", "sources", "note",
})
FAILURES = ("import", "first-array-call")
METHODS = ("wheel-scan", "hand")
OSES = ("linux", "windows", "darwin")


@dataclass(frozen=True)
class NumpyAbiRow:
    package: str  # normalized name
    numpy2_from: Version
    numpy2_only_from: Version | None = None
    last_numpy1_build: Version | None = None  # releases between it and numpy2_from were not scanned
    numpy1_failure: str = "import"  # or "first-array-call": a NumPy 1.x build breaks at its first array, not import
    os: str | None = None
    method: str = "hand"
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class NumpyAbiTable:
    rows: tuple[NumpyAbiRow, ...]
    no_numpy_c_api: tuple[str, ...] = ()

    def rows_for(self, package: str) -> tuple[NumpyAbiRow, ...]:
        """The rows of one package (normalized name): at most one without ``os`` and one per OS."""
        return tuple(row for row in self.rows if row.package == package)


def parse_numpy_abi(data: dict[str, Any], path: Path, errors: list[str],
                    sources: dict[str, Any] | None = None) -> NumpyAbiTable:
    """The table in parsed TOML ``data``; each problem is appended to ``errors`` as 'path: key: problem'.

    With ``sources`` (id -> source), every cited source id must be among them.
    """
    def error(key: str, problem: str) -> None:
        errors.append(f"{path}: {key}: {problem}")

    for key in sorted(set(data) - {"scan", "package"}):
        error(key, "unknown key (allowed: package, scan)")
    scan = data.get("scan", {})
    no_numpy = scan.get("no_numpy_c_api", []) if isinstance(scan, dict) else None
    if not (isinstance(no_numpy, list) and all(isinstance(n, str) for n in no_numpy)):
        error("scan.no_numpy_c_api", "should be a list of package names")
        no_numpy = []
    raw_rows = data.get("package", [])
    if not isinstance(raw_rows, list):
        error("package", "should be an array of tables ([[package]])")
        raw_rows = []
    rows: list[NumpyAbiRow] = []
    seen: set[tuple[str, str | None]] = set()
    for index, raw in enumerate(raw_rows):
        row = _parse_row(raw, f"package[{index}]", error, sources)
        if row is None:
            continue
        if (row.package, row.os) in seen:
            error(f"package[{index}].name", f"second row for {row.package!r} (os {row.os or 'any'})")
            continue
        seen.add((row.package, row.os))
        rows.append(row)
    return NumpyAbiTable(tuple(rows), tuple(normalize_name(n) for n in no_numpy))


def _parse_row(raw: Any, where: str, error: Any, sources: dict[str, Any] | None) -> NumpyAbiRow | None:
    if not isinstance(raw, dict):
        error(where, "should be a table")
        return None
    problems = 0

    def fail(key: str, problem: str) -> None:
        nonlocal problems
        problems += 1
        error(f"{where}.{key}", problem)

    for key in sorted(set(raw) - ROW_KEYS):
        fail(key, f"unknown key (allowed: {', '.join(sorted(ROW_KEYS))})")
    for key in sorted({"name", "numpy2_from", "sources"} - set(raw)):
        fail(key, "missing required key")
    for key in sorted((ROW_KEYS - {"sources"}) & set(raw)):
        if not isinstance(raw[key], str):
            fail(key, f"should be a string, got {type(raw[key]).__name__}")
    if problems:
        return None
    numpy2_from = _version(raw["numpy2_from"], "numpy2_from", fail)
    numpy2_only = _version(raw["numpy2_only_from"], "numpy2_only_from", fail) if "numpy2_only_from" in raw else None
    last_numpy1 = _version(raw["last_numpy1_build"], "last_numpy1_build", fail) if "last_numpy1_build" in raw else None
    if numpy2_from and numpy2_only and numpy2_only < numpy2_from:
        fail("numpy2_only_from", f"{numpy2_only} is older than numpy2_from {numpy2_from}")
    if numpy2_from and last_numpy1 and last_numpy1 >= numpy2_from:
        fail("last_numpy1_build", f"{last_numpy1} is not older than numpy2_from {numpy2_from}")
    os_name = raw.get("os")
    if os_name is not None and os_name not in OSES:
        fail("os", f"{os_name!r} is not one of: {', '.join(OSES)}")
    failure = raw.get("numpy1_failure", "import")
    if failure not in FAILURES:
        fail("numpy1_failure", f"{failure!r} is not one of: {', '.join(FAILURES)}")
    method = raw.get("method", "hand")
    if method not in METHODS:
        fail("method", f"{method!r} is not one of: {', '.join(METHODS)}")
    cited = raw["sources"]
    if not (isinstance(cited, list) and cited and all(isinstance(s, str) for s in cited)):
        fail("sources", "should be a non-empty list of source ids")
        cited = []
    for source in cited if sources is not None else ():
        if source not in sources:
            fail("sources", f"source {source!r} is not in sources.toml or sources_facts.toml")
    if problems or numpy2_from is None:
        return None
    return NumpyAbiRow(normalize_name(raw["name"]), numpy2_from, numpy2_only, last_numpy1, failure, os_name, method,
                       tuple(cited))


def _version(text: str, key: str, fail: Any) -> Version | None:
    try:
        version = Version(text)
    except InvalidVersion:
        fail(key, f"bad version {text!r}")
        return None
    if version.local:
        fail(key, f"{text!r} has a local tag; write the public release")
        return None
    return version
