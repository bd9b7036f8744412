"""Distributions whose PyPI builds are CPU-only on every OS (``[[cpu_only_distribution]]`` of
``matrices/platforms.toml``) installed where the environment was set up for an NVIDIA GPU.

onnxruntime, jaxlib, dgl, faiss-cpu, paddlepaddle and tensorflow-cpu from PyPI run on the CPU only: the GPU build is
another distribution, a plugin beside it, or the same name from the project's own index with a CUDA local label.
Beside signs of a GPU (``os_builds.gpu_seen``) and without a row's ``gpu_with`` package or a CUDA label, the GPU sits
idle ("CUDAExecutionProvider is not available", jax.devices() lists only CPUs, "DGL is built without CUDA"). A known
version is verified; an unknown one is unverified (a build from another index would carry a label that the
snapshot does not show). Rows whose CPU build is as often the one meant (onnxruntime, faiss-cpu) give information,
the others a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from envdoctor.checks import CheckContext
from envdoctor.checks.os_builds import TABLE, cuda_tagged, gpu_seen
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.rules import matches_specifier


@dataclass(frozen=True)
class CpuOnlyDistribution:
    package: str
    versions: str  # a specifier: the releases the row speaks for
    gpu_with: tuple[str, ...]  # installed beside it, these give it the GPU
    severity: Severity  # INFO where the CPU build is as often the one meant
    instead: str
    sources: tuple[str, ...]


def load_cpu_only_distributions(matrices: Matrices) -> tuple[CpuOnlyDistribution, ...]:
    """The rows, validated; a bad row raises MatrixError naming the file and row."""
    where = matrices.root / f"{TABLE}.toml"
    rows = []
    for index, row in enumerate(matrices.table(TABLE).get("cpu_only_distribution", [])):
        try:
            gpu_with, sources, versions = tuple(row["gpu_with"]), tuple(row["sources"]), row.get("versions", ">=0")
            SpecifierSet(versions)
            severity = Severity(row.get("severity", "warn"))
            if severity not in (Severity.WARN, Severity.INFO):
                raise ValueError("severity must be warn or info")
            if not isinstance(row["package"], str) or not isinstance(row["instead"], str) or not sources \
                    or not all(isinstance(name, str) for name in gpu_with):
                raise ValueError("bad value")
            rows.append(CpuOnlyDistribution(row["package"], versions, gpu_with, severity, row["instead"], sources))
        except (KeyError, TypeError, ValueError, InvalidSpecifier) as error:
            raise MatrixError(f"{where}: cpu_only_distribution[{index}]: needs package, gpu_with (names), instead, "
                              f"sources, optionally versions (a specifier) and severity (warn or info) "
                              f"({error})") from None
    return tuple(rows)


def check_cpu_distributions(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    if not packages or not gpu_seen(ctx.snapshot):
        return []
    findings = []
    for row in load_cpu_only_distributions(ctx.matrices):
        package = packages.get(row.package)
        if package is None or cuda_tagged(package.version) or any(name in packages for name in row.gpu_with):
            continue
        if package.version is not None and not matches_specifier(package.version, row.versions):
            continue
        shown = f"{row.package} {package.version}" if package.version else f"{row.package} (version unknown)"
        findings.append(Finding(
            rule="cpu-only-distribution-on-gpu-machine", category=Category.CUDA_BUILD, severity=row.severity,
            components=(row.package,), sources=row.sources, verified=package.version is not None,
            message=f"{shown} is the CPU-only build PyPI serves, in an environment set up for an NVIDIA GPU: it "
            "runs on the CPU and the GPU sits idle" + (" (fine where CPU work is what it is for)"
                                                       if row.severity is Severity.INFO else "")
            + ("" if package.version else " (unless it came from the project's own CUDA index; the snapshot has no "
               "version to tell)"),
            fix=row.instead,
        ))
    return findings
