"""The process environment a training run inherits: which GPUs CUDA may use, which CUDA libraries the loader finds
first, whether the GPUs are already busy, and whether the Hugging Face hub may be reached for ``--model``."""

from __future__ import annotations

import re

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import shell_word
from envdoctor.findings import Category, Finding, Severity
from envdoctor.snapshot import Environment, Gpu

BUSY_FRACTION = 0.5  # a GPU with more than this share of its memory in use is "mostly in use"
# Where a CUDA toolkit or a distribution keeps its libraries, for a snapshot that does not say which
# LD_LIBRARY_PATH directories hold CUDA libraries: /usr/local/cuda-12.1/lib64, /opt/cuda/targets/x86_64-linux/lib.
TOOLKIT_LIBRARY_DIR = re.compile(r"(^|/)cuda[^/]*/(lib64|lib|targets/[^/]+/lib)/?$")
WHEEL_LIBRARY_DIR = re.compile(r"/site-packages/nvidia/")  # the pip nvidia-* wheels' own directories
NVJITLINK_SOURCES = ("anchors-failure-modes", "thread-pytorch-131312")


def check_environment(ctx: CheckContext) -> list[Finding]:
    env = ctx.snapshot.env
    findings = _hidden_gpus(ctx, env) + _busy_gpus(ctx, env)
    return findings + _shadowed_cuda_wheels(ctx, env) + _offline_model(ctx, env)


# --- CUDA_VISIBLE_DEVICES ------------------------------------------------------------------


def visible_indices(value: str, count: int | None) -> tuple[int, ...] | None:
    """The GPU indices CUDA uses under ``CUDA_VISIBLE_DEVICES=value`` on a machine with ``count`` GPUs, or None when
    that cannot be told (a GPU or MIG UUID, or an unknown GPU count).

    CUDA reads the comma-separated entries in order and stops at the first invalid one; everything before it is
    visible. So ``""``, ``"-1"`` and an index past the last GPU hide every GPU."""
    visible: list[int] = []
    for entry in (part.strip() for part in value.split(",")):
        if entry.upper().startswith(("GPU-", "MIG-")):
            return None
        if not re.fullmatch(r"\d+", entry):
            break  # "", "-1", "none": invalid, CUDA stops here
        if count is None:
            return None
        if int(entry) >= count or int(entry) in visible:
            break
        visible.append(int(entry))
    return tuple(visible)


def _gpus(ctx: CheckContext) -> tuple[Gpu, ...]:
    return (ctx.snapshot.nvidia.gpus or ()) if ctx.snapshot.nvidia else ()


def _hidden_gpus(ctx: CheckContext, env: Environment | None) -> list[Finding]:
    gpus = _gpus(ctx)
    if env is None or env.cuda_visible_devices is None or not gpus:
        return []
    if visible_indices(env.cuda_visible_devices, len(gpus)) != ():
        return []
    shown = shell_word(env.cuda_visible_devices) if env.cuda_visible_devices else '""'
    return [Finding(
        rule="cuda-visible-devices-hides-all", category=Category.DRIVER, severity=Severity.FAIL,
        components=("CUDA_VISIBLE_DEVICES",),
        message=f"CUDA_VISIBLE_DEVICES={shown} hides every GPU from CUDA: the driver sees {len(gpus)} GPU(s) "
                f"(indices 0-{len(gpus) - 1}), torch.cuda.is_available() will be False",
        fix=f"unset CUDA_VISIBLE_DEVICES   # or choose GPUs that exist: export CUDA_VISIBLE_DEVICES="
            f"{','.join(str(i) for i in range(len(gpus)))}",
    )]


# --- GPU memory in use ---------------------------------------------------------------------


def _busy_gpus(ctx: CheckContext, env: Environment | None) -> list[Finding]:
    gpus = _gpus(ctx)
    wanted = visible_indices(env.cuda_visible_devices, len(gpus)) if env and env.cuda_visible_devices else None
    chosen = [g for i, g in enumerate(gpus) if wanted is None or i in wanted]
    busy = [g for g in chosen if _busy(g)]
    free = [i for i, g in enumerate(gpus) if g.memory_used_mib is not None and not _busy(g)]
    findings = []
    for gpu in busy:
        assert gpu.memory_used_mib is not None and gpu.memory_mib
        processes = f", {gpu.processes} compute process(es) visible" if gpu.processes else ""
        move = f"export CUDA_VISIBLE_DEVICES={free[0]}   # GPU {free[0]} is mostly free; or " if free else ""
        findings.append(Finding(
            rule="gpu-memory-in-use", category=Category.RESOURCES, severity=Severity.WARN,
            components=(f"gpu{gpu.index if gpu.index is not None else ''}",),
            message=f"GPU {gpu.index} ({gpu.name or 'unnamed'}) has {gpu.memory_used_mib} of {gpu.memory_mib} MiB "
                    f"in use by other processes{processes}; training will run out of memory or share the GPU",
            fix=f"{move}nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv   "
                "# then stop what holds the memory",
        ))
    return findings


def _busy(gpu: Gpu) -> bool:
    return bool(gpu.memory_mib and gpu.memory_used_mib is not None
                and gpu.memory_used_mib > BUSY_FRACTION * gpu.memory_mib)


# --- LD_LIBRARY_PATH -----------------------------------------------------------------------


def _shadowed_cuda_wheels(ctx: CheckContext, env: Environment | None) -> list[Finding]:
    """A CUDA torch loads the CUDA libraries of pip's nvidia-* wheels; a directory on LD_LIBRARY_PATH that holds
    other copies of them is searched first, and an older libnvJitLink there breaks the import."""
    torch = ctx.snapshot.torch
    wheels = sorted(name for name in ctx.snapshot.packages or {} if name.startswith("nvidia-") and name.endswith(
        ("-cu11", "-cu12", "-cu13")))
    if env is None or not env.ld_library_path or torch is None or not torch.cuda or not wheels:
        return []
    verified = env.cuda_library_dirs is not None
    holding = env.cuda_library_dirs if verified else tuple(d for d in env.ld_library_path
                                                            if TOOLKIT_LIBRARY_DIR.search(d))
    shadowing = [d for d in holding or () if not WHEEL_LIBRARY_DIR.search(d)]
    if not shadowing:
        return []
    rest = [d for d in env.ld_library_path if d not in shadowing]
    fix = (f"export LD_LIBRARY_PATH={shell_word(':'.join(rest))}   # drops the CUDA library directories"
           if rest else "unset LD_LIBRARY_PATH")
    what = "holds CUDA libraries" if verified else "looks like a CUDA toolkit's library directory (not listed)"
    return [Finding(
        rule="ld-library-path-shadows-cuda-wheels", category=Category.CUDA_BUILD, severity=Severity.WARN,
        components=("LD_LIBRARY_PATH", "torch"),
        message=f"LD_LIBRARY_PATH puts {', '.join(shadowing)} ahead of the CUDA libraries of the pip wheels "
                f"({', '.join(wheels[:3])}{', ...' if len(wheels) > 3 else ''}) that torch {torch.version or ''} "
                f"(CUDA {torch.cuda}) was built with; it {what}, and an older libnvJitLink or libcudart there fails "
                "the import with 'undefined symbol: __nvJitLinkComplete_12_4'-style errors",
        fix=fix, sources=NVJITLINK_SOURCES, verified=verified,
    )]


# --- HF_HUB_OFFLINE and --model --------------------------------------------------------------


def _offline_model(ctx: CheckContext, env: Environment | None) -> list[Finding]:
    if ctx.model is None or env is None or not env.hf_hub_offline:
        return []
    from envdoctor.model import ModelError, hf_hub_cache, resolve_model_dir

    try:
        if resolve_model_dir(ctx.model) is not None:
            return []
    except ModelError:
        return []  # the model check reports an unusable --model
    return [Finding(
        rule="model-offline-not-cached", category=Category.MODEL, severity=Severity.FAIL, components=("model",),
        message=f"HF_HUB_OFFLINE is set and {ctx.model} is not in the local Hugging Face cache ({hf_hub_cache()}"
                f"{', HF_HOME=' + env.hf_home if env.hf_home else ''}): from_pretrained cannot download it and will "
                "fail",
        fix=f"HF_HUB_OFFLINE=0 hf download {shell_word(ctx.model)}   # then train offline; or pass the local "
            "model directory",
    )]
