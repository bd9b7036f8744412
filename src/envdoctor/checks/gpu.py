"""GPU presence, architecture and memory against torch, flash-attn, bitsandbytes and the stack."""

from __future__ import annotations

from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import plan_command, stack_torch_target, torch_install, torch_target
from envdoctor.facts import gpu_runs_archs
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import ABSENT, fact, gpu_ccs, has_no_gpu, torch_variant


def check_gpu_present(ctx: CheckContext) -> list[Finding]:
    """One clear failure when the stack needs an NVIDIA GPU and the probe found none."""
    if not has_no_gpu(ctx.snapshot) or (ctx.stack is not None and ctx.stack.cpu_ok):
        return []
    reason = ctx.snapshot.nvidia.error if ctx.snapshot.nvidia and ctx.snapshot.nvidia.error else "no GPU listed"
    name = ctx.stack.name if ctx.stack else "GPU training"
    severity = Severity.FAIL if ctx.stack is not None else Severity.WARN
    return [Finding(
        rule="no-nvidia-gpu", category=Category.DRIVER, severity=severity, components=("nvidia-driver",),
        message=f"no usable NVIDIA GPU or driver ({reason}); {name} needs one, so nothing else was checked against it",
        fix="run on a machine with an NVIDIA GPU and driver (nvidia-smi must work), or choose a cpu_ok stack",
        sources=("anchors-failure-modes",),
    )]


def check_cpu_torch(ctx: CheckContext) -> list[Finding]:
    snapshot = ctx.snapshot
    if not gpu_ccs(snapshot) or torch_variant(snapshot) != "cpu":
        return []
    count = len(snapshot.nvidia.gpus or ()) if snapshot.nvidia else 0
    return [Finding(
        rule="cpu-torch-on-gpu-machine", category=Category.CUDA_BUILD, severity=Severity.FAIL,
        components=("torch",), sources=("anchors-failure-modes",),
        message=f"torch {fact(snapshot, 'packages.torch')} is a CPU-only build on a machine with {count} NVIDIA "
        "GPU(s): training would silently run on the CPU",
        fix=_torch_fix(ctx),
    )]


def _torch_fix(ctx: CheckContext) -> str:
    """The stack's CUDA build of torch (else the same release's PyPI CUDA build), forced over the CPU one."""
    target = stack_torch_target(ctx)
    version = fact(ctx.snapshot, "packages.torch")
    if target is None and isinstance(version, str):
        release = ctx.facts.torch(version)
        target = torch_target(ctx, version, release.pypi_default) if release else None
    if target is None or not target.variant.startswith("cu"):
        return plan_command(ctx)
    return torch_install(ctx, target, force=True)


def _torch_archs(ctx: CheckContext) -> tuple[tuple[str, ...] | None, str]:
    """(archs, where from): the snapshot's list, else the facts for the installed release/variant."""
    if ctx.snapshot.torch and ctx.snapshot.torch.archs:
        return ctx.snapshot.torch.archs, "the installed torch reports"
    version, variant = fact(ctx.snapshot, "packages.torch"), torch_variant(ctx.snapshot)
    if not isinstance(version, str) or not isinstance(variant, str) or variant == "cpu":
        return None, ""
    release = ctx.facts.torch(version)
    variant = variant or (release.pypi_default if release else "")
    return ctx.facts.torch_archs(version, variant), f"torch {version} {variant} wheels ship"


def check_torch_archs(ctx: CheckContext) -> list[Finding]:
    archs, origin = _torch_archs(ctx)
    if archs is None:
        return []
    missing = sorted({str(cc) for cc in gpu_ccs(ctx.snapshot) if not _runs(str(cc), archs)})
    if not missing:
        return []
    return [Finding(
        rule="gpu-arch-not-in-torch", category=Category.GPU_ARCH, severity=Severity.FAIL, components=("torch",),
        message=f"GPU compute capability {', '.join(missing)} is not among the archs {origin} "
        f"({' '.join(archs)}): 'no kernel image is available for execution on the device'",
        fix=f"{plan_command(ctx)}   # a torch variant whose wheels include this GPU (Blackwell needs cu128+)",
        sources=("torch-archs", "anchors-failure-modes"),
    )]


def _runs(cc: str, archs: tuple[str, ...]) -> bool:
    """SASS for the same major and a lower-or-equal minor runs; PTX (compute_XY) JITs forward."""
    ptx = [a.removeprefix("compute_") for a in archs if a.startswith("compute_")]
    major, minor = (int(p) for p in cc.split(".")[:2])
    jit = any(p.isdigit() and (int(p[:-1]), int(p[-1])) <= (major, minor) for p in ptx)
    return jit or gpu_runs_archs(cc, archs)


def check_flash_attn_arch(ctx: CheckContext) -> list[Finding]:
    version = fact(ctx.snapshot, "packages.flash-attn")
    release = ctx.facts.flash_attn(version) if isinstance(version, str) else None
    ccs = gpu_ccs(ctx.snapshot)
    if release is None or not ccs:
        return []
    too_old = [cc for cc in ccs if release.min_cc and cc < Version(release.min_cc)]
    no_sass = [cc for cc in ccs if release.sass and not gpu_runs_archs(str(cc), release.sass)]
    bad = sorted({str(cc) for cc in too_old + no_sass})
    if not bad:
        return []
    needs = f"compute capability >= {release.min_cc}" if too_old else f"one of {' '.join(release.sass)}"
    return [Finding(
        rule="flash-attn-gpu-arch", category=Category.GPU_ARCH, severity=Severity.FAIL,
        components=("flash-attn",), sources=("flash-attn-publish", "flash-attn-ampere"),
        message=f"flash-attn {version} needs a GPU with {needs}, but this GPU is {', '.join(bad)}: "
        "'FlashAttention only supports Ampere GPUs or newer' at the first attention call",
        fix="pip uninstall -y flash-attn   # and load the model with attn_implementation=\"sdpa\"",
    )]


def check_stack_gpu(ctx: CheckContext) -> list[Finding]:
    stack, ccs = ctx.stack, gpu_ccs(ctx.snapshot)
    if stack is None or stack.cpu_ok or not ccs:
        return []
    findings = []
    if stack.min_compute_capability and min(ccs) < Version(stack.min_compute_capability):
        findings.append(Finding(
            rule="stack-gpu-too-old", category=Category.GPU_ARCH, severity=Severity.FAIL, components=("gpu",),
            message=f"{stack.name} trains in bf16 with FlashAttention-2-class kernels and needs compute capability "
            f">= {stack.min_compute_capability}; this GPU is {min(ccs)} (bf16 needs Ampere, sm_80)",
            fix="run on a GPU of compute capability 8.0 or newer (A100, A10, L4, L40S, H100)", sources=("nvidia-bf16",),
        ))
    memory = fact(ctx.snapshot, "gpu.min_memory_mib")
    largest = max((g.memory_mib or 0 for g in ctx.snapshot.nvidia.gpus or ()), default=0)
    if stack.min_memory_mib and isinstance(memory, int) and largest < stack.min_memory_mib:
        findings.append(Finding(
            rule="stack-gpu-memory", category=Category.RESOURCES, severity=Severity.FAIL, components=("gpu",),
            message=f"{stack.name} needs about {stack.min_memory_mib} MiB of GPU memory for LoRA on an 8B bf16 "
            f"base; the largest GPU here has {largest} MiB",
            fix="use a GPU with at least 40 GiB, or a smaller base model", sources=("lora-memory",),
        ))
    return findings


def check_bitsandbytes_arch(ctx: CheckContext) -> list[Finding]:
    version = fact(ctx.snapshot, "packages.bitsandbytes")
    release = ctx.facts.bitsandbytes(version) if isinstance(version, str) else None
    ccs = gpu_ccs(ctx.snapshot)
    if release is None or not ccs or version is ABSENT or min(ccs) >= Version(release.min_cc):
        return []
    return [Finding(
        rule="bitsandbytes-gpu-arch", category=Category.GPU_ARCH, severity=Severity.WARN,
        components=("bitsandbytes",), sources=("bitsandbytes-docs",),
        message=f"bitsandbytes {version} is built for compute capability >= {release.min_cc}; this GPU is {min(ccs)}",
        fix="pip uninstall -y bitsandbytes   # the trainer does not need it for bf16 LoRA",
    )]
