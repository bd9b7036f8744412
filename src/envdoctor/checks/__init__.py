"""Generic checks parameterized by facts (``envdoctor.facts``) and the chosen stack.

Each check is a function ``(CheckContext) -> list[Finding]``; the facts it needs live in ``matrices/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from envdoctor.facts import Facts
from envdoctor.findings import Finding
from envdoctor.gpu_names import NamedGpu
from envdoctor.matrices import Matrices, Stack
from envdoctor.snapshot import Snapshot


@dataclass(frozen=True)
class CheckContext:
    snapshot: Snapshot
    matrices: Matrices
    facts: Facts
    stack: Stack | None = None
    model: str | None = None
    # GPUs whose compute capability the snapshot lacked and whose name NVIDIA's list has (envdoctor.gpu_names):
    # ``snapshot`` holds the capability of each whose name has one
    named_gpus: tuple[NamedGpu, ...] = ()


Check = Callable[[CheckContext], list[Finding]]
