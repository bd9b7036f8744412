"""GPUs newer than every CUDA build of a torch release older than the arch tables (``matrices/torch.toml``).

A GPU runs SASS of its own major with a minor at most its own (sm_80 code runs on an sm_86 GPU). A CUDA build
carries code only for the architectures its nvcc knows, so when the first CUDA release that builds code this GPU
runs (``[nvcc_archs]`` of ``matrices/cuda.toml``) is newer than the newest CUDA a torch release was built with
(``wheel_cuda`` and the conda builds of ``matrices/conda_torch_builds.json``, from PyTorch's previous-versions page),
none of its builds has kernels for the GPU: torch 1.1.0 (CUDA 9.0 and 10.0) on an RTX 3080 (sm_86; sm_80 code came
with CUDA 11.0). Its PTX is of an older major, and the CUDA libraries it bundles have none for the GPU: "no kernel
image is available for execution on the device", or minutes of JIT compilation at the first CUDA call. A build
tagged ``+cuXYZ`` is judged by its own CUDA. Releases the arch tables hold are judged by ``check_torch_archs``.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import plan_command
from envdoctor.checks.conda_torch_builds import load_conda_torch_builds
from envdoctor.checks.nvcc_archs import NvccArch, load_nvcc_archs
from envdoctor.facts import gpu_runs_archs
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import gpu_ccs, parse_version

RULE = "gpu-arch-not-in-torch"


def check_torch_cuda_era(ctx: CheckContext) -> list[Finding]:
    torch = (ctx.snapshot.packages or {}).get("torch")
    parsed = parse_version(torch.version) if torch is not None and torch.version else None
    ccs = sorted({str(cc) for cc in gpu_ccs(ctx.snapshot)})
    if parsed is None or not ccs or ctx.facts.torch(torch.version or "") is not None \
            or (parsed.local or "").startswith(("cpu", "rocm")):  # a CPU or ROCm build is another question
        return []
    builds = load_conda_torch_builds(ctx.matrices)
    release = builds.release(Version(parsed.public)) if builds is not None else None
    if release is None:
        return []
    cudas = _build_cudas(parsed.local, release.wheel_cuda + tuple(b.cuda for b in release.builds))
    if not cudas:
        return []
    newest = max(cudas)
    archs, sources = load_nvcc_archs(ctx.matrices)
    later = []
    for cc in ccs:
        family = _family_first(cc, archs)
        if family is not None and Version(family[1]) > newest:
            later.append((cc, *family))
    if not later:
        return []
    built = f"its {parsed.local} build (CUDA {newest})" if parsed.local else \
        f"every CUDA build of it (the newest for CUDA {newest})"
    gpus = ", ".join(f"compute capability {cc} (code it runs starts with {arch}, first in CUDA {added})"
                     for cc, arch, added in later)
    return [Finding(
        rule=RULE, category=Category.GPU_ARCH, severity=Severity.FAIL if parsed.local else Severity.WARN,
        components=("torch",), sources=("pytorch-previous-versions", *sources), verified=bool(parsed.local),
        message=f"torch {torch.version}: {built} was compiled by an nvcc that predates {gpus}, so it has no kernels "
        "for this GPU: 'no kernel image is available for execution on the device' (or minutes of JIT compilation at "
        "the first CUDA call)" + ("" if parsed.local else " (inferred: the build's CUDA is not in the snapshot)"),
        fix=f"{plan_command(ctx)}   # a torch release built with a CUDA that knows this GPU",
    )]


def _family_first(cc: str, archs: dict[str, NvccArch]) -> tuple[str, str] | None:
    """(arch, CUDA release) of the first CUDA whose nvcc builds code this GPU runs: SASS of its major with a minor at
    most its own (sm_80 code runs on an sm_86 GPU). None when the table knows none of them."""
    runnable = [(Version(a.added), a.arch) for name, a in archs.items()
                if a.added is not None and gpu_runs_archs(cc, (name,))]
    if not runnable:
        return None
    added, arch = min(runnable)
    return arch, str(added)


def _build_cudas(local: str | None, listed: tuple[str, ...]) -> list[Version]:
    """The CUDA versions of the builds in question: the tagged one (``cu100`` -> 10.0), else every listed build."""
    if local and local.startswith("cu") and local[2:].isdigit() and len(local) >= 4:
        digits = local[2:]  # two digits too (cu92: CUDA 9.2), which facts.cuda_of_variant does not take
        return [Version(f"{digits[:-1]}.{digits[-1]}")]
    out = []
    for text in listed:
        try:
            out.append(Version(text))
        except InvalidVersion:
            continue
    return out
