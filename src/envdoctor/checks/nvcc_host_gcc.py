"""The host gcc against the CUDA toolkit's nvcc (``matrices/nvcc_host_gcc.json``, written by
``tools/gen_nvcc_host_gcc.py`` from each toolkit's ``crt/host_config.h``).

nvcc compiles the host half of every ``.cu`` file with gcc, and each toolkit's ``host_config.h`` stops a gcc newer
than it was released for: "#error -- unsupported GNU version! gcc versions later than 8 are not supported!". Every
source build of a CUDA extension (flash-attn, DeepSpeed ops, apex, an app's own ops) then fails, whatever torch is.
Judged on Linux (or an unknown OS) when the snapshot has both the toolkit's release and the gcc's version.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, Problem, generated_json_table

FILE = "nvcc_host_gcc.json"
GENERATOR = "tools/gen_nvcc_host_gcc.py"


@dataclass(frozen=True)
class HostGccBounds:
    generated: str
    gcc_max: dict[Version, int]  # CUDA toolkit minor -> the newest gcc major its nvcc accepts


def load_nvcc_host_gcc(matrices: Matrices) -> HostGccBounds | None:
    """The table of the matrices folder (None when absent); a malformed one raises MatrixError naming the key."""
    return _table(matrices.root / FILE)


@functools.lru_cache(maxsize=8)
def _table(path: Path) -> HostGccBounds | None:
    return generated_json_table(path, GENERATOR, _parse)


def _parse(raw: dict[str, Any], error: Problem) -> HostGccBounds | None:
    toolkits = raw.get("toolkits")
    if not isinstance(toolkits, dict):
        error("toolkits", "should be an object of CUDA minor -> row")
        return None
    bounds: dict[Version, int] = {}
    for minor, row in toolkits.items():
        bound = row.get("gcc_max") if isinstance(row, dict) else None
        try:
            key = Version(minor)
        except InvalidVersion:
            key = None
        if key is None or len(key.release) != 2 or not isinstance(bound, int) or isinstance(bound, bool):
            error(f"toolkits.{minor}", "should be a CUDA minor (\"12.4\") with gcc_max = an integer gcc major")
            continue
        bounds[key] = bound
    return HostGccBounds(str(raw.get("generated", "")), bounds)


def check_nvcc_host_gcc(ctx: CheckContext) -> list[Finding]:
    snapshot = ctx.snapshot
    nvcc = snapshot.cuda_toolkit.nvcc if snapshot.cuda_toolkit else None
    gcc = snapshot.host.gcc
    if not nvcc or not gcc or snapshot.host.os not in (None, "linux"):
        return []
    table = load_nvcc_host_gcc(ctx.matrices)
    if table is None:
        return []
    toolkit = Version(".".join(nvcc.split(".")[:2]))
    bound, gcc_major = table.gcc_max.get(toolkit), int(gcc.split(".")[0])
    if bound is None or gcc_major <= bound:
        return []
    newer = sorted(minor for minor, most in table.gcc_max.items() if most >= gcc_major)
    other_toolkit = (f", or a CUDA {newer[0]} or newer toolkit (matching torch's CUDA), whose nvcc accepts gcc "
                     f"{gcc_major}") if newer else ""
    return [Finding(
        rule="nvcc-host-gcc-too-new", category=Category.CUDA_BUILD, severity=Severity.WARN,
        components=("cuda-toolkit", "gcc"), sources=("nvcc-host-config",),
        message=f"the CUDA {toolkit} toolkit's nvcc accepts gcc {bound} or older as its host compiler, and the "
        f"host gcc is {gcc}: every CUDA extension built from source here (flash-attn, DeepSpeed ops, apex, an app's "
        f"own ops) stops with \"#error -- unsupported GNU version! gcc versions later than {bound} are not "
        "supported!\"",
        fix=f"install gcc-{bound} and g++-{bound} (apt install gcc-{bound} g++-{bound}) and build with "
        f"CC=gcc-{bound} CXX=g++-{bound} (torch's extension builds pass CC to nvcc as -ccbin; plain nvcc takes "
        f"-ccbin or NVCC_CCBIN){other_toolkit}",
    )]
