"""--fsdp without processes: the sharded memory estimate against hand arithmetic, the refused flag combinations,
the TrainingArguments it adds."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from trainer.config import TrainConfig
from trainer.memory import (
    ADAPTER_BYTES_PER_PARAM,
    GIB,
    HEADROOM_SHARE,
    LLAMA_8B,
    MemoryPlan,
    ModelShape,
    estimate_peak,
)
from trainer.sharding import MAX_GPUS_CONSIDERED, fsdp_problems, fused_ce_under_fsdp, sharding_verdict

LLAMA_70B = ModelShape(hidden_size=8192, intermediate_size=28672, num_layers=80, vocab_size=128256, num_heads=64,
                       num_kv_heads=8, head_dim=128)
H100_BYTES = 80 * GIB
USABLE = int(H100_BYTES * (1 - HEADROOM_SHARE))
# The CLI's 8B settings (packed rows of 2,048, compiled, LoRA r=16 on all seven projections, dropout), with the
# transformers loss that --fsdp trains with.
CLI_8B = MemoryPlan(micro_batch=4, accumulation=2, seq_len=2048, packing=True, compile=True, fused_ce=False)
# A lean 70B run: one row of 2,048 tokens with gradient checkpointing.
LEAN_70B = MemoryPlan(micro_batch=1, accumulation=8, seq_len=2048, packing=True, compile=False, checkpointing=True)


def llama_parameters(hidden: int, intermediate: int, layers: int, vocab: int, kv_width: int) -> tuple[int, int]:
    """(one decoder layer's parameters, the root's: embeddings + untied head + final norm), written out."""
    layer = hidden * hidden * 2 + hidden * kv_width * 2 + hidden * intermediate * 3 + 2 * hidden
    root = vocab * hidden * 2 + hidden
    return layer, root


def test_the_8b_parameter_count_is_the_published_one() -> None:
    layer, root = llama_parameters(4096, 14336, 32, 128256, 1024)
    assert (layer, root) == (218_112_000, 1_050_677_248)
    assert LLAMA_8B.parameters() == 32 * layer + root == 8_030_261_248  # "8.03B"


def test_the_8b_shape_sharded_over_two_gpus_matches_hand_arithmetic() -> None:
    layer, root = llama_parameters(4096, 14336, 32, 128256, 1024)
    bf16 = 2 * (32 * layer + root)  # 16,060,522,496 bytes, 14.96 GiB
    adapter = 16 * 32 * (8192 * 2 + 5120 * 2 + 18432 * 3) * ADAPTER_BYTES_PER_PARAM  # r (in + out): q, o; k, v; MLP
    rest = estimate_peak(LLAMA_8B, CLI_8B)  # activations, loss and workspace: not sharded
    not_sharded = rest.activations + rest.loss + rest.workspace
    verdict = sharding_verdict(LLAMA_8B, CLI_8B, H100_BYTES, gpus=2)
    assert verdict.one_gpu.total == bf16 + adapter + not_sharded
    gathered = 2 * (root + 2 * layer)  # the root unit and two decoder layers gathered at once
    assert verdict.sharded.weights == bf16 // 2 + gathered == 11_004_063_744
    assert verdict.sharded.total == bf16 // 2 + gathered + adapter // 2 + not_sharded
    assert verdict.sharded.activations == verdict.one_gpu.activations
    assert verdict.fits_one_gpu and verdict.fits_sharded and verdict.gpus_needed == 1
    assert "one GPU:" in verdict.describe() and "FSDP on 2:" in verdict.describe()


def test_a_70b_shape_does_not_fit_one_gpu_and_needs_the_gpus_the_arithmetic_says() -> None:
    layer, root = llama_parameters(8192, 28672, 80, 128256, 1024)
    assert 80 * layer + root == LLAMA_70B.parameters() == 70_553_706_496
    bf16 = 2 * (80 * layer + root)  # 141 GB: more than any one GPU
    adapter = 16 * 80 * (16384 * 2 + 9216 * 2 + 36864 * 3) * ADAPTER_BYTES_PER_PARAM
    gathered = 2 * (root + 2 * layer)
    tokens = 2048
    # gradient checkpointing keeps each layer's bf16 input, plus one layer's activations (and dropout's) recomputed
    one_layer = 2 * 4 * 8192 + 2 * (8192 * 3 + 28672) + 2 * (2 * 8192 + 2 * 1024) + 2 * 3 * 28672  # 380,928
    dropout = 3 * (8192 * 3 + 28672)  # 159,744
    activations = tokens * (80 * 2 * 8192 + one_layer + dropout)  # 3,791,650,816 bytes
    assert estimate_peak(LLAMA_70B, LEAN_70B).activations == activations
    loss = tokens * 128256 * 8  # transformers' cross-entropy keeps the logits, fp32 log-softmax and gradient
    workspace = GIB // 2
    assert estimate_peak(LLAMA_70B, LEAN_70B).loss == loss
    fixed = gathered + activations + loss + workspace
    needed = math.ceil((bf16 + adapter) / (USABLE - fixed))  # the smallest N: (bf16 + adapter) / N + fixed <= usable
    verdict = sharding_verdict(LLAMA_70B, LEAN_70B, H100_BYTES, gpus=8)
    assert not verdict.fits_one_gpu and verdict.one_gpu.total > bf16
    assert verdict.gpus_needed == needed == 3
    per_gpu_on_8 = -(-bf16 // 8) + gathered + -(-adapter // 8) + activations + loss + workspace
    assert verdict.sharded.total == per_gpu_on_8 and verdict.fits_sharded
    assert sharding_verdict(LLAMA_70B, LEAN_70B, H100_BYTES, gpus=2).fits_sharded is False


def test_activations_larger_than_a_gpu_need_no_number_of_gpus() -> None:
    verdict = sharding_verdict(LLAMA_70B, replace(CLI_8B, micro_batch=16), H100_BYTES, gpus=8)
    assert verdict.gpus_needed is None
    assert f"does not fit on up to {MAX_GPUS_CONSIDERED} GPUs" in verdict.describe()


def config(**values: object) -> TrainConfig:
    return TrainConfig(model_name="m", dataset_path="d.jsonl", fsdp=True, **values)


@pytest.mark.parametrize(("values", "named"), [
    ({"fused_ce": "on"}, "--fsdp with --fused_ce on"),
    ({"backend": "unsloth"}, "--fsdp with --backend unsloth"),
])
def test_combinations_that_do_not_shard_are_named(values: dict, named: str) -> None:
    assert any(problem.startswith(named) for problem in fsdp_problems(config(**values)))


def test_composing_paths_are_not_refused_and_auto_fused_loss_turns_off() -> None:
    assert fsdp_problems(config(fused_lora="on", packing="on", torch_compile=True)) == []
    assert fsdp_problems(replace(config(fused_ce="on"), fsdp=False)) == []
    assert fused_ce_under_fsdp(config(fused_ce="auto"), True) is False
    assert fused_ce_under_fsdp(replace(config(), fsdp=False), True) is True


def test_fsdp_arguments_wrap_the_decoder_layer_class(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.sharding import fsdp_arguments

    monkeypatch.setenv("WORLD_SIZE", "2")
    arguments = fsdp_arguments(TrainConfig(model_name=str(tiny_model), dataset_path="d.jsonl", fsdp=True))
    assert arguments["fsdp"] is True
    assert arguments["fsdp_config"]["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert arguments["fsdp_config"]["state_dict_type"] == "FULL_STATE_DICT"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert fsdp_arguments(TrainConfig(model_name=str(tiny_model), dataset_path="d.jsonl", fsdp=True)) == {}


def test_fsdp_is_off_by_default_and_reachable_from_yaml_and_the_command_line(tmp_path: Path) -> None:
    from trainer.cli import CONFIGS, build_config, build_parser

    parser = build_parser()
    (tmp_path / "run.yaml").write_text("fsdp: true\n")
    given = {"default": [], "yaml": ["--config", str(tmp_path / "run.yaml")], "flag": ["--fsdp"],
             "flag over yaml": ["--config", str(tmp_path / "run.yaml"), "--no-fsdp"]}
    found = {name: build_config(CONFIGS["train"], parser.parse_args(["train", "--model_name", "m", *args])).fsdp
             for name, args in given.items()}
    assert found == {"default": False, "yaml": True, "flag": True, "flag over yaml": False}
