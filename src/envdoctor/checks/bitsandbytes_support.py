"""bitsandbytes' GPU support by release range (``[[gpu_support]]`` of ``matrices/bitsandbytes.toml``).

Each row names a version range and the limit its releases have: no int8 matmul below a compute capability
(``int8_min_compute_capability``), or no kernels for GPUs newer than ``max_compute_capability``. A release is judged
against every row whose range holds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.rules import INSTALLED, fact, gpu_ccs, matches_specifier, parse_version

TABLE = "bitsandbytes"


@dataclass(frozen=True)
class GpuSupport:
    versions: str
    int8_min_cc: Version | None
    max_cc: Version | None
    changelog: str
    sources: tuple[str, ...]


def load_gpu_support(matrices: Matrices) -> tuple[GpuSupport, ...]:
    """The rows, validated; MatrixError names the file and the row."""
    rows = matrices.table(TABLE).get("gpu_support", [])
    where = matrices.root / f"{TABLE}.toml"
    if not isinstance(rows, list):
        raise MatrixError(f"{where}: gpu_support: should be an array of tables ([[gpu_support]])")
    return tuple(_row(row, f"{where}: gpu_support[{index}]") for index, row in enumerate(rows))


def _row(row: object, where: str) -> GpuSupport:
    if not isinstance(row, dict) or not isinstance(row.get("versions"), str) or not row["versions"]:
        raise MatrixError(f"{where}: needs versions (a version specifier such as \"<0.37.0\")")
    if not isinstance(row.get("changelog"), str) or not isinstance(row.get("sources"), list):
        raise MatrixError(f"{where}: needs changelog (the quoted entry) and sources (a list of source ids)")
    return GpuSupport(row["versions"], _cc(row, "int8_min_compute_capability", where),
                      _cc(row, "max_compute_capability", where), row["changelog"], tuple(row["sources"]))


def _cc(row: dict[str, object], key: str, where: str) -> Version | None:
    value = row.get(key)
    if value is None:
        return None
    try:
        return Version(str(value))
    except InvalidVersion:
        raise MatrixError(f"{where}.{key}: {value!r} is not a compute capability like \"7.5\"") from None


def check_bitsandbytes_gpu_support(ctx: CheckContext) -> list[Finding]:
    version, ccs = fact(ctx.snapshot, "packages.bitsandbytes"), gpu_ccs(ctx.snapshot)
    if version is INSTALLED and ccs:
        return _unknown_version(ctx, ccs)
    if not isinstance(version, str) or parse_version(version) is None or not ccs:
        return []
    public = parse_version(version).public
    findings = []
    for row in load_gpu_support(ctx.matrices):
        if not matches_specifier(public, row.versions):
            continue
        if row.int8_min_cc is not None and min(ccs) < row.int8_min_cc:
            findings.append(_finding(
                row, version, f"has no int8 matmul for GPUs below compute capability {row.int8_min_cc}; this GPU is "
                f"{min(ccs)}: 8-bit (LLM.int8) loading fails ('Your GPU does not support Int8 Matmul!')"))
        if row.max_cc is not None and max(ccs) > row.max_cc:
            findings.append(_finding(
                row, version, f"has no kernels for GPUs above compute capability {row.max_cc}; this GPU is "
                f"{max(ccs)}: its CUDA setup or first kernel launch fails"))
    return findings


def _finding(row: GpuSupport, version: str, what: str) -> Finding:
    release = row.changelog.split(":", 1)[0]
    return Finding(
        rule="bitsandbytes-release-gpu-support", category=Category.GPU_ARCH, severity=Severity.WARN,
        components=("bitsandbytes",), sources=row.sources,
        message=f"bitsandbytes {version} (a release {row.versions}) {what}. Changelog {row.changelog!r}",
        fix=f'pip install "bitsandbytes>={release}"',
    )


def _unknown_version(ctx: CheckContext, ccs: list[Version]) -> list[Finding]:
    """bitsandbytes of an unknown version on a GPU that some release ranges do not support: said, not verified
    (the ranges are a minority of its releases, so no inference over them holds)."""
    findings = []
    for row in load_gpu_support(ctx.matrices):
        if row.int8_min_cc is not None and min(ccs) < row.int8_min_cc:
            what = (f"has no int8 matmul below compute capability {row.int8_min_cc}; this GPU is {min(ccs)}: "
                    "8-bit (LLM.int8) loading fails ('Your GPU does not support Int8 Matmul!')")
        elif row.max_cc is not None and max(ccs) > row.max_cc:
            what = f"has no kernels above compute capability {row.max_cc}; this GPU is {max(ccs)}"
        else:
            continue
        release = row.changelog.split(":", 1)[0]
        findings.append(Finding(
            rule="bitsandbytes-release-gpu-support", category=Category.GPU_ARCH, severity=Severity.WARN,
            components=("bitsandbytes",), sources=row.sources, verified=False,
            message="could not verify: bitsandbytes is installed with an unknown version, and a release "
            f"{row.versions} {what}. Changelog {row.changelog!r}",
            fix=f'pip install "bitsandbytes>={release}"   # or pip show bitsandbytes, then envdoctor check again',
        ))
    return findings
