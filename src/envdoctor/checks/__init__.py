"""Generic checks parameterized by facts (``envdoctor.facts``) and the chosen stack.

Each check is a function ``(CheckContext) -> list[Finding]``; the facts it needs live in ``matrices/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from envdoctor.facts import Facts
from envdoctor.findings import Finding
from envdoctor.matrices import Matrices, Stack
from envdoctor.snapshot import Snapshot


@dataclass(frozen=True)
class CheckContext:
    snapshot: Snapshot
    matrices: Matrices
    facts: Facts
    stack: Stack | None = None
    model: str | None = None


Check = Callable[[CheckContext], list[Finding]]


def run_checks(ctx: CheckContext) -> list[Finding]:
    """Every check's findings. When the stack needs a GPU and none is usable, only that is said."""
    from envdoctor.checks import driver, extensions, gpu, model, requirements, smoke, stack, toolkit, unknowns, wheels
    from envdoctor.checks import numpy_abi

    gate = gpu.check_gpu_present(ctx)
    if gate:
        return gate + stack.skipped_for_no_gpu(ctx) + smoke.check_smoke(ctx) + unknowns.check_invalid_values(ctx)
    checks: list[Check] = [
        gpu.check_cpu_torch, gpu.check_torch_archs, gpu.check_flash_attn_arch, gpu.check_stack_gpu,
        gpu.check_bitsandbytes_arch, driver.check_driver, toolkit.check_toolkit, extensions.check_companions,
        extensions.check_extensions, requirements.check_declared, wheels.check_wheels, stack.check_stack,
        smoke.check_smoke, numpy_abi.check_numpy_abi,
        model.check_model,
        unknowns.check_invalid_values, unknowns.check_unknown_facts,
    ]
    return [finding for check in checks for finding in check(ctx)]
