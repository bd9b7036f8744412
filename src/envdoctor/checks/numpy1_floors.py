"""Compiled packages built against a newer NumPy 1.x than the installed one (``matrices/numpy1_floors.json``,
written by ``tools/gen_numpy1_floors.py`` from each release's wheels).

A release whose wheel for some CPython was built with the headers of NumPy 1.20 or newer (Cython's ndarray size
check, NumPy's C-API version check) fails at import under an older NumPy, though its Requires-Dist allows that
NumPy: "numpy.ndarray size changed, may indicate binary incompatibility. Expected 88 from C header, got 80 from
PyObject", "module compiled against API version 0xe but this version of numpy is 0xd". The table lists such releases
with the floor per CPython tag. With the snapshot's Python known, its tag's floor is used; with it unknown, a floor
is judged only when every scanned wheel of the release carries one (the lowest). The table reads manylinux x86_64
wheels; on another platform, or with the Python unknown, the finding is inferred (``verified: false``). Either
version unknown: nothing is said here.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.wheels import cpython_tag, platform_family
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, Problem, generated_json_table
from envdoctor.rules import parse_version
from envdoctor.snapshot import normalize_name

FILE = "numpy1_floors.json"
GENERATOR = "tools/gen_numpy1_floors.py"
RULE = "numpy-older-than-build"
SOURCE = "numpy1-floor-wheel-scan"
# What each kind of evidence makes the import say; the first NumPy with each ndarray size and C-API version
# (the table's "ndarray_sizes" and "api_versions", read from NumPy's headers and cversions.txt) decides which fails.
EVIDENCE = re.compile(r"ndarray size (\d+)|C-API version (0x[0-9a-f]+)")


@dataclass(frozen=True)
class BuildFloor:
    """Release ``release`` of a package: wheels built against NumPy >= ``floors[cpXY]``."""

    release: Version
    floors: dict[int, Version]  # CPython 3.minor -> the oldest NumPy its wheel imports with
    scanned: frozenset[int]  # the CPython minors whose wheels were read
    declared: str | None  # the NumPy floor the release's METADATA declares
    evidence: str  # "wheel: module: ndarray size 88"


@dataclass(frozen=True)
class Numpy1Floors:
    generated: str
    packages: dict[str, dict[Version, BuildFloor]]  # normalized name -> release -> its floors
    firsts: dict[str, str]  # "ndarray size 88" / "C-API version 0xe" -> the first NumPy that has it


def load_numpy1_floors(matrices: Matrices) -> Numpy1Floors | None:
    """The table of the matrices folder (None when absent); a malformed one raises MatrixError naming the key."""
    return _table(matrices.root / FILE)


@functools.lru_cache(maxsize=8)
def _table(path: Path) -> Numpy1Floors | None:
    return generated_json_table(path, GENERATOR, _parse)


def _parse(raw: dict[str, Any], error: Problem) -> Numpy1Floors | None:
    packages = raw.get("packages")
    if not isinstance(packages, dict):
        error("packages", "should be an object of package -> list of release rows")
        return None
    table: dict[str, dict[Version, BuildFloor]] = {}
    for name, rows in packages.items():
        if not isinstance(rows, list):
            error(f"packages.{name}", "should be a list of release rows")
            continue
        for index, row in enumerate(rows):
            parsed = _row(row)
            if parsed is None:
                error(f"packages.{name}[{index}]", "should have release, numpy_floor {\"cpXY\": \"1.NN\"}, scanned "
                      "[\"cpXY\"], declared and evidence")
                continue
            table.setdefault(normalize_name(name), {})[parsed.release] = parsed
    sizes, apis = raw.get("ndarray_sizes"), raw.get("api_versions")
    if not isinstance(sizes, dict) or not isinstance(apis, dict):
        error("ndarray_sizes", "should be objects of ndarray size and C-API version -> first NumPy (api_versions)")
        return None
    firsts = {f"ndarray size {k}": v for k, v in sizes.items() if isinstance(v, str)}
    firsts.update({f"C-API version {k}": v for k, v in apis.items() if isinstance(v, str)})
    return Numpy1Floors(str(raw.get("generated", "")), table, firsts)


def _row(row: Any) -> BuildFloor | None:
    if not isinstance(row, dict) or not isinstance(row.get("numpy_floor"), dict) \
            or not isinstance(row.get("scanned"), list):
        return None
    try:
        floors = {_minor(tag): Version(floor) for tag, floor in row["numpy_floor"].items()}
        scanned = frozenset(_minor(tag) for tag in row["scanned"])
        return BuildFloor(Version(row["release"]), floors, scanned, row.get("declared"), str(row.get("evidence", "")))
    except (InvalidVersion, TypeError, ValueError):
        return None


def _minor(tag: str) -> int:
    if not (isinstance(tag, str) and tag.startswith("cp3") and tag[3:].isdigit()):
        raise ValueError(tag)
    return int(tag[3:])


def check_numpy1_floors(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    numpy = packages.get("numpy")
    installed = parse_version(numpy.version) if numpy is not None and numpy.version else None
    if installed is None or installed.major != 1:
        return []
    table = load_numpy1_floors(ctx.matrices)
    if table is None:
        return []
    minor = cpython_tag(ctx.snapshot.python.version)
    findings = []
    for name, package in sorted(packages.items()):
        rows = table.packages.get(name)
        release = parse_version(package.version) if rows and package.version else None
        row = rows.get(Version(release.public)) if rows and release is not None else None
        floor = _floor(row, minor) if row is not None else None
        if row is not None and floor is not None and Version(installed.base_version) < floor:
            symptom = _symptom(row.evidence, Version(installed.base_version), table.firsts)
            findings.append(_finding(ctx, name, package.version or "", numpy.version or "", row, floor, minor,
                                     symptom))
    return findings


def _floor(row: BuildFloor, minor: int | None) -> Version | None:
    """The NumPy the release needs here: its Python's wheel's floor, or with the Python unknown the lowest floor
    when every scanned wheel has one."""
    if minor is not None:
        return row.floors.get(minor)
    if row.scanned and row.scanned <= row.floors.keys():
        return min(row.floors.values())
    return None


def _symptom(evidence: str, installed: Version, firsts: dict[str, str]) -> str:
    """The error of the check the installed NumPy fails: the ndarray size check's, else the C-API version's."""
    for match in EVIDENCE.finditer(evidence):
        first = firsts.get(match.group(0))
        if first is not None and installed < Version(first):
            if match.group(1):
                return (f"numpy.ndarray size changed, may indicate binary incompatibility. Expected {match.group(1)} "
                        "from C header, got ... from PyObject")
            return f"module compiled against API version {match.group(2)} but this version of numpy is ..."
    return "module compiled against API version ... but this version of numpy is ..."


def _finding(ctx: CheckContext, name: str, version: str, numpy: str, row: BuildFloor, floor: Version,
             minor: int | None, symptom: str) -> Finding:
    on_scanned_platform = platform_family(ctx.snapshot.host.os, ctx.snapshot.host.arch) == "linux_x86_64"
    verified = minor is not None and on_scanned_platform
    wheel = f"its CPython 3.{minor} wheel" if minor is not None else "every wheel scanned"
    how = "" if verified else " (inferred from its manylinux x86_64 wheels)"
    declared = f"numpy>={row.declared}" if row.declared else "no NumPy floor"
    return Finding(
        rule=RULE, category=Category.NUMPY, severity=Severity.FAIL if verified else Severity.WARN,
        components=(name, "numpy"), sources=(SOURCE,), verified=verified,
        message=f"{name} {version}: {wheel} was compiled against NumPy {floor} or newer{how} ({row.evidence}), but "
        f"numpy {numpy} is installed, so its compiled modules cannot use it: importing {name} fails with "
        f"\"{symptom}\" (or, where the package catches that, as torch does, every NumPy conversion fails later). "
        f"Its metadata declares {declared}, so pip allowed this NumPy",
        fix=requirement_install(ctx, "numpy", f">={floor},<2"),
    )
