"""Triton's bundled ptxas against the GPU (``matrices/triton_ptxas.json``, written by ``tools/gen_triton_ptxas.py``
from each release's wheel).

Triton compiles every kernel (torch.compile's, Liger's, Unsloth's, FlashAttention's Triton paths) with the ptxas its
own wheel bundles unless ``TRITON_PTXAS_PATH`` names another. A GPU architecture added in a CUDA release newer than
that ptxas ("sm_120" in CUDA 12.8, ``[nvcc_archs]`` of ``matrices/cuda.toml``) cannot be targeted: "ptxas fatal :
Value 'sm_120a' is not defined for option 'gpu-name'". The Triton release is the snapshot's ``triton`` or
``pytorch-triton`` (a nightly's local label dropped), else the one torch's Requires-Dist pins on Linux x86_64
(inferred: pip installs that one beside torch), judged only where torch's own CUDA build knows the architecture (a
torch built before it fails first, which ``check_torch_archs`` reports).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.driver import torch_cuda
from envdoctor.checks.nvcc_archs import load_nvcc_archs
from envdoctor.checks.torch_triton import InstalledTriton, installed_triton
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, Problem, generated_json_table
from envdoctor.rules import gpu_ccs, parse_version

FILE = "triton_ptxas.json"
GENERATOR = "tools/gen_triton_ptxas.py"


@dataclass(frozen=True)
class TritonPtxas:
    generated: str
    newest: dict[Version, Version | None]  # Triton release -> newest bundled ptxas's CUDA (None: none bundled)


def load_triton_ptxas(matrices: Matrices) -> TritonPtxas | None:
    """The table of the matrices folder (None when absent); a malformed one raises MatrixError naming the key."""
    return _table(matrices.root / FILE)


@functools.lru_cache(maxsize=8)
def _table(path: Path) -> TritonPtxas | None:
    return generated_json_table(path, GENERATOR, _parse)


def _parse(raw: dict[str, Any], error: Problem) -> TritonPtxas | None:
    releases = raw.get("releases")
    if not isinstance(releases, dict):
        error("releases", "should be an object of release -> row")
        return None
    newest: dict[Version, Version | None] = {}
    for release, row in releases.items():
        try:
            key = Version(release)
            value = row.get("newest") if isinstance(row, dict) else ""
            newest[key] = Version(value) if value is not None else None
        except (InvalidVersion, TypeError):
            error(f"releases.{release}", "should be a release with newest = \"X.Y\" or null")
    return TritonPtxas(str(raw.get("generated", "")), newest)


def check_triton_ptxas(ctx: CheckContext) -> list[Finding]:
    ccs = gpu_ccs(ctx.snapshot)
    table = load_triton_ptxas(ctx.matrices) if ccs else None
    installed = installed_triton(ctx) if table is not None else None
    if table is None or installed is None or installed.release not in table.newest:
        return []
    ptxas = table.newest[installed.release]
    if ptxas is None:
        return []
    archs, sources = load_nvcc_archs(ctx.matrices)
    torch = _torch_build_cuda(ctx) if installed.inferred else None
    findings = []
    for cc in sorted(set(ccs)):
        arch = archs.get(f"sm_{cc.major}{cc.minor}")
        if arch is None or arch.added is None or Version(arch.added) <= ptxas:
            continue
        if installed.inferred and (torch is None or torch < Version(arch.added)):
            continue  # a torch built before the arch fails on its own (check_torch_archs); its Triton is secondary
        findings.append(_finding(ctx, installed, ptxas, arch.arch, Version(arch.added), table, sources))
    return findings


def _torch_build_cuda(ctx: CheckContext) -> Version | None:
    cuda = torch_cuda(ctx)
    parsed = parse_version(cuda) if cuda else None
    return Version(parsed.base_version) if parsed is not None else None


def _finding(ctx: CheckContext, installed: InstalledTriton, ptxas: Version, arch: str, added: Version,
             table: TritonPtxas, sources: tuple[str, ...]) -> Finding:
    fixed = sorted(r for r, newest in table.newest.items() if newest is not None and newest >= added)
    toolkit = ctx.snapshot.cuda_toolkit.nvcc if ctx.snapshot.cuda_toolkit else None
    own = parse_version(toolkit) if toolkit else None
    if own is not None and Version(own.base_version) >= added:
        fix = ("export TRITON_PTXAS_PATH=\"$(command -v ptxas)\"   # the system toolkit's ptxas (CUDA "
               f"{own.base_version}) knows {arch}")
    elif fixed:
        fix = (f"a torch whose Triton is {fixed[0]} or newer (pip install \"triton>={fixed[0]}\" beside a torch that "
               f"pins it), or export TRITON_PTXAS_PATH to the ptxas of a CUDA {added} or newer toolkit")
    else:
        fix = f"export TRITON_PTXAS_PATH to the ptxas of a CUDA {added} or newer toolkit"
    components = ("torch", installed.name, "gpu") if installed.inferred else (installed.name, "gpu")
    return Finding(
        rule="triton-ptxas-predates-gpu", category=Category.GPU_ARCH, severity=Severity.WARN,
        components=components, sources=("triton-wheel-ptxas", *sources), verified=not installed.inferred,
        message=f"{installed.shown} compiles its kernels with the ptxas its wheel bundles, from CUDA {ptxas}, and "
        f"{arch} arrived in CUDA {added}: every Triton kernel on this GPU (torch.compile, Liger, Unsloth) fails with "
        f"\"ptxas fatal : Value '{arch}a' is not defined for option 'gpu-name'\""
        + (" (inferred: the Triton that pip installs with this torch)" if installed.inferred else ""),
        fix=fix,
    )
