"""NumPy 1 vs 2 C API: every installed package of ``matrices/numpy_abi.toml`` against the installed NumPy.

Under NumPy >= 2 a release older than the package's first NumPy-2 build fails at import ("_ARRAY_API not found",
"numpy.dtype size changed"); under NumPy 1.x a release that needs NumPy 2 fails. An unknown version on one side
gives a 'could not verify' only when the known side makes the other one matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.checks.declared import parse_declared
from envdoctor.checks.numpy_build_dates import numpy1_builds_by_date
from envdoctor.checks.numpy_dependencies import check_numpy_dependencies, check_numpy_unknown_dependencies
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.numpy_abi import NumpyAbiRow, NumpyAbiTable, parse_numpy_abi
from envdoctor.pypi_facts import release_facts, releases
from envdoctor.rules import parse_version, torch_variant
from envdoctor.snapshot import normalize_name

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
    if any(f.verified and f.severity in (Severity.WARN, Severity.FAIL) for f in findings):
        return findings  # a known NumPy break is the diagnosis; the unverifiable rest adds nothing to it
    if numpy.version is not None:
        findings += numpy1_builds_by_date(ctx, numpy.version, numpy.text or str(numpy.version), table, NUMPY2)
        findings += check_numpy_dependencies(ctx, numpy.text or str(numpy.version), numpy.version, table)
    else:
        findings += check_numpy_unknown_dependencies(ctx, table)
    if any(f.verified and f.severity in (Severity.WARN, Severity.FAIL) for f in findings):
        return findings
    return findings + _numpy2_unverified_dependents(ctx, numpy, table, installed)


def _numpy2_unverified_dependents(ctx: CheckContext, numpy: _Installed, table: NumpyAbiTable,
                                  installed: list[_Installed]) -> list[Finding]:
    """NumPy >= 2 beside packages envdoctor cannot judge: installed with an unknown version, outside the NumPy table
    and not known to be free of NumPy (PyPI metadata of every release without a numpy requirement); or NumPy 2 as
    a pre-release, which nothing on PyPI was built for when it came out. Either may hold modules compiled against
    NumPy 1.x, which fail at import under NumPy 2."""
    if numpy.version is None or numpy.version < NUMPY2:
        return []
    packages = ctx.snapshot.packages or {}
    unknown = [name for name, package in sorted(packages.items())
               if name != "numpy" and package.version is None and not table.rows_for(name) and _may_use_numpy(name)]
    if not unknown and not numpy.version.is_prerelease:
        return []
    blockers = _needs_numpy2(installed, table, ctx.snapshot.host.os)
    if unknown:
        what = (f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} installed with an unknown version and "
                "outside envdoctor's NumPy table: whether they (or the compiled modules they import) were built for "
                "NumPy 2 cannot be checked")
    else:
        what = ("it is a pre-release of NumPy 2: compiled packages released before it were built against NumPy 1.x, "
                "and the snapshot lists none to check")
    fix = ('pip install "numpy<2"   # until each compiled package is a release built for NumPy 2' if not blockers
           else f"pip install --upgrade {' '.join(unknown) or 'PACKAGE'}   # numpy<2 would break {', '.join(blockers)}")
    return [Finding(
        rule="numpy2-unverified-dependents", category=Category.NUMPY, severity=Severity.WARN,
        components=("numpy", *unknown), sources=("numpy-26191",), verified=False,
        message=f"could not verify: NumPy {numpy.text} is installed and {what}; a module compiled against NumPy 1.x "
        f"fails at import under it ('A module that was compiled using NumPy 1.x cannot be run in NumPy "
        f"{numpy.text}', '_ARRAY_API not found', 'numpy.dtype size changed')",
        fix=fix,
    )]


def _may_use_numpy(name: str) -> bool:
    """False only when PyPI metadata of every known release of ``name`` is known and none requires numpy."""
    known = releases(name)
    if not known:
        return True
    for release in known:
        if release.requires is None:
            return True
        if any(d is not None and normalize_name(d.name) == "numpy" for d in map(parse_declared, release.requires)):
            return True
    return False


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
            ranged = _numpy1_builds_dominate(ctx, package, numpy, row, installed, table)
            if ranged is not None:
                return ranged
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
        dates = _released_before_numpy2_build(package, row)
        if dates is not None:
            return Finding(
                rule=NUMPY1_BUILD, category=Category.NUMPY, severity=Severity.WARN, components=(package.name, "numpy"),
                message=f"{package.name} {package.text}{where} was released on {dates[0]}, before {package.name}'s "
                f"first NumPy-2 build ({row.numpy2_from}, released {dates[1]}): a parallel release line built against "
                f"NumPy 1.x, so under NumPy {numpy.text} importing it fails with 'numpy.dtype size changed' or "
                "'_ARRAY_API not found' (inferred from release dates)",
                fix=_upgrade_fix(ctx, package, row, installed, table), sources=(*row.sources, "pypi-release-dates"),
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
    stuck = _newest_for_host(ctx, package.name)
    if package.version < row.numpy2_from and stuck is not None and stuck < row.numpy2_from \
            and not _caps_numpy1(package):
        return Finding(
            rule=NUMPY1_BUILD, category=Category.NUMPY, severity=Severity.WARN, components=(package.name, "numpy"),
            message=f"{package.name} {package.text}{where} was built against NumPy 1.x, and no release built for "
            f"NumPy 2 (from {row.numpy2_from}) has a wheel for {ctx.snapshot.host.os} {ctx.snapshot.host.arch} (the "
            f"newest there is {stuck}); {unknown}, and {package.name} {package.text} does not cap it below 2, so a "
            "NumPy installed since 2.0 (June 2024) is 2.x: importing it fails with '_ARRAY_API not found' or "
            "'numpy.dtype size changed' (inferred: the NumPy version is not known)",
            fix=f'pip install "numpy<2"   # {package.name} has no NumPy-2 build for this platform',
            sources=(*row.sources, "pypi-metadata"),
        )
    if package.version < row.numpy2_from:
        capped_by = [other for name in sorted(ctx.snapshot.packages or {}) if name != "numpy"
                     and _caps_numpy1(other := _installed(ctx, name))]
        if capped_by:
            return _unverified(NUMPY1_BUILD, row, package, f"{package.name} {package.text}{where} was built against "
                               f"NumPy 1.x and fails at import under NumPy 2; {unknown} ({capped_by[0].name} "
                               f"{capped_by[0].text} keeps it below 2 when pip resolves them together)",
                               _upgrade_fix(ctx, package, row, installed, table))
        return _unverified(NUMPY1_BUILD, row, package, f"{package.name} {package.text}{where} was built against NumPy "
                           f"1.x and fails at import under NumPy 2; {unknown}, and no installed package of known "
                           "version caps it below 2, so a NumPy installed or upgraded since 2.0 (June 2024) is 2.x "
                           "('_ARRAY_API not found', 'numpy.dtype size changed')",
                           _upgrade_fix(ctx, package, row, installed, table), Severity.WARN)
    if row.numpy2_only_from is not None and package.version >= row.numpy2_only_from:
        return _unverified(NUMPY2_ONLY, row, package, f"{package.name} {package.text}{where} needs NumPy 2 at run "
                           f"time; {unknown}", _downgrade_fix(package, row, installed, table))
    return None


def _released_before_numpy2_build(package: _Installed, row: NumpyAbiRow) -> tuple[str, str] | None:
    """(release date, first NumPy-2 build's date) when a release numbered above the first NumPy-2 build was uploaded
    before it (a parallel line such as thinc 9.0 beside 8.3): the table orders releases by version, but no release
    uploaded before a package's first NumPy-2 build was built against NumPy 2."""
    if package.version is None or package.version <= row.numpy2_from:
        return None
    release = release_facts(package.name, str(package.version))
    first = release_facts(package.name, str(row.numpy2_from))
    if release is None or first is None or not release.date or not first.date or release.date >= first.date:
        return None
    return release.date, first.date


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


HOST_WHEEL_PLATFORMS = {
    ("darwin", "x86_64"): "macosx_x86_64", ("darwin", "arm64"): "macosx_arm64",
    ("linux", "x86_64"): "linux_x86_64", ("linux", "aarch64"): "linux_aarch64", ("windows", "x86_64"): "win_amd64",
    ("windows", "amd64"): "win_amd64",
}


def _newest_for_host(ctx: CheckContext, name: str) -> Version | None:
    """The newest release of ``name`` with a binary wheel for this OS and machine (PyPI's wheel tags); None when the
    host or the wheels are not known, or when a pure wheel or source archive could serve it."""
    host = ctx.snapshot.host
    platform = HOST_WHEEL_PLATFORMS.get((host.os or "", (host.arch or "").lower()))
    known = releases(name)
    if platform is None or not known or any(r.wheels is None for r in known):
        return None
    if any(r.pure_wheel for r in known):
        return None
    built = [Version(r.version) for r in known if any(tag.endswith(platform) for tag in r.wheels or ())]
    return max(built) if built else None


def _caps_numpy1(package: _Installed) -> bool:
    """The release's own Requires-Dist keeps NumPy below 2 (then pip does not install NumPy 2 beside it)."""
    release = release_facts(package.name, str(package.version)) if package.version else None
    for line in (release.requires or ()) if release else ():
        declared = parse_declared(line)
        if declared and normalize_name(declared.name) == "numpy" and declared.specifier:
            try:
                if not SpecifierSet(declared.specifier).contains("2.0.0", prereleases=True):
                    return True
            except InvalidSpecifier:
                return False
    return False


def _host_releases(ctx: CheckContext, name: str) -> tuple[list[Version], str]:
    """The releases of ``name`` that have a binary wheel for this host (and Python, when known), and how they were
    chosen; every release PyPI has when the host is not known."""
    host, python = ctx.snapshot.host, ctx.snapshot.python.version
    platform = HOST_WHEEL_PLATFORMS.get((host.os or "", (host.arch or "").lower()))
    if platform is None and host.os == "darwin":
        platform = "macosx_"  # either Mac
    elif platform is None and host.os in ("linux", "windows"):
        platform = {"linux": "linux_", "windows": "win_"}[host.os]
    cp = "cp" + "".join(python.split(".")[:2]) if python else None
    chosen = []
    for release in releases(name):
        version = parse_version(release.version)
        if version is None or release.wheels is None or version.is_prerelease:
            continue
        tags = [t for t in release.wheels if platform is None or platform in t]
        if cp is not None:
            tags = [t for t in tags if t.startswith(cp + "-") or t.startswith(("py3", "cp3")) and "abi3" in t]
        if tags:
            chosen.append(Version(version.public))
    where = " ".join(w for w in (f"{host.os} {host.arch}" if platform and host.arch else host.os or "",
                                 f"Python {python}" if python else "") if w)
    return chosen, (f"with wheels for {where}" if where else "on PyPI")


def _numpy1_builds_dominate(ctx: CheckContext, package: _Installed, numpy: _Installed, row: NumpyAbiRow,
                            installed: list[_Installed], table: NumpyAbiTable) -> Finding | None:
    """NumPy 2 is installed and the package's version is unknown: when most of its releases that could be here
    (a wheel for this host and Python) were built against NumPy 1.x, a warning that says so (inferred)."""
    chosen, where = _host_releases(ctx, package.name)
    if row.os is not None and ctx.snapshot.host.os != row.os:
        return None
    numpy1 = [v for v in chosen if v < row.numpy2_from]
    if len(chosen) < 2 or 2 * len(numpy1) <= len(chosen):
        return None
    which = (f"; the others, from {row.numpy2_from}, run under it; unless it is one of those, importing it fails"
             if len(numpy1) < len(chosen) else f" (its NumPy-2 builds, from {row.numpy2_from}, have none here), so "
             "importing it fails")
    return Finding(
        rule=NUMPY1_BUILD, category=Category.NUMPY, severity=Severity.WARN, components=(package.name, "numpy"),
        message=f"{package.name} is installed with an unknown version beside NumPy {numpy.text}: {len(numpy1)} of its "
        f"{len(chosen)} releases {where} were built against NumPy 1.x{which} with '_ARRAY_API not found' or "
        "'numpy.dtype size changed' (inferred: the version is unknown)",
        fix=_upgrade_fix(ctx, package, row, installed, table), sources=(*row.sources, "pypi-metadata"), verified=False,
    )
