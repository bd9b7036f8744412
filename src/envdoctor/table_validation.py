"""`envdoctor stacks --validate`: every problem in every knowledge table under matrices/, each table read by the
module that owns it. This module sits above all of them, so none of them imports another to validate it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from envdoctor.api_breaks import validate_api_breaks
from envdoctor.checks.bitsandbytes_support import load_gpu_support
from envdoctor.checks.compile_python import load_dynamo_python
from envdoctor.checks.conda_torch_builds import load_conda_torch_builds
from envdoctor.checks.cpu_distributions import load_cpu_only_distributions
from envdoctor.checks.extension_builds import load_extension_builds
from envdoctor.checks.flash_attn_backward import load_flash_attn_backward
from envdoctor.checks.glibc_floors import load_distro_glibc
from envdoctor.checks.gpu_dtypes import load_dtype_support
from envdoctor.checks.gpu_floors import load_gpu_ceilings, load_gpu_floors
from envdoctor.checks.module_owners import load_module_owners
from envdoctor.checks.numpy1_floors import load_numpy1_floors
from envdoctor.checks.numpy_additions import load_numpy_additions
from envdoctor.checks.numpy_aliases import load_numpy_aliases
from envdoctor.checks.nvcc_archs import load_nvcc_archs
from envdoctor.checks.nvcc_floors import load_nvcc_floors
from envdoctor.checks.nvcc_host_gcc import load_nvcc_host_gcc
from envdoctor.checks.os_builds import load_os_builds
from envdoctor.checks.platforms import validate_platforms
from envdoctor.checks.protobuf_gencode import load_protobuf_gencode
from envdoctor.checks.python_support_lag import load_python_releases
from envdoctor.checks.stdlib_removals import load_stdlib_removals
from envdoctor.checks.triton_ptxas import load_triton_ptxas
from envdoctor.checks.wheel_archs import load_wheel_archs_fully
from envdoctor.facts import validate_facts
from envdoctor.gpu_names import load_gpu_names
from envdoctor.import_floors import validate_import_floors
from envdoctor.keyword_floors import validate_keyword_floors
from envdoctor.matrices import Matrices, MatrixError, default_root, load_matrices, validate_matrix_files
from envdoctor.pypi_facts import validate_pypi_facts
from envdoctor.runtime_floors import validate_runtime_floors


def problems_loading(load: Callable[[Matrices], object]) -> Callable[[Path], list[str]]:
    """A validator from a table's loader, which raises MatrixError naming the file and key of a bad entry."""
    def validate(root: Path) -> list[str]:
        try:
            load(load_matrices(root))
        except MatrixError as error:
            return [str(error)]
        return []

    return validate


TABLE_VALIDATORS: tuple[Callable[[Path], list[str]], ...] = (
    validate_matrix_files, validate_pypi_facts, validate_runtime_floors, validate_import_floors, validate_api_breaks,
    validate_facts, validate_keyword_floors,
    validate_platforms, *map(problems_loading, (load_extension_builds, load_gpu_support, load_nvcc_archs,
                                                 load_dynamo_python, load_python_releases, load_gpu_names,
                                                 load_os_builds, load_gpu_floors, load_gpu_ceilings,
                                                 load_numpy_aliases, load_numpy1_floors,
                                                 load_numpy_additions, load_module_owners, load_stdlib_removals,
                                                 load_protobuf_gencode, load_conda_torch_builds,
                                                 load_nvcc_floors, load_dtype_support, load_triton_ptxas,
                                                 load_wheel_archs_fully, load_cpu_only_distributions,
                                                 load_nvcc_host_gcc, load_distro_glibc, load_flash_attn_backward)),
)


def validate_matrices(root: Path | str | None = None) -> list[str]:
    """Every problem in every matrix file, as 'path: key: problem' lines ([] when all is well)."""
    path = Path(root) if root is not None else default_root()
    return [problem for validator in TABLE_VALIDATORS for problem in validator(path)]
