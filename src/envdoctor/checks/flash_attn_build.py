"""flash-attn built from source against a CUDA toolkit older than its setup.py accepts.

Without an official wheel for the installed torch minor, pip runs flash-attn's setup.py, which compiles it with the
system nvcc and refuses one older than the release's floor ("FlashAttention is only supported on CUDA 11.7 and
above", ``min_nvcc`` in ``matrices/flash_attn.toml``, read from setup.py at every tag). A flash-attn of unknown
version, or of a release the table does not know, is held to the newest release's floor, and the finding says so.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import flash_attn_install, installed_wheel_target, public
from envdoctor.checks.driver import torch_cuda
from envdoctor.facts import FlashAttnRelease
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import fact

SOURCES = ("flash-attn-publish",)


def check_flash_attn_build(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    toolkit = ctx.snapshot.cuda_toolkit
    if "flash-attn" not in packages or toolkit is None or not toolkit.nvcc:
        return []
    version = packages["flash-attn"].version
    release = ctx.facts.flash_attn(public(version)) if version else None
    floor_release = release if release is not None and release.min_nvcc else _newest_with_floor(ctx)
    if floor_release is None or floor_release.min_nvcc is None:
        return []
    nvcc = _version(toolkit.nvcc)
    if nvcc is None or nvcc >= Version(floor_release.min_nvcc):
        return []
    torch = fact(ctx.snapshot, "packages.torch")
    torch_minor = ".".join(public(torch).split(".")[:2]) if isinstance(torch, str) else None
    if release is not None and torch_minor is not None and torch_minor in release.torch_minors:
        return []  # pip takes the release's wheel for this torch; nothing is compiled
    known = release is not None and release is floor_release and torch_minor is not None
    return [Finding(
        rule="flash-attn-nvcc-too-old", category=Category.CUDA_BUILD, severity=Severity.WARN,
        components=("flash-attn", "cuda-toolkit"), sources=SOURCES, verified=known,
        message=_message(version, release, floor_release, toolkit.nvcc, torch_minor),
        fix=_fix(ctx, version, floor_release, torch_minor),
    )]


def _newest_with_floor(ctx: CheckContext) -> FlashAttnRelease | None:
    for version in reversed(ctx.facts.flash_attn_versions()):
        release = ctx.facts.flash_attn(version)
        if release is not None and release.min_nvcc:
            return release
    return None


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _message(version: str | None, release: FlashAttnRelease | None, floor: FlashAttnRelease, nvcc: str,
             torch_minor: str | None) -> str:
    name = f"flash-attn {public(version)}" if version else "flash-attn (version unknown)"
    if release is None:
        name += f", held to the floor of flash-attn {floor.version}, the newest release known,"
    if torch_minor is None:
        wheel = "whether an official wheel fits the installed torch is unknown (torch's version is not known)"
    elif release is None:
        wheel = f"whether its release has an official wheel for torch {torch_minor} is unknown"
    else:
        wheel = f"it has no official wheel for torch {torch_minor} (wheels for torch {', '.join(release.torch_minors)})"
    return (f"{name} is built from source here: {wheel}, so pip compiles it with the system nvcc {nvcc}, and its "
            f"setup.py refuses nvcc older than {floor.min_nvcc} ('FlashAttention is only supported on CUDA "
            f"{floor.min_nvcc} and above')")


def _fix(ctx: CheckContext, version: str | None, floor: FlashAttnRelease, torch_minor: str | None) -> str:
    target = installed_wheel_target(ctx)
    if target is not None:
        command = flash_attn_install(ctx, public(version) if version else floor.version, target)
        if command.startswith("pip install"):
            return command
    cuda = torch_cuda(ctx)
    toolkit = cuda if cuda and _version(cuda) and _version(cuda) >= Version(floor.min_nvcc or "0") else None
    wanted = f"CUDA {toolkit} (torch's CUDA)" if toolkit else f"CUDA {floor.min_nvcc} or newer"
    return (f"conda install -c nvidia cuda-toolkit={toolkit or floor.min_nvcc}   # a {wanted} toolkit; then export "
            "CUDA_HOME=$CONDA_PREFIX and pip install flash-attn --no-build-isolation")
