"""NumPy 1 vs 2 C API: every installed package of ``matrices/numpy_abi.toml`` against the installed NumPy.

Under NumPy >= 2 a release older than the package's first NumPy-2 build fails at import ("_ARRAY_API not found",
"numpy.dtype size changed"); under NumPy 1.x a release that needs NumPy 2 fails. An unknown version on one side
gives a 'could not verify' only when the known side makes the other one matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.numpy_abi import NumpyAbiRow, NumpyAbiTable, parse_numpy_abi
from envdoctor.rules import parse_version, torch_variant

TABLE_FILE = "numpy_abi.toml"
NUMPY1_BUILD = "numpy2-abi-numpy1-build"  # NumPy >= 2 with a release built against NumPy 1.x
NUMPY2_ONLY = "numpy1-with-numpy2-only-build"  # NumPy 1.x with a release that needs NumPy 2
NUMPY2 = Version("2.0.0rc1")


@dataclass(frozen=True)
class _Installed:
    name: str
    version: Version | None  # the public release; None: installed, version unknown (or not a PEP 440 version)
    text: str | None  # as the snapshot has it (with a local tag like +cu121)


def load_numpy_abi(matrices: Matrices) -> NumpyAbiTable:
    """The bundled table of ``matrices`` (empty when the file is absent). Raises MatrixError naming file and key."""
    path = matrices.root / TABLE_FILE
    if not path.exists():
        return NumpyAbiTable(())
    errors: list[str] = []
    table = parse_numpy_abi(matrices.table(TABLE_FILE.removesuffix(".toml")), Path(path), errors)
    if errors:
        raise MatrixError("\n".join(errors))
    return table


def check_numpy_abi(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages
    if not packages or "numpy" not in packages:
        return []
    table = load_numpy_abi(ctx.matrices)
    numpy = _installed(ctx, "numpy")
    host_os = ctx.snapshot.host.os
    installed = [_installed(ctx, name) for name in sorted(packages) if name != "numpy" and table.rows_for(name)]
    findings = []
    for package in installed:
        row, other_os = _row(table.rows_for(package.name), host_os)
        finding = _judge(ctx, package, numpy, row, installed, table)
        if finding is None and other_os is not None:
            finding = _unverified_os(ctx, package, numpy, other_os, installed, table)
        if finding is not None:
            findings.append(finding)
    return findings


def _installed(ctx: CheckContext, name: str) -> _Installed:
    text = ctx.snapshot.packages[name].version if ctx.snapshot.packages else None
    version = parse_version(text)
    return _Installed(name, Version(version.public) if version else None, text)


def _row(rows: tuple[NumpyAbiRow, ...], host_os: str | None) -> tuple[NumpyAbiRow | None, NumpyAbiRow | None]:
    """(the row for this OS, an OS-specific row that may apply because the OS is unknown)."""
    generic = next((r for r in rows if r.os is None), None)
    if host_os is not None:
        return next((r for r in rows if r.os == host_os), generic), None
    return generic, next((r for r in rows if r.os is not None), None)


def _judge(ctx: CheckContext, package: _Installed, numpy: _Installed, row: NumpyAbiRow | None,
           installed: list[_Installed], table: NumpyAbiTable) -> Finding | None:
    if row is None:
        return None
    where = f" on {row.os}" if row.os else ""
    if numpy.version is not None and numpy.version >= NUMPY2:
        if package.version is None:  # NumPy 2 is known: whether this package survives it is the open question
            return _unverified(NUMPY1_BUILD, row, package, f"{package.name} is installed but its version is unknown: "
                               f"releases before {row.numpy2_from}{where} were built against NumPy 1.x and fail at "
                               f"import under NumPy {numpy.text}", _upgrade_fix(ctx, package, row, installed, table),
                               severity=Severity.WARN)
        if _in_scan_gap(package, row):
            return _unverified(NUMPY1_BUILD, row, package, f"{package.name} {package.text} lies between the last "
                               f"release seen built against NumPy 1.x ({row.last_numpy1_build}) and the first seen "
                               f"built against NumPy 2 ({row.numpy2_from}); under NumPy {numpy.text} it may fail "
                               "at import", _upgrade_fix(ctx, package, row, installed, table))
        if package.version < row.numpy2_from:
            at_import = row.numpy1_failure == "import"
            return Finding(
                rule=NUMPY1_BUILD, category=Category.NUMPY, severity=Severity.FAIL if at_import else Severity.WARN,
                components=(package.name, "numpy"),
                message=f"{package.name} {package.text}{where} was built against NumPy 1.x (its first NumPy-2 build "
                f"is {row.numpy2_from}), but NumPy {numpy.text} is installed: "
                + ("importing it fails with '_ARRAY_API not found' or 'numpy.dtype size changed'" if at_import else
                   "it imports, but its first call that handles a NumPy array fails with '_ARRAY_API not found'"),
                fix=_upgrade_fix(ctx, package, row, installed, table), sources=row.sources,
            )
        return None
    if numpy.version is not None:
        if row.numpy2_only_from is None:
            return None
        if package.version is None:
            return _unverified(NUMPY2_ONLY, row, package, f"{package.name} is installed but its version is unknown: "
                               f"releases from {row.numpy2_only_from} on need NumPy 2 at run time, and NumPy "
                               f"{numpy.text} is installed", _downgrade_fix(package, row, installed, table))
        if package.version >= row.numpy2_only_from:
            return Finding(
                rule=NUMPY2_ONLY, category=Category.NUMPY, severity=Severity.FAIL, components=(package.name, "numpy"),
                message=f"{package.name} {package.text}{where} needs NumPy 2 at run time (from "
                f"{row.numpy2_only_from} on), but NumPy {numpy.text} is installed: importing it fails",
                fix=_downgrade_fix(package, row, installed, table), sources=row.sources,
            )
        return None
    if package.version is None:
        return None  # neither version is known: nothing here makes the pair matter
    unknown = "the NumPy version is unknown"
    if package.version < row.numpy2_from:
        return _unverified(NUMPY1_BUILD, row, package, f"{package.name} {package.text}{where} was built against NumPy "
                           f"1.x and fails at import under NumPy 2; {unknown}",
                           _upgrade_fix(ctx, package, row, installed, table))
    if row.numpy2_only_from is not None and package.version >= row.numpy2_only_from:
        return _unverified(NUMPY2_ONLY, row, package, f"{package.name} {package.text}{where} needs NumPy 2 at run "
                           f"time; {unknown}", _downgrade_fix(package, row, installed, table))
    return None


def _in_scan_gap(package: _Installed, row: NumpyAbiRow) -> bool:
    """The release is older than the first NumPy-2 build but newer than the last release scanned as NumPy 1.x."""
    return (package.version is not None and row.last_numpy1_build is not None
            and row.last_numpy1_build < package.version < row.numpy2_from)


def _unverified_os(ctx: CheckContext, package: _Installed, numpy: _Installed, row: NumpyAbiRow,
                   installed: list[_Installed], table: NumpyAbiTable) -> Finding | None:
    """The OS is unknown and ``row`` (for one OS) would fail: say so, unverified."""
    finding = _judge(ctx, package, numpy, row, installed, table)
    if finding is None or not finding.verified:
        return finding
    return Finding(
        rule=finding.rule, category=finding.category, severity=Severity.INFO, components=finding.components,
        message=f"could not verify: the snapshot does not say host.os; {finding.message}",
        fix=finding.fix, sources=finding.sources, verified=False,
    )


def _unverified(rule: str, row: NumpyAbiRow, package: _Installed, message: str, fix: str,
                severity: Severity = Severity.INFO) -> Finding:
    return Finding(
        rule=rule, category=Category.NUMPY, severity=severity, components=(package.name, "numpy"),
        message=f"could not verify: {message}", fix=fix, sources=row.sources, verified=False,
    )


def _needs_numpy2(installed: list[_Installed], table: NumpyAbiTable, host_os: str | None) -> list[str]:
    """Installed packages that would break under ``numpy<2``."""
    out = []
    for package in installed:
        row, _ = _row(table.rows_for(package.name), host_os)
        if row and row.numpy2_only_from and package.version and package.version >= row.numpy2_only_from:
            out.append(f"{package.name} {package.text}")
    return out


def _upgrade_fix(ctx: CheckContext, package: _Installed, row: NumpyAbiRow, installed: list[_Installed],
                 table: NumpyAbiTable) -> str:
    """Both ways out, the one that changes less first: a patch upgrade of the package, else ``numpy<2``."""
    target = row.numpy2_from
    upgrade = f'pip install "{package.name}>={target},<{target.major}.{target.minor + 1}"'
    variant = torch_variant(ctx.snapshot) if package.name == "torch" else None
    if isinstance(variant, str) and (variant.startswith(("cu", "rocm")) or variant == "cpu"):
        upgrade += f" --index-url https://download.pytorch.org/whl/{variant}"
    blockers = _needs_numpy2(installed, table, ctx.snapshot.host.os)
    if blockers:
        return f"{upgrade}   # numpy<2 is no way out here: {', '.join(blockers)} need NumPy 2"
    downgrade = 'pip install "numpy<2"'
    same_minor = package.version is not None and package.version.release[:2] == target.release[:2]
    return f"{upgrade}   # or: {downgrade}" if same_minor else f"{downgrade}   # or: {upgrade}"


def _downgrade_fix(package: _Installed, row: NumpyAbiRow, installed: list[_Installed], table: NumpyAbiTable) -> str:
    """Keep NumPy 1.x when something installed was built against it; else either way."""
    downgrade = f'pip install "{package.name}<{row.numpy2_only_from}"'
    numpy1_builds = [f"{p.name} {p.text}" for p in installed if p.version is not None and any(
        r.os is None and p.version < r.numpy2_from for r in table.rows_for(p.name))]
    if numpy1_builds:
        return f"{downgrade}   # numpy>=2 would break {', '.join(numpy1_builds)} (built against NumPy 1.x)"
    return f'{downgrade}   # or: pip install "numpy>=2"'
