"""Where a training step's time goes: torch.profiler events sorted into the speed issue's categories.

Used by train_speed.py --profile. Kernel (device) time is sorted by kernel name; LoRA matmuls cannot be told from the
base's by kernel name, so their share comes from the CPU-side matmul ops whose input shapes carry the LoRA rank.
On CPU (--tiny) the CPU ops' own time is sorted the same way, so the code path is tested without a GPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_scaled_mm")
CATEGORIES = ("matmul (base + lm head)", "matmul (LoRA)", "attention", "loss (cross-entropy)",
              "optimizer (AdamW)", "norm, RoPE, SwiGLU, casts, other", "idle (waiting on the host: Python, launches)")
_RULES = (  # (category, substrings of a lower-cased kernel or op name), first match wins
    ("optimizer (AdamW)", ("multi_tensor_apply", "_foreach_", "fused_adam", "adam")),
    ("attention", ("flash", "fmha", "attention", "flex", "sdpa", "_efficient_attention")),
    ("loss (cross-entropy)", ("cross_entropy", "log_softmax", "nll_loss", "softmax_backward")),
    # triton_tem_: Inductor's template kernels other than FlexAttention's (caught above): its tuned GEMMs
    ("matmul (base + lm head)", ("gemm", "nvjet", "cutlass", "xmma", "cublas", "aten::mm", "aten::addmm",
                                 "aten::bmm", "aten::baddbmm", "splitk", "triton_tem_")),
)


@dataclass
class Breakdown:
    """Microseconds per category over the profiled steps, the wall time, and the host-side data time."""

    micros: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))
    wall_micros: float = 0.0
    data_micros: float = 0.0
    steps: int = 0
    timed_on: str = "cuda"
    kernels: int = 0  # kernels (GPU) or ops (CPU) run in the profiled steps
    # the longest kernels: (category, name, micros, calls), longest first
    top: list[tuple[str, str, float, int]] = field(default_factory=list)

    def shares(self) -> dict[str, float]:
        return {name: value / self.wall_micros for name, value in self.micros.items()} if self.wall_micros else {}

    def lines(self) -> list[str]:
        per_step = max(self.steps, 1) * 1000
        rows = [f"where the time goes ({self.timed_on} time, {self.steps} steps, "
                f"{self.wall_micros / per_step:.1f} ms per step):"]
        for name, share in self.shares().items():
            rows.append(f"  {name:46} {self.micros[name] / per_step:9.2f} ms {share:7.1%}")
        rows.append(f"  {'data (batch + copy to device; may overlap)':46} {self.data_micros / per_step:9.2f} ms "
                    f"{self.data_micros / self.wall_micros if self.wall_micros else 0:7.1%}")
        rows.append(f"  {self.kernels / max(self.steps, 1):,.0f} kernels per step; the longest:")
        for category, name, micros, calls in self.top:
            rows.append(f"    {micros / per_step:8.2f} ms {calls / max(self.steps, 1):6.0f}x  {category[:12]:12} "
                        f"{name[:90]}")
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {"timed_on": self.timed_on, "steps": self.steps, "wall_ms_per_step": self.wall_micros / 1000 /
                max(self.steps, 1), "data_ms_per_step": self.data_micros / 1000 / max(self.steps, 1),
                "ms_per_step": {k: v / 1000 / max(self.steps, 1) for k, v in self.micros.items()},
                "kernels_per_step": self.kernels / max(self.steps, 1),
                "top": [{"category": c, "name": n, "ms_per_step": m / 1000 / max(self.steps, 1),
                         "calls_per_step": k / max(self.steps, 1)} for c, n, m, k in self.top]}


def category_of(name: str) -> str:
    lowered = name.lower()
    for category, needles in _RULES:
        if any(needle in lowered for needle in needles):
            return category
    return "norm, RoPE, SwiGLU, casts, other"


LORA_GROUP_SIZES = (1, 2, 3)  # fused LoRA stacks the adapters of a group (q,k,v; gate,up): widths r, 2r, 3r


def is_lora_matmul(name: str, shapes: Iterable[Any], rank: int) -> bool:
    """A matmul op with the LoRA rank, or a fused group's stacked ranks (x @ [A_q; A_k; A_v]^T: 3r), as one of its
    input dimensions (A: [d, r] or B: [r, d])."""
    if name not in MATMUL_OPS:
        return False
    widths = {rank * size for size in LORA_GROUP_SIZES}
    return any(isinstance(shape, (list, tuple)) and not widths.isdisjoint(shape) for shape in shapes)


def breakdown(events: Any, wall_seconds: float, data_seconds: float, steps: int, lora_rank: int,
              on_gpu: bool, top: int = 15) -> Breakdown:
    """Sort a profiler's key_averages(group_by_input_shape=True) into CATEGORIES; keep the `top` longest kernels."""
    result = Breakdown(wall_micros=wall_seconds * 1e6, data_micros=data_seconds * 1e6, steps=steps,
                       timed_on="GPU kernel" if on_gpu else "CPU op")
    lora = 0.0
    counted: dict[str, list[Any]] = {}  # name -> [category, micros, calls]
    for event in events:
        name = event.key
        shapes = getattr(event, "input_shapes", None) or []
        category = None
        if on_gpu:
            own = _device_micros(event)
            if _is_device_event(event):  # a kernel: sort by its name
                category = category_of(name)
            elif is_lora_matmul(name, shapes, lora_rank):  # the op that launched LoRA's kernels
                lora += own
        else:
            own = float(getattr(event, "self_cpu_time_total", 0.0))
            if name.startswith(("aten::", "_fused", "Optimizer")) or "triton" in name:
                category = "matmul (LoRA)" if is_lora_matmul(name, shapes, lora_rank) else category_of(name)
        if category is not None:
            result.micros[category] += own
            entry = counted.setdefault(name, [category, 0.0, 0])
            entry[1] += own
            entry[2] += int(getattr(event, "count", 1))
    result.kernels = sum(calls for _, _, calls in counted.values())
    longest = sorted(counted.items(), key=lambda item: -item[1][1])[:top]
    result.top = [(category, name, micros, calls) for name, (category, micros, calls) in longest]
    if on_gpu:
        lora = min(lora, result.micros["matmul (base + lm head)"])
        result.micros["matmul (base + lm head)"] -= lora
        result.micros["matmul (LoRA)"] = lora
    busy = sum(value for key, value in result.micros.items() if not key.startswith("idle"))
    result.micros["idle (waiting on the host: Python, launches)"] = max(0.0, result.wall_micros - busy)
    return result


def _device_micros(event: Any) -> float:
    for attribute in ("self_device_time_total", "self_cuda_time_total"):
        value = getattr(event, attribute, None)
        if value is not None:
            return float(value)
    return 0.0


def _is_device_event(event: Any) -> bool:
    """A kernel on the GPU timeline. Not a user annotation: Kineto mirrors record_function ranges there (Inductor's
    "## Call CompiledFxGraph ##" spans all the kernels of a compiled graph), which would count them twice."""
    device_type = getattr(event, "device_type", None)
    on_device = device_type is not None and str(device_type).endswith(("CUDA", "PrivateUse1"))
    return on_device and not getattr(event, "is_user_annotation", False)
