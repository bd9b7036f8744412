"""The host's glibc against the glibc each release's manylinux wheels need (``glibc`` in ``matrices/pypi``, from the
wheels' ``manylinux_X_Y`` tags; ``matrices/distro_glibc.toml`` when only the distribution is known), and against the
CI image flash-attn's release wheels were built on (``runners`` in ``matrices/flash_attn.toml``).

A ``manylinux_2_28`` wheel needs glibc 2.28: on CentOS 7 (2.17) or Ubuntu 18.04 (2.27) pip rejects it ("is not a
supported wheel on this platform") and falls back to an older release or an sdist, and a copy put there anyway fails
at import ("version `GLIBC_2.28' not found"). Judged for every package with release facts (bundled or fetched),
Linux glibc hosts only; a local-tag build (``+cu121``) came from another index and is not judged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.wheels import ARCH, musl_host
from envdoctor.facts import FlashAttnRelease
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.pypi_facts import ReleaseFacts, known_packages, release_facts, releases
from envdoctor.snapshot import Host

TABLE = "distro_glibc"
RULE = "glibc-older-than-wheels"
NUMBER = re.compile(r"\d+(?:\.\d+)?")
STATED_GLIBC = re.compile(r"\bglibc[ -]?(\d+\.\d+)")


@dataclass(frozen=True)
class DistroFamily:
    name: str
    words: tuple[str, ...]
    sources: tuple[str, ...]
    glibc: dict[str, str]  # release as written after the name -> glibc


@dataclass(frozen=True)
class HostGlibc:
    version: Version
    shown: str  # "glibc 2.27 (Ubuntu 18.04, inferred from the distribution)"
    verified: bool
    sources: tuple[str, ...]


def load_distro_glibc(matrices: Matrices) -> tuple[DistroFamily, ...]:
    """The families, validated; a bad entry raises MatrixError naming the file and key."""
    return _families(matrices.root / f"{TABLE}.toml", matrices)


def _families(path: Path, matrices: Matrices) -> tuple[DistroFamily, ...]:
    raw = matrices.table(TABLE)
    out = []
    for name, family in (raw.get("families") or {}).items():
        glibc = (raw.get("glibc") or {}).get(name)
        try:
            words = tuple(word.lower() for word in family["words"])
            sources = tuple(family["sources"])
            if not words or not sources or not isinstance(glibc, dict):
                raise ValueError("words, sources and a [glibc.NAME] table are needed")
            for release, version in glibc.items():
                Version(version)
                if not NUMBER.fullmatch(release):
                    raise ValueError(f"release {release!r} is not a number")
        except (KeyError, TypeError, ValueError, AttributeError, InvalidVersion) as error:
            raise MatrixError(f"{path}: families.{name}: {error}") from None
        out.append(DistroFamily(name, words, sources, dict(glibc)))
    return tuple(out)


def host_glibc(host: Host, matrices: Matrices) -> HostGlibc | None:
    """The host's glibc: probed, else the one its distribution release ships; None when neither is known."""
    if host.glibc:
        try:
            return HostGlibc(Version(host.glibc), f"glibc {host.glibc}", True, ())
        except InvalidVersion:
            return None
    distro = (host.distro or "").lower()
    stated = STATED_GLIBC.search(distro)
    if stated:  # "Ubuntu 20.04 (glibc 2.31)": the snapshot states it beside the distribution
        return HostGlibc(Version(stated.group(1)), f"glibc {stated.group(1)}", True, ())
    for family in load_distro_glibc(matrices) if distro else ():
        at = min((distro.find(word) for word in family.words if word in distro), default=-1)
        if at < 0:
            continue
        number = NUMBER.search(distro, at)
        release = number.group(0) if number else None
        glibc = family.glibc.get(release or "") or family.glibc.get((release or "").split(".")[0])
        if glibc is None:
            return None
        return HostGlibc(Version(glibc), f"glibc {glibc} ({host.distro}'s, inferred from the distribution)", False,
                         family.sources)
    return None


def _floor(release: ReleaseFacts, arch: str) -> Version | None:
    """The lowest glibc a release's wheels need on ``arch``; None when it has no manylinux one, or a pure wheel (whose
    release records no glibc)."""
    text = release.glibc_for(arch)
    return Version(text) if text else None


def check_glibc_floors(ctx: CheckContext) -> list[Finding]:
    host = ctx.snapshot.host
    if host.os not in ("linux", None) or musl_host(host) or not ctx.snapshot.packages:
        return []
    if host.os is None and not host.glibc and not host.distro:
        return []
    glibc = host_glibc(host, ctx.matrices)
    if glibc is None:
        return []
    arch = ARCH.get((host.arch or "x86_64").lower(), host.arch or "x86_64")
    known = set(known_packages(ctx.matrices.root))
    findings = []
    for name, package in sorted(ctx.snapshot.packages.items()):
        if name not in known or (package.version and "+" in package.version) or package.direct_url:
            continue
        if package.version:
            release = release_facts(name, package.version, ctx.matrices.root)
            floor = _floor(release, arch) if release is not None else None
            if floor is not None and floor > glibc.version:
                findings.append(_installed(ctx, name, release, floor, glibc, arch))
        else:
            findings.extend(_unknown_version(name, releases(name, ctx.matrices.root), glibc, arch))
    flash_attn = ctx.snapshot.packages.get("flash-attn")
    if flash_attn is not None and arch == "x86_64" and not (flash_attn.version and "+" in flash_attn.version):
        findings.extend(_flash_attn_runner(ctx, flash_attn.version, glibc))
    return findings


def _runner_glibc(release: FlashAttnRelease, matrices: Matrices) -> tuple[str, Version] | None:
    """The newest glibc among the runner images a release's wheels were built on (``ubuntu-22.04``: 2.35)."""
    found = []
    for runner in release.runners:
        name, _, version = runner.partition("-")
        glibc = host_glibc(Host(os="linux", distro=f"{name} {version}"), matrices) if version else None
        if glibc is not None:
            found.append((runner, glibc.version))
    return max(found, key=lambda item: item[1]) if found else None


def _flash_attn_runner(ctx: CheckContext, version: str | None, glibc: HostGlibc) -> list[Finding]:
    """flash-attn's release wheels (GitHub assets, not manylinux-audited) link against the glibc of the CI image
    they were built on: on an older glibc they may fail to load ("version `GLIBC_2.32' not found")."""
    known = ctx.facts.flash_attn_versions()
    read = [v for v in known if (entry := ctx.facts.flash_attn(v)) is not None and entry.runners]
    chosen = version if version else (read[-1] if read else None)  # the newest release whose CI image is known
    release = ctx.facts.flash_attn(chosen) if chosen else None
    built = _runner_glibc(release, ctx.matrices) if release is not None else None
    if built is None or built[1] <= glibc.version:
        return []
    runner, needed = built
    older = [v for v in known if Version(v) < Version(chosen or "0") and (ran := ctx.facts.flash_attn(v))
             and (on := _runner_glibc(ran, ctx.matrices)) is not None and on[1] <= glibc.version]
    shown = f"flash-attn {version}'s" if version else f"flash-attn (version unknown; the newest, {chosen}), whose"
    fix = "FLASH_ATTENTION_FORCE_BUILD=TRUE pip install flash-attn --no-build-isolation   # compiled here, against " \
          "this glibc (needs nvcc)"
    if older:
        fix = (f"pip install \"flash-attn=={older[-1]}\" --no-build-isolation   # its wheels were built on a glibc "
               f"{glibc.version} or older; or {fix}")
    return [Finding(
        rule=RULE, category=Category.PLATFORM, severity=Severity.WARN, components=("flash-attn",),
        sources=("flash-attn-publish", "pypi-manylinux-glibc", *glibc.sources), verified=False,
        message=f"{shown} release wheels were built on {runner} (glibc {needed}) and are not manylinux wheels, and "
        f"this host has {glibc.shown}: flash_attn_2_cuda may need newer glibc symbols than it has and fail to load "
        "(e.g. \"version `GLIBC_2.32' not found\" on glibc 2.31)",
        fix=fix,
    )]


def _runs(release: ReleaseFacts, arch: str, glibc: Version) -> bool:
    floor = _floor(release, arch)
    return release.pure_wheel or floor is not None and floor <= glibc


def _installed(ctx: CheckContext, name: str, release: ReleaseFacts, floor: Version, glibc: HostGlibc,
               arch: str) -> Finding:
    history = releases(name, ctx.matrices.root)
    older = [r for r in history if _runs(r, arch, glibc.version) and not r.yanked
             and Version(r.version) < Version(release.version)]
    nearest = older[-1].version if older else None
    fix = f"use an OS with glibc {floor} or newer"
    if nearest:
        fix = (f"{requirement_install(ctx, name, f'=={nearest}')}   # the newest earlier release whose wheels are "
               f"tagged for glibc {glibc.version} or older; or {fix}")
    return Finding(
        rule=RULE, category=Category.PLATFORM, severity=Severity.FAIL if glibc.verified else Severity.WARN,
        components=(name,), sources=("pypi-metadata", "pypi-manylinux-glibc", *glibc.sources),
        verified=glibc.verified,
        message=f"{name} {release.version}'s Linux {arch} wheels on PyPI need glibc {floor} (manylinux_"
        f"{floor.major}_{floor.minor}) and this host has {glibc.shown}: pip rejects them ('is not a supported wheel "
        f"on this platform') and a copy installed anyway fails at import (\"version `GLIBC_{floor}' not found\")",
        fix=fix,
    )


def _unknown_version(name: str, history: tuple[ReleaseFacts, ...], glibc: HostGlibc, arch: str) -> list[Finding]:
    """Version unknown: said when the newest release's wheels need a newer glibc (pip stops at an older one, or
    finds none)."""
    built = [r for r in history if not r.yanked and (r.pure_wheel or _floor(r, arch) is not None)]
    if not built or _runs(built[-1], arch, glibc.version):
        return []
    newest, running = built[-1], [r for r in built if _runs(r, arch, glibc.version)]
    needed = _floor(newest, arch)
    stop = (f"pip stops at {name} {running[-1].version}, the last release that installs here, and anything needing "
            f"a newer {name} cannot install" if running else f"no release of {name} on PyPI installs here")
    return [Finding(
        rule=RULE, category=Category.PLATFORM, severity=Severity.WARN, components=(name,),
        sources=("pypi-metadata", "pypi-manylinux-glibc", *glibc.sources), verified=False,
        message=f"{name} is installed (version unknown); its newest release, {newest.version}, has Linux {arch} wheels "
        f"that need glibc {needed} and this host has {glibc.shown}: {stop}",
        fix=f"use an OS with glibc {needed} or newer"
        + (f", or pin {name}=={running[-1].version} and what works with it" if running else ""),
    )]
