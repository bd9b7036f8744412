"""GPUs whose compute capability the snapshot did not give and whose model name NVIDIA's list has
(``envdoctor.gpu_names``): one information finding per GPU, so the report says where the capability came from, or
which capabilities an ambiguous name may have."""

from __future__ import annotations

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.gpu_names import NamedGpu


def check_named_gpus(ctx: CheckContext) -> list[Finding]:
    return [_named(named_gpu) for named_gpu in ctx.named_gpus]


def _named(named_gpu: NamedGpu) -> Finding:
    index, gpu_name, listed = named_gpu.index, named_gpu.gpu_name, named_gpu.named.name
    capabilities = named_gpu.named.compute_capabilities
    where = f"nvidia.gpus[{index}]"
    if len(capabilities) > 1:
        message = (f"GPU {index} ({gpu_name}) has no compute capability in the snapshot, and {listed} was sold "
                   f"with chips of compute capability {' and '.join(capabilities)}: the checks that need the "
                   "capability could not run")
    else:
        message = (f"GPU {index} ({gpu_name}) has no compute capability in the snapshot; the checks took "
                   f"{capabilities[0]}, the capability of the {listed} in NVIDIA's list of CUDA GPUs")
    return Finding(
        rule="gpu-capability-from-name", category=Category.GPU_ARCH, severity=Severity.INFO, components=("gpu",),
        sources=named_gpu.named.sources, verified=len(capabilities) == 1, message=message,
        fix=f"nvidia-smi --query-gpu=name,compute_cap --format=csv   # and record it as {where}.compute_capability",
    )
