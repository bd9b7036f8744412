"""Build synthetic snapshots for the rule and check tests."""

from __future__ import annotations

from typing import Any

from envdoctor.matrices import Stack, StackVariant
from envdoctor.snapshot import Snapshot, snapshot_from_dict

H100 = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "memory_mib": 81559}
CUDA_OF_VARIANT = {"cu118": "11.8", "cu121": "12.1", "cu126": "12.6", "cu128": "12.8", "cu130": "13.0"}


def snapshot(packages: dict[str, Any] | None = None, **sections: Any) -> Snapshot:
    data: dict[str, Any] = {
        "host": {"os": "linux", "arch": "x86_64", "glibc": "2.35"},
        "python": {"version": "3.11.9", "implementation": "cpython"},
        "nvidia": {"driver": "580.159.04", "cuda_driver": "13.0", "gpus": [H100]},
        "packages": packages if packages is not None else {},
    }
    data.update(sections)
    return snapshot_from_dict(data)


def stack_snapshot(stack: Stack, variant: StackVariant) -> Snapshot:
    """What installing ``stack`` exactly (this variant) on a matching H100 machine leaves behind."""
    packages = {name: {"version": version} for name, version in stack.pins.items()}
    for name, version in variant.packages.items():
        packages[name] = {"version": version}
    packages["torch"] = {"version": f"{variant.torch}+{variant.cuda}"}
    for name, spec in stack.requires.items():
        packages.setdefault(name, {"version": _satisfying(spec)})
    python = {"version": "3.11.9" if stack.python is None or "3.11" not in stack.python else "3.11.9"}
    python["version"] = "3.10.12" if stack.python and "<3.11" in stack.python else python["version"]
    if variant.cuda == "cpu":
        return snapshot(packages, python=python, nvidia={"driver": None, "error": "NVML Shared Library Not Found",
                                                          "gpus": []}, torch={"cuda": None, "cxx11abi": True})
    torch = {"cuda": CUDA_OF_VARIANT[variant.cuda], "cxx11abi": variant.torch >= "2.7"}
    return snapshot(packages, python=python, torch=torch)


def _satisfying(spec: str) -> str:
    """A version meeting a simple requirement (only the forms the bundled stacks use)."""
    return {"<2": "1.26.4", "<=25.0.1": "25.0.1", ">=0": "13.7.1"}[spec]
