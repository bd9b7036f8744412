"""--fsdp: the frozen base and its LoRA sharded over the ranks with FSDP2, driven by transformers' Trainer and
accelerate (TrainingArguments `fsdp` / `fsdp_config`), with checkpoints that do not depend on the world size.

- `fsdp_arguments(config)`: the TrainingArguments for FSDP2: every decoder layer its own unit (the architecture's
  `_no_split_modules`), parameters resharded after forward, full (not sharded) state dicts.
- the checkpoints: trainer.sharded_checkpoints (rank 0 writes a normal PEFT adapter; any world size resumes).
- `sharding_verdict(shape, plan, gpu_bytes, gpus)`: whether a run fits one GPU, fits with FSDP on `gpus`, and how
  many GPUs it needs (trainer.memory's estimate with the weights sharded).
- `fsdp_problems(config)`: the flag combinations --fsdp refuses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from trainer.errors import first_line, log
from trainer.memory import GIB, HEADROOM_SHARE, MemoryEstimate, MemoryPlan, ModelShape, estimate_peak

FSDP_VERSION = 2  # transformers 5.x's default; FSDP1 is deprecated there
MAX_GPUS_CONSIDERED = 64  # sharding_verdict looks for the smallest world size up to this


# ---- flags ---------------------------------------------------------------------------------------------------------
def fsdp_problems(config: Any) -> list[str]:
    """What --fsdp cannot train with (one phrase each, naming the flags); empty without --fsdp.

    --fused_ce on: the chunked fused loss runs the decoder without the root module's forward, so FSDP never gathers
    the embeddings and the head (torch: "mixed torch.Tensor and DTensor"); --fused_ce auto is turned off instead
    (trainer.sharding.fused_ce_under_fsdp). --backend unsloth: Unsloth's kernels and its own model loading are not
    FSDP-aware."""
    if not getattr(config, "fsdp", False):
        return []
    problems = []
    if config.fused_ce == "on":
        problems.append("--fsdp with --fused_ce on: the fused loss bypasses FSDP's gathering of the embeddings and "
                        "head; use --fused_ce off (or auto, which is off under --fsdp)")
    if config.backend == "unsloth":
        problems.append("--fsdp with --backend unsloth: Unsloth's kernels are not FSDP-aware; use --backend hf")
    if config.load_in_4bit or config.load_in_8bit:
        problems.append("--fsdp with a quantized load: the trainer shards a bf16 base only")
    return problems


def fused_ce_under_fsdp(config: Any, fused_ce: bool) -> bool:
    """--fused_ce auto under --fsdp: off (fsdp_problems explains why), with a log line when it would have been on."""
    if getattr(config, "fsdp", False) and fused_ce and config.fused_ce == "auto":
        log("--fsdp: the chunked fused cross-entropy is off (it bypasses FSDP's gathering of the embeddings and "
            "head); transformers' loss instead")
        return False
    return fused_ce


def layers_to_wrap(model_name: str, revision: str | None = None, trust_remote_code: bool = False) -> list[str]:
    """The decoder-layer classes FSDP makes units of: the architecture's `_no_split_modules` (e.g.
    LlamaDecoderLayer), read from config.json without loading weights; empty when unknown (accelerate then reads
    the loaded model's own `_no_split_modules`)."""
    import transformers
    from transformers import AutoConfig

    try:
        loaded = AutoConfig.from_pretrained(model_name, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        log(f"--fsdp: config.json not readable ({first_line(error)}); accelerate picks the layers to wrap")
        return []
    for architecture in loaded.architectures or []:
        names = getattr(getattr(transformers, architecture, None), "_no_split_modules", None)
        if names:
            return list(names)
    return []


def fsdp_arguments(config: Any) -> dict[str, Any]:
    """TrainingArguments keywords for --fsdp (none without it); logs the sharding estimate."""
    if not getattr(config, "fsdp", False):
        return {}
    if world_size_of_launch() == 1:  # transformers refuses fsdp outside a distributed launch
        log("--fsdp: one process, nothing to shard; training unsharded (checkpoints resume either way)")
        return {}
    fsdp_config: dict[str, Any] = {"version": FSDP_VERSION, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                   "reshard_after_forward": True, "state_dict_type": "FULL_STATE_DICT"}
    layers = layers_to_wrap(config.model_name, config.revision, config.trust_remote_code)
    if layers:
        fsdp_config["transformer_layer_cls_to_wrap"] = layers
    log(f"--fsdp: FSDP{FSDP_VERSION} over {world_size_of_launch()} ranks, one unit per "
        f"{', '.join(layers) or 'decoder layer'}; rank 0 writes the adapter")
    log_sharding_estimate(config)
    return {"fsdp": True, "fsdp_config": fsdp_config}


def world_size_of_launch() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def log_sharding_estimate(config: Any) -> None:
    """Logs sharding_verdict for this run (the GPU's memory when CUDA is present; else the per-rank bytes only)."""
    import torch

    from trainer.loaders import model_shape
    from trainer.memory import ShapeUnknown

    try:
        shape = model_shape(config)
    except (ShapeUnknown, OSError, ValueError) as error:
        log(f"--fsdp: no memory estimate ({first_line(error)})")
        return
    plan = memory_plan_of(config)
    gpus = world_size_of_launch()
    if not torch.cuda.is_available():
        sharded = estimate_peak(shape, replace(plan, weight_shards=max(1, gpus)))
        log(f"--fsdp: estimated peak per rank {sharded.describe()} on {gpus} ranks (no GPU here to compare with)")
        return
    total = torch.cuda.get_device_properties(int(os.environ.get("LOCAL_RANK", "0"))).total_memory
    log(sharding_verdict(shape, plan, total, gpus).describe())


def memory_plan_of(config: Any) -> MemoryPlan:
    """trainer.memory.MemoryPlan of the flags as given (the fused loss off, as under --fsdp)."""
    return MemoryPlan(micro_batch=config.per_device_train_batch_size, accumulation=config.gradient_accumulation_steps,
                      seq_len=config.max_seq_length, packing=config.packing == "on",
                      compile=config.torch_compile and config.torch_compile_backend == "inductor",
                      checkpointing=config.gradient_checkpointing, activation_budget=config.activation_memory_budget,
                      fused_ce=False, lora_r=config.lora_r, lora_targets=tuple(config.target_modules),
                      lora_dropout=config.lora_dropout > 0)


# ---- the estimate --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardingVerdict:
    """Whether a run fits: on one GPU, with FSDP on `gpus` GPUs, and the fewest GPUs FSDP needs (None: no world size
    up to MAX_GPUS_CONSIDERED, since the activations and gathered layers alone exceed one GPU)."""

    usable: int  # bytes a rank may plan to allocate
    gpus: int
    one_gpu: MemoryEstimate
    sharded: MemoryEstimate  # per rank, on `gpus` GPUs
    gpus_needed: int | None

    @property
    def fits_one_gpu(self) -> bool:
        return self.one_gpu.total <= self.usable

    @property
    def fits_sharded(self) -> bool:
        return self.sharded.total <= self.usable

    def describe(self) -> str:
        usable = f"{self.usable / GIB:.1f} GiB usable per GPU"
        one = f"one GPU: {self.one_gpu.total_gib:.1f} GiB ({'fits' if self.fits_one_gpu else 'does not fit'})"
        sharded = (f"FSDP on {self.gpus}: {self.sharded.describe()} per GPU "
                   f"({'fits' if self.fits_sharded else 'does not fit'})")
        needed = (f"needs {self.gpus_needed} GPU{'s' if self.gpus_needed != 1 else ''}" if self.gpus_needed else
                  f"does not fit on up to {MAX_GPUS_CONSIDERED} GPUs with these settings (lower the micro-batch or "
                  "add --gradient_checkpointing)")
        return f"memory (--fsdp): {usable}; {one}; {sharded}; {needed}"


def sharding_verdict(shape: ModelShape, plan: MemoryPlan, gpu_bytes: int, gpus: int) -> ShardingVerdict:
    """Pure: the estimate on one GPU and sharded over `gpus`, against `gpu_bytes` of GPU memory less the headroom
    trainer.memory keeps (the whole card: this is asked before anything runs, so nothing else is assumed on it)."""
    usable = int(gpu_bytes * (1 - HEADROOM_SHARE))
    one_gpu = estimate_peak(shape, replace(plan, weight_shards=1))
    sharded = estimate_peak(shape, replace(plan, weight_shards=max(1, gpus)))
    needed = next((n for n in range(1, MAX_GPUS_CONSIDERED + 1)
                   if estimate_peak(shape, replace(plan, weight_shards=n)).total <= usable), None)
    return ShardingVerdict(usable, max(1, gpus), one_gpu, sharded, needed)


def check_fsdp(config: Any) -> None:
    """Raise BadInputError (exit 2) naming every flag combination --fsdp refuses (fsdp_problems)."""
    from trainer.errors import BadInputError

    problems = fsdp_problems(config)
    if problems:
        raise BadInputError("; ".join(problems))
