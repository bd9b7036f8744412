"""The GPU archs the system nvcc can compile for (``[nvcc_archs]`` of ``matrices/cuda.toml``) against the GPUs.

torch.utils.cpp_extension builds for the archs of the visible GPUs. An nvcc older than the CUDA release that added a
GPU's arch, or one from a release that dropped it, cannot build any extension for that GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.rules import gpu_ccs, parse_version

TABLE = "cuda"


@dataclass(frozen=True)
class NvccArch:
    arch: str  # "sm_90"
    added: str | None  # first CUDA whose nvcc accepts it; None: before every release envdoctor knows
    removed: str | None  # first CUDA whose nvcc no longer does


def load_nvcc_archs(matrices: Matrices) -> tuple[dict[str, NvccArch], tuple[str, ...]]:
    """(arch -> range, sources); MatrixError names the file and key of a bad entry."""
    section = matrices.table(TABLE).get("nvcc_archs", {})
    where = matrices.root / f"{TABLE}.toml"
    if not isinstance(section, dict):
        raise MatrixError(f"{where}: nvcc_archs: should be a table of sm_XY = {{ added, removed }}")
    sources = section.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise MatrixError(f"{where}: nvcc_archs.sources: should be a list of source ids")
    out = {}
    for arch, entry in section.items():
        if arch == "sources":
            continue
        if not arch.startswith("sm_") or not isinstance(entry, dict) or set(entry) - {"added", "removed"}:
            raise MatrixError(f"{where}: nvcc_archs.{arch}: should be sm_XY = {{ added = \"X.Y\", removed = \"X.Y\" }}")
        for key in ("added", "removed"):
            if key in entry and (not isinstance(entry[key], str) or parse_version(entry[key]) is None):
                raise MatrixError(f"{where}: nvcc_archs.{arch}.{key}: {entry[key]!r} is not a CUDA version")
        out[arch] = NvccArch(arch, entry.get("added"), entry.get("removed"))
    return out, tuple(sources)


def nvcc_arch_findings(ctx: CheckContext, nvcc: str, builders: tuple[str, ...]) -> list[Finding]:
    """One warning per GPU arch this nvcc cannot target, naming the installed packages that compile CUDA code with
    it (``builders``); with none, any later source build or JIT-compiled op fails the same way."""
    version = parse_version(nvcc)
    ccs = gpu_ccs(ctx.snapshot)
    if version is None or not ccs:
        return []
    archs, sources = load_nvcc_archs(ctx.matrices)
    findings = []
    for cc in sorted(set(ccs)):
        arch = archs.get(f"sm_{cc.major}{cc.minor}")
        if arch is None:
            continue
        if arch.added and version < parse_version(arch.added):
            why = f"support for it came in CUDA {arch.added}"
            fix = f"install a CUDA toolkit >= {arch.added} (matching torch's CUDA) and export CUDA_HOME to it"
        elif arch.removed and version >= parse_version(arch.removed):
            why = f"CUDA {arch.removed} removed it"
            fix = f"install a CUDA toolkit older than {arch.removed} (matching torch's CUDA) and export CUDA_HOME to it"
        else:
            continue
        who = f"{', '.join(builders)} compile CUDA code with it" if builders else "any extension compiled here"
        findings.append(Finding(
            rule="nvcc-cannot-target-gpu", category=Category.CUDA_BUILD,
            severity=Severity.WARN,
            components=("cuda-toolkit", *builders), sources=sources,
            message=f"nvcc {nvcc} cannot compile for this GPU's {arch.arch} (compute capability {cc}): {why}; "
            f"{who} fails ('nvcc fatal : Unsupported gpu architecture 'compute_{cc.major}{cc.minor}'')",
            fix=fix,
        ))
    return findings
