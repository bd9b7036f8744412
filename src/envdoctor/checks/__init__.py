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
    """Every check's findings. The packages are always judged against each other, the platform and Python; when
    the stack needs a GPU and none is usable, that is said once and the GPU-dependent checks are skipped."""
    from envdoctor.checks import (
        driver,
        environment,
        extensions,
        gpu,
        model,
        platforms,
        requirements,
        smoke,
        stack,
        toolkit,
        unknowns,
        wheels,
    )
    from envdoctor.checks.api_breaks import check_api_breaks
    from envdoctor.checks.flash_attn_build import check_flash_attn_build
    from envdoctor.checks.numpy_abi import check_numpy_abi
    from envdoctor.checks.runtime_floors import check_runtime_floors

    packages: list[Check] = [
        check_api_breaks,
        extensions.check_companions, extensions.check_extensions, requirements.check_declared, wheels.check_wheels,
        wheels.check_required_builds,
        platforms.check_platforms,
        check_numpy_abi, check_runtime_floors, smoke.check_smoke, model.check_model, unknowns.check_invalid_values,
        environment.check_environment,
    ]
    gate = gpu.check_gpu_present(ctx)
    if gate:
        return gate + stack.skipped_for_no_gpu(ctx) + [finding for check in packages for finding in check(ctx)]
    checks: list[Check] = [
        gpu.check_cpu_torch, gpu.check_torch_archs, gpu.check_flash_attn_arch, gpu.check_stack_gpu,
        gpu.check_bitsandbytes_arch, driver.check_driver, toolkit.check_toolkit, *packages, stack.check_stack,
        check_flash_attn_build, unknowns.check_unknown_facts,
    ]
    return [finding for check in checks for finding in check(ctx)]
