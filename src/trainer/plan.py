"""The run's plan: the config and this machine turned into one frozen RunPlan, with every `auto` decided once here.

Order matters: the backend is chosen before anything imports transformers (Unsloth must be imported first), so
this module imports torch and transformers only inside build_run_plan, after select_backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from trainer.backends import Backend, select_backend
from trainer.config import TrainConfig
from trainer.errors import first_line, log
from trainer.fast_defaults import PackingDecision, packing_decision
from trainer.sharding import fused_ce_under_fsdp


@dataclass(frozen=True)
class MemoryFit:
    """--memory_fit's outcome: the report for the summary and, when the shape was known, what the estimate used."""

    report: Any  # trainer.summary.MemoryReport
    shape: Any = None  # trainer.memory.ModelShape
    plan: Any = None  # trainer.memory.MemoryPlan the run trains with


@dataclass(frozen=True)
class RunPlan:
    """Every decision of a run. `config` holds the settings trained with (--memory_fit may have lowered the
    micro-batch, the activation memory budget, or turned on gradient checkpointing)."""

    config: TrainConfig
    backend: Backend
    packing: PackingDecision
    fused_ce: bool
    fused_lora: bool
    compile_mode: str | None  # None: torch.compile's default
    rows_attention: bool  # unpacked batches use trainer.attention (SDPA, cuDNN first)
    memory: MemoryFit | None = None  # None without a GPU

    def describe(self) -> list[str]:
        """The decisions as log lines, in the order they were made."""
        lines = [self.backend.describe(), self.packing.describe()]
        if self.memory is not None:
            lines.append(self.memory.report.choice)
        lines.append(f"loss: {'chunked fused cross-entropy' if self.fused_ce else 'transformers cross-entropy'} "
                     f"(--fused_ce {self.config.fused_ce})")
        return lines


def build_run_plan(config: TrainConfig) -> RunPlan:
    """Decide the backend, packing, fused loss, fused LoRA, compile mode, attention and memory fit; log each once.
    Raises BackendError."""
    packing = packing_decision(config)
    backend = select_backend(config.backend, packing.on)  # before transformers: Unsloth patches it on import
    import torch

    on_gpu = torch.cuda.is_available()
    fused_ce = fused_ce_under_fsdp(config, use_fused_ce(config, packing.on))
    config, memory = fit_memory(config, packing.on, fused_ce, backend) if on_gpu else (config, None)
    plan = RunPlan(config, backend, packing, fused_ce, use_fused_lora(config, backend, on_gpu),
                   compile_mode(config, packing.on, on_gpu), is_hf(backend) and on_gpu, memory)
    for line in plan.describe():
        log(line)
    return plan


def is_hf(backend: Backend | None) -> bool:
    """The default transformers + PEFT path (None: no backend chosen, which means hf)."""
    return backend is None or backend.name == "hf"


def use_fused_ce(config: TrainConfig, packing: bool) -> bool:
    """--fused_ce auto: on with --packing (fixed long rows, where the full logits cost the most memory). Under DDP the
    loss runs the wrapper's forward (gradient sync) with lm_head as identity; --torch_compile compiles the decoder
    layers in place, so the fused loss runs them compiled too (benchmarks/train_speed.py `trainer+compile`)."""
    if config.fused_ce != "auto":
        return config.fused_ce == "on"
    return packing


def compile_mode(config: TrainConfig, packing: bool, on_gpu: bool) -> str | None:
    """--torch_compile_mode auto: max-autotune-no-cudagraphs with --packing and inductor on a GPU (rows of one shape,
    so Inductor tunes each GEMM and kernel once; +4% measured in docs/2026-12-06-benchmark-history.md section 1b), else
    torch.compile's default: unpacked batches come in several shapes, each of which would be tuned again, and the
    gain was measured on a GPU only. None means the default."""
    mode = config.torch_compile_mode
    if mode == "auto":
        tuned = packing and config.torch_compile_backend == "inductor" and on_gpu
        mode = "max-autotune-no-cudagraphs" if tuned else None
    return None if mode == "default" else mode


def use_fused_lora(config: TrainConfig, backend: Backend | None, on_gpu: bool) -> bool:
    """--fused_lora auto: on when training runs on a GPU with the hf backend (benchmarks/README.md: fused LoRA);
    Unsloth's backend brings its own LoRA kernels."""
    if not is_hf(backend):
        return False
    if config.fused_lora != "auto":
        return config.fused_lora == "on"
    return on_gpu


def memory_plan(config: TrainConfig, packing: bool, fused_ce: bool) -> Any:
    """trainer.memory.MemoryPlan of these settings (compiled layers count as such with the inductor backend only)."""
    from trainer.memory import MemoryPlan

    return MemoryPlan(micro_batch=config.per_device_train_batch_size, accumulation=config.gradient_accumulation_steps,
                      seq_len=config.max_seq_length, packing=packing,
                      compile=config.torch_compile and config.torch_compile_backend == "inductor",
                      checkpointing=config.gradient_checkpointing, activation_budget=config.activation_memory_budget,
                      fused_ce=fused_ce, lora_r=config.lora_r, lora_targets=tuple(config.target_modules),
                      lora_dropout=config.lora_dropout > 0,
                      weight_shards=int(os.environ.get("WORLD_SIZE", "1")) if config.fsdp else 1)


def fit_memory(config: TrainConfig, packing: bool, fused_ce: bool, backend: Backend) -> tuple[TrainConfig, MemoryFit]:
    """Estimates the peak GPU memory from config.json before any weight loads and, with --memory_fit auto, returns
    the config with the fastest settings that fit (trainer.memory), with the estimate and the choice."""
    import torch

    from trainer.loaders import model_shape
    from trainer.memory import GIB, ShapeUnknown, choose_plan, estimate_peak, usable_bytes
    from trainer.summary import MemoryReport

    free, total = torch.cuda.mem_get_info(int(os.environ.get("LOCAL_RANK", "0")))
    usable = usable_bytes(free, total)
    try:
        shape = model_shape(config)
    except (ShapeUnknown, OSError, ValueError) as error:
        line = (f"memory: no estimate ({first_line(error)}); training with the settings as given, "
                f"{free / GIB:.1f} GiB free")
        return config, MemoryFit(MemoryReport(None, round(total / GIB, 2), round(usable / GIB, 2), line, None))
    plan = memory_plan(config, packing, fused_ce)
    if config.memory_fit == "off" or not is_hf(backend):
        why = "--memory_fit off" if config.memory_fit == "off" else \
            f"the estimate is calibrated on the hf backend, not {backend.name}"
        estimate = estimate_peak(shape, plan)
        line = (f"memory: estimated peak {estimate.describe()} against {usable / GIB:.1f} GiB usable; "
                f"settings kept as given ({why})")
        chosen = plan
    else:
        choice = choose_plan(shape, plan, usable)
        estimate, chosen, line = choice.estimate, choice.chosen, choice.describe()
        config = replace(config, per_device_train_batch_size=chosen.micro_batch,
                         gradient_accumulation_steps=chosen.accumulation,
                         activation_memory_budget=chosen.activation_budget,
                         gradient_checkpointing=chosen.checkpointing)
    report = MemoryReport(round(estimate.total_gib, 2), round(total / GIB, 2), round(usable / GIB, 2), line,
                          chosen.flags())
    return config, MemoryFit(report, shape, chosen)
