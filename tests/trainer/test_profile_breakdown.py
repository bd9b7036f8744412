"""benchmarks/profile_breakdown.py: the profiler's events sorted into the speed issue's categories."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from profile_breakdown import breakdown, category_of, is_lora_matmul  # noqa: E402


@dataclass
class Event:  # the fields of torch.profiler's FunctionEventAvg that the breakdown reads
    key: str
    self_device_time_total: float = 0.0
    self_cpu_time_total: float = 0.0
    input_shapes: list = field(default_factory=list)
    device_type: str = "DeviceType.CPU"
    is_user_annotation: bool = False
    count: int = 1


@pytest.mark.parametrize(("name", "category"), [
    ("nvjet_tst_128x256_64x4_2x1_v_bz_coopB_TNT", "matmul (base + lm head)"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "matmul (base + lm head)"),
    ("triton_tem_fused_flex_attention_0", "attention"),
    ("triton_tem_fused_addmm_mm_3", "matmul (base + lm head)"),  # max-autotune's Triton GEMM
    ("flash_fwd_kernel", "attention"),
    ("void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float>", "norm, RoPE, SwiGLU, casts, other"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::silu_kernel>", "norm, RoPE, SwiGLU, casts, other"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>", "optimizer (AdamW)"),
    ("aten::_log_softmax", "loss (cross-entropy)"),
])
def test_kernel_names_fall_in_their_category(name: str, category: str) -> None:
    assert category_of(name) == category


def test_lora_matmuls_are_told_by_the_rank_in_their_shapes() -> None:
    assert is_lora_matmul("aten::mm", [[8192, 4096], [4096, 16]], rank=16)
    assert not is_lora_matmul("aten::mm", [[8192, 4096], [4096, 4096]], rank=16)
    assert is_lora_matmul("aten::mm", [[8192, 4096], [4096, 48]], rank=16)  # q,k,v's stacked A
    assert not is_lora_matmul("aten::mm", [[8192, 4144], [4144, 6144]], rank=16)  # no rank multiple up to 3r
    assert not is_lora_matmul("aten::add", [[8192, 16]], rank=16)


def test_gpu_breakdown_splits_lora_out_of_the_matmul_kernels_and_idle_is_the_rest() -> None:
    events = [
        Event("nvjet_gemm_kernel", self_device_time_total=900.0, device_type="DeviceType.CUDA", count=40),
        Event("triton_tem_fused_flex_attention_0", self_device_time_total=300.0, device_type="DeviceType.CUDA"),
        Event("multi_tensor_apply_kernel", self_device_time_total=50.0, device_type="DeviceType.CUDA"),
        Event("aten::mm", self_device_time_total=120.0, input_shapes=[[4096, 4096], [4096, 16]]),  # LoRA's launcher
        Event("aten::mm", self_device_time_total=780.0, input_shapes=[[4096, 4096], [4096, 4096]]),
        # Inductor's graph call mirrored on the GPU timeline: it spans kernels already counted
        Event("## Call CompiledFxGraph fabc ##", self_device_time_total=1200.0, device_type="DeviceType.CUDA",
              is_user_annotation=True),
    ]
    result = breakdown(events, wall_seconds=0.002, data_seconds=0.0001, steps=2, lora_rank=16, on_gpu=True)
    assert result.micros["matmul (LoRA)"] == 120.0
    assert result.micros["matmul (base + lm head)"] == 780.0
    assert result.micros["attention"] == 300.0 and result.micros["optimizer (AdamW)"] == 50.0
    assert result.micros["idle (waiting on the host: Python, launches)"] == pytest.approx(2000 - 1250)
    assert result.as_dict()["wall_ms_per_step"] == pytest.approx(1.0)
    # kernels, not launcher ops or annotations, are counted and listed, longest first
    assert result.kernels == 42
    assert [(category, name) for category, name, _, _ in result.top] == [
        ("matmul (base + lm head)", "nvjet_gemm_kernel"), ("attention", "triton_tem_fused_flex_attention_0"),
        ("optimizer (AdamW)", "multi_tensor_apply_kernel")]
    assert result.as_dict()["kernels_per_step"] == 21
    assert any("21 kernels per step" in line for line in result.lines())
