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

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.declared import Declared
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import ReleaseFacts, known_packages, release_facts, releases
from envdoctor.rules import matches_specifier
from envdoctor.snapshot import normalize_name

OS_FAMILY = {"linux": "linux", "windows": "win", "win32": "win", "darwin": "macosx", "macos": "macosx"}
ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "x64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
# Wheel platform families by (OS family, architecture), as tools/gen_pypi_facts.py writes them.
FAMILY = {
    ("linux", "x86_64"): "linux_x86_64", ("linux", "aarch64"): "linux_aarch64",
    ("win", "x86_64"): "win_amd64", ("win", "aarch64"): "win_arm64",
    ("macosx", "x86_64"): "macosx_x86_64", ("macosx", "aarch64"): "macosx_arm64",
}
OS_NAME = {"linux": "Linux", "win": "Windows", "macosx": "macOS"}
DESCRIBE = {
    "linux_x86_64": "Linux x86_64", "linux_aarch64": "Linux aarch64", "win_amd64": "Windows x86_64",
    "win_arm64": "Windows ARM64", "macosx_x86_64": "macOS Intel", "macosx_arm64": "macOS Apple silicon",
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


def target_of(os: str | None, arch: str | None, python: str | None) -> Target | None:
    """The target a snapshot describes; None when neither the platform nor the Python is known."""
    minor = cpython_tag(python)
    system = OS_FAMILY.get((os or "").lower())
    family = platform_family(os, arch)
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
    target = target_of(snapshot.host.os, snapshot.host.arch, snapshot.python.version)
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
            findings.extend(_no_release_runs(name, history, target) or _python_of_unknown(name, history, python))
            continue
        release = release_facts(name, package.version, root)
        if release is None:
            continue
        if python and release.requires_python and not matches_specifier(python, release.requires_python):
            findings.append(_python_excluded(ctx, name, release, python, releases(name, root)))
        elif release.wheels and not wheel_runs(release, target):
            findings.append(_no_wheel(ctx, name, release, target, releases(name, root)))
        elif not release.wheels:
            findings.extend(_before_first_wheel_here(ctx, name, release, target, releases(name, root)))
    return findings


# Packages whose local-tag builds (+cu121, +cpu) come from an index that builds the same CPython versions as PyPI.
SAME_PYTHONS_AS_PYPI = frozenset({"torch", "torchvision", "torchaudio"})


def _index_build_python(name: str, version: str, target: Target, root: Path | str) -> list[Finding]:
    """A ``+cuXYZ`` torch comes from the PyTorch index, which builds the Pythons PyPI has: no CPython wheel of that
    release on PyPI means no build for this Python exists."""
    release = release_facts(name, version, root) if name in SAME_PYTHONS_AS_PYPI else None
    if release is None or not release.wheels or target.minor is None:
        return []
    every = Target(frozenset(FAMILY.values()), target.minor, "any platform")
    if wheel_runs(release, every):
        return []
    pythons = sorted({t.split("-")[0] for t in release.wheels}, key=_minor_of)
    return [Finding(
        rule="no-wheel-for-python", category=Category.PYTHON, severity=Severity.WARN, components=(name,),
        sources=("pypi-metadata",),
        message=f"{name} {release.version} was built for {', '.join(pythons)} only (its PyPI wheels; the PyTorch "
        f"index builds the same), not for CPython 3.{target.minor}: this install cannot be an official build",
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


def check_required_builds(ctx: CheckContext) -> list[Finding]:
    """An installed package that requires, on this platform, a compiled package of which no release in the
    required range has a wheel for this OS (triton on Windows under axolotl): it cannot be installed here."""
    from envdoctor.checks.requirements import applicable_requirements, marker_environment

    snapshot = ctx.snapshot
    system = OS_FAMILY.get((snapshot.host.os or "").lower())
    if system is None:
        return []
    target = target_of(snapshot.host.os, snapshot.host.arch, None)
    environment = marker_environment(snapshot)
    root, findings = ctx.matrices.root, []
    for owner, package in sorted((snapshot.packages or {}).items()):
        history = releases(owner, root)
        release = release_facts(owner, package.version, root) if package.version else (history[-1] if history
                                                                                         else None)
        if release is None or not release.requires:
            continue
        for requirement in applicable_requirements(release.requires, environment):
            finding = _unbuildable(owner, package.version, requirement, target, root)
            if finding is not None:
                findings.append(finding)
    return findings


def _unbuildable(owner: str, version: str | None, requirement: Declared, target: Target,
                 root: Path | str) -> Finding | None:
    name = normalize_name(requirement.name)
    every = releases(name, root)
    if not every or not any(not t.endswith("-any") for r in every for t in r.wheels or ()):
        return None  # not in the tables, or pure Python
    history = [r for r in every if not requirement.specifier or matches_specifier(r.version, requirement.specifier)]
    if not history or any(r.sdist or wheel_runs(r, target) for r in history):
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


def _missing(wheels: tuple[str, ...], target: Target) -> tuple[bool, str]:
    """(whether the platform has wheels for another Python, what is missing)."""
    platforms = sorted({tag.rpartition("-")[2] for tag in wheels} - {"any"})
    on_platform = target.minor is not None and bool(target.families & set(platforms))
    if on_platform:
        pythons = sorted({tag.split("-")[0] for tag in wheels if tag.rpartition("-")[2] in target.families},
                         key=_minor_of)
        return True, f"no wheel for {target.python} on {target.where} (it has {', '.join(pythons)})"
    return False, f"no wheel for {target.where} (it has {', '.join(DESCRIBE.get(p, p) for p in platforms)})"


def _no_wheel(ctx: CheckContext, name: str, release: ReleaseFacts, target: Target,
              history: tuple[ReleaseFacts, ...]) -> Finding:
    on_platform, missing = _missing(release.wheels or (), target)
    nearest = _nearest(history, release.version, lambda r: wheel_runs(r, target))
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
    on_platform = target.minor is not None and any(
        tag.rpartition("-")[2] in target.families for r in built for tag in r.wheels or ())
    span = f"{built[0].version} to {built[-1].version}"
    newest = sorted({DESCRIBE.get(p, p) for p in (t.rpartition("-")[2] for t in built[-1].wheels or ())})
    return [Finding(
        rule="no-wheel-for-python" if on_platform else "no-wheel-for-platform",
        category=Category.PYTHON if on_platform else Category.PLATFORM, severity=Severity.WARN,
        components=(name,), sources=("pypi-metadata",),
        message=f"{name} is installed (version unknown), but no release of it on PyPI ({span}) has a wheel for "
        f"{target.python if on_platform else target.where}"
        f"{' on ' + target.where if on_platform else ''}: it was compiled locally or came from elsewhere, and "
        "may not work",
        fix=f"pip show {name}   # where it came from; PyPI's newest wheels are for {', '.join(newest)}",
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
    stale = _months_between(admits[-1].date, newest.date) >= STALE_MONTHS
    return [Finding(
        rule="requires-python-excluded", category=Category.PYTHON, severity=Severity.WARN if stale else Severity.INFO,
        components=(name,), sources=("pypi-metadata",), verified=False,
        message=f"{name} is installed (version unknown); its releases after {admits[-1].version} require Python "
        f"{newest.requires_python}, so on Python {python} pip stops at {name} {admits[-1].version} (an old release)",
        fix=f"use a Python that {newest.requires_python} allows for current {name} releases",
    )]


STALE_MONTHS = 12  # pip's last release for this Python is this much older than the newest: a warning


def _months_between(earlier: str, later: str) -> int:
    (y0, m0), (y1, m1) = (tuple(int(p) for p in d.split("-")[:2]) for d in (earlier, later))
    return (y1 - y0) * 12 + m1 - m0


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
