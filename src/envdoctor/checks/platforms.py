"""Builds that cannot exist on this platform: CUDA builds on macOS, Linux-only release wheels elsewhere, and
releases older than the first one with a wheel for this platform (facts: matrices/platforms.toml, the flash-attn
wheel table and the PyPI wheel tags in matrices/pypi)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from envdoctor import table_cache
from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.wheels import DESCRIBE, platform_family, target_of
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import MatrixError
from envdoctor.pypi_facts import releases
from envdoctor.rules import parse_version

CUDA_TAG = re.compile(r"cu\d{3,4}")


@dataclass(frozen=True)
class PlatformFacts:
    cuda_only: frozenset[str]
    pure_wheel_platforms: dict[str, tuple[frozenset[str], str]]  # package -> (families, before version)


@lru_cache(maxsize=4)
def platform_facts(root: Path) -> PlatformFacts:
    path = root / "platforms.toml"
    try:
        data = table_cache.load_toml(path) if path.exists() else {}
    except (OSError, UnicodeDecodeError, table_cache.TOMLDecodeError) as error:
        raise MatrixError(f"{path}: cannot read: {error}") from None
    cuda_only = data.get("cuda_only", {}).get("packages", [])
    pure = data.get("pure_wheel_platforms", {})
    if not isinstance(cuda_only, list) or not all(isinstance(p, str) for p in cuda_only):
        raise MatrixError(f"{path}: cuda_only.packages: should be a list of package names")
    out = {}
    for name, entry in pure.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("platforms"), list) or not isinstance(
                entry.get("before"), str):
            raise MatrixError(f"{path}: pure_wheel_platforms.{name}: needs platforms (list) and before (version)")
        out[name] = (frozenset(entry["platforms"]), entry["before"])
    return PlatformFacts(frozenset(cuda_only), out)


def validate_platforms(root: Path) -> list[str]:
    try:
        platform_facts.cache_clear()
        platform_facts(root)
    except MatrixError as error:
        return [str(error)]
    return []


def check_platforms(ctx: CheckContext) -> list[Finding]:
    host, packages = ctx.snapshot.host, ctx.snapshot.packages or {}
    if host.os is None or not packages:
        return []
    facts = platform_facts(Path(ctx.matrices.root))
    family = platform_family(host.os, host.arch)
    findings = []
    for name, package in sorted(packages.items()):
        parsed = parse_version(package.version)
        local = parsed.local if parsed else None
        if host.os == "darwin" and (name in facts.cuda_only or (local and CUDA_TAG.fullmatch(local))):
            findings.append(_no_cuda_on_macos(name, package.version))
        elif name == "flash-attn" and host.os != "darwin":
            findings.extend(_flash_attn_elsewhere(ctx, package.version, family, host.os))
        elif name in facts.pure_wheel_platforms:
            findings.extend(_pure_wheel_here(ctx, name, package.version, *facts.pure_wheel_platforms[name]))
    return findings


def _pure_wheel_here(ctx: CheckContext, name: str, version: str | None, families: frozenset[str],
                     before: str) -> list[Finding]:
    """Judged where every platform this host may be (its OS, with or without the architecture) lacks the
    libraries."""
    host = ctx.snapshot.host
    target = target_of(host.os, host.arch, None) if host.os else None
    if target is None or not target.families or not target.families.isdisjoint(families):
        return []
    where = target.where
    if version is None:
        return [_pure_wheel_unknown(name, where, families, before)]
    return _pure_wheel_binaries(ctx, name, version, target.families, where, families, before)


def _no_cuda_on_macos(name: str, version: str | None) -> Finding:
    shown = f"{name} {version}" if version else f"{name} (version unknown)"
    return Finding(
        rule="cuda-build-on-macos", category=Category.PLATFORM, severity=Severity.FAIL, components=(name,),
        sources=("cuda-macos-dropped",),
        message=f"{shown} needs NVIDIA CUDA, which macOS has not had since CUDA 10.2: no build of it runs here",
        fix=f"pip uninstall -y {name}   # on macOS use the MPS or CPU code path; CUDA training needs Linux or "
        "Windows with an NVIDIA GPU",
    )


def _flash_attn_elsewhere(ctx: CheckContext, version: str | None, family: str | None, os: str) -> list[Finding]:
    """flash-attn's official wheels are Linux x86_64 only (the release table): elsewhere it was compiled locally
    (hours, often failing) or is a third-party wheel that must match torch, CUDA and Python exactly."""
    if family == "linux_x86_64" or (family is None and os == "linux"):
        return []
    shown = f"flash-attn {version}" if version else "flash-attn (version unknown)"
    where = DESCRIBE.get(family or "", os)
    return [Finding(
        rule="flash-attn-no-official-wheel-here", category=Category.PLATFORM, severity=Severity.WARN,
        components=("flash-attn",), sources=("flash-attn-publish",),
        message=f"{shown}: its official release wheels are built for Linux x86_64 only, none for {where}; it was "
        "compiled here (a build of hours that often fails) or is a third-party wheel that must match torch, CUDA, "
        "Python and the C++ ABI exactly",
        fix="pip uninstall -y flash-attn   # and load models with attn_implementation=\"sdpa\"",
    )]


def _pure_wheel_binaries(ctx: CheckContext, name: str, version: str, here: frozenset[str], where: str,
                         families: frozenset[str], before: str) -> list[Finding]:
    parsed, first = parse_version(version), parse_version(before)
    if parsed is None or first is None or parsed >= first:
        return []
    history = releases(name, ctx.matrices.root)
    fits = [r.version for r in history if not r.yanked and any(t.rpartition("-")[2] in here for t in r.wheels or ())]
    fix = (f"{requirement_install(ctx, name, '>=' + fits[0])}   # the first release with a {where} wheel"
           if fits else f"pip uninstall -y {name}   # no release has a {where} build")
    return [Finding(
        rule="no-native-library-for-platform", category=Category.PLATFORM, severity=Severity.FAIL,
        components=(name,), sources=("bitsandbytes-0-43-windows",),
        message=f"{name} {version} predates {before}: its one wheel is tagged for any platform but carries native "
        f"libraries for {', '.join(DESCRIBE.get(f, f) for f in sorted(families))} only, so on {where} "
        "it falls back to a CPU stub ('compiled without GPU support', 'CUDA Setup failed')",
        fix=fix,
    )]


def _pure_wheel_unknown(name: str, where: str, families: frozenset[str], before: str) -> Finding:
    return Finding(
        rule="no-native-library-for-platform", category=Category.PLATFORM, severity=Severity.WARN,
        components=(name,), sources=("bitsandbytes-0-43-windows",), verified=False,
        message=f"{name} is installed with an unknown version: releases before {before} carry native libraries for "
        f"{', '.join(DESCRIBE.get(f, f) for f in sorted(families))} only, so on {where} such a release "
        "falls back to a CPU stub ('compiled without GPU support')",
        fix=f"pip install \"{name}>={before}\"",
    )
