"""Wheels for this platform and Python: does PyPI have a build of the installed release that can run here?

For every installed package in the bundled PyPI tables (``matrices/pypi``): a release whose wheels cover other
platforms but not this one, or not this CPython, and that has no pure-Python wheel, was compiled here from its
sdist or came from elsewhere (conda, a private index) - it may not work. A release whose Requires-Python excludes
this Python fails.

Partly known hosts are judged on what is known: with the OS but not the architecture, "no Windows wheel at all"
still holds; with the Python but not the OS, "no CPython 3.12 wheel for any platform" still holds. With neither
the platform nor the Python known, nothing is said (other checks report unknowns). A package installed with an
unknown version is judged when no recorded release has a wheel that runs here. A local-tag install (``+cu121``)
came from another index, whose wheels these tables do not list: nothing is said.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.declared import Declared
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import (
    ReleaseFacts,
    known_packages,
    nearest_recorded_release,
    recorded_from_first_upload,
    release_facts,
    releases,
)
from envdoctor.release_dates import months_between
from envdoctor.rules import matches_specifier, parse_version, public_of
from envdoctor.snapshot import Host, normalize_name

OS_FAMILY = {"linux": "linux", "windows": "win", "win32": "win", "darwin": "macosx", "macos": "macosx"}
ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "x64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64",
        "armv7l": "armv7l", "i686": "i686", "i386": "i686", "x86": "i686", "ppc64le": "ppc64le", "s390x": "s390x"}
# Wheel platform families by (OS family, architecture), as tools/gen_pypi_facts.py writes them.
FAMILY = {
    ("linux", "x86_64"): "linux_x86_64", ("linux", "aarch64"): "linux_aarch64",
    ("linux", "armv7l"): "linux_armv7l", ("linux", "i686"): "linux_i686", ("linux", "ppc64le"): "linux_ppc64le",
    ("linux", "s390x"): "linux_s390x",
    ("win", "x86_64"): "win_amd64", ("win", "aarch64"): "win_arm64", ("win", "i686"): "win32",
    ("macosx", "x86_64"): "macosx_x86_64", ("macosx", "aarch64"): "macosx_arm64",
}
OS_NAME = {"linux": "Linux", "win": "Windows", "macosx": "macOS"}
# musl hosts install musllinux wheels only (manylinux ones need glibc).
MUSL_FAMILY = {"linux_x86_64": "musllinux_x86_64", "linux_aarch64": "musllinux_aarch64"}
MUSL_WHERE = "Linux with musl libc"
DESCRIBE = {
    "linux_x86_64": "Linux x86_64", "linux_aarch64": "Linux aarch64", "linux_armv7l": "Linux armv7l (32-bit ARM)",
    "linux_i686": "Linux i686 (32-bit x86)", "linux_ppc64le": "Linux ppc64le", "linux_s390x": "Linux s390x",
    "win_amd64": "Windows x86_64", "win32": "Windows 32-bit x86",
    "win_arm64": "Windows ARM64", "macosx_x86_64": "macOS Intel", "macosx_arm64": "macOS Apple silicon",
    "musllinux_x86_64": f"{MUSL_WHERE} x86_64", "musllinux_aarch64": f"{MUSL_WHERE} aarch64",
}


@dataclass(frozen=True)
class Target:
    """Where the installed package must run: the platform families it may be (one when OS and architecture are
    known, every one of the OS when only the OS is, all when neither) and the CPython 3 minor (None: unknown)."""

    families: frozenset[str]
    minor: int | None
    where: str  # "Windows x86_64", "Windows", "any platform"

    @property
    def python(self) -> str:
        return f"CPython 3.{self.minor}" if self.minor is not None else "any Python"


def platform_family(os: str | None, arch: str | None) -> str | None:
    """``("linux", "x86_64")`` -> ``"linux_x86_64"``; None when either is unknown or not a wheel platform."""
    system = OS_FAMILY.get((os or "").lower())
    machine = ARCH.get((arch or "").lower())
    return FAMILY.get((system, machine)) if system and machine else None


def cpython_tag(version: str | None) -> int | None:
    """``"3.11.9"`` -> 11 (the minor of a CPython 3 version); None when unknown."""
    parts = (version or "").split(".")
    if len(parts) < 2 or parts[0] != "3" or not parts[1].isdigit():
        return None
    return int(parts[1])


def runs_here(tag: str, family: str, minor: int | None) -> bool:
    """Whether a compact wheel tag (``cp311-linux_x86_64``, ``cp38-abi3-...``, ``py3-any``) installs on CPython
    3.``minor`` (any Python 3 when None) on ``family``."""
    python, _, platform = tag.rpartition("-")
    if platform not in (family, "any"):
        return False
    if minor is None or python.startswith("py3"):
        return True
    if python.endswith("-abi3"):
        return int(python[3:-5]) <= minor
    return python == f"cp3{minor}"


def musl_host(host: Host) -> bool:
    """Whether the host's C library is musl, not glibc (Alpine Linux), whose wheels are musllinux ones."""
    if host.libc is not None or host.os not in ("linux", None):
        return host.libc == "musl"
    return bool(re.search(r"\b(alpine|musl)\b", host.distro or "", re.IGNORECASE))


def host_target(host: Host, python: str | None) -> Target | None:
    """The target of a snapshot's host and Python (musllinux families on a musl host)."""
    musl = musl_host(host)
    return target_of(host.os or ("linux" if musl else None), host.arch, python, musl=musl)


def target_of(os: str | None, arch: str | None, python: str | None, musl: bool = False) -> Target | None:
    """The target a snapshot describes; None when neither the platform nor the Python is known."""
    minor = cpython_tag(python)
    system = OS_FAMILY.get((os or "").lower())
    family = platform_family(os, arch)
    if musl and system == "linux":
        if family in MUSL_FAMILY:
            return Target(frozenset({MUSL_FAMILY[family]}), minor, DESCRIBE[MUSL_FAMILY[family]])
        return Target(frozenset(MUSL_FAMILY.values()), minor,
                      MUSL_WHERE + (f" {ARCH.get((arch or '').lower())}" if family else ""))
    if family is not None:
        return Target(frozenset({family}), minor, DESCRIBE[family])
    if system is not None:
        return Target(frozenset(f for (s, _), f in FAMILY.items() if s == system), minor, OS_NAME[system])
    if minor is None:
        return None
    return Target(frozenset(FAMILY.values()), minor, "any platform")


def wheel_runs(release: ReleaseFacts, target: Target) -> bool:
    return any(runs_here(tag, family, target.minor) for tag in release.wheels or () for family in target.families)


def check_wheels(ctx: CheckContext) -> list[Finding]:
    snapshot = ctx.snapshot
    if (snapshot.python.implementation or "cpython").lower() != "cpython":
        return []
    target = host_target(snapshot.host, snapshot.python.version)
    if target is None:
        return []
    root = ctx.matrices.root
    known = set(known_packages(root))
    python = snapshot.python.version
    findings = []
    for name, package in sorted((snapshot.packages or {}).items()):
        if name not in known:
            continue
        if package.version and "+" in package.version:
            findings.extend(_index_build_python(name, package.version, target, root))
            continue
        if not package.version:
            history = releases(name, root)
            nowhere = _no_release_runs(name, history, target)
            platform_said = any(f.category is Category.PLATFORM for f in nowhere)
            if platform_said:
                findings.extend(nowhere)  # no release for this platform at all, and the Python findings beside it
                nowhere = []
            # no release running here is a warning; the Requires-Python findings beside it do not replace it, nor
            # does either replace what the platform's wheels say (when not said already)
            late = [] if platform_said else (_platform_dropped(name, history, target)
                                             or _platform_came_late(name, history, target))
            findings.extend(_code_of_unknown(name, history, target)
                            or _python_of_unknown(name, history, python) + nowhere + late)
            continue
        release = release_facts(name, package.version, root)
        if release is None:
            findings.extend(_python_of_unrecorded(ctx, name, package.version, python, root))
            continue
        if python and release.python_floor and target.minor is not None \
                and target.minor < int(release.python_floor.split(".")[1]):
            findings.append(_code_needs_newer_python(ctx, name, release, python, target.minor,
                                                     releases(name, root)))
        if python and release.requires_python and not matches_specifier(python, release.requires_python):
            findings.append(_python_excluded(ctx, name, release, python, releases(name, root)))
        elif release.wheels and not wheel_runs(release, target):
            findings.append(_no_wheel(ctx, name, release, target, releases(name, root)))
        elif not release.wheels:
            history = releases(name, root)
            findings.extend(_before_first_wheel_here(ctx, name, release, target, history)
                            or _source_pre_release(ctx, name, release, target, history))
    return findings + _companions_without_wheel(ctx, target)


# PyTorch's domain libraries: each release pins the one torch release it was built with (read from its
# Requires-Dist in the tables), so beside a given torch only those releases install.
TORCH_COMPANIONS = ("torchvision", "torchaudio")


def _companions_without_wheel(ctx: CheckContext, target: Target) -> list[Finding]:
    """torch installed on a Python that its own companion releases were not built for (torch 2.5.1 has CPython 3.13
    wheels; torchvision 0.20.1 and torchaudio 2.5.1, made for it, stop at 3.12): they cannot be installed beside it
    here, and pip answers 'No matching distribution' or swaps torch. Said for companions that are absent or of
    unknown version (an installed release is judged by the wheel checks above)."""
    packages = ctx.snapshot.packages or {}
    torch = packages.get("torch")
    if torch is None or not torch.version or target.minor is None:
        return []
    root = ctx.matrices.root
    release = release_facts("torch", torch.version, root)
    if release is None or not release.wheels or not wheel_runs(release, target):
        return []
    stranded = []
    for name in TORCH_COMPANIONS:
        if name in packages and packages[name].version is not None:
            continue
        made_for = [r for r in releases(name, root) if _pins_torch(r, release.version)]
        if made_for and not any(wheel_runs(r, target) for r in made_for):
            stranded.append(made_for[-1])
    if not stranded:
        return []
    listed = ", ".join(f"{r.package} {r.version}" for r in stranded)
    pythons = sorted({t.split("-")[0] for r in stranded for t in r.wheels or () if t.rpartition("-")[2]
                      in target.families}, key=_minor_of)
    return [Finding(
        rule="torch-companions-without-wheel-for-python", category=Category.PYTHON, severity=Severity.WARN,
        components=(*(r.package for r in stranded), "torch"), sources=("pypi-metadata",),
        message=f"torch {torch.version} runs on {target.python}, but the releases made for it ({listed}, which pin "
        f"torch=={release.version}) have no wheel for {target.python} on {target.where} (they have "
        f"{', '.join(pythons) or 'none here'}): they cannot be installed beside it here ('No matching "
        "distribution', or pip swaps torch)",
        fix=f"use a Python those releases were built for ({', '.join(pythons)}), or a newer torch whose companions "
        f"have {target.python} wheels",
    )]


def _pins_torch(release: ReleaseFacts, torch: str) -> bool:
    """Whether ``release`` requires exactly torch ``torch`` (``torch (==2.5.1)``, ``torch==2.5.1``)."""
    for line in release.requires or ():
        body = line.partition(";")[0].replace(" ", "").replace("(", "").replace(")", "")
        if body.startswith("torch==") and body[len("torch=="):].split(",")[0] in (torch, torch.removesuffix(".0")):
            return True
    return False


# Packages whose local-tag builds (+cu121, +cpu) come from an index that builds the same CPython versions as PyPI.
SAME_PYTHONS_AS_PYPI = frozenset({"torch", "torchvision", "torchaudio"})


def _index_build_python(name: str, version: str, target: Target, root: Path | str) -> list[Finding]:
    """A ``+cuXYZ`` torch comes from the PyTorch index, which builds the Pythons PyPI has: no CPython wheel of that
    release on PyPI means no build for this Python exists."""
    release = release_facts(name, version, root) if name in SAME_PYTHONS_AS_PYPI else None
    if release is None or not release.wheels or target.minor is None:
        return []
    here = [t for t in release.wheels if t.rpartition("-")[2] in target.families]
    if not here or wheel_runs(release, target):
        return []  # no wheel for this platform at all: a platform question, not this Python's
    pythons = sorted({t.split("-")[0] for t in here}, key=_minor_of)
    return [Finding(
        rule="no-wheel-for-python", category=Category.PYTHON, severity=Severity.WARN, components=(name,),
        sources=("pypi-metadata",),
        message=f"{name} {release.version} was built for {', '.join(pythons)} only on {target.where} (its PyPI "
        f"wheels; the PyTorch index builds the same), not for CPython 3.{target.minor}: this install cannot be an "
        "official build",
        fix=f"use a Python that {name} {release.version} was built for, or a newer {name}",
    )]


def _before_first_wheel_here(ctx: CheckContext, name: str, release: ReleaseFacts, target: Target,
                             history: tuple[ReleaseFacts, ...]) -> list[Finding]:
    """A source-only release of a package that later shipped wheels for this OS (and never shipped any for the OS
    before): this release predates that platform's support, and was built from source here."""
    if target.families == frozenset(FAMILY.values()) or any(f.startswith("linux") for f in target.families):
        return []  # source builds are the norm on Linux; judged only on Windows and macOS
    first = next((r for r in history if any(t.rpartition("-")[2] in target.families for t in r.wheels or ())), None)
    if first is None or [r.version for r in history].index(release.version) > [r.version for r in history].index(
            first.version):
        return []
    return [Finding(
        rule="release-predates-platform-wheels", category=Category.PLATFORM, severity=Severity.WARN,
        components=(name,), sources=("pypi-metadata",),
        message=f"{name} {release.version} is a source-only release from before {first.version}, the first with a "
        f"wheel for {target.where}: it was built from source here, which for compiled ops on {target.where} "
        "often fails or builds without them",
        fix=requirement_install(ctx, name, f">={first.version}"),
    )]


def _source_pre_release(ctx: CheckContext, name: str, release: ReleaseFacts, target: Target,
                        history: tuple[ReleaseFacts, ...]) -> list[Finding]:
    """A source-only development or pre-release (``0.0.0.dev0``) installed while final releases with compiled
    wheels exist: pip takes a pre-release only when no final release can install, so none had a wheel for this
    platform (and none a source archive): it fell back to this one, which is not what current packages expect."""
    parsed = parse_version(release.version)
    finals = [r for r in history if not r.yanked and (p := parse_version(r.version)) is not None
              and not p.is_prerelease and r.binary_wheels]
    if parsed is None or not parsed.is_prerelease or not finals or parse_version(finals[-1].version) <= parsed:
        return []
    newest = finals[-1]
    here = next((r for r in finals if wheel_runs(r, target)), None)
    later = (f"; the first with a wheel for {target.python} on {target.where} is {here.version}" if here else
             f"; none has a wheel for {target.where} (the newest, {newest.version}, ships for "
             f"{', '.join(_platforms_of(newest))})")
    return [Finding(
        rule="no-wheel-for-platform", category=Category.PLATFORM, severity=Severity.WARN, components=(name,),
        sources=("pypi-metadata",),
        message=f"{name} {release.version} is a source-only pre-release, installed although final releases up to "
        f"{newest.version} exist: pip takes a pre-release only when no final release can install here{later}",
        fix=(requirement_install(ctx, name, f">={here.version}") if here else
             f"use a platform {name} {newest.version} ships for, or build {name} {newest.version} from its source"),
    )]


def check_required_builds(ctx: CheckContext) -> list[Finding]:
    """An installed package that requires, on this platform, a compiled package of which no release in the
    required range has a wheel for this OS (triton on Windows under axolotl): it cannot be installed here."""
    from envdoctor.checks.requirements import applicable_requirements, marker_environment

    snapshot = ctx.snapshot
    system = OS_FAMILY.get((snapshot.host.os or "").lower())
    target = host_target(snapshot.host, None) if system is not None else None
    cpython = (snapshot.python.implementation or "cpython").lower() == "cpython"
    python_target = host_target(snapshot.host, snapshot.python.version) if cpython else None
    if python_target is not None and python_target.minor is None:
        python_target = None
    if target is None and python_target is None:
        return []
    environment = marker_environment(snapshot)
    root, findings = ctx.matrices.root, []
    packages = snapshot.packages or {}
    for owner, package in sorted(packages.items()):
        if package.version:
            release = release_facts(owner, package.version, root)
        else:  # the newest recorded release stands for an unknown version
            history = releases(owner, root)
            release = history[-1] if history else None
        if release is None or not release.requires:
            continue
        for requirement in applicable_requirements(release.requires, environment):
            finding = _unbuildable(owner, package.version, requirement, target, root) if target else None
            installed = packages.get(normalize_name(requirement.name))
            if finding is None and python_target is not None and (
                    installed is None or installed.version is None) and _installs_here(release, python_target):
                finding = _no_wheel_for_python_in_range(owner, package.version, requirement, python_target, root)
            if finding is not None:
                findings.append(finding)
    return findings


def _installs_here(release: ReleaseFacts, target: Target) -> bool:
    """The owner release itself installs on this Python (else the checks on it say so): pure Python, or a wheel
    that runs here, and a Requires-Python that admits it."""
    python = f"3.{target.minor}.0"
    if release.requires_python and not matches_specifier(python, release.requires_python):
        return False
    return not release.wheels or wheel_runs(release, target)


def _no_wheel_for_python_in_range(owner: str, version: str | None, requirement: Declared, target: Target,
                                  root: Path | str) -> Finding | None:
    """A required compiled package (not installed, or of unknown version) none of whose releases in the required
    range has a wheel for this CPython, though they have wheels for others on this platform (transformers 4.27
    requires tokenizers<0.14, which has no CPython 3.12 wheel): pip builds it from source (a compiler, Rust...), or
    cannot install it at all."""
    name = normalize_name(requirement.name)
    every = [r for r in releases(name, root) if not r.yanked]
    if not every or not any(r.binary_wheels for r in every):
        return None  # not in the tables, or pure Python
    history = [r for r in every if not requirement.specifier or matches_specifier(r.version, requirement.specifier)]
    newest_python = max((_minor_of(t) for r in history for t in r.wheels or () if t.startswith("cp3")), default=0)
    if history and history[0] is every[0] and target.minor < newest_python:
        return None  # older releases than the tables hold may have been built for an older Python like this one
    other_pythons = Target(target.families, None, target.where)
    if not history or any(wheel_runs(r, target) for r in history) or not any(
            wheel_runs(r, other_pythons) for r in history):
        return None
    source = any(r.sdist for r in history)
    shown = f"{owner} {version}" if version else f"{owner} (version unknown; its newest release)"
    pythons = sorted({t.split("-")[0] for r in history for t in r.wheels or () if t.rpartition("-")[2]
                      in target.families}, key=_minor_of)
    return Finding(
        rule="required-package-no-wheel-for-python", category=Category.PYTHON,
        severity=Severity.WARN if source or version is None else Severity.FAIL,
        components=(owner, name), sources=("pypi-metadata",), verified=version is not None,
        message=f"{shown} requires {requirement.name}{requirement.specifier}, and no release of {name} in that "
        f"range has a wheel for {target.python} on {target.where} (they have {', '.join(pythons)}): "
        + ("pip builds it from source, which needs a compiler toolchain (Rust for some) and often fails"
           if source else f"pip cannot install {owner} here"),
        fix=f"use a Python {name}{requirement.specifier} has wheels for ({', '.join(pythons[-2:])}), or a newer "
        f"{owner} that allows a newer {name}",
    )


def _unbuildable(owner: str, version: str | None, requirement: Declared, target: Target,
                 root: Path | str) -> Finding | None:
    name = normalize_name(requirement.name)
    every = releases(name, root)
    if not every or not any(r.binary_wheels for r in every):
        return None  # not in the tables, or pure Python
    in_range = (r for r in reversed(every)  # newest first: the first one that installs here ends the search
                if not requirement.specifier or matches_specifier(r.version, requirement.specifier))
    newest = next(in_range, None)
    if newest is None or any(r.sdist or wheel_runs(r, target) for r in itertools.chain((newest,), in_range)):
        return None
    shown = f"{owner} {version}" if version else f"{owner} (version unknown; its newest release)"
    return Finding(
        rule="required-package-not-built-here", category=Category.PLATFORM, severity=Severity.FAIL,
        components=(owner, name), sources=("pypi-metadata",), verified=version is not None,
        message=f"{shown} requires {requirement.name}{requirement.specifier} on {target.where}, and no release of "
        f"{name} in that range has a wheel for {target.where} (nor a source archive): pip cannot install {owner} "
        "here",
        fix=f"run {owner} on Linux (WSL2 on Windows) where {name} has wheels",
    )


def _missing(wheels: tuple[str, ...], target: Target, built_here: bool) -> tuple[bool, str]:
    """(whether this Python is what is missing, what is missing). The platform has wheels for other Pythons: this
    Python is missing, unless other platforms have wheels for it while no release (``built_here``) ever had one for
    it here: then the platform is what lacks it."""
    platforms = sorted({tag.rpartition("-")[2] for tag in wheels} - {"any"})
    on_platform = target.minor is not None and bool(target.families & set(platforms))
    if on_platform:
        pythons = sorted({tag.split("-")[0] for tag in wheels if tag.rpartition("-")[2] in target.families},
                         key=_minor_of)
        missing = f"no wheel for {target.python} on {target.where} (it has {', '.join(pythons)} there"
        elsewhere = [] if built_here else _python_elsewhere(wheels, target)
        if elsewhere:
            return False, f"{missing}; {target.python} wheels are for {', '.join(elsewhere)}, and no release has " \
                "one here)"
        return True, missing + ")"
    return False, f"no wheel for {target.where} (it has {', '.join(DESCRIBE.get(p, p) for p in platforms)})"


def _python_elsewhere(wheels: Iterable[str], target: Target) -> list[str]:
    """The other platforms with a wheel for the target's Python, as people name them."""
    if target.minor is None:
        return []
    return sorted({DESCRIBE.get(family, family) for tag in wheels
                   if (family := tag.rpartition("-")[2]) not in target.families and family != "any"
                   and runs_here(tag, family, target.minor)})


def _no_wheel(ctx: CheckContext, name: str, release: ReleaseFacts, target: Target,
              history: tuple[ReleaseFacts, ...]) -> Finding:
    nearest = _nearest(history, release.version, lambda r: wheel_runs(r, target))
    on_platform, missing = _missing(release.wheels or (), target, built_here=nearest is not None)
    fix = (f"{requirement_install(ctx, name, f'=={nearest}')}   # the nearest release with a wheel for "
           f"{target.python} on {target.where}" if nearest else
           f"pip uninstall -y {name}   # no release on PyPI has a wheel for {target.python} on {target.where}")
    return Finding(
        rule="no-wheel-for-python" if on_platform else "no-wheel-for-platform",
        category=Category.PYTHON if on_platform else Category.PLATFORM, severity=Severity.WARN,
        components=(name,), sources=("pypi-metadata",),
        message=f"{name} {release.version} has {missing} on PyPI: this install was compiled locally from the sdist "
        "or came from elsewhere (conda, another index), and may not work",
        fix=fix,
    )


def _no_release_runs(name: str, history: tuple[ReleaseFacts, ...], target: Target) -> list[Finding]:
    """Installed with an unknown version: judged only when no recorded release has a wheel that runs here."""
    built = [r for r in history if r.wheels]
    if not built or any(wheel_runs(r, target) for r in built):
        return []
    python_here = target.minor is not None and any(
        tag.rpartition("-")[2] in target.families for r in built for tag in r.wheels or ())
    elsewhere = _python_elsewhere((tag for r in built for tag in r.wheels or ()), target) if python_here else []
    on_platform = python_here and not elsewhere  # this platform has wheels, for other Pythons only
    span = f"{built[0].version} to {built[-1].version}"
    newest = _platforms_of(built[-1])
    return [Finding(
        rule="no-wheel-for-python" if on_platform else "no-wheel-for-platform",
        category=Category.PYTHON if on_platform else Category.PLATFORM, severity=Severity.WARN,
        components=(name,), sources=("pypi-metadata",),
        message=f"{name} is installed (version unknown), but no release of it on PyPI ({span}) has a wheel for "
        f"{target.python + ' on ' + target.where if python_here else target.where}"
        f"{f' ({target.python} wheels are for ' + ', '.join(elsewhere) + ')' if elsewhere else ''}: it was "
        "compiled locally or came from elsewhere, and may not work",
        fix=f"pip show {name}   # where it came from; PyPI's newest wheels are for {', '.join(newest)}",
    )]


def _platforms_of(release: ReleaseFacts) -> list[str]:
    """The platforms a release ships wheels for, as people name them (``Linux x86_64``, ``macOS Apple silicon``)."""
    return sorted({DESCRIBE.get(p, p) for p in (t.rpartition("-")[2] for t in release.wheels or ())})


def _platform_dropped(name: str, history: tuple[ReleaseFacts, ...], target: Target) -> list[Finding]:
    """Installed with an unknown version: the newest release has wheels, none for this platform, while older ones
    had them (the project dropped the platform). Whatever the Python, pip stops at the last release built here: a
    warning when that one is STALE_MONTHS older than the newest (not verified: the installed one may be that old)."""
    anywhere = Target(target.families, None, target.where)
    built = [r for r in history if r.wheels and not r.yanked]
    ran = [r for r in built if wheel_runs(r, anywhere)]
    if not ran or not built or ran[-1] is built[-1] or built[-1].pure_wheel:
        return []
    last, newest = ran[-1], built[-1]
    if months_between(last.date, newest.date) < STALE_MONTHS:
        return []
    shipped = _platforms_of(newest)
    return [Finding(
        rule="no-wheel-for-platform", category=Category.PLATFORM, severity=Severity.WARN, components=(name,),
        sources=("pypi-metadata",), verified=False,
        message=f"{name} is installed (version unknown); its releases after {last.version} ({last.date}) have no "
        f"wheel for {target.where} (the newest, {newest.version}, ships for {', '.join(shipped)}): pip stops at "
        f"{name} {last.version} here, and anything needing a newer {name} cannot install",
        fix=f"use a platform {name} {newest.version} ships for, or pin {name}=={last.version} and what works with it",
    )]


def _platform_came_late(name: str, history: tuple[ReleaseFacts, ...], target: Target) -> list[Finding]:
    """Installed with an unknown version: wheels for this platform exist only in the latest releases (at most a
    third of those with compiled wheels), so an install of any earlier one was compiled locally or came from another
    index, which is where such installs go wrong (not verified: the installed one may be that new)."""
    anywhere = Target(target.families, None, target.where)
    compiled = [r for r in history if r.wheels and not r.yanked and not r.pure_wheel]
    here = [r for r in compiled if wheel_runs(r, anywhere)]
    if not here or here[0] is compiled[0] or 3 * len(here) > len(compiled):
        return []
    first = here[0]
    return [Finding(
        rule="no-wheel-for-platform", category=Category.PLATFORM, severity=Severity.WARN, components=(name,),
        sources=("pypi-metadata",), verified=False,
        message=f"{name} is installed (version unknown); PyPI has its wheels for {target.where} only since "
        f"{first.version} ({first.date}; {len(compiled) - len(here)} earlier releases have none): unless it is "
        "that new, it was compiled locally or came from another index, and may not work",
        fix=f"pip show {name}   # its version and where it came from; {name}>={first.version} installs from PyPI here",
    )]


def _python_of_unknown(name: str, history: tuple[ReleaseFacts, ...], python: str | None) -> list[Finding]:
    """Installed with an unknown version: no release admits this Python (fail), or the newest ones do not (warn,
    not verified: an older release may be what is installed)."""
    if python is None or not history:
        return []
    admits = [r for r in history if not r.requires_python or matches_specifier(python, r.requires_python)]
    newest = history[-1]
    if admits and admits[-1] is newest:
        return []
    if not admits:
        return [Finding(
            rule="requires-python-excluded", category=Category.PYTHON, severity=Severity.FAIL, components=(name,),
            sources=("pypi-metadata",),
            message=f"{name} is installed (version unknown), but no release of it on PyPI ({history[0].version} to "
            f"{newest.version}) supports Python {python} (the newest declares Requires-Python "
            f"{newest.requires_python}): pip cannot install it here",
            fix=f"use a Python that {newest.requires_python} allows (uv venv --python ...), then reinstall",
        )]
    stale = months_between(admits[-1].date, newest.date) >= STALE_MONTHS
    capped = _capped_below(python, newest.requires_python)
    why = (f"; the cap came after {admits[-1].version}: the releases that admit Python {python} predate it and most "
           "likely do not work there either (inferred)" if capped else "")
    return [Finding(
        rule="requires-python-excluded", category=Category.PYTHON,
        severity=Severity.WARN if stale or capped else Severity.INFO,
        components=(name,), sources=("pypi-metadata",), verified=False,
        message=f"{name} is installed (version unknown); its releases after {admits[-1].version} require Python "
        f"{newest.requires_python}, so on Python {python} pip stops at {name} {admits[-1].version} (an old "
        f"release){why}",
        fix=f"use a Python that {newest.requires_python} allows for current {name} releases",
    )]


def _code_of_unknown(name: str, history: tuple[ReleaseFacts, ...], target: Target) -> list[Finding]:
    """Installed with an unknown version: the releases whose Requires-Python admits this Python all have code that
    needs a newer one (an assignment expression on 3.7): whichever pip installed fails at import."""
    if target.minor is None:
        return []
    python = f"3.{target.minor}"
    admitted = [r for r in history if not r.yanked and (not r.requires_python
                                                       or matches_specifier(python, r.requires_python))]
    floors = [cpython_tag(r.python_floor) for r in admitted]
    if not admitted or not all(floor is not None and target.minor < floor for floor in floors):
        return []
    lowest = admitted[floors.index(min(floor for floor in floors if floor is not None))]
    return [Finding(
        rule="code-needs-newer-python", category=Category.PYTHON, severity=Severity.WARN, components=(name,),
        sources=("pypi-metadata",), verified=False,
        message=f"{name} is installed (version unknown); every release of it whose Requires-Python admits Python "
        f"{python} ({admitted[0].version} to {admitted[-1].version}) has code that needs Python "
        f"{lowest.python_floor} or newer ({lowest.version}: {lowest.python_floor_from}): importing it fails "
        "(SyntaxError)",
        fix=f"use Python {lowest.python_floor} or newer",
    )]


def _capped_below(python: str, requires_python: str | None) -> bool:
    """Whether ``requires_python`` excludes ``python`` by an upper bound (``<3.12``): this Python is too new."""
    caps = [part.strip() for part in (requires_python or "").split(",") if part.strip().startswith("<")]
    return any(not matches_specifier(python, cap) for cap in caps)


STALE_MONTHS = 12  # pip's last release for this Python is this much older than the newest: a warning


def _code_needs_newer_python(ctx: CheckContext, name: str, release: ReleaseFacts, python: str, minor: int,
                             history: tuple[ReleaseFacts, ...]) -> Finding:
    """A release whose Requires-Python admits this Python, but whose code uses syntax it cannot run (a ``X | None``
    annotation evaluated at import needs 3.10): pip installs it, and importing that module fails."""
    def runs(r: ReleaseFacts) -> bool:
        return (not r.requires_python or matches_specifier(python, r.requires_python)) and (
            not r.python_floor or minor >= int(r.python_floor.split(".")[1]))

    nearest = _nearest(history, release.version, runs)
    return Finding(
        rule="code-needs-newer-python", category=Category.PYTHON, severity=Severity.WARN, components=(name,),
        sources=("pypi-metadata",),
        message=f"{name} {release.version} declares Requires-Python {release.requires_python or '(none)'}, but its "
        f"code needs Python {release.python_floor} ({release.python_floor_from}: syntax such as a 'X | None' or "
        f"'list[str]' annotation evaluated at import): on Python {python} importing that module fails (TypeError: "
        "unsupported operand type(s) for |, 'type' object is not subscriptable, or SyntaxError)",
        fix=(f"{requirement_install(ctx, name, f'=={nearest}')}   # the nearest release whose recorded facts admit "
             f"Python {python}; or use Python {release.python_floor} or newer") if nearest
        else f"use Python {release.python_floor} or newer",
    )


def _python_of_unrecorded(ctx: CheckContext, name: str, version: str, python: str | None,
                          root: Path | str) -> list[Finding]:
    """A version PyPI does not have (a build from git, a pre-release, a branch ahead of the newest upload): judged
    on the Requires-Python of the nearest recorded release before it, which it most likely shares (inferred)."""
    stand_in = nearest_recorded_release(name, version, root)
    if python is not None and stand_in is None:
        return _python_before_first_upload(name, version, python, root)
    if python is None or stand_in is None or not stand_in.requires_python:
        return []
    floor = stand_in.requires_python
    if stand_in is releases(name, root)[-1]:  # ahead of every upload: only the lowest Python carries over
        floor = ",".join(c.strip() for c in floor.split(",") if c.strip().startswith(">"))
    if not floor or matches_specifier(python, floor):
        return []
    return [Finding(
        rule="requires-python-excluded", category=Category.PYTHON, severity=Severity.WARN, components=(name,),
        sources=("pypi-metadata",), verified=False,
        message=f"{name} {version} is not on PyPI; {stand_in.version}, the nearest release before it, declares "
        f"Requires-Python {stand_in.requires_python}, which excludes Python {python}: this build most likely "
        "needs a newer Python too (pip refuses it: 'requires a different Python')",
        fix=f"use a Python that {floor} allows (uv venv --python ...), then reinstall {name}",
    )]


def _python_before_first_upload(name: str, version: str, python: str, root: Path | str) -> list[Finding]:
    """A build older than the package's first upload to PyPI (made from git): when every release on PyPI, from the
    first, declares a Requires-Python that excludes this Python, the earlier build most likely did too (inferred)."""
    history = releases(name, root)
    installed, first_upload = parse_version(public_of(version)), parse_version(history[0].version if history else None)
    older = installed is not None and first_upload is not None and installed < first_upload
    if not older or not recorded_from_first_upload(name, root) or not all(
            r.requires_python and not matches_specifier(python, r.requires_python) for r in history):
        return []
    first, newest = history[0], history[-1]
    return [Finding(
        rule="requires-python-excluded", category=Category.PYTHON, severity=Severity.WARN, components=(name,),
        sources=("pypi-metadata",), verified=False,
        message=f"{name} {version} is older than its first release on PyPI ({first.version}); every release "
        f"since, {first.version} to {newest.version}, declares a Requires-Python that excludes Python {python} "
        f"({first.requires_python} from the first): this build most likely needs a newer Python too (inferred)",
        fix=f"use a Python that {newest.requires_python} allows (uv venv --python ...), then install a current "
        f"{name} release",
    )]


def _python_excluded(ctx: CheckContext, name: str, release: ReleaseFacts, python: str,
                     history: tuple[ReleaseFacts, ...]) -> Finding:
    version, requires_python = release.version, release.requires_python
    nearest = _nearest(history, version, lambda r: not r.requires_python
                       or matches_specifier(python, r.requires_python))
    return Finding(
        rule="requires-python-excluded", category=Category.PYTHON, severity=Severity.FAIL,
        components=(name,), sources=("pypi-metadata",),
        message=f"{name} {version} declares Requires-Python {requires_python}, which excludes Python {python}: "
        "pip would not install it here, and it may use syntax or C APIs this Python lacks",
        fix=(f"{requirement_install(ctx, name, f'=={nearest}')}   # the nearest release that supports Python "
             f"{python}") if nearest else f"use a Python that {requires_python} allows",
    )


def _nearest(history: tuple[ReleaseFacts, ...], version: str, fits: Callable[[ReleaseFacts], bool]) -> str | None:
    """The release closest to ``version`` (a recorded one) in release order that ``fits`` and is not yanked;
    the newer one wins a tie."""
    versions = [r.version for r in history]
    here = versions.index(version) if version in versions else len(versions)
    candidates = [(abs(i - here), -i, r.version) for i, r in enumerate(history)
                  if r.version != version and not r.yanked and fits(r)]
    return min(candidates)[2] if candidates else None


def _minor_of(tag: str) -> int:
    digits = tag[3:].split("-")[0]
    return int(digits) if digits.isdigit() else 0
