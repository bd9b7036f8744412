"""Wheels for this platform and Python: does PyPI have a build of the installed release that can run here?

For every installed package in the bundled PyPI tables (``matrices/pypi``): a release whose wheels cover other
platforms but not this OS and architecture, or not this CPython, and that has no pure-Python wheel, was compiled
here from its sdist or came from elsewhere (conda, a private index) - it may not work. A release whose
Requires-Python excludes this Python fails. Nothing is said when the OS, architecture or Python is unknown (other
checks report those), nor for a local-tag install (``+cu121``: another index, with its own wheels).
"""

from __future__ import annotations

from collections.abc import Callable

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import ReleaseFacts, known_packages, release_facts, releases
from envdoctor.rules import matches_specifier

OS_FAMILY = {"linux": "linux", "windows": "win", "win32": "win", "darwin": "macosx", "macos": "macosx"}
ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "x64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
# Wheel platform families by (OS family, architecture), as tools/gen_pypi_facts.py writes them.
FAMILY = {
    ("linux", "x86_64"): "linux_x86_64", ("linux", "aarch64"): "linux_aarch64",
    ("win", "x86_64"): "win_amd64", ("win", "aarch64"): "win_arm64",
    ("macosx", "x86_64"): "macosx_x86_64", ("macosx", "aarch64"): "macosx_arm64",
}
DESCRIBE = {
    "linux_x86_64": "Linux x86_64", "linux_aarch64": "Linux aarch64", "win_amd64": "Windows x86_64",
    "win_arm64": "Windows ARM64", "macosx_x86_64": "macOS Intel", "macosx_arm64": "macOS Apple silicon",
}


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


def runs_here(tag: str, family: str, minor: int) -> bool:
    """Whether a compact wheel tag (``cp311-linux_x86_64``, ``cp38-abi3-...``, ``py3-any``) installs on CPython
    3.``minor`` on ``family``."""
    python, _, platform = tag.rpartition("-")
    if platform not in (family, "any"):
        return False
    if python.endswith("-abi3"):
        return int(python[3:-5]) <= minor
    if python.startswith("py3"):
        return True
    return python == f"cp3{minor}"


def check_wheels(ctx: CheckContext) -> list[Finding]:
    snapshot = ctx.snapshot
    family = platform_family(snapshot.host.os, snapshot.host.arch)
    minor = cpython_tag(snapshot.python.version)
    implementation = (snapshot.python.implementation or "cpython").lower()
    if family is None or minor is None or implementation != "cpython":
        return []

    root = ctx.matrices.root
    findings = []
    known = set(known_packages(root))
    for name, package in sorted((snapshot.packages or {}).items()):
        if name not in known or not package.version or "+" in package.version:
            continue
        release = release_facts(name, package.version, root)
        if release is None:
            continue
        python = snapshot.python.version or ""
        if release.requires_python and not matches_specifier(python, release.requires_python):
            findings.append(_python_excluded(ctx, name, release, python, releases(name, root)))
            continue
        if not release.wheels or any(runs_here(tag, family, minor) for tag in release.wheels):
            continue
        findings.append(_no_wheel(ctx, name, release, family, minor, releases(name, root)))
    return findings


def _no_wheel(ctx: CheckContext, name: str, release: ReleaseFacts, family: str, minor: int,
              history: tuple[ReleaseFacts, ...]) -> Finding:
    version, wheels = release.version, release.wheels or ()
    platforms = sorted({tag.rpartition("-")[2] for tag in wheels} - {"any"})
    on_platform = family in platforms
    if on_platform:
        pythons = sorted({tag.split("-")[0] for tag in wheels if tag.endswith(family)}, key=_minor_of)
        missing = f"no wheel for CPython 3.{minor} on {DESCRIBE[family]} (it has {', '.join(pythons)})"
    else:
        missing = f"no wheel for {DESCRIBE[family]} (it has {', '.join(DESCRIBE.get(p, p) for p in platforms)})"
    nearest = _nearest(history, version, lambda r: bool(r.wheels) and any(runs_here(t, family, minor)
                                                                           for t in r.wheels))
    fix = (f"{requirement_install(ctx, name, f'=={nearest}')}   # the nearest release with a wheel for "
           f"CPython 3.{minor} on {DESCRIBE[family]}" if nearest else None)
    return Finding(
        rule="no-wheel-for-python" if on_platform else "no-wheel-for-platform",
        category=Category.PYTHON if on_platform else Category.PLATFORM, severity=Severity.WARN,
        components=(name,), sources=("pypi-metadata",),
        message=f"{name} {version} has {missing} on PyPI: this install was compiled locally from the sdist or "
        "came from elsewhere (conda, another index), and may not work",
        fix=fix or f"pip uninstall -y {name}   # no release on PyPI has a wheel for CPython 3.{minor} on "
        f"{DESCRIBE[family]}",
    )


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
