"""The compute capabilities each package release supports (``matrices/gpu_floors.toml``) against the GPUs.

Floors: a known release takes the highest floor of the rows whose range holds it: a GPU below it fails. A package of
unknown version fails below the lowest floor any of its rows gives (no release runs there), and warns, inferred, below
the floor of its newest recorded release (a current install does not run there).
Ceilings, for packages that refuse a GPU their release does not know (no PTX to compile for a newer one): a known
release takes the lowest ceiling of the rows whose range holds it, and a GPU above it fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.pypi_facts import newest_known_release, newest_release, releases
from envdoctor.rules import gpu_ccs, matches_specifier
from envdoctor.snapshot import Package

TABLE = "gpu_floors"


@dataclass(frozen=True)
class GpuFloor:
    package: str
    versions: str  # a specifier
    min_cc: Version
    sources: tuple[str, ...]
    below: Severity = Severity.FAIL  # WARN where the project calls it the supported minimum but older GPUs may run


@dataclass(frozen=True)
class GpuCeiling:
    package: str
    versions: str  # a specifier
    max_cc: Version  # the newest compute capability the release runs on
    sources: tuple[str, ...]
    error: str  # what the release says on a newer GPU


def load_gpu_floors(matrices: Matrices) -> tuple[GpuFloor, ...]:
    """The floor rows, validated; a bad row raises MatrixError naming the file and row."""
    where = matrices.root / f"{TABLE}.toml"
    rows = []
    for index, row in enumerate(matrices.table(TABLE).get("gpu_floor", [])):
        try:
            SpecifierSet(row["versions"])
            sources = tuple(row["sources"])
            if not sources:
                raise ValueError("bad value")
            rows.extend(GpuFloor(package, row["versions"], Version(row["min_compute_capability"]), sources,
                                 Severity(row.get("below", "fail"))) for package in _packages(row))
        except (KeyError, TypeError, ValueError, InvalidSpecifier, InvalidVersion) as error:
            raise MatrixError(f"{where}: gpu_floor[{index}]: needs package (a name or a list of names), versions (a "
                              f"specifier), min_compute_capability (\"X.Y\"), sources and optionally below (\"fail\" "
                              f"or \"warn\") ({error})") from None
        if rows[-1].below not in (Severity.FAIL, Severity.WARN):
            raise MatrixError(f"{where}: gpu_floor[{index}]: below must be \"fail\" or \"warn\"")
    return tuple(rows)


def load_gpu_ceilings(matrices: Matrices) -> tuple[GpuCeiling, ...]:
    """The ceiling rows, validated; a bad row raises MatrixError naming the file and row."""
    where = matrices.root / f"{TABLE}.toml"
    rows = []
    for index, row in enumerate(matrices.table(TABLE).get("gpu_ceiling", [])):
        try:
            SpecifierSet(row["versions"])
            sources = tuple(row["sources"])
            if not sources:
                raise ValueError("bad value")
            error = row.get("error", "'Unsupported SM'")
            if not isinstance(error, str) or not error:
                raise ValueError("bad error")
            rows.extend(GpuCeiling(package, row["versions"], Version(row["max_compute_capability"]), sources, error)
                        for package in _packages(row))
        except (KeyError, TypeError, ValueError, InvalidSpecifier, InvalidVersion) as error:
            raise MatrixError(f"{where}: gpu_ceiling[{index}]: needs package (a name or a list of names), versions "
                              f"(a specifier), max_compute_capability (\"X.Y\"), sources and optionally error, the "
                              f"text the release gives on a newer GPU ({error})") from None
    return tuple(rows)


def _packages(row: dict) -> list[str]:
    names = row["package"] if isinstance(row["package"], list) else [row["package"]]
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError("bad package")
    return names


Row = TypeVar("Row", GpuFloor, GpuCeiling)


def _installed(ctx: CheckContext, rows: tuple[Row, ...]) -> tuple[list[Version], list[tuple[str, Package, list[Row]]]]:
    """The GPUs' compute capabilities and, per installed package the rows name, its package and its rows; nothing
    when there is no GPU or no package."""
    ccs = sorted(set(gpu_ccs(ctx.snapshot)))
    packages = ctx.snapshot.packages or {}
    by_package: dict[str, list[Row]] = {}
    for row in rows if ccs else ():
        by_package.setdefault(row.package, []).append(row)
    return ccs, [(name, packages[name], by_package[name]) for name in sorted(by_package) if name in packages]


def check_gpu_floors(ctx: CheckContext) -> list[Finding]:
    ccs, installed = _installed(ctx, load_gpu_floors(ctx.matrices))
    findings = []
    for name, package, rows in installed:
        if package.version is not None:
            holding = [row for row in rows if matches_specifier(package.version, row.versions)]
            floor = max(holding, key=lambda row: row.min_cc, default=None)
            low = [cc for cc in ccs if floor is not None and cc < floor.min_cc]
            if low and floor is not None:
                findings.append(_finding(f"{name} {package.version} supports", floor, low, floor.below, True))
            continue
        lowest = min(rows, key=lambda row: row.min_cc)
        below_all = [cc for cc in ccs if cc < lowest.min_cc]
        if below_all:
            findings.append(_finding(f"{name} (version unknown) supports", lowest, below_all,
                                     lowest.below, verified=True))
            continue
        newest = _newest_floor(ctx, name, rows)
        below_newest = [cc for cc in ccs if newest is not None and cc < newest.min_cc]
        if below_newest and newest is not None:
            findings.append(_finding(f"{name} (version unknown, inferred from its current releases) supports", newest,
                                     below_newest, Severity.WARN, verified=False))
    return findings


def check_gpu_ceilings(ctx: CheckContext) -> list[Finding]:
    ccs, installed = _installed(ctx, load_gpu_ceilings(ctx.matrices))
    findings = []
    for name, package, rows in installed:
        if package.version is None:
            findings.extend(_ceiling_of_unknown(ctx, name, rows, ccs))
            continue
        holding = [row for row in rows if matches_specifier(package.version, row.versions)]
        ceiling = min(holding, key=lambda row: row.max_cc, default=None)
        high = [cc for cc in ccs if ceiling is not None and cc > ceiling.max_cc]
        if high and ceiling is not None:
            findings.append(Finding(
                rule="package-gpu-too-new", category=Category.GPU_ARCH, severity=Severity.FAIL,
                components=(name, "gpu"), sources=ceiling.sources, verified=True,
                message=f"{name} {package.version} runs on GPUs up to compute capability {ceiling.max_cc} (releases "
                f"{ceiling.versions}); this GPU is {', '.join(str(cc) for cc in high)}, which that release does not "
                f"know: it refuses it ({ceiling.error})",
                fix=f"install a release of {name} that supports compute capability "
                f"{', '.join(str(cc) for cc in high)} (a newer one)",
            ))
    return findings


def _ceiling_of_unknown(ctx: CheckContext, name: str, rows: list[GpuCeiling], ccs: list[Version]) -> list[Finding]:
    """Installed with an unknown version on a GPU some releases do not know: the releases that run on it start at
    the first one no lower ceiling holds. Said as inferred; nothing when no release recorded runs on it yet (the
    newest one's own ceiling, judged once the version is known), or when the environment postdates that first
    release (another installed package of known version was released after it)."""
    top = max(ccs, default=None)
    if top is None:
        return []
    history = [release for release in releases(name, ctx.matrices.root) if not release.yanked]
    capped = [index for index, release in enumerate(history)
              if any(matches_specifier(release.version, row.versions) and row.max_cc < top for row in rows)]
    if not capped or capped[-1] == len(history) - 1:
        return []
    first = history[capped[-1] + 1]
    packages = ctx.snapshot.packages or {}
    made_after = newest_known_release(packages, ctx.matrices.root)
    if made_after is not None and made_after >= first.date:
        return []  # a package of known version came out after the first release that runs here: so did this one
    last = history[capped[-1]]
    lowest = min((row for row in rows if matches_specifier(last.version, row.versions)), key=lambda r: r.max_cc)
    return [Finding(
        rule="package-gpu-too-new", category=Category.GPU_ARCH, severity=Severity.WARN,
        components=(name, "gpu"), sources=lowest.sources, verified=False,
        message=f"{name} is installed (version unknown) on compute capability {top}; its releases before "
        f"{first.version} run on GPUs up to {lowest.max_cc} at most and refuse this one ({lowest.error}), so unless "
        f"it is {first.version} or newer it fails here"
        + ("" if any(matches_specifier(first.version, row.versions) for row in rows) else
           f" (whether {first.version} and later run on {top} is not recorded)")
        + " (inferred: the installed version is unknown)",
        fix=f"pip install -U \"{name}>={first.version}\"",
    )]


def _newest_floor(ctx: CheckContext, name: str, rows: list[GpuFloor]) -> GpuFloor | None:
    newest = newest_release(name, ctx.matrices.root)
    if newest is None:
        return None
    holding = [row for row in rows if matches_specifier(newest.version, row.versions)]
    return max(holding, key=lambda row: row.min_cc, default=None)


def _finding(shown: str, floor: GpuFloor, low: list[Version], severity: Severity, verified: bool) -> Finding:
    capabilities = ", ".join(str(cc) for cc in low)
    which = "every release" if floor.versions == ">=0" else f"releases {floor.versions}"
    return Finding(
        rule="package-gpu-too-old", category=Category.GPU_ARCH, severity=severity, components=(floor.package, "gpu"),
        sources=floor.sources, verified=verified,
        message=f"{shown} GPUs of compute capability {floor.min_cc} and newer only ({which} of {floor.package}); "
        f"this GPU is {capabilities}: " + ("its kernels do not run here ('no kernel image is available for execution "
                                           "on the device')" if floor.below is Severity.FAIL else
                                           "below the minimum its project supports, parts of it fail or run slowly"),
        fix=f"use a GPU of compute capability {floor.min_cc} or newer for {floor.package}, or an older release "
        "whose floor is lower where one exists",
    )
