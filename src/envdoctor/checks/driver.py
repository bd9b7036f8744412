"""The NVIDIA driver against the CUDA each installed build needs (pip wheels bring their own CUDA runtime).

Evidence of a build's CUDA: torch's build (``torch.cuda``, the ``+cuXYZ`` tag, or PyPI's default variant of that
release), the versions of the ``nvidia-cuda-runtime-cuXX`` wheel and of conda's ``cudatoolkit``, and the CUDA major in
the names of ``cupy-cudaXXx`` and ``jax-cudaXX-plugin``. Evidence of the driver: its version (``nvidia.driver``)
or, when only that is known, the CUDA version nvidia-smi's header shows (``nvidia.cuda_driver``: the newest CUDA the
driver runs). A package of ``cuda.toml [[builds]]`` needs the CUDA its release range was built with; one whose PyPI
wheel carries GPU code (``wheel_archs.json``) needs the CUDA its newest PTX ISA names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import plan_command, torch_install, torch_target
from envdoctor.checks.declared import marker_applies, parse_declared
from envdoctor.checks.plain_torch import plain_wheel_is_cpu_only
from envdoctor.checks.requirements import marker_environment
from envdoctor.checks.torch_range import unknown_version_range
from envdoctor.checks.wheel_archs import load_wheel_archs, wheel_cuda
from envdoctor.facts import cuda_major_minor, cuda_of_variant
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import ReleaseFacts, release_facts, releases
from envdoctor.rules import ABSENT, fact, matches_specifier, parse_version, torch_variant
from envdoctor.snapshot import normalize_name

SOURCES = ("nvidia-cuda-rn-13-2-2", "uv-torch-backend")
# Package-name conventions that carry the CUDA a wheel was built for: (pattern, whether the version is the CUDA).
RUNTIME_NAMES = (
    (re.compile(r"nvidia-cuda-runtime(-cu(\d+))?"), True),
    (re.compile(r"cudatoolkit"), True),  # conda's CUDA runtime (numba, cupy and older pytorch builds load it)
    (re.compile(r"cupy-cuda(\d+)x"), False),
    (re.compile(r"jax-cuda(\d+)-(plugin|pjrt)"), False),
)


MINOR_COMPAT = "driver-minor-version-compat"
# A wheel's local version label naming its CUDA build: cu118, cu121, cu12 (any minor of CUDA 12), cu130; jaxlib
# spells it cuda111 or cuda11 (jaxlib 0.4.9+cuda11.cudnn86).
LABEL_CUDA = re.compile(r"(?:^|[^a-z])cu(?:da)?(1\d{1,2})(?!\d)")


@dataclass(frozen=True)
class CudaNeed:
    """One installed build and the CUDA it needs from the driver (minor None: any minor of the major)."""

    package: str
    version: str
    major: int
    minor: int | None
    inferred: str | None = None  # why the CUDA is inferred rather than read; its findings are then unverified
    oldest_of_several: bool = False  # the release comes in several CUDA builds; this is the oldest one's CUDA

    @property
    def cuda(self) -> str:
        return f"{self.major}.{self.minor}" if self.minor is not None else f"{self.major}.x"


def torch_cuda(ctx: CheckContext) -> str | None:
    """The CUDA version torch was built with: the probe's, else the local tag's, else PyPI's default."""
    build = ctx.snapshot.torch
    if build and build.cuda:
        return build.cuda
    variant, version = torch_variant(ctx.snapshot), fact(ctx.snapshot, "packages.torch")
    if variant == "" and isinstance(version, str) and plain_wheel_is_cpu_only(ctx.snapshot, version):
        return None
    default = ctx.facts.torch_pypi_default(version) if variant == "" and isinstance(version, str) else None
    tag = default or variant
    if not isinstance(tag, str) or not tag.startswith("cu"):
        return None
    try:
        return cuda_of_variant(tag)
    except ValueError:
        return None


def cuda_needs(ctx: CheckContext) -> list[CudaNeed]:
    needs = []
    cuda = torch_cuda(ctx)
    torch = fact(ctx.snapshot, "packages.torch")
    if cuda is not None and torch is not ABSENT:
        major, minor = cuda_major_minor(cuda)
        needs.append(CudaNeed("torch", torch if isinstance(torch, str) else "(version unknown)", major, minor))
    packages = ctx.snapshot.packages or {}
    needs += _post_release_needs(ctx)
    named = {need.package for need in needs}
    for build in ctx.facts.cuda_builds():
        package = packages.get(build.package)
        if package is not None and package.version and build.package not in named \
                and matches_specifier(package.version, build.versions):
            needs.append(CudaNeed(build.package, package.version, build.cuda_major, build.cuda_minor,
                                  oldest_of_several=build.oldest_of_several))
    named = {need.package for need in needs}
    needs += [need for need in _wheel_code_needs(ctx) if need.package not in named]
    named = {need.package for need in needs}
    for name, package in sorted(packages.items()):
        label = _label_cuda(package.version) if name not in named and name != "torch" else None
        if label is not None:
            needs.append(CudaNeed(name, package.version or "", *label))
            continue
        for pattern, versioned in RUNTIME_NAMES:
            match = pattern.fullmatch(name)
            if match is None:
                continue
            version = package.version or "(version unknown)"
            parsed = parse_version(package.version) if versioned else None
            if parsed is not None and len(parsed.release) >= 2:
                needs.append(CudaNeed(name, version, parsed.release[0], parsed.release[1]))
            elif match.group(match.re.groups if versioned else 1) and not versioned:
                needs.append(CudaNeed(name, version, int(match.group(1)), None))
    return needs


def _post_release_needs(ctx: CheckContext) -> list[CudaNeed]:
    """Packages that name their CUDA build in the post-release number (paddlepaddle-gpu ``1.5.1.post107``)."""
    packages = ctx.snapshot.packages or {}
    needs = []
    for name in sorted(ctx.facts.post_release_packages() & set(packages)):
        version = packages[name].version
        parsed = parse_version(version) if version else None
        cuda = ctx.facts.post_release_cuda(name, parsed.post) if parsed is not None and parsed.post else None
        if cuda is not None and version:
            needs.append(CudaNeed(name, version, *cuda_major_minor(cuda)))
    return needs


def _wheel_code_needs(ctx: CheckContext) -> list[CudaNeed]:
    """Packages whose installed PyPI wheel's GPU code names the CUDA toolkit that built it (its PTX ISA); a local
    label (``+cu118``) is the label's, judged below."""
    packages = ctx.snapshot.packages or {}
    table = load_wheel_archs(ctx.matrices) if packages else None
    needs = []
    for name in sorted(table.names & set(packages) if table is not None else ()):
        version = packages[name].version
        cuda = wheel_cuda(ctx, name, version)
        if cuda is not None and version:
            needs.append(CudaNeed(name, version, *cuda_major_minor(cuda.cuda), inferred=cuda.inferred))
    return needs


def _label_cuda(version: str | None) -> tuple[int, int | None] | None:
    """The CUDA a wheel's local version label names (``+cu118``, ``+pt21cu121``, ``+cu12``): (major, minor)."""
    parsed = parse_version(version)
    match = LABEL_CUDA.search(parsed.local) if parsed and parsed.local else None
    if match is None:
        return None
    digits = match.group(1)
    return (int(digits[:2]), int(digits[2:]) if len(digits) > 2 else None)


def check_driver(ctx: CheckContext) -> list[Finding]:
    findings, minor_compat = [], []
    needs = cuda_needs(ctx)
    for need in needs:
        finding = _judge(ctx, need)
        if finding is not None and need.inferred:
            finding = replace(finding, verified=False, message=f"{finding.message} (inferred: {need.inferred})")
        if finding is not None and finding.rule == MINOR_COMPAT:
            minor_compat.append((need, finding))
        elif finding is not None:
            findings.append(finding)
    findings.extend(_one_minor_compat_finding(minor_compat))
    if not any(need.package == "torch" for need in needs):
        findings.extend(_unknown_torch_build(ctx) + _plain_torch_cuda_unrecorded(ctx))
    return findings + _unknown_version_builds(ctx) + _builds_through_requirements(ctx)


def _builds_by_package(ctx: CheckContext) -> dict[str, list[tuple[str, int, str]]]:
    """``[[builds]]`` of cuda.toml by package: (version range, CUDA major, source) rows."""
    rows: dict[str, list[tuple[str, int, str]]] = {}
    for build in ctx.facts.cuda_builds():
        rows.setdefault(build.package, []).append((build.versions, build.cuda_major, build.source))
    return rows


def _unknown_version_builds(ctx: CheckContext) -> list[Finding]:
    """A CUDA wheel of ``[[builds]]`` installed with an unknown version, on a driver older than the CUDA major its
    newest releases are built for: likely too new for this driver (pip installs the newest), not verified."""
    limit = driver_max_major(ctx)
    packages = ctx.snapshot.packages or {}
    if limit is None:
        return []
    findings = []
    for name, rows in sorted(_builds_by_package(ctx).items()):
        package = packages.get(name)
        if package is None or package.version:
            continue
        newest = max(rows, key=lambda row: row[1])
        if newest[1] <= limit:
            continue
        runs = [spec for spec, major, _ in rows if major <= limit]
        older = f"a {name} release {runs[0]} (built for CUDA {limit} or older)" if runs else None
        floor = ctx.facts.cuda_family_min_driver(newest[1])
        upgrade = f"upgrade the NVIDIA driver to >= {floor}" if floor else f"upgrade to a CUDA {newest[1]} driver"
        findings.append(Finding(
            rule="driver-too-old-for-cuda-build-unknown-version", category=Category.DRIVER, severity=Severity.WARN,
            components=(name, "nvidia-driver"), sources=(newest[2], *SOURCES), verified=False,
            message=f"{name} is installed with an unknown version and this driver runs CUDA {limit}.x at most: {name} "
            f"{newest[0]} is built for CUDA {newest[1]}, so unless "
            + (f"{older} is installed" if older else "it is an older build for this CUDA")
            + ", 'CUDA driver version is insufficient for CUDA runtime version'",
            fix=(f'pip install "{name}{runs[0]}"   # built for this driver\'s CUDA; or {upgrade}' if runs else upgrade),
        ))
    return findings


def _builds_through_requirements(ctx: CheckContext) -> list[Finding]:
    """A package that requires a CUDA wheel of ``[[builds]]`` which the snapshot does not list (faster-whisper and
    whisperx through ctranslate2): the CUDA majors of the releases its requirement admits (of its installed release,
    or of its newest when the version is unknown) against the newest CUDA major this driver runs. When every admitted
    release needs a newer major, whatever pip resolved cannot load on this driver."""
    limit = driver_max_major(ctx)
    packages = ctx.snapshot.packages or {}
    if limit is None:
        return []
    rows = _builds_by_package(ctx)
    findings = []
    for name, package in sorted(packages.items()):
        if name in rows:
            continue
        # a probed package's own Requires-Dist when the snapshot has it, else the tables' (read only then)
        release = None if package.requires is not None else _release_of(name, package.version)
        requires = package.requires if package.requires is not None else (release.requires or ()) if release else ()
        for line in requires:
            declared = parse_declared(line)
            build = normalize_name(declared.name) if declared else None
            if declared is None or build not in rows or build in packages \
                    or not marker_applies(declared.marker, marker_environment(ctx.snapshot)):
                continue
            majors = _admitted_majors(build, declared.specifier or "", rows[build])
            if not majors or min(majors) <= limit:
                continue
            source = next(src for _, major, src in rows[build] if major == min(majors))
            floor = ctx.facts.cuda_family_min_driver(min(majors))
            which = (f"{name} {package.version}" if package.version else
                     f"{name} (version unknown; its newest release {release.version})" if release else
                     f"{name} (version unknown)")
            findings.append(Finding(
                rule="driver-too-old-for-required-cuda-build", category=Category.DRIVER, severity=Severity.WARN,
                components=(name, build, "nvidia-driver"), sources=(source, "pypi-metadata", *SOURCES),
                verified=package.version is not None,
                message=f"{which} requires {build}{declared.specifier or ''}, and every {build} release that "
                f"admits is built for CUDA {min(majors)} or newer, but this driver runs CUDA {limit}.x at most: "
                "'CUDA driver version is insufficient for CUDA runtime version'"
                + ("" if package.version else " (inferred: pip installs the newest release)"),
                fix=(f"upgrade the NVIDIA driver to >= {floor}" if floor else
                     f"upgrade to a CUDA {min(majors)} driver") + f"; or an older {name} whose {build} runs on CUDA "
                f"{limit}",
            ))
    return findings


def _release_of(name: str, version: str | None) -> ReleaseFacts | None:
    """The installed release's facts; the newest final release's when the version is unknown."""
    if version is not None:
        parsed = parse_version(version)
        return release_facts(name, parsed.public) if parsed else None
    finals = [r for r in releases(name) if not r.yanked and (v := parse_version(r.version)) and not v.is_prerelease]
    return max(finals, key=lambda r: Version(r.version)) if finals else None


def _admitted_majors(build: str, specifier: str, rows: list[tuple[str, int, str]]) -> set[int]:
    """The CUDA majors of ``build``'s known releases that ``specifier`` admits (each mapped by the [[builds]] rows)."""
    majors = set()
    for release in releases(build):
        parsed = parse_version(release.version)
        if parsed is None or parsed.is_prerelease or release.yanked or (specifier and not matches_specifier(
                release.version, specifier)):
            continue
        majors.update(major for spec, major, _ in rows if matches_specifier(release.version, spec))
    return majors


def driver_below(driver: str, floor: str) -> bool | None:
    """Whether the driver is older than ``floor``. A bare branch ("470", as threads often give it) is below every
    floor of a higher branch and above every floor of a lower one; against a floor of its own branch its point
    release decides, which is unknown (None)."""
    if "." not in driver:
        branch, floor_branch = int(driver), int(floor.split(".", 1)[0])
        return None if branch == floor_branch else branch < floor_branch
    installed, needed = parse_version(driver), parse_version(floor)
    return None if installed is None or needed is None else installed < needed


def driver_max_major(ctx: CheckContext) -> int | None:
    """The newest CUDA major this driver runs: nvidia-smi's "CUDA Version", else the driver floors."""
    supports, driver = fact(ctx.snapshot, "nvidia.cuda_driver"), fact(ctx.snapshot, "nvidia.driver")
    if isinstance(supports, str):
        try:
            return cuda_major_minor(supports)[0]
        except ValueError:
            return None
    if not isinstance(driver, str):
        return None
    newest = None
    for major, floor in _major_floors(ctx):
        below = driver_below(driver, floor) if floor is not None else None
        if below is None:  # no floor recorded for this OS, or a bare branch of the floor's own: may or may not run
            return None
        if below:
            return newest if newest is not None else major - 1
        newest = major
    return newest


def _major_floors(ctx: CheckContext) -> list[tuple[int, str | None]]:
    """Each CUDA major the table knows, oldest first, with the lowest driver that runs a build for it on the snapshot's
    OS: the minor-compatibility floor of the major, else (CUDA 10 and older, or no floor recorded) its first
    release's minimum driver."""
    windows, floors = _windows(ctx), {}
    for version in ctx.facts.cuda_versions():
        major = int(version.split(".")[0])
        if major in floors:
            continue
        release = ctx.facts.cuda(version)
        family = ctx.facts.cuda_family_min_driver_windows(major) if windows else ctx.facts.cuda_family_min_driver(major)
        first = (release.min_driver_windows if windows else release.min_driver_linux) if release else None
        floor = family if family is not None and ctx.facts.cuda_minor_compat(major) else first or family
        floors[major] = floor or None
    return sorted(floors.items())


def _unknown_torch_build(ctx: CheckContext) -> list[Finding]:
    """torch of an unknown build on a driver older than the CUDA that PyPI's torch has been built for since some
    release: likely too new for this driver, but not verified."""
    version = fact(ctx.snapshot, "packages.torch")
    limit = driver_max_major(ctx)
    if version in (ABSENT, None) or isinstance(version, str) or limit is None or torch_variant(ctx.snapshot) == "cpu":
        return []
    ranged = _range_too_new(ctx, limit)
    if ranged:
        return ranged
    for release in map(ctx.facts.torch, ctx.facts.torch_versions()):
        if release and release.pypi_default.startswith("cu") and cuda_major_minor(release.pypi_default)[0] > limit:
            floor = ctx.facts.cuda_family_min_driver(cuda_major_minor(release.pypi_default)[0])
            return [Finding(
                rule="driver-too-old-for-torch-cuda", category=Category.DRIVER, severity=Severity.WARN,
                components=("torch", "nvidia-driver"), sources=SOURCES, verified=False,
                message=f"this driver runs CUDA {limit}.x at most, and torch is installed with an unknown build: "
                f"PyPI's torch has been a CUDA {cuda_major_minor(release.pypi_default)[0]} build since "
                f"{release.version} ({release.released}), so unless torch came from a CUDA {limit} index, 'CUDA "
                "driver version is insufficient for CUDA runtime version'",
                fix=f"upgrade the NVIDIA driver to >= {floor}, or install torch from the CUDA {limit}.x index: "
                f"{plan_command(ctx)}",
            )]
    return []


def _plain_torch_cuda_unrecorded(ctx: CheckContext) -> list[Finding]:
    """torch of a known release without a local tag, whose plain PyPI wheel's CUDA no table records (releases before
    ``legacy_pypi_default``): the driver cannot be judged against it, which is said rather than passed over. Called
    when ``torch_cuda`` found no CUDA (a probed ``torch.cuda`` would have given one)."""
    version, nvidia = fact(ctx.snapshot, "packages.torch"), ctx.snapshot.nvidia
    if not isinstance(version, str) or torch_variant(ctx.snapshot) != "" \
            or plain_wheel_is_cpu_only(ctx.snapshot, version) or nvidia is None \
            or not (nvidia.driver or nvidia.cuda_driver):
        return []
    return [Finding(
        rule="driver-too-old-for-torch-cuda", category=Category.DRIVER, severity=Severity.INFO,
        components=("torch", "nvidia-driver"), sources=SOURCES, verified=False,
        message=f"could not verify the driver against torch {version}: the version has no local tag (+cuXXX) and "
        "envdoctor has no record of the CUDA its plain PyPI wheel was built for",
        fix="python -c \"import torch; print(torch.__version__, torch.version.cuda)\"   # the CUDA torch needs",
    )]


def _range_too_new(ctx: CheckContext, limit: int) -> list[Finding]:
    """torch of an unknown version, when most CUDA builds of every release it may be need a newer CUDA major than
    the driver runs: a warning that names the share and the builds that would run (an inference over the range)."""
    span = unknown_version_range(ctx)
    if span is None:
        return []
    too_new = [b for b in span.builds if b.cuda_major > limit]
    if 2 * len(too_new) <= len(span.builds):
        return []
    runs = [b for b in span.builds if b.cuda_major <= limit]
    newest = runs[-1] if runs else None
    floor = ctx.facts.cuda_family_min_driver(min(b.cuda_major for b in too_new))
    upgrade = f"upgrade the NVIDIA driver to >= {floor}" if floor else "upgrade the NVIDIA driver"
    return [Finding(
        rule="driver-too-old-for-torch-cuda", category=Category.DRIVER, severity=Severity.WARN,
        components=("torch", "nvidia-driver"), sources=SOURCES,
        message=f"this driver runs CUDA {limit}.x at most, and torch's version is unknown: {span.share(too_new)} "
        f"need a newer CUDA major" + (f" (the newest build that runs here is torch {newest.version}+{newest.variant})"
                                     if newest else " (none runs here)")
        + ": unless torch is one of the few, 'CUDA driver version is insufficient for CUDA runtime version' / "
        "'The NVIDIA driver on your system is too old' (inferred over the range)",
        fix=f"{upgrade}; or install a torch build for CUDA {limit}.x: {plan_command(ctx)}",
    )]


def _judge(ctx: CheckContext, need: CudaNeed) -> Finding | None:
    driver, supports = fact(ctx.snapshot, "nvidia.driver"), fact(ctx.snapshot, "nvidia.cuda_driver")
    if isinstance(driver, str):  # a driver version, or its branch
        return _against_driver(ctx, need, driver, supports)
    if isinstance(supports, str):
        return _against_header(ctx, need, supports)
    return None


def _windows(ctx: CheckContext) -> bool:
    return ctx.snapshot.host.os == "windows"


def _against_driver(ctx: CheckContext, need: CudaNeed, driver: str, supports: object) -> Finding | None:
    if _windows(ctx):
        floor = ctx.facts.cuda_family_min_driver_windows(need.major)
    else:
        floor = ctx.facts.cuda_family_min_driver(need.major)
    release = ctx.facts.cuda(need.cuda) if need.minor is not None else None
    toolkit_driver = (release.min_driver_windows if _windows(ctx) else release.min_driver_linux) if release else None
    if floor is None and toolkit_driver and not ctx.facts.cuda_minor_compat(need.major):
        floor = toolkit_driver  # no minor-version compatibility: the release's own driver is the floor
    if floor is None and _windows(ctx):
        below = _below_linux_branch(ctx, need, driver)
        if below:
            return _too_old(ctx, need, driver, below, supports)
    if floor is None:
        if isinstance(supports, str):
            return _against_header(ctx, need, supports)
        return _unverified(need)
    below = driver_below(driver, floor)
    if below is None:
        return _against_header(ctx, need, supports) if isinstance(supports, str) else _unverified(need, driver)
    if below:
        return _too_old(ctx, need, driver, floor, supports)
    if toolkit_driver and driver_below(driver, toolkit_driver):
        if not ctx.facts.cuda_minor_compat(need.major):  # CUDA 10: no minor-version compatibility
            return _too_old(ctx, need, driver, toolkit_driver, supports)
        return _minor_compat(need, driver, toolkit_driver)
    return None


def _below_linux_branch(ctx: CheckContext, need: CudaNeed, driver: str) -> str | None:
    """Where no Windows floor is known: the Linux floor's driver branch, when the Windows driver is of an older branch
    (``windows_below_linux_branch``)."""
    linux_floor = ctx.facts.cuda_family_min_driver(need.major)
    return windows_below_linux_branch(driver, linux_floor) if linux_floor is not None else None


def windows_below_linux_branch(driver: str, linux_floor: str) -> str | None:
    """The branch of ``linux_floor`` when the Windows ``driver`` is of a lower branch, else None (not known).

    NVIDIA numbers a branch's Windows drivers from the same branch number as its Linux ones or above (R570: Linux
    570.124.06, Windows 572.61), so a Windows driver of a lower branch number than the Linux floor is too old."""
    branch = linux_floor.split(".", 1)[0]
    return branch if int(driver.split(".", 1)[0]) < int(branch) else None


def _against_header(ctx: CheckContext, need: CudaNeed, supports: str) -> Finding | None:
    """Only nvidia-smi's "CUDA Version" is known: a newer major cannot run; a newer minor runs with limits."""
    try:
        major, minor = cuda_major_minor(supports)
    except ValueError:
        return None
    if need.major > major:
        floor = ctx.facts.cuda_family_min_driver(need.major) or f"the CUDA {need.major} driver"
        return _too_old(ctx, need, None, floor, supports)
    if need.major == major and need.minor is not None and need.minor > minor:
        if not ctx.facts.cuda_minor_compat(need.major):
            release = ctx.facts.cuda(need.cuda)
            return _too_old(ctx, need, None, release.min_driver_linux if release else f"one for CUDA {need.cuda}",
                            supports)
        return _minor_compat(need, f"supporting CUDA {supports}", f"one supporting CUDA {need.cuda}")
    return None


def _too_old(ctx: CheckContext, need: CudaNeed, driver: str | None, floor: str, supports: object) -> Finding:
    shown = (f"this driver is {driver}" if "." in driver else f"this driver is of the {driver} branch") if driver \
        else "this driver"
    # torch of an unknown build beside a CUDA runtime wheel runs on that runtime (torch's wheels depend on it)
    rides_along = need.package != "torch" and fact(ctx.snapshot, "packages.torch") not in (ABSENT, None) \
        and torch_cuda(ctx) is None
    return Finding(
        rule="driver-too-old-for-torch-cuda" if need.package == "torch" else "driver-too-old-for-cuda-build",
        category=Category.DRIVER, severity=Severity.FAIL,
        components=(need.package, "nvidia-driver") + (("torch",) if rides_along else ()), sources=SOURCES,
        message=f"{need.package} {need.version} is built for CUDA {need.cuda}"
        f"{' (its oldest build; the others need a newer driver still)' if need.oldest_of_several else ''}, which "
        f"needs NVIDIA driver >= {floor}; {shown}"
        f"{f' (supports CUDA {supports} at most)' if isinstance(supports, str) else ''}: "
        "'CUDA driver version is insufficient for CUDA runtime version'",
        fix=_older_cuda_fix(ctx, need, driver, floor, supports),
    )


def _older_cuda_fix(ctx: CheckContext, need: CudaNeed, driver: str | None, floor: str, supports: object) -> str:
    """The same torch release built for a CUDA this driver runs (newest first); else the driver upgrade."""
    upgrade = f"upgrade the NVIDIA driver to >= {floor}"
    version = fact(ctx.snapshot, "packages.torch") if need.package == "torch" else None
    release = ctx.facts.torch(version) if isinstance(version, str) else None
    for variant in sorted(release.variants if release else (), key=cuda_major_minor, reverse=True):
        if _driver_runs(ctx, variant, driver, supports):
            target = torch_target(ctx, release.version, variant)
            if target:
                return f"{torch_install(ctx, target, force=True)}   # runs on this driver; or {upgrade}"
    return f"{upgrade} (this driver supports CUDA {supports} at most)" if isinstance(supports, str) else upgrade


def _driver_runs(ctx: CheckContext, variant: str, driver: str | None, supports: object) -> bool:
    major, _ = cuda_major_minor(variant)
    if driver is not None:
        family_floor = ctx.facts.cuda_family_min_driver(major)
        return bool(family_floor) and driver_below(driver, family_floor) is False
    try:
        return isinstance(supports, str) and major <= cuda_major_minor(supports)[0]
    except ValueError:
        return False


def _minor_compat(need: CudaNeed, driver: str, toolkit_driver: str) -> Finding:
    return Finding(
        rule=MINOR_COMPAT, category=Category.DRIVER, severity=Severity.WARN,
        components=(need.package, "nvidia-driver"), sources=SOURCES + ("nvidia-forward-compat",),
        message=f"driver {driver} runs {need.package}'s CUDA {need.cuda} only through minor-version compatibility "
        f"(the CUDA {need.cuda} driver is {toolkit_driver}): the driver cannot load PTX or cubins from a newer "
        "toolchain, so kernels compiled at run time (Triton under torch.compile, PTX-only extensions, XLA's ptxas) "
        "fail with 'the provided PTX was compiled with an unsupported toolchain', and inside NVIDIA's CUDA "
        "containers the forward-compatibility driver they load fails on GeForce and workstation GPUs (error 803, "
        "'unsupported display driver / cuda driver combination')",
        fix=f"upgrade the NVIDIA driver to >= {toolkit_driver}",
    )


def _one_minor_compat_finding(judged: list[tuple[CudaNeed, Finding]]) -> list[Finding]:
    """One finding for every build the driver runs through minor-version compatibility: the newest CUDA's, naming
    every such build (one cause, one fix)."""
    if not judged:
        return []
    _, newest = max(judged, key=lambda pair: (pair[0].major, pair[0].minor or 0))
    packages = tuple(dict.fromkeys(need.package for need, _ in judged))
    return [replace(newest, components=packages + ("nvidia-driver",))]


def _unverified(need: CudaNeed, branch: str | None = None) -> Finding:
    return Finding(
        rule="driver-too-old-for-torch-cuda", category=Category.DRIVER, severity=Severity.INFO,
        components=(need.package,), verified=False, sources=SOURCES,
        message=f"could not verify the driver: only its branch ({branch}) is known, and CUDA {need.cuda}'s floor "
        "lies inside that branch" if branch else
        f"could not verify the driver: no driver floor is known for CUDA {need.cuda}",
    )
