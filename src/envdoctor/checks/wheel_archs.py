"""The GPU code inside packages' PyPI wheels against the GPUs (``matrices/wheel_archs.json``, written by
``tools/gen_wheel_archs.py`` from each release's wheel).

A library's CUDA kernels run on a GPU when it holds a cubin of the GPU's major version at or below its minor (sm_80
runs on 8.6, never on 9.0) or PTX at or below its compute capability, which the driver compiles at load. A package
none of whose libraries holds either for a GPU fails at its first kernel there: "no kernel image is available for
execution on the device". The table counts each library's fat binaries (one per compiled source file) by what
they hold: those that hold only nvcc's default target (one capability as both cubin and PTX, sm_52 before CUDA 13)
come from sources built without the project's arch list and are left out. Of the rest, those built for the most
targets hold the library's general kernels (its arch list); fewer targets mark arch-specific kernels (Hopper-only
GEMMs, FP8, Marlin), so a library runs on a GPU when its general kernels do.

The table describes PyPI's manylinux x86_64 wheel of each release: another platform, a version with a local label
(``+cu128``, another index's build) or a direct-URL install is not judged. A known release gives a verified failure
on Linux (the wheel read) and an unverified one where the host is not stated; a package of unknown version warns,
unverified, when no release runs on the GPU, when the newest one does not (a current install), or when only the
releases from some point on do (kernels for the GPU came later) and no package of the snapshot of known version was
released on or after that point (the environment may predate it). A GPU below the
floor the project states (``gpu_floors.toml``) has its own finding and is not judged again.

The newest PTX ISA version in a release's wheel (``ptx_isa``) names the CUDA toolkit that built it
(``cuda.toml [ptx_isa]``); ``wheel_cuda`` gives it to the driver check, which judges the driver against it as it
does torch's CUDA.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.gpu_floors import GpuFloor, load_gpu_floors
from envdoctor.facts import gpu_runs_archs
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError, Problem, generated_json_table
from envdoctor.pypi_facts import newest_known_release, release_facts
from envdoctor.rules import gpu_ccs, matches_specifier, parse_version

FILE = "wheel_archs.json"
ARCH_LIST_HINT = "TORCH_CUDA_ARCH_LIST for a torch extension, the project's CUDA arch option otherwise"
GENERATOR = "tools/gen_wheel_archs.py"
RULE = "wheel-lacks-gpu-code"
PTX_ISA = re.compile(r"\d+\.\d+")
NVCC_DEFAULT_TARGETS = frozenset({"2.0", "3.0", "3.5", "5.2", "7.5"})  # -arch nvcc picks when given none


@dataclass(frozen=True)
class FatbinGroup:
    """Fat binaries of one library that hold the same GPU code (nvcc writes one per compiled source file)."""

    sass: frozenset[Version]
    ptx: frozenset[Version]
    count: int

    def runs_on(self, cc: Version) -> bool:
        """A cubin by ``gpu_runs_archs``'s rule (its major, at or below its minor); PTX on any GPU at or above it."""
        cubins = tuple(f"sm_{v.major}{v.minor}" for v in self.sass)
        return gpu_runs_archs(str(cc), cubins) or any(p <= cc for p in self.ptx)


@dataclass(frozen=True)
class GpuCode:
    """What one release's wheel holds: per library, its fat binaries grouped by GPU code (helpers left out)."""

    libraries: tuple[tuple[FatbinGroup, ...], ...]
    ptx_isa: str | None = None  # the newest PTX ISA version of its PTX: which CUDA toolkit built it

    def runs_on(self, cc: Version) -> bool:
        """True when some library's general kernels run on ``cc``: those of its fat binaries built for the most
        targets (the project's arch list; kernels built for fewer are arch-specific: Hopper-only GEMMs, FP8, Marlin)."""
        return any(g.runs_on(cc) for groups in self.libraries for g in _general(groups))

    def shown(self) -> str:
        """The targets of the libraries' general kernels."""
        general = [g for groups in self.libraries for g in _general(groups)]
        sass = sorted({v for g in general for v in g.sass})
        ptx = sorted({v for g in general for v in g.ptx})
        kernels = ", ".join(f"sm_{v.major}{v.minor}" for v in sass) or "none"
        return f"general kernels for {kernels} and PTX for " + (", ".join(f"compute_{v.major}{v.minor}" for v in ptx)
                                                               or "none")


def _general(groups: tuple[FatbinGroup, ...]) -> list[FatbinGroup]:
    widest = max(len(g.sass) + len(g.ptx) for g in groups)
    return [g for g in groups if len(g.sass) + len(g.ptx) == widest]


@dataclass(frozen=True)
class WheelArchs:
    """The table, each package's releases parsed when first asked for (a check reads the few installed)."""

    path: Path
    generated: str
    entries: dict[str, Any]  # package -> its raw entry
    parsed: dict[str, dict[Version, GpuCode]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.entries)

    def releases_of(self, name: str) -> dict[Version, GpuCode]:
        """Release -> its GPU code (releases without any are absent); {} for a package the table lacks. A malformed
        entry raises MatrixError naming its key."""
        if name not in self.parsed:
            self.parsed[name] = _parse_package(self.path, name, self.entries[name]) if name in self.entries else {}
        return self.parsed[name]


def load_wheel_archs(matrices: Matrices) -> WheelArchs | None:
    """The table of the matrices folder (None when absent); a malformed top level raises MatrixError naming the key,
    as a malformed package entry does when it is read."""
    return _table(matrices.root / FILE)


def load_wheel_archs_fully(matrices: Matrices) -> WheelArchs | None:
    """The table with every package's entry read (validation): MatrixError names every bad key."""
    table = load_wheel_archs(matrices)
    problems = []
    for name in sorted(table.names if table is not None else ()):
        try:
            table.releases_of(name)  # type: ignore[union-attr]
        except MatrixError as error:
            problems.append(str(error))
    if problems:
        raise MatrixError("\n".join(problems))
    return table


@functools.lru_cache(maxsize=8)
def _table(path: Path) -> WheelArchs | None:
    return generated_json_table(path, GENERATOR, lambda raw, error: _parse(path, raw, error))


def _parse(path: Path, raw: dict[str, Any], error: Problem) -> WheelArchs | None:
    packages = raw.get("packages")
    if not isinstance(packages, dict):
        error("packages", "should be an object of package -> {releases}")
        return None
    return WheelArchs(path, str(raw.get("generated", "")), packages)


def _parse_package(path: Path, name: str, entry: Any) -> dict[Version, GpuCode]:
    releases = entry.get("releases") if isinstance(entry, dict) else None
    if not isinstance(releases, dict):
        raise MatrixError(f"{path}: packages.{name}: should hold releases; regenerate it with {GENERATOR}")
    table, problems = {}, []
    for release, row in releases.items():
        try:
            code = _release_code(row)
            if code is not None:
                table[Version(release)] = code
        except (InvalidVersion, TypeError, ValueError, AttributeError, KeyError):
            problems.append(f"{path}: packages.{name}.releases.{release}: should be a release with libraries of "
                            f"sass/ptx lists (and a ptx_isa version like \"7.8\"); regenerate it with {GENERATOR}")
    if problems:
        raise MatrixError("\n".join(problems))
    return table


def _release_code(row: dict[str, Any]) -> GpuCode | None:
    isa = row.get("ptx_isa")
    if isa is not None and not (isinstance(isa, str) and PTX_ISA.fullmatch(isa)):
        raise ValueError(f"ptx_isa {isa!r}")
    libraries = []
    for groups in (row.get("libraries") or {}).values():
        kept = tuple(FatbinGroup(frozenset(map(Version, g["sass"])), frozenset(map(Version, g["ptx"])),
                                 int(g["fatbins"])) for g in groups if not _default_target_only(g["sass"], g["ptx"]))
        if kept:
            libraries.append(kept)
    return GpuCode(tuple(libraries), isa) if libraries else None


@dataclass(frozen=True)
class WheelCuda:
    cuda: str  # "12.8"
    inferred: str | None = None  # why, when the release itself was not read


def wheel_cuda(ctx: CheckContext, name: str, version: str | None) -> WheelCuda | None:
    """The CUDA toolkit that built PyPI's manylinux x86_64 wheel of ``name`` ``version`` (from its PTX ISA), on a
    Linux x86_64 (or unstated) host; None when it is not known, has no PTX, or is another build (a local label, a
    direct URL). A release the table did not read (no manylinux wheel of its own, or newer than the table) takes the
    CUDA of the read releases just before and after it when both have the same one (inferred)."""
    host = ctx.snapshot.host
    package = (ctx.snapshot.packages or {}).get(name)
    parsed = parse_version(version)
    if host.arch not in ("x86_64", "amd64", None) or host.os not in ("linux", None) or parsed is None \
            or parsed.local or package is None or package.direct_url:
        return None
    table = load_wheel_archs(ctx.matrices)
    releases = table.releases_of(name) if table is not None else {}
    if parsed in releases:
        cuda = _cuda_of(ctx, releases[parsed])
        return WheelCuda(cuda) if cuda else None
    before = max((v for v in releases if v < parsed), default=None)
    after = min((v for v in releases if v > parsed), default=None)
    if before is None or after is None:
        return None
    below, above = _cuda_of(ctx, releases[before]), _cuda_of(ctx, releases[after])
    if below is None or below != above:
        return None
    return WheelCuda(below, f"{name} {version} was not read; {before} and {after}, the releases around it, are both "
                            f"CUDA {below} builds")


def _cuda_of(ctx: CheckContext, code: GpuCode) -> str | None:
    return ctx.facts.ptx_isa_cuda(code.ptx_isa) if code.ptx_isa else None


def _default_target_only(sass: list[str], ptx: list[str]) -> bool:
    return len(sass) == 1 and sass == ptx and sass[0] in NVCC_DEFAULT_TARGETS


def check_wheel_archs(ctx: CheckContext) -> list[Finding]:
    ccs = sorted(set(gpu_ccs(ctx.snapshot)))
    packages = ctx.snapshot.packages or {}
    host = ctx.snapshot.host
    if host.arch not in ("x86_64", "amd64", None) or host.os not in ("linux", "windows", None):
        return []  # the table reads the manylinux x86_64 wheels; macOS and ARM wheels hold no (or other) GPU code
    table = load_wheel_archs(ctx.matrices) if ccs and packages else None
    if table is None:
        return []
    floors = load_gpu_floors(ctx.matrices)
    findings = []
    for name in sorted(table.names & set(packages)):
        package, releases = packages[name], table.releases_of(name)
        if not releases or package.direct_url:
            continue
        judged = [cc for cc in ccs if not _below_stated_floor(floors, name, package.version, cc)]
        if package.version is None:
            findings += _unknown_version(ctx, name, releases, judged)
            continue
        parsed = parse_version(package.version)
        if parsed is None or parsed.local or parsed not in releases:
            continue
        code = releases[parsed]
        missing = [cc for cc in judged if not code.runs_on(cc)]
        if not missing:
            continue
        if host.os == "windows":
            if not _has_windows_wheel(ctx, name, package.version):
                continue  # no Windows build on PyPI: this one came from elsewhere
            what = (f"{name} {package.version}'s Linux wheel on PyPI holds {code.shown()}, none of it for "
                    f"{_caps(missing)}, and its Windows wheel is most likely built for the same GPUs (inferred)")
            findings.append(_finding(name, what, missing, releases, Severity.WARN, verified=False, after=parsed))
            continue
        what = f"{name} {package.version}'s wheel on PyPI holds {code.shown()}, none of it for {_caps(missing)}"
        findings.append(_finding(name, what, missing, releases, Severity.FAIL, verified=host.os == "linux",
                                 after=parsed))
    return findings


def _has_windows_wheel(ctx: CheckContext, name: str, version: str) -> bool:
    release = release_facts(name, version, ctx.matrices.root)
    return release is not None and any(tag.endswith("-win_amd64") for tag in release.wheels or ())


def _below_stated_floor(floors: tuple[GpuFloor, ...], name: str, version: str | None, cc: Version) -> bool:
    """A GPU below the floor the project states (``gpu_floors.toml``, its own finding) is not judged again here."""
    holding = [row.min_cc for row in floors if row.package == name
               and (version is None or matches_specifier(version, row.versions))]
    return bool(holding) and cc < max(holding)


def _unknown_version(ctx: CheckContext, name: str, releases: dict[Version, GpuCode],
                     ccs: list[Version]) -> list[Finding]:
    """A package of unknown version: a warning, unverified, when no release runs on a GPU, when the newest does
    not, or when only releases from some point on do (support came later: an older install fails) and nothing in
    the snapshot shows the environment was made after that point."""
    if not ccs:
        return []
    none_runs = [cc for cc in ccs if not any(code.runs_on(cc) for code in releases.values())]
    if none_runs:
        what = (f"no wheel of {name} on PyPI ({len(releases)} releases read; the version here is unknown) holds general"
                f" kernels or PTX for {_caps(none_runs)}")
        return [_finding(name, what, none_runs, releases, Severity.WARN, verified=False)]
    newest = max(releases)
    missing = [cc for cc in ccs if not releases[newest].runs_on(cc)]
    if not missing:
        return _support_came_later(ctx, name, releases, ccs)
    what = (f"{name}'s newest wheel on PyPI ({newest}; the version here is unknown) holds {releases[newest].shown()},"
            f" none of it for {_caps(missing)}")
    return [_finding(name, what, missing, releases, Severity.WARN, verified=False)]


def _support_came_later(ctx: CheckContext, name: str, releases: dict[Version, GpuCode],
                        ccs: list[Version]) -> list[Finding]:
    """Every GPU runs the newest release, and no release before ``first`` (the oldest of the unbroken run of
    releases up to the newest that run on all of them) runs on them all: kernels for the GPU came with ``first``.
    Said unless a package of the snapshot of known version was released on or after ``first`` (the environment is
    at least that recent). A release without them between others that have them (one broken build) says nothing
    of an install's age, and is not said."""
    ordered = sorted(releases)
    running = [all(releases[v].runs_on(cc) for cc in ccs) for v in ordered]
    start = len(ordered)
    while start > 0 and running[start - 1]:
        start -= 1
    if start == 0 or any(running[:start]):
        return []
    first, last = ordered[start], ordered[start - 1]
    facts = release_facts(name, str(first), ctx.matrices.root)
    made_after = newest_known_release(ctx.snapshot.packages or {}, ctx.matrices.root)
    if facts is None or (made_after is not None and made_after >= facts.date):
        return []
    missing = [cc for cc in ccs if not releases[last].runs_on(cc)]
    what = (f"{name} is installed with an unknown version; its wheels on PyPI hold kernels for {_caps(missing)} "
            f"only from {first} ({facts.date}) on ({last} holds {releases[last].shown()}), so an install older than "
            f"{first} (inferred: the installed version is unknown)")
    return [_finding(name, what, missing, releases, Severity.WARN, verified=False, after=last)]


def _caps(ccs: list[Version]) -> str:
    return "compute capability " + ", ".join(str(cc) for cc in ccs)


def _finding(name: str, what: str, missing: list[Version], releases: dict[Version, GpuCode], severity: Severity,
             verified: bool, after: Version | None = None) -> Finding:
    """``after``: the installed release; the fix then names the first later release that runs (the smallest
    upgrade), else the newest that does."""
    capabilities = _caps(missing)
    running = sorted(v for v, code in releases.items() if all(code.runs_on(cc) for cc in missing))
    later = [v for v in running if after is not None and v > after]
    pick = later[0] if later else (running[-1] if running else None)
    if pick is not None:
        fix = (f"install a release whose wheel runs on {capabilities}: {name} {pick} does"
               f" (pip install \"{name}=={pick}\"), or build {name} from source for the GPU's capability"
               f" ({ARCH_LIST_HINT})")
    else:
        fix = f"build {name} from source for the GPU's capability ({ARCH_LIST_HINT}), or use another GPU"
    return Finding(
        rule=RULE, category=Category.GPU_ARCH, severity=severity, components=(name, "gpu"),
        sources=("pypi-wheel-fatbin",), verified=verified,
        message=f"{what}: its CUDA kernels fail on this GPU with 'no kernel image is available for execution on the"
        " device'",
        fix=fix,
    )
