"""``--model``: the base model against the trainer's policy, transformers and the GPU."""

from __future__ import annotations

from typing import Any

from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import fact, gpu_ccs, matches_specifier

GIB = 1024**3
QUANT_FIX = "point --model at the original bf16 base (the repository the quantized one was made from)"
BF16_FIX = "run on a GPU of compute capability 8.0 or newer (A100, A10, L4, L40S, H100)"


def check_model(ctx: CheckContext) -> list[Finding]:
    if ctx.model is None:
        return []
    from envdoctor.model import ModelError, inspect_model

    try:
        info = inspect_model(ctx.model)
    except ModelError as exc:
        return [_finding("model-unreadable", Category.MODEL, Severity.FAIL, str(exc), None, ())]
    table = ctx.matrices.table("models")
    findings = _quantized(info) + _unchecked(info) + _transformers_floor(ctx, info, table)
    return findings + _bf16(ctx, info, table) + _memory(ctx, info, table)


def _unchecked(info: Any) -> list[Finding]:
    """A model whose config and weights could not be looked at: said, never passed as fine."""
    if not info.unchecked:
        return []
    from envdoctor.checks.commands import shell_word

    fix = (f"hf download {shell_word(info.name)}   # then run check again; or pass the local model directory"
           if info.path is None else "pass the model directory that holds config.json and the *.safetensors files")
    return [Finding(rule="model-unchecked", category=Category.MODEL, severity=Severity.WARN, components=("model",),
                    message=f"could not check the model: {info.unchecked}", fix=fix, verified=False)]


def _finding(rule: str, category: Category, severity: Severity, message: str, fix: str | None,
             sources: Any) -> Finding:
    return Finding(rule=rule, category=category, severity=severity, components=("model",), message=message,
                   fix=fix, sources=tuple(sources))


def _quantized(info: Any) -> list[Finding]:
    if not info.quantized:
        return []
    return [_finding("model-quantized", Category.MODEL, Severity.FAIL,
                     f"{info.name} is a quantized checkpoint ({'; '.join(info.quantization_signals)}); the trainer "
                     "fine-tunes full-precision (bf16) bases only", QUANT_FIX,
                     ())]


def _transformers_floor(ctx: CheckContext, info: Any, table: dict[str, Any]) -> list[Finding]:
    installed = fact(ctx.snapshot, "packages.transformers")
    wanted = [("architecture", info.architecture, table.get("architectures", {})),
              ("rope_type", info.rope_type, table.get("rope_types", {}))]
    findings = []
    for label, value, known in wanted:
        entry = known.get(value) if value else None
        floor = f">={entry['min_transformers']}" if entry else ""
        if not entry or not isinstance(installed, str) or matches_specifier(installed, floor):
            continue
        findings.append(_finding(
            "model-needs-newer-transformers", Category.VERSION, Severity.FAIL,
            f"{info.name} uses {label} {value!r}, which transformers supports from {entry['min_transformers']}; "
            f"transformers {installed} is installed",
            _transformers_fix(ctx, entry["min_transformers"]), entry.get("sources", ())))
    return findings


def _transformers_fix(ctx: CheckContext, floor: str) -> str:
    """The stack's transformers pin when it meets the floor, else the floor itself."""
    pin = ctx.stack.pins.get("transformers") if ctx.stack else None
    if pin and matches_specifier(pin, f">={floor}"):
        return f'pip install "transformers=={pin}"'
    return f'pip install "transformers>={floor}"'


def _bf16(ctx: CheckContext, info: Any, table: dict[str, Any]) -> list[Finding]:
    bf16 = table.get("bf16", {})
    ccs = gpu_ccs(ctx.snapshot)
    if info.torch_dtype != "bfloat16" or not ccs or "min_compute_capability" not in bf16:
        return []
    if min(ccs) >= Version(bf16["min_compute_capability"]):
        return []
    return [_finding("model-bf16-gpu", Category.GPU_ARCH, Severity.FAIL,
                     f"{info.name} is bf16 and bf16 training needs compute capability >= "
                     f"{bf16['min_compute_capability']}; this GPU is {min(ccs)}", BF16_FIX,
                     bf16.get("sources", ()))]


def _memory(ctx: CheckContext, info: Any, table: dict[str, Any]) -> list[Finding]:
    estimate = table.get("lora_memory", {})
    gpus = ctx.snapshot.nvidia.gpus if ctx.snapshot.nvidia else None
    largest = max((g.memory_mib or 0 for g in gpus or ()), default=0)
    if not info.num_parameters or not largest or "bytes_per_param" not in estimate:
        return []
    need_gib = info.num_parameters * estimate["bytes_per_param"] / GIB + estimate.get("overhead_gib", 0)
    if need_gib * 1024 <= largest:
        return []
    how = (f"estimated as {info.num_parameters / 1e9:.1f}B parameters (safetensors headers) x "
           f"{estimate['bytes_per_param']} bytes of bf16 weights + {estimate.get('overhead_gib', 0)} GiB measured "
           "LoRA working set (r=16, batch 4 x 2048, gradient checkpointing)")
    return [_finding("model-gpu-memory", Category.RESOURCES, Severity.WARN,
                     f"LoRA on {info.name} needs about {need_gib:.1f} GiB of GPU memory ({how}); the largest GPU "
                     f"has {largest / 1024:.1f} GiB", "run on a GPU with more memory, or choose a smaller base model",
                     estimate.get("sources", ()))]
