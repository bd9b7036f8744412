"""Shared wording for renderers: status words and a one-line environment summary from the typed snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from envdoctor.findings import Area, Finding, Report

if TYPE_CHECKING:
    from envdoctor.snapshot import Host, Nvidia, Package, PythonInfo, Snapshot, TorchBuild

KEY_PACKAGES = (
    "torch", "torchvision", "torchaudio", "transformers", "peft", "trl", "accelerate", "datasets",
    "flash-attn", "xformers", "bitsandbytes", "unsloth", "numpy", "pyarrow",
)


def headline(report: Report) -> str:
    stack = report.stack or "no stack"
    return f"{report.status.value.upper()}  score {report.score.percent}/100  stack {stack}"


def findings_by_area(report: Report) -> list[tuple[Area, list[Finding]]]:
    """Findings grouped in the fixed Area order, worst first inside each group; empty groups left out."""
    groups = []
    for area in Area:
        found = [f for f in report.findings if f.area is area]
        found.sort(key=lambda f: -f.severity.rank)
        if found:
            groups.append((area, found))
    return groups


def environment_lines(snapshot: Snapshot) -> list[tuple[str, str]]:
    """(label, value) pairs describing the environment; unknown parts say 'unknown'."""
    packages = snapshot.packages or {}
    return [
        ("Driver", _driver(snapshot.nvidia)),
        ("GPUs", _gpus(snapshot.nvidia)),
        ("CUDA toolkit", _value(snapshot.cuda_toolkit.nvcc if snapshot.cuda_toolkit else None, "nvcc ")),
        ("Python", _python(snapshot.python)),
        ("Host", _host(snapshot.host)),
        ("torch build", _torch(snapshot.torch, packages.get("torch"))),
        ("Key packages", _packages(packages)),
    ]


def _value(value: Any, prefix: str = "") -> str:
    return f"{prefix}{value}" if value not in (None, "") else "unknown"


def _driver(nvidia: Nvidia | None) -> str:
    if nvidia is not None and nvidia.driver:
        return f"{nvidia.driver} (supports CUDA up to {_value(nvidia.cuda_driver)})"
    return f"unknown ({nvidia.error})" if nvidia is not None and nvidia.error else "unknown"


def _gpus(nvidia: Nvidia | None) -> str:
    gpus = nvidia.gpus if nvidia is not None else None
    if gpus is None:
        return "unknown"
    if not gpus:
        return "none found"
    return "; ".join(
        f"{'' if g.index is None else f'{g.index}: '}{_value(g.name)} (CC {_value(g.compute_capability)}, "
        f"{_value(g.memory_mib)} MiB)" for g in gpus
    )


def _python(python: PythonInfo) -> str:
    kinds = [kind for kind, flag in (("venv", python.venv), ("conda", python.conda)) if flag]
    where = f", {'+'.join(kinds)}" if kinds else ""
    return f"{_value(python.version)} ({_value(python.implementation)}{where})"


def _host(host: Host) -> str:
    glibc = f"glibc {host.glibc}" if host.glibc else None
    gcc = f"gcc {host.gcc}" if host.gcc else None
    return ", ".join(p for p in (host.distro or host.os, host.arch, glibc, gcc) if p) or "unknown"


def _torch(torch: TorchBuild | None, package: Package | None) -> str:
    if torch is None:
        return "not installed" if package is None else f"{_version(package)} (build facts unknown)"
    version = torch.version or (_version(package) if package is not None else None)
    abi = {True: "cxx11abi=1", False: "cxx11abi=0", None: "cxx11abi unknown"}[torch.cxx11abi]
    archs = " ".join(torch.archs or ()) or "archs unknown"
    cuda = torch.cuda or ("none (CPU build)" if torch.cuda_none else "unknown")
    return f"{_value(version)}, CUDA {cuda}, {abi}, {archs}"


def _packages(packages: dict[str, Package]) -> str:
    found = [f"{name} {_version(packages[name])}" for name in KEY_PACKAGES if name in packages]
    return ", ".join(found) or "none of the key packages"


def _version(package: Package) -> str:
    """The installed version; ``?`` when it is installed but its version is unknown."""
    return package.version or "?"
