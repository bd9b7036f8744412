"""Compiled packages outside the NumPy table under NumPy >= 2, judged by upload date: a release whose CPython
extension wheels were uploaded before the first NumPy-2 build the table records (of any package) cannot have been
built against NumPy 2; if its extension modules use NumPy's C API they fail at import ("_ARRAY_API not found",
"A module that was compiled using NumPy 1.x cannot be run in NumPy 2"). Whether they use it is not known
(unverified): the NumPy table lists the packages scanned and found free of it, which are left out, as are torch
extensions (their compiled code works on torch's tensors).
"""

from __future__ import annotations

from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.checks.declared import required_names
from envdoctor.findings import Category, Finding, Severity
from envdoctor.numpy_abi import NumpyAbiTable
from envdoctor.pypi_facts import ReleaseFacts, release_facts, releases
from envdoctor.rules import parse_version

RULE = "numpy1-build-by-date"


def numpy1_builds_by_date(ctx: CheckContext, numpy: Version, numpy_text: str, table: NumpyAbiTable,
                          first_numpy2: Version) -> list[Finding]:
    """``first_numpy2``: NumPy 2's first release (a pre-release counts); below it nothing is judged here."""
    if numpy < first_numpy2:
        return []
    candidates = []
    for name, package in sorted((ctx.snapshot.packages or {}).items()):
        parsed = parse_version(package.version) if package.version else None
        if name == "numpy" or parsed is None or table.rows_for(name) or name in table.no_numpy_c_api:
            continue
        release = release_facts(name, parsed.public)
        if release is not None and _compiled_numpy_user(release):
            candidates.append((name, release))
    boundary = first_numpy2_build(table) if candidates else None  # read the table's dates only when needed
    if boundary is None:
        return []
    return [_finding(name, release, numpy_text, boundary) for name, release in candidates
            if release.date < boundary[0]]


def first_numpy2_build(table: NumpyAbiTable) -> tuple[str, str] | None:
    """(upload date, "package version") of the earliest release the table records as built against NumPy 2, among
    those whose dates the PyPI tables hold."""
    dated = []
    for row in table.rows:
        release = release_facts(row.package, str(row.numpy2_from))
        if release is not None:
            dated.append((release.date, f"{row.package} {row.numpy2_from}"))
    return min(dated) if dated else None


def _compiled_numpy_user(release: ReleaseFacts) -> bool:
    """CPython extension wheels and a numpy requirement, and no torch requirement: a torch extension's compiled
    code uses torch's tensors, not NumPy's C API."""
    required = required_names(release.requires)
    return release.cpython_wheels and "numpy" in required and "torch" not in required


def _finding(name: str, release: ReleaseFacts, numpy_text: str, boundary: tuple[str, str]) -> Finding:
    later = [r for r in releases(name) if r.date >= boundary[0] and not r.yanked
             and r.cpython_wheels]
    upgrade = f'pip install --upgrade "{name}>={later[0].version}"' if later else None
    return Finding(
        rule=RULE, category=Category.NUMPY, severity=Severity.WARN, components=(name, "numpy"),
        sources=("pypi-metadata", "numpy-26191"), verified=False,
        message=f"{name} {release.version} ships compiled modules and requires numpy, and its wheels were uploaded on "
        f"{release.date}, before the first NumPy-2 build envdoctor records ({boundary[1]}, {boundary[0]}): it was "
        f"built against NumPy 1.x, so if its modules use NumPy's C API they fail at import under NumPy {numpy_text} "
        "('A module that was compiled using NumPy 1.x cannot be run in NumPy 2', '_ARRAY_API not found') "
        "(inferred from dates)",
        fix=(f'{upgrade}   # uploaded after NumPy 2 builds began; or: pip install "numpy<2"' if upgrade
             else 'pip install "numpy<2"'),
    )
