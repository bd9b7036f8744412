"""Builds an operating system lacks (``matrices/platforms.toml``): packages built for Linux only
(``[[linux_only]]``), and releases without an NVIDIA GPU build for the OS (``[[cpu_only_on]]``), which run on the
CPU only there.

A Linux-only package on another OS warns, whatever its version. A CPU-only release warns beside signs of an NVIDIA
GPU (the GPUs, the driver, the CUDA version nvidia-smi reports, a CUDA toolkit, or the package's own CUDA build
tag such as ``+cuda12``): a known release inside the row's range, or, inferred, a package of unknown version whose
newest recorded release is inside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.pypi_facts import newest_release
from envdoctor.rules import matches_specifier
from envdoctor.snapshot import Snapshot

TABLE = "platforms"
OPERATING_SYSTEMS = {"windows": ("windows", "win32"), "linux": ("linux",), "darwin": ("darwin", "macos")}
OS_NAMES = {"windows": "native Windows", "linux": "Linux", "darwin": "macOS"}
CUDA_LABEL = re.compile(r"^cu(da)?\d", re.IGNORECASE)
CUDA_RUNTIME_WHEEL = re.compile(r"^nvidia-[a-z0-9-]+-cu\d+$")  # nvidia-cublas-cu12, nvidia-cudnn-cu11 ...


@dataclass(frozen=True)
class LinuxOnly:
    packages: tuple[str, ...]
    instead: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class CpuOnlyOn:
    package: str
    versions: str  # a specifier
    os: str  # "windows", "linux" or "darwin"
    instead: str  # what runs on the GPU instead
    sources: tuple[str, ...]


def load_cpu_only_on(matrices: Matrices) -> tuple[CpuOnlyOn, ...]:
    """The rows, validated; a bad row raises MatrixError naming the file and row."""
    where = matrices.root / f"{TABLE}.toml"
    rows = []
    for index, row in enumerate(matrices.table(TABLE).get("cpu_only_on", [])):
        try:
            SpecifierSet(row["versions"])
            if row["os"] not in OPERATING_SYSTEMS or not row["sources"] or not isinstance(row["instead"], str):
                raise ValueError("bad value")
            rows.append(CpuOnlyOn(row["package"], row["versions"], row["os"], row["instead"], tuple(row["sources"])))
        except (KeyError, TypeError, ValueError, InvalidSpecifier) as error:
            raise MatrixError(f"{where}: cpu_only_on[{index}]: needs package, versions (a specifier), os (one of "
                              f"{', '.join(OPERATING_SYSTEMS)}), instead and sources ({error})") from None
    return tuple(rows)


def load_linux_only(matrices: Matrices) -> tuple[LinuxOnly, ...]:
    """The rows, validated; a bad row raises MatrixError naming the file and row."""
    where = matrices.root / f"{TABLE}.toml"
    rows = []
    for index, row in enumerate(matrices.table(TABLE).get("linux_only", [])):
        try:
            packages, sources = tuple(row["packages"]), tuple(row["sources"])
            if not packages or not sources or not all(isinstance(p, str) for p in packages) \
                    or not isinstance(row["instead"], str):
                raise ValueError("bad value")
            rows.append(LinuxOnly(packages, row["instead"], sources))
        except (KeyError, TypeError, ValueError) as error:
            raise MatrixError(f"{where}: linux_only[{index}]: needs packages (names), instead and sources "
                              f"({error})") from None
    return tuple(rows)


def load_os_builds(matrices: Matrices) -> None:
    """Both tables validated (MatrixError names the file and row of the first bad one)."""
    load_linux_only(matrices)
    load_cpu_only_on(matrices)


def check_os_builds(ctx: CheckContext) -> list[Finding]:
    snapshot = ctx.snapshot
    system = (snapshot.host.os or "").lower()
    packages = snapshot.packages or {}
    if not system or not packages:
        return []
    findings = [] if system == "linux" else [
        _linux_only(row, name, packages[name].version) for row in load_linux_only(ctx.matrices)
        for name in row.packages if name in packages]
    for row in load_cpu_only_on(ctx.matrices):
        package = packages.get(row.package)
        if package is None or system not in OPERATING_SYSTEMS[row.os] \
                or not (gpu_seen(snapshot) or cuda_tagged(package.version)):
            continue
        if package.version is not None:
            if matches_specifier(package.version, row.versions):
                findings.append(_finding(row, f"{row.package} {package.version}", verified=True))
        elif _newest_in(ctx, row):
            findings.append(_finding(row, f"{row.package} (version unknown; its current releases)", verified=False))
    return findings


def cuda_tagged(version: str | None) -> bool:
    """A local version label naming a CUDA build (``0.4.9+cuda12.cudnn88``, ``2.1.0+cu121``)."""
    return bool(version and CUDA_LABEL.search(version.partition("+")[2]))


def gpu_seen(snapshot: Snapshot) -> bool:
    """NVIDIA facts, a CUDA toolkit, or NVIDIA's CUDA runtime wheels (``nvidia-cublas-cu12`` ..., what
    ``jax[cuda12]`` and CUDA torch builds install): the environment was set up for a GPU."""
    nvidia = snapshot.nvidia
    listed = nvidia is not None and (bool(nvidia.gpus) or bool(nvidia.driver) or bool(nvidia.cuda_driver))
    wheels = any(CUDA_RUNTIME_WHEEL.match(name) for name in snapshot.packages or {})
    return listed or wheels or bool(snapshot.cuda_toolkit and snapshot.cuda_toolkit.nvcc)


def _newest_in(ctx: CheckContext, row: CpuOnlyOn) -> bool:
    """Whether the newest recorded release is in the row's range (True when the tables do not record the package:
    the row's open range then speaks for current releases)."""
    newest = newest_release(row.package, ctx.matrices.root)
    return matches_specifier(newest.version, row.versions) if newest is not None else True


def _linux_only(row: LinuxOnly, name: str, version: str | None) -> Finding:
    shown = f"{name} {version}" if version else name
    return Finding(
        rule="no-build-for-os", category=Category.PLATFORM, severity=Severity.WARN, components=(name,),
        sources=row.sources,
        message=f"{shown} is built for Linux only: its project publishes no build for this operating system, and a "
        "source build here fails (its CUDA code and build scripts assume Linux)",
        fix=f"use {row.instead}",
    )


def _finding(row: CpuOnlyOn, shown: str, verified: bool) -> Finding:
    where = OS_NAMES[row.os]
    return Finding(
        rule="no-gpu-build-for-os", category=Category.PLATFORM, severity=Severity.WARN, components=(row.package,),
        sources=row.sources, verified=verified,
        message=f"{shown} has no NVIDIA GPU build for {where} ({row.package} {row.versions} there runs on the CPU "
        f"only): the GPU is not used{'' if verified else ' (inferred: the installed version is unknown)'}",
        fix=f"use {row.instead}",
    )
