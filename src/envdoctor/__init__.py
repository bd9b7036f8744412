"""envdoctor: diagnose LLM fine-tuning environments on NVIDIA GPUs without importing torch.

Public API only. Heavy modules load on first use so that ``import envdoctor`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "BackendRule",
    "backend_rules",
    "Category",
    "Finding",
    "MatrixError",
    "ModelError",
    "ModelInfo",
    "Report",
    "Severity",
    "Snapshot",
    "SnapshotError",
    "StackNotFoundError",
    "check",
    "inspect_model",
    "load_matrices",
    "load_snapshot",
    "probe",
    "snapshot_from_dict",
    "write_atomic",
]

_LAZY = {  # every public name loads on first use: `envdoctor check` starts its NVML child before any of them
    "Category": ("envdoctor.findings", "Category"),
    "Finding": ("envdoctor.findings", "Finding"),
    "Report": ("envdoctor.findings", "Report"),
    "Severity": ("envdoctor.findings", "Severity"),
    "Snapshot": ("envdoctor.snapshot", "Snapshot"),
    "SnapshotError": ("envdoctor.snapshot", "SnapshotError"),
    "load_snapshot": ("envdoctor.snapshot", "load_snapshot"),
    "snapshot_from_dict": ("envdoctor.snapshot", "snapshot_from_dict"),
    "probe": ("envdoctor.probe", "probe"),
    "write_atomic": ("envdoctor.atomic", "write_atomic"),
    "check": ("envdoctor.checker", "run_check"),
    "load_matrices": ("envdoctor.matrices", "load_matrices"),
    "backend_rules": ("envdoctor.matrices", "backend_rules"),
    "BackendRule": ("envdoctor.matrices", "BackendRule"),
    "MatrixError": ("envdoctor.matrices", "MatrixError"),
    "StackNotFoundError": ("envdoctor.matrices", "StackNotFoundError"),
    "inspect_model": ("envdoctor.model", "inspect_model"),
    "ModelInfo": ("envdoctor.model", "ModelInfo"),
    "ModelError": ("envdoctor.model", "ModelError"),
}

if TYPE_CHECKING:  # pragma: no cover
    from envdoctor.checker import run_check as check
    from envdoctor.findings import Category, Finding, Report, Severity
    from envdoctor.matrices import BackendRule, MatrixError, StackNotFoundError, backend_rules, load_matrices
    from envdoctor.model import ModelError, ModelInfo, inspect_model
    from envdoctor.probe import probe
    from envdoctor.snapshot import Snapshot, SnapshotError, load_snapshot, snapshot_from_dict


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'envdoctor' has no attribute {name!r}")
    import importlib

    module_name, attr = _LAZY[name]
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value
