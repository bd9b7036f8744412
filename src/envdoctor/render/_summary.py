"""Shared wording for renderers: status words and a one-line environment summary from the snapshot dict."""

from __future__ import annotations

from typing import Any

from envdoctor.findings import Area, Finding, Report

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


def environment_lines(snapshot: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs describing the environment; unknown parts say 'unknown'."""
    return [
        ("Driver", _driver(snapshot.get("nvidia") or {})),
        ("GPUs", _gpus(snapshot.get("nvidia") or {})),
        ("CUDA toolkit", _value((snapshot.get("cuda_toolkit") or {}).get("nvcc"), "nvcc ")),
        ("Python", _python(snapshot.get("python") or {})),
        ("Host", _host(snapshot.get("host") or {})),
        ("torch build", _torch(snapshot.get("torch"), (snapshot.get("packages") or {}).get("torch"))),
        ("Key packages", _packages(snapshot.get("packages") or {})),
    ]


def _value(value: Any, prefix: str = "") -> str:
    return f"{prefix}{value}" if value not in (None, "") else "unknown"


def _driver(nvidia: dict[str, Any]) -> str:
    if nvidia.get("driver"):
        return f"{nvidia['driver']} (supports CUDA up to {_value(nvidia.get('cuda_driver'))})"
    return f"unknown ({nvidia['error']})" if nvidia.get("error") else "unknown"


def _gpus(nvidia: dict[str, Any]) -> str:
    gpus = nvidia.get("gpus")
    if not gpus:
        return "none found" if gpus == [] else "unknown"
    return "; ".join(
        f"{g.get('index')}: {_value(g.get('name'))} (CC {_value(g.get('compute_capability'))}, "
        f"{_value(g.get('memory_mib'))} MiB)"
        for g in gpus
    )


def _python(python: dict[str, Any]) -> str:
    kinds = [k for k in ("venv", "conda") if python.get(k)]
    where = f", {'+'.join(kinds)}" if kinds else ""
    return f"{_value(python.get('version'))} ({_value(python.get('implementation'))}{where})"


def _host(host: dict[str, Any]) -> str:
    parts = [host.get("distro") or host.get("os"), host.get("arch")]
    glibc = f"glibc {host['glibc']}" if host.get("glibc") else None
    return ", ".join(p for p in (*parts, glibc) if p) or "unknown"


def _torch(torch: dict[str, Any] | None, package: Any = None) -> str:
    if not torch:
        return "not installed" if package is None else f"{_version(package)} (build facts unknown)"
    if not torch.get("version") and package is not None:
        torch = {**torch, "version": _version(package)}
    abi = {True: "cxx11abi=1", False: "cxx11abi=0", None: "cxx11abi unknown"}[torch.get("cxx11abi")]
    archs = " ".join(torch.get("archs") or []) or "archs unknown"
    return f"{_value(torch.get('version'))}, CUDA {torch.get('cuda') or 'none (CPU build)'}, {abi}, {archs}"


def _packages(packages: dict[str, Any]) -> str:
    found = [f"{name} {_version(packages[name])}" for name in KEY_PACKAGES if name in packages]
    return ", ".join(found) or "none of the key packages"


def _version(entry: Any) -> str:
    return entry.get("version", "?") if isinstance(entry, dict) else str(entry)
