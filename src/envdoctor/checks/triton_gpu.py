"""Packages built on Triton kernels against GPUs Triton cannot compile for.

Triton generates code for compute capability 7.0 and newer only; torch's inductor refuses older GPUs with "Found
Tesla P100 ... which is too old to be supported by the triton GPU compiler ... Triton only supports devices of CUDA
Capability >= 7.0". A package whose Requires-Dist lists triton (outside optional extras) runs its own Triton
kernels, so on such a GPU it fails at its first kernel. torch itself is not judged here: it needs Triton only for
torch.compile.
"""

from __future__ import annotations

from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.checks.declared import required_names
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import ReleaseFacts, release_facts, releases
from envdoctor.rules import gpu_ccs, parse_version

TRITON_MIN_CC = Version("7.0")
TRITON_DISTRIBUTIONS = frozenset({"triton", "triton-windows", "pytorch-triton"})
NOT_JUDGED = frozenset({"torch", *TRITON_DISTRIBUTIONS})


def check_triton_gpu(ctx: CheckContext) -> list[Finding]:
    ccs = gpu_ccs(ctx.snapshot)
    if not ccs or min(ccs) >= TRITON_MIN_CC:
        return []
    findings = []
    for name, package in sorted((ctx.snapshot.packages or {}).items()):
        if name in NOT_JUDGED:
            continue
        parsed = parse_version(package.version)
        known = release_facts(name, parsed.public) if parsed else None
        candidates = (known,) if known else () if parsed else releases(name)
        if not any(requires_triton(release) for release in candidates):
            continue
        shown = f"{name} {package.version}" if package.version else f"{name} (version unknown; its releases)"
        findings.append(Finding(
            rule="triton-kernels-gpu-too-old", category=Category.GPU_ARCH, severity=Severity.WARN,
            components=(name, "gpu"), sources=("pypi-metadata", "torch-inductor-gpu-too-old"),
            verified=known is not None,
            message=f"{shown} runs Triton kernels (its Requires-Dist lists triton), and Triton compiles only for "
            f"compute capability >= {TRITON_MIN_CC}; this GPU is {min(ccs)}: 'Found ... which is too old to be "
            "supported by the triton GPU compiler'",
            fix=f"run on a GPU of compute capability {TRITON_MIN_CC} or newer (T4, V100, A10, L4, A100, H100), or "
            f"pip uninstall -y {name}",
        ))
    return findings


def requires_triton(release: ReleaseFacts) -> bool:
    return not required_names(release.requires).isdisjoint(TRITON_DISTRIBUTIONS)
