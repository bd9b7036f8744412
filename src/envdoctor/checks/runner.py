"""Every check, in the order the report shows them: the one place that knows them all (each check module imports
only ``envdoctor.checks`` for the context, so nothing imports back here)."""

from __future__ import annotations

from envdoctor.checks import (
    Check,
    CheckContext,
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
from envdoctor.checks.build_cuda_archs import check_build_cuda_archs
from envdoctor.checks.compile_python import check_compile_python
from envdoctor.checks.conda_torch_builds import check_conda_torch_builds
from envdoctor.checks.cpu_distributions import check_cpu_distributions
from envdoctor.checks.driver_current_builds import check_driver_current_builds
from envdoctor.checks.fetched_facts import check_fetched_facts
from envdoctor.checks.flash_attn_backward import check_flash_attn_backward
from envdoctor.checks.flash_attn_build import check_flash_attn_build
from envdoctor.checks.glibc_floors import check_glibc_floors
from envdoctor.checks.gpu_dtypes import check_gpu_dtypes
from envdoctor.checks.gpu_floors import check_gpu_ceilings, check_gpu_floors
from envdoctor.checks.gpu_names import check_named_gpus
from envdoctor.checks.host_builds import check_host_builds
from envdoctor.checks.import_floors import check_import_floors
from envdoctor.checks.keyword_floors import check_keyword_floors
from envdoctor.checks.later_caps import check_later_caps
from envdoctor.checks.module_owners import check_module_owners
from envdoctor.checks.numpy1_floors import check_numpy1_floors
from envdoctor.checks.numpy_abi import check_numpy_abi
from envdoctor.checks.numpy_additions import check_numpy_additions
from envdoctor.checks.numpy_aliases import check_numpy_aliases
from envdoctor.checks.nvcc_floors import check_nvcc_floors
from envdoctor.checks.nvcc_host_gcc import check_nvcc_host_gcc
from envdoctor.checks.os_builds import check_os_builds
from envdoctor.checks.protobuf_gencode import check_protobuf_gencode
from envdoctor.checks.provided_modules import check_provided_modules
from envdoctor.checks.python_support_lag import check_python_support_lag
from envdoctor.checks.runtime_floors import check_runtime_floors
from envdoctor.checks.stdlib_removals import check_stdlib_removals
from envdoctor.checks.torch_cuda_era import check_torch_cuda_era
from envdoctor.checks.torch_pins import check_pinned_torch_driver
from envdoctor.checks.triton_gpu import check_triton_gpu
from envdoctor.checks.triton_ptxas import check_triton_ptxas
from envdoctor.checks.wheel_archs import check_wheel_archs
from envdoctor.findings import Finding


def run_checks(ctx: CheckContext) -> list[Finding]:
    """Every check's findings. The packages are always judged against each other, the platform and Python; when
    the stack needs a GPU and none is usable, that is said once and the GPU-dependent checks are skipped."""
    packages: list[Check] = [
        check_api_breaks, check_compile_python,
        extensions.check_companions, extensions.check_extensions, requirements.check_declared, check_later_caps,
        wheels.check_wheels, wheels.check_required_builds, check_python_support_lag,
        platforms.check_platforms, check_host_builds, check_os_builds, check_cpu_distributions,
        check_numpy_abi, check_numpy1_floors, check_numpy_aliases, check_numpy_additions, check_stdlib_removals,
        check_provided_modules, check_protobuf_gencode, check_runtime_floors, check_import_floors,
        check_keyword_floors,
        smoke.check_smoke, model.check_model, check_module_owners,
        unknowns.check_invalid_values, check_named_gpus,
        environment.check_environment, check_fetched_facts, check_driver_current_builds,
        check_conda_torch_builds, check_nvcc_host_gcc, check_glibc_floors,
    ]
    gate = gpu.check_gpu_present(ctx)
    if gate:
        return gate + stack.skipped_for_no_gpu(ctx) + [finding for check in packages for finding in check(ctx)]
    checks: list[Check] = [
        gpu.check_cpu_torch, gpu.check_torch_archs, check_torch_cuda_era, gpu.check_flash_attn_arch,
        gpu.check_stack_gpu, gpu.check_bitsandbytes_arch, check_triton_gpu, check_triton_ptxas, check_gpu_floors,
        check_gpu_ceilings, check_gpu_dtypes,
        check_flash_attn_backward,
        check_wheel_archs, check_build_cuda_archs,
        driver.check_driver, check_pinned_torch_driver,
        toolkit.check_toolkit, check_nvcc_floors, *packages, stack.check_stack, check_flash_attn_build,
        unknowns.check_unknown_facts,
    ]
    return [finding for check in checks for finding in check(ctx)]
