"""Each installed CUDA build other than torch's (a ``[[builds]]`` row of cuda.toml, a ``+cuXXX`` wheel label)
against the GPUs' architectures: nvcc of the CUDA a package was built with cannot compile for an arch that came in
a later CUDA, or for one an earlier CUDA dropped, so the build holds no kernels for such a GPU.

torch and its companions are judged on torch's own arch lists (``gpu.check_torch_archs``). A GPU newer than the
build's CUDA could still run PTX that the driver compiles at load, when the package ships it (most prebuilt wheels
ship only compiled kernels): that case is a warning, unverified. A GPU whose arch the build's CUDA had dropped has
no kernels and no PTX that reaches back to it.
"""

from __future__ import annotations

from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.checks.driver import RUNTIME_NAMES, CudaNeed, cuda_needs
from envdoctor.checks.nvcc_archs import NvccArch, load_nvcc_archs
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import gpu_ccs, parse_version

JUDGED_ON_TORCH = frozenset({"torch", "torchvision", "torchaudio"})


def check_build_cuda_archs(ctx: CheckContext) -> list[Finding]:
    ccs = sorted(set(gpu_ccs(ctx.snapshot)))
    if not ccs:
        return []
    archs, sources = load_nvcc_archs(ctx.matrices)
    findings = []
    for need in cuda_needs(ctx):
        if need.package in JUDGED_ON_TORCH or need.oldest_of_several \
                or any(p.fullmatch(need.package) for p, _ in RUNTIME_NAMES):
            continue
        for cc in ccs:
            arch = archs.get(f"sm_{cc.major}{cc.minor}")
            side = _outside(arch, need) if arch is not None else None
            if side is not None:
                findings.append(_finding(need, cc, arch, side, sources))
    return findings


def _outside(arch: NvccArch, need: CudaNeed) -> str | None:
    """"newer" when no CUDA release of the build's (major, or major.minor) can target ``arch`` because it came
    later, "dropped" when it had been removed before; None when the build's CUDA can (or, its minor unknown, may)."""
    first = (need.major, need.minor if need.minor is not None else 0)
    last = (need.major, need.minor if need.minor is not None else 99)
    if arch.added and last < _major_minor(arch.added):
        return "newer"
    if arch.removed and first >= _major_minor(arch.removed):
        return "dropped"
    return None


def _major_minor(version: str) -> tuple[int, int]:
    parsed = parse_version(version)
    release = parsed.release if parsed is not None else (0,)
    return release[0], release[1] if len(release) > 1 else 0


def _finding(need: CudaNeed, cc: Version, arch: NvccArch, side: str, sources: tuple[str, ...]) -> Finding:
    built = f"{need.package} {need.version} is built with CUDA {need.cuda}"
    if side == "newer":
        return Finding(
            rule="build-cuda-predates-gpu", category=Category.GPU_ARCH, severity=Severity.WARN,
            components=(need.package,), sources=sources, verified=False,
            message=f"{built}, whose nvcc cannot compile for this GPU's {arch.arch} (compute capability {cc}; "
            f"CUDA {arch.added} added it): the build holds no {arch.arch} kernels and runs only if it ships PTX "
            "for the driver to compile, which prebuilt wheels rarely do ('no kernel image is available for "
            "execution on the device')",
            fix=f"install a {need.package} build made with CUDA >= {arch.added}",
        )
    return Finding(
        rule="build-cuda-dropped-gpu", category=Category.GPU_ARCH, severity=Severity.FAIL,
        components=(need.package,), sources=sources,
        message=f"{built}, which no longer compiles for this GPU's {arch.arch} (compute capability {cc}; CUDA "
        f"{arch.removed} removed it): the build holds no kernels for this GPU ('no kernel image is available for "
        "execution on the device')",
        fix=f"install a {need.package} build made with a CUDA older than {arch.removed}, or use a newer GPU",
    )
