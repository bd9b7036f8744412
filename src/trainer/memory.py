"""Peak GPU memory of a LoRA run, estimated before the weights load, and the settings that fit the GPU.

Pure functions over frozen dataclasses: `ModelShape` (from config.json), `MemoryPlan` (the memory-relevant
settings), `estimate_peak(shape, plan)` -> `MemoryEstimate`, and `choose_plan(shape, plan, usable_bytes)` ->
`MemoryChoice`: the requested plan when it fits, else the fastest candidate that does (a lower activation memory
budget under --torch_compile, a smaller micro-batch with more accumulation so the effective batch is unchanged,
gradient checkpointing), by the relative speeds in CANDIDATE_SPEED.

How the estimate is built (all bytes; one micro-step holds micro_batch x seq_len tokens, the worst case of padded
batches too):
- the base weights in their dtype, the LoRA weights with their fp32 gradient and two AdamW moments;
- activations kept for backward: tokens x layers x a per-token-per-layer count from the layer's structure (eager
  Llama-style block: the RMSNorms' fp32 inputs, the LoRA groups' inputs, attention's q, k, v and output, the MLP's
  gate, up and activation), times a factor for compiled layers (Inductor recomputes cheap pointwise results), times
  the activation-memory-budget curve, or under gradient checkpointing each layer's input plus one layer recomputed;
  LoRA dropout adds a mask and a dropped copy of each group's input;
- the loss: transformers' cross-entropy keeps the full logits (bf16, their fp32 copy and gradient), the chunked fused
  one only a chunk's;
- a fixed workspace (cuBLAS, the CUDA caching allocator's rounding).

The factors are calibrated by CALIBRATION: peaks measured on the Llama-3.1-8B shape (benchmarks/README.md,
`max_memory_allocated`); tests/trainer/test_memory.py checks that the estimate reproduces each within its tolerance.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

GIB = 2**30
ADAPTER_BYTES_PER_PARAM = 16  # fp32 weight + fp32 gradient + AdamW's two fp32 moments
FUSED_CE_CHUNK_TOKENS = 1024  # trainer.kernels.fused_ce.DEFAULT_CHUNK_TOKENS
FUSED_CE_BYTES_PER_LOGIT = 10  # a chunk's bf16 logits, their fp32 softmax and gradient
UNFUSED_CE_BYTES_PER_LOGIT = 8  # transformers' loss: logits kept, fp32 log-softmax and gradient (calibrated)
WORKSPACE_BYTES = GIB // 2  # cuBLAS workspaces and the allocator's rounding
COMPILED_FACTOR = 0.73  # compiled layers keep this share of the eager count (calibrated: 4 x 2,048 rows, no dropout)
COMPILED_DROPOUT_FACTOR = 0.47  # of the eager dropout count (calibrated: the same rows with LoRA dropout 0.05)
EAGER_FACTOR = 0.80  # eager layers keep this share of the count (calibrated: H100, 4 and 2 rows of 2,048, dropout)
BUDGET_SLOPE = 1.25  # kept share at budget b: 1 - 1.25 (1 - b) (calibrated: 0.6 kept half of the activations)
BUDGET_FLOOR = 0.15  # the compiler cannot recompute below about what checkpointing keeps
# Relative speed of each change, for ranking candidates that fit (1.0 = the requested settings):
#   budget 0.6: 0.954-0.971 in train_speed.py (docs/2026-12-06-benchmark-history.md sections 1b, 1c); 0.8 interpolated;
#   half the micro-batch (twice the accumulation): 15,269 against 15,625 tok/s for 2 against 4 rows of 2,048
#   (section 1b); gradient checkpointing: about 30% slower (README).
CANDIDATE_SPEED = {"budget0.8": 0.98, "budget0.6": 0.96, "halve_batch": 0.977, "checkpointing": 0.70}
BUDGETS_TRIED = (0.8, 0.6)
HEADROOM_SHARE = 0.06  # of the GPU's total memory kept free: the allocator reserves more than it hands out


class ShapeUnknown(ValueError):
    """config.json lacks a field the estimate needs; the message names it."""


@dataclass(frozen=True)
class ModelShape:
    hidden_size: int
    intermediate_size: int
    num_layers: int
    vocab_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tied_embeddings: bool = False

    @property
    def kv_width(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def q_width(self) -> int:
        return self.num_heads * self.head_dim

    def projections(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each decoder projection (Llama-style names)."""
        h, i = self.hidden_size, self.intermediate_size
        return {"q_proj": (h, self.q_width), "k_proj": (h, self.kv_width), "v_proj": (h, self.kv_width),
                "o_proj": (self.q_width, h), "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def parameters(self) -> int:
        return self.num_layers * self.layer_parameters() + self.root_parameters()

    def layer_parameters(self) -> int:
        """One decoder layer: its projections and two RMSNorm weights."""
        return sum(a * b for a, b in self.projections().values()) + 2 * self.hidden_size

    def root_parameters(self) -> int:
        """Outside the decoder layers: the embeddings, the head (unless tied) and the final norm."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2) + self.hidden_size

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """From a config.json mapping (a multimodal config's text_config is used when present). Raises ShapeUnknown."""
        config = config.get("text_config") or config
        needed = ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size", "num_attention_heads")
        missing = [name for name in needed if not isinstance(config.get(name), int)]
        if missing:
            raise ShapeUnknown(f"config.json has no integer {', '.join(missing)}")
        heads = config["num_attention_heads"]
        return cls(config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"],
                   config["vocab_size"], heads, config.get("num_key_value_heads") or heads,
                   config.get("head_dim") or config["hidden_size"] // heads,
                   bool(config.get("tie_word_embeddings", False)))

    @classmethod
    def from_file(cls, path: Path) -> ModelShape:
        try:
            return cls.from_config(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            if isinstance(error, ShapeUnknown):
                raise
            raise ShapeUnknown(f"{path}: cannot read ({error})") from None


@dataclass(frozen=True)
class MemoryPlan:
    """The settings that decide a run's peak memory."""

    micro_batch: int
    accumulation: int
    seq_len: int
    packing: bool
    compile: bool
    checkpointing: bool = False
    activation_budget: float = 1.0
    fused_ce: bool = False
    lora_r: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lora_dropout: bool = True
    weight_bytes: int = 2  # bf16
    weight_shards: int = 1  # --fsdp: the ranks the weights, LoRA and its optimizer state are sharded over

    @property
    def tokens(self) -> int:
        """Tokens of one micro-step: packed rows are exactly seq_len long; a padded batch is at most that."""
        return self.micro_batch * self.seq_len

    def flags(self) -> str:
        """The command-line flags that select this plan's memory settings."""
        parts = [f"--per_device_train_batch_size {self.micro_batch}", f"--gradient_accumulation_steps "
                 f"{self.accumulation}"]
        if self.checkpointing:
            parts.append("--gradient_checkpointing")
        elif self.compile and self.activation_budget < 1:
            parts.append(f"--activation_memory_budget {self.activation_budget:g}")
        return " ".join(parts)


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    adapter: int
    activations: int
    loss: int
    workspace: int

    @property
    def total(self) -> int:
        return self.weights + self.adapter + self.activations + self.loss + self.workspace

    @property
    def total_gib(self) -> float:
        return self.total / GIB

    def describe(self) -> str:
        parts = (("weights", self.weights), ("LoRA + AdamW", self.adapter), ("activations", self.activations),
                 ("loss", self.loss), ("workspace", self.workspace))
        return f"{self.total_gib:.1f} GiB (" + ", ".join(f"{name} {size / GIB:.1f}" for name, size in parts) + ")"


def adapter_parameters(shape: ModelShape, plan: MemoryPlan) -> int:
    projections = shape.projections()
    per_layer = sum(plan.lora_r * sum(projections[name]) for name in plan.lora_targets if name in projections)
    return shape.num_layers * per_layer


def eager_bytes_per_token_layer(shape: ModelShape) -> int:
    """What an eager decoder layer keeps for backward per token, LoRA dropout aside (bf16, fp32 norm inputs)."""
    h, kv, i, q = shape.hidden_size, shape.kv_width, shape.intermediate_size, shape.q_width
    norms = 2 * 4 * h  # each RMSNorm keeps its fp32 input
    lora_inputs = 2 * (h + q + h + i)  # the inputs of the q/k/v, o, gate/up and down LoRA groups
    attention = 2 * (2 * q + 2 * kv)  # q, k, v (after RoPE) and the output
    mlp = 2 * 3 * i  # gate, up and the activation's output
    return norms + lora_inputs + attention + mlp


def dropout_bytes_per_token_layer(shape: ModelShape) -> int:
    """LoRA dropout: one bool mask and one dropped bf16 copy of each group's input (fused LoRA: one per group)."""
    h, i, q = shape.hidden_size, shape.intermediate_size, shape.q_width
    return 3 * (h + q + h + i)


def budget_share(budget: float) -> float:
    return max(BUDGET_FLOOR, 1 - BUDGET_SLOPE * (1 - budget))


def activation_bytes(shape: ModelShape, plan: MemoryPlan) -> int:
    per_layer = eager_bytes_per_token_layer(shape)
    dropout = dropout_bytes_per_token_layer(shape) if plan.lora_dropout else 0
    if plan.checkpointing:  # each layer's input kept, one layer's activations alive while it is recomputed
        return plan.tokens * (shape.num_layers * 2 * shape.hidden_size + per_layer + dropout)
    if plan.compile:
        kept = per_layer * COMPILED_FACTOR + dropout * COMPILED_DROPOUT_FACTOR
        kept *= budget_share(plan.activation_budget)
    else:
        kept = (per_layer + dropout) * EAGER_FACTOR
    return int(plan.tokens * shape.num_layers * kept)


def loss_bytes(shape: ModelShape, plan: MemoryPlan) -> int:
    if plan.fused_ce:
        return min(plan.tokens, FUSED_CE_CHUNK_TOKENS) * shape.vocab_size * FUSED_CE_BYTES_PER_LOGIT
    return plan.tokens * shape.vocab_size * UNFUSED_CE_BYTES_PER_LOGIT


def weight_bytes(shape: ModelShape, plan: MemoryPlan) -> int:
    """The base's weights on one GPU. Sharded over N ranks (FSDP2): this rank's 1/N share plus what is gathered at
    once: the root unit (embeddings, final norm, head; FSDP keeps the root gathered from forward to backward) and
    two decoder layers (the one computing and the next, prefetched). Not yet calibrated on a GPU run."""
    total = shape.parameters() * plan.weight_bytes
    if plan.weight_shards <= 1:
        return total
    gathered = shape.root_parameters() + 2 * shape.layer_parameters()
    return -(-total // plan.weight_shards) + gathered * plan.weight_bytes


def estimate_peak(shape: ModelShape, plan: MemoryPlan) -> MemoryEstimate:
    """The run's peak of allocated GPU memory (what torch.cuda.max_memory_allocated reports)."""
    return MemoryEstimate(weights=weight_bytes(shape, plan),
                          adapter=-(-adapter_parameters(shape, plan) * ADAPTER_BYTES_PER_PARAM // plan.weight_shards),
                          activations=activation_bytes(shape, plan), loss=loss_bytes(shape, plan),
                          workspace=WORKSPACE_BYTES)


def usable_bytes(free: int, total: int) -> int:
    """What a run may plan to allocate: the free memory less HEADROOM_SHARE of the card (the caching allocator
    reserves blocks beyond what it hands out, and the CUDA context grows with the first kernels)."""
    return max(0, free - int(HEADROOM_SHARE * total))


@dataclass(frozen=True)
class MemoryChoice:
    requested: MemoryPlan
    chosen: MemoryPlan
    estimate: MemoryEstimate  # of the chosen plan
    requested_estimate: MemoryEstimate
    usable: int
    changes: tuple[str, ...]  # what differs from the request, in words; empty when the request fits
    fits: bool  # False: not even the leanest candidate fits the estimate

    def describe(self) -> str:
        usable = f"{self.usable / GIB:.1f} GiB usable"
        if not self.changes:
            verdict = "fit" if self.fits else "do not fit, and nothing leaner is possible"
            return f"memory: estimated peak {self.estimate.describe()} against {usable}: the settings as given " \
                   f"{verdict}"
        head = (f"memory: the settings as given need about {self.requested_estimate.total_gib:.1f} GiB, more than "
                f"{usable}; ")
        if not self.fits:
            return head + (f"even the leanest choice ({'; '.join(self.changes)}) needs about "
                           f"{self.estimate.total_gib:.1f} GiB: running it, it may run out of memory")
        return head + (f"chose {'; '.join(self.changes)} (same effective batch): estimated peak "
                       f"{self.estimate.describe()}")


def candidates(plan: MemoryPlan) -> list[tuple[float, MemoryPlan, tuple[str, ...]]]:
    """(relative speed, plan, changes in words) for every leaner variant of `plan`, the plan itself first."""
    budgets = [plan.activation_budget]
    if plan.compile and not plan.checkpointing:
        budgets += [b for b in BUDGETS_TRIED if b < plan.activation_budget]
    micro_batches = [m for m in range(plan.micro_batch, 0, -1) if plan.micro_batch % m == 0]
    found = []
    for budget, micro, checkpointing in itertools.product(budgets, micro_batches, (plan.checkpointing, True)):
        if checkpointing and budget != plan.activation_budget:
            continue  # checkpointing keeps only the layer inputs: a budget changes nothing then
        speed, changes = 1.0, []
        if budget != plan.activation_budget:
            speed *= CANDIDATE_SPEED[f"budget{budget:g}"]
            changes.append(f"--activation_memory_budget {budget:g}")
        halvings = (plan.micro_batch // micro).bit_length() - 1
        if micro != plan.micro_batch:
            speed *= CANDIDATE_SPEED["halve_batch"] ** max(1, halvings)
            accumulation = plan.accumulation * plan.micro_batch // micro
            changes.append(f"micro-batch {micro} with accumulation {accumulation} (was {plan.micro_batch} x "
                           f"{plan.accumulation})")
        if checkpointing and not plan.checkpointing:
            speed *= CANDIDATE_SPEED["checkpointing"]
            changes.append("--gradient_checkpointing")
        found.append((speed, replace(plan, activation_budget=budget, micro_batch=micro, checkpointing=checkpointing,
                                     accumulation=plan.accumulation * plan.micro_batch // micro), tuple(changes)))
    return found


def choose_plan(shape: ModelShape, plan: MemoryPlan, usable: int) -> MemoryChoice:
    """The requested plan if its estimate fits `usable` bytes, else the fastest candidate that fits (ties: the
    leaner one), else the leanest candidate of all, marked as not fitting."""
    requested = estimate_peak(shape, plan)
    scored = [(speed, estimate_peak(shape, variant), variant, changes) for speed, variant, changes in
              candidates(plan)]
    fitting = [entry for entry in scored if entry[1].total <= usable]
    if fitting:
        speed, estimate, chosen, changes = max(fitting, key=lambda entry: (entry[0], -entry[1].total))
        return MemoryChoice(plan, chosen, estimate, requested, usable, changes, True)
    _speed, estimate, chosen, changes = min(scored, key=lambda entry: entry[1].total)
    return MemoryChoice(plan, chosen, estimate, requested, usable, changes, False)


@dataclass(frozen=True)
class Calibration:
    """A measured peak: the plan, the shape's name, the measured GiB (max_memory_allocated), where it comes from."""

    name: str
    plan: MemoryPlan
    measured_gib: float
    source: str


LLAMA_8B = ModelShape(4096, 14336, 32, 128256, 32, 8, 128)
_SEED = MemoryPlan(micro_batch=4, accumulation=2, seq_len=2048, packing=True, compile=True, fused_ce=True)
CALIBRATION = (
    Calibration("packed, compiled, dropout 0.05 (the CLI)", _SEED, 59.7,
                "docs/2026-12-06-benchmark-history.md section 4 (H200) and section 8 (H100)"),
    Calibration("packed, compiled, no dropout", replace(_SEED, lora_dropout=False), 51.3,
                "docs/2026-12-06-benchmark-history.md section 1b/1c: trainer+compile+4rows (H200)"),
    Calibration("packed, compiled, 2 rows, no dropout", replace(_SEED, micro_batch=2, lora_dropout=False), 34.1,
                "docs/2026-12-06-benchmark-history.md section 1b: trainer+compile+2rows (H200)"),
    Calibration("packed, compiled, 2 rows x accumulation 4, dropout", replace(_SEED, micro_batch=2, accumulation=4),
                38.3, "benchmarks/README.md: train-speed-fixed-microbatch, 2 x 2,048, compile mode default (H100)"),
    Calibration("packed, compiled, budget 0.6, dropout", replace(_SEED, activation_budget=0.6), 38.2,
                "docs/2026-12-06-benchmark-history.md sections 1c and 4: +budget0.6 (H200)"),
    Calibration("packed, eager, dropout (--memory_fit off)", replace(_SEED, compile=False), 70.6,
                "docs/2026-12-06-benchmark-history.md section 8: the seed's flags without --torch_compile (H100)"),
    Calibration("packed, eager, 2 rows x accumulation 4, dropout",
                replace(_SEED, compile=False, micro_batch=2, accumulation=4), 43.8,
                "docs/2026-12-06-benchmark-history.md section 8 (H100)"),
    Calibration("unpacked, compiled, transformers loss", replace(_SEED, packing=False, fused_ce=False), 66.5,
                "docs/2026-12-06-benchmark-history.md section 4 run J (H200) and section 8 (H100)"),
)
