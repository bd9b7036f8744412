"""The NVIDIA driver against the CUDA that torch was built with (pip wheels bring their own runtime)."""

from __future__ import annotations

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import torch_install, torch_target
from envdoctor.facts import cuda_major_minor, cuda_of_variant
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import fact, parse_version, torch_variant

SOURCES = ("nvidia-cuda-rn-13-2-2", "uv-torch-backend")


def torch_cuda(ctx: CheckContext) -> str | None:
    """The CUDA version torch was built with: the probe's, else the local tag's, else PyPI's default."""
    build = ctx.snapshot.torch
    if build and build.cuda:
        return build.cuda
    variant, version = torch_variant(ctx.snapshot), fact(ctx.snapshot, "packages.torch")
    release = ctx.facts.torch(version) if variant == "" and isinstance(version, str) else None
    tag = release.pypi_default if release else variant
    if not isinstance(tag, str) or not tag.startswith("cu"):
        return None
    try:
        return cuda_of_variant(tag)
    except ValueError:
        return None


def check_driver(ctx: CheckContext) -> list[Finding]:
    cuda, driver = torch_cuda(ctx), fact(ctx.snapshot, "nvidia.driver")
    if cuda is None or not isinstance(driver, str) or parse_version(driver) is None:
        return []
    try:
        major, minor = cuda_major_minor(cuda)
    except ValueError:
        return []
    floor = ctx.facts.cuda_family_min_driver(major)
    if floor is None:
        return [_unverified(cuda)]
    if parse_version(driver) < parse_version(floor):
        return [_too_old(ctx, cuda, driver, floor)]
    release = ctx.facts.cuda(f"{major}.{minor}")
    if release and parse_version(driver) < parse_version(release.min_driver_linux):
        return [_minor_compat(cuda, driver, release.min_driver_linux)]
    return []


def _too_old(ctx: CheckContext, cuda: str, driver: str, floor: str) -> Finding:
    supports = fact(ctx.snapshot, "nvidia.cuda_driver")
    return Finding(
        rule="driver-too-old-for-torch-cuda", category=Category.DRIVER, severity=Severity.FAIL,
        components=("torch", "nvidia-driver"), sources=SOURCES,
        message=f"torch {fact(ctx.snapshot, 'packages.torch')} is built for CUDA {cuda}, which needs NVIDIA driver >= "
        f"{floor}; this driver is {driver} (supports CUDA {supports} at most): 'CUDA driver version is "
        "insufficient for CUDA runtime version'",
        fix=_older_cuda_fix(ctx, driver, floor, supports),
    )


def _older_cuda_fix(ctx: CheckContext, driver: str, floor: str, supports: object) -> str:
    """The same torch release built for a CUDA this driver runs (newest first); else the driver upgrade."""
    upgrade = f"upgrade the NVIDIA driver to >= {floor}"
    version = fact(ctx.snapshot, "packages.torch")
    release = ctx.facts.torch(version) if isinstance(version, str) else None
    for variant in sorted(release.variants if release else (), key=cuda_major_minor, reverse=True):
        family_floor = ctx.facts.cuda_family_min_driver(cuda_major_minor(variant)[0])
        if family_floor and parse_version(driver) >= parse_version(family_floor):
            target = torch_target(ctx, release.version, variant)
            if target:
                return f"{torch_install(ctx, target, force=True)}   # runs on driver {driver}; or {upgrade}"
    return f"{upgrade} (this driver supports CUDA {supports} at most and no torch {version} build runs on it)"


def _minor_compat(cuda: str, driver: str, toolkit_driver: str) -> Finding:
    return Finding(
        rule="driver-minor-version-compat", category=Category.DRIVER, severity=Severity.INFO,
        components=("torch", "nvidia-driver"), sources=SOURCES,
        message=f"driver {driver} runs torch's CUDA {cuda} only through minor-version compatibility (the CUDA "
        f"{cuda} driver is {toolkit_driver}): PTX JIT is unavailable, extensions shipping only PTX can fail",
        fix=f"upgrade the NVIDIA driver to >= {toolkit_driver} for the full feature set",
    )


def _unverified(cuda: str) -> Finding:
    return Finding(
        rule="driver-too-old-for-torch-cuda", category=Category.DRIVER, severity=Severity.INFO,
        components=("torch",), verified=False, sources=SOURCES,
        message=f"could not verify the driver: no driver floor is known for CUDA {cuda}",
    )
