"""The system CUDA toolkit (nvcc) against torch's CUDA and the driver: what every source build depends on.

torch.utils.cpp_extension, which builds flash-attn, DeepSpeed ops, apex, xformers and the like from source, refuses a
toolkit whose CUDA major differs from torch's ("The detected CUDA version (12.1) mismatches the version that was used
to compile PyTorch (11.7)") and warns on a minor difference; code that nvcc compiles for a CUDA newer than the driver
runs fails with "the provided PTX was compiled with an unsupported toolchain".
"""

from __future__ import annotations

from envdoctor.checks import CheckContext
from envdoctor.checks.driver import torch_cuda
from envdoctor.facts import cuda_major_minor
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import ABSENT, fact

SOURCES = ("anchors-failure-modes",)


def source_built(ctx: CheckContext) -> tuple[str, ...]:
    """Installed packages that compile against torch and the toolkit (at install time or, for DeepSpeed, at run)."""
    packages = ctx.snapshot.packages or {}
    return tuple(name for name in ctx.matrices.policy.torch_extensions if name in packages
                 and name not in ("torchvision", "torchaudio"))


def check_toolkit(ctx: CheckContext) -> list[Finding]:
    toolkit = ctx.snapshot.cuda_toolkit
    if toolkit is None:
        return _flash_attn_build_unknown(ctx)
    if toolkit.nvcc is None:
        return _no_nvcc(ctx)
    findings = []
    torch = torch_cuda(ctx)
    if torch is not None and fact(ctx.snapshot, "packages.torch") is not None:
        findings.extend(_against_torch(ctx, toolkit.nvcc, torch))
    supports = fact(ctx.snapshot, "nvidia.cuda_driver")
    if isinstance(supports, str) and _newer(toolkit.nvcc, supports):
        findings.append(Finding(
            rule="nvcc-newer-than-driver", category=Category.CUDA_BUILD, severity=Severity.WARN,
            components=("cuda-toolkit", "nvidia-driver") + source_built(ctx), sources=SOURCES,
            message=f"nvcc is CUDA {toolkit.nvcc} but the driver runs CUDA {supports} at most: code compiled here "
            "fails to load ('the provided PTX was compiled with an unsupported toolchain')",
            fix=f"upgrade the NVIDIA driver to one that supports CUDA {toolkit.nvcc}, or put a CUDA {supports} "
            "toolkit first on PATH (export CUDA_HOME=/usr/local/cuda-" + supports + ")",
        ))
    return findings


def _newer(left: str, right: str) -> bool:
    try:
        return cuda_major_minor(left) > cuda_major_minor(right)
    except ValueError:
        return False


def _against_torch(ctx: CheckContext, nvcc: str, torch: str) -> list[Finding]:
    try:
        (major, minor), (torch_major, torch_minor) = cuda_major_minor(nvcc), cuda_major_minor(torch)
    except ValueError:
        return []
    if (major, minor) == (torch_major, torch_minor):
        return []
    builds = source_built(ctx)
    components = ("cuda-toolkit", "torch") + builds
    switch = f"export CUDA_HOME=/usr/local/cuda-{torch}   # a CUDA {torch} toolkit, the one torch was built with"
    if major != torch_major:
        return [Finding(
            rule="nvcc-torch-cuda-mismatch", category=Category.CUDA_BUILD,
            severity=Severity.FAIL if builds else Severity.WARN, components=components, sources=SOURCES,
            message=f"the CUDA toolkit (nvcc {nvcc}) and torch's CUDA ({torch}) differ in major version: building any "
            "extension against torch fails with 'The detected CUDA version (" + nvcc + ") mismatches the version "
            f"that was used to compile PyTorch ({torch})'" + (f"; installed here: {', '.join(builds)}" if builds
                                                               else ""),
            fix=f"{switch}; or install a torch built for CUDA {major}.x, or prebuilt wheels instead of source builds",
        )]
    return [Finding(
        rule="nvcc-torch-cuda-minor-mismatch", category=Category.CUDA_BUILD, severity=Severity.INFO,
        components=components, sources=SOURCES,
        message=f"the CUDA toolkit (nvcc {nvcc}) and torch's CUDA ({torch}) differ in minor version: source builds "
        "proceed with a warning and usually work",
        fix=switch,
    )]


def _no_nvcc(ctx: CheckContext) -> list[Finding]:
    """No toolkit found: DeepSpeed-like packages compile ops at run time; an extension of unknown version may be
    mid-install, and without a matching wheel pip builds it from source, which needs nvcc too."""
    packages = ctx.snapshot.packages or {}
    at_run = [name for name in source_built(ctx) if name in ctx.matrices.policy.runtime_compiled]
    to_build = [name for name in source_built(ctx) if name not in at_run and packages[name].version is None]
    findings = []
    if at_run:
        findings.append(Finding(
            rule="nvcc-missing-for-runtime-builds", category=Category.CUDA_BUILD, severity=Severity.WARN,
            components=("cuda-toolkit", *at_run), sources=SOURCES,
            message=f"{', '.join(at_run)} compile CUDA ops at run time with nvcc, and no CUDA toolkit was found "
            "('CUDA_HOME does not exist, unable to compile CUDA op(s)')",
            fix="install the CUDA toolkit matching torch's CUDA (e.g. conda install -c nvidia cuda-toolkit) and "
            "export CUDA_HOME to it; or use prebuilt ops (DS_BUILD_OPS=1 pip install deepspeed at install time)",
        ))
    if to_build:
        findings.append(Finding(
            rule="nvcc-missing-for-source-builds", category=Category.CUDA_BUILD, severity=Severity.WARN,
            components=("cuda-toolkit", *to_build), sources=SOURCES, verified=False,
            message=f"{', '.join(to_build)} (version unknown) may still be building: without a prebuilt wheel for "
            "this torch, Python and CUDA, pip compiles it from source, and no CUDA toolkit was found "
            "('CUDA_HOME environment variable is not set')",
            fix="install prebuilt wheels (envdoctor plan --from-probe), or the CUDA toolkit of torch's CUDA with "
            "CUDA_HOME pointing at it",
        ))
    return findings


def _flash_attn_build_unknown(ctx: CheckContext) -> list[Finding]:
    """flash-attn is a source archive on PyPI: pip compiles it (needing nvcc and CUDA_HOME) unless a release wheel
    matches torch, CUDA, the C++ ABI and Python. With the toolkit unknown and no matching wheel known, say so."""
    version = fact(ctx.snapshot, "packages.flash-attn")
    torch = fact(ctx.snapshot, "packages.torch")
    if version in (ABSENT, None):
        return []
    release = ctx.facts.flash_attn(version) if isinstance(version, str) else None
    minor = ".".join(torch.split("+")[0].split(".")[:2]) if isinstance(torch, str) else None
    if release is not None and minor is not None and minor in release.torch_minors:
        return []
    why = (f"no flash-attn {version} release wheel targets torch {minor}" if release and minor else
           "torch's version is unknown, so whether a release wheel matches is too")
    return [Finding(
        rule="flash-attn-needs-source-build", category=Category.CUDA_BUILD, severity=Severity.WARN,
        components=("flash-attn", "cuda-toolkit"), sources=("flash-attn-publish",), verified=False,
        message=f"flash-attn is a source archive on PyPI and {why}: pip then compiles it, which needs a CUDA toolkit "
        "(nvcc, CUDA_HOME) matching torch's CUDA, and the snapshot does not say whether one is installed",
        fix="nvcc --version   # then: envdoctor plan --from-probe for a release wheel, or install the CUDA toolkit "
        "of torch's CUDA",
    )]
