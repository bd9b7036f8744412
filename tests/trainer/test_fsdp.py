"""--fsdp on CPU: two gloo processes under torchrun shard the tiny Llama with FSDP2, and train as one process does.

Two processes with 4 rows each take the same 8 rows per step as one process with 8 (accelerate shards each batch of
the one shuffled order), so their losses and adapters must agree; checkpoints must resume on the other world size
and give the uninterrupted run's adapter; the adapter must merge with the logit proof.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import logged, run_trainer, torchrun, train_args

pytestmark = pytest.mark.slow
SHARDED = ["--fsdp", "--per_device_train_batch_size", "4"]  # two ranks x 4 rows: the 8 rows of one process
STEPS = ["--max_steps", "6", "--save_steps", "3", "--logging_steps", "1"]
LOSS_TOLERANCE = 1e-4  # relative; measured 7e-6 absolute on losses of 1.4-4.2 (float sums in another order)
ADAPTER_TOLERANCE = 2e-3  # measured 4.1e-4 after 6 AdamW steps at lr 1e-2 (weights up to 0.17)
RESUME_TOLERANCE = 1e-5  # measured 7e-8: a resumed run repeats the uninterrupted one


def adapter(output: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(output / "adapter" / "adapter_model.safetensors"))


def largest_difference(first: dict, second: dict) -> float:
    assert sorted(first) == sorted(second)
    return max(float((first[name] - second[name]).abs().max()) for name in first)


@pytest.fixture(scope="module")
def runs(tiny_model: Path, chat_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same 6 steps sharded over two processes (4 rows each) and in one process (8 rows)."""
    root = tmp_path_factory.mktemp("fsdp")
    sharded = torchrun(train_args(tiny_model, chat_data, root / "sharded", *SHARDED, *STEPS), root / "debug")
    assert sharded.returncode == 0, sharded.stderr[-4000:]
    single = run_trainer(train_args(tiny_model, chat_data, root / "single", *STEPS,
                                    "--per_device_train_batch_size", "8"))
    assert single.returncode == 0, single.stderr[-4000:]
    return {"sharded": root / "sharded", "single": root / "single", "debug": root / "debug", "log": sharded.stderr}


def test_sharded_training_equals_one_process(runs: dict) -> None:
    for rank in (0, 1):
        setup = (runs["debug"] / f"setup-rank{rank}.txt").read_text()
        assert setup.startswith("world_size 2, model wrapped in FSDP"), setup  # FSDP2's class, not DDP
    weights = [(runs["debug"] / f"weights-rank{rank}.txt").read_text() for rank in (0, 1)]
    assert weights[0] == weights[1]  # the gathered adapter, the same on both ranks
    sharded, single = logged(runs["sharded"], "loss"), logged(runs["single"], "loss")
    assert [step for step, _ in sharded] == [step for step, _ in single] == [1, 2, 3, 4, 5, 6]
    for (_step, first), (_same, second) in zip(sharded, single, strict=True):
        assert first == pytest.approx(second, rel=LOSS_TOLERANCE)
    assert single[-1][1] < single[0][1] / 2  # it learned: the comparison is not between two untrained models
    assert largest_difference(adapter(runs["sharded"]), adapter(runs["single"])) < ADAPTER_TOLERANCE
    assert "--fsdp: FSDP2 over 2 ranks, one unit per LlamaDecoderLayer" in runs["log"]
    assert "--fsdp: estimated peak per rank" in runs["log"]


def test_rank_zero_writes_a_checkpoint_in_the_one_process_format(runs: dict) -> None:
    import torch

    checkpoint = runs["sharded"] / "checkpoint-3"
    assert (checkpoint / "COMPLETE").is_file() and (checkpoint / "adapter_model.safetensors").is_file()
    assert not list(checkpoint.glob("pytorch_model_fsdp*")) and not list(checkpoint.glob("optimizer_*"))
    sharded = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    single = torch.load(runs["single"] / "checkpoint-3" / "optimizer.pt", weights_only=True)
    assert sharded["state"].keys() == single["state"].keys()
    for index, entry in single["state"].items():
        assert sharded["state"][index]["exp_avg"].shape == entry["exp_avg"].shape  # full tensors, not shards


def test_a_sharded_checkpoint_resumes_in_one_process(runs: dict, tiny_model: Path, chat_data: Path,
                                                     tmp_path: Path) -> None:
    copy = shutil.copytree(runs["sharded"], tmp_path / "run", ignore=shutil.ignore_patterns("checkpoint-6",
                                                                                             "adapter"))
    resumed = run_trainer(train_args(tiny_model, chat_data, copy, "--fsdp", *STEPS, "--per_device_train_batch_size",
                                     "8", "--resume_from_checkpoint", "auto"))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"resuming from {copy / 'checkpoint-3'}" in resumed.stderr
    assert "--fsdp: one process, nothing to shard" in resumed.stderr
    assert largest_difference(adapter(copy), adapter(runs["sharded"])) < RESUME_TOLERANCE


def test_a_one_process_checkpoint_resumes_sharded(runs: dict, tiny_model: Path, chat_data: Path,
                                                  tmp_path: Path) -> None:
    copy = shutil.copytree(runs["single"], tmp_path / "run", ignore=shutil.ignore_patterns("checkpoint-6", "adapter"))
    resumed = torchrun(train_args(tiny_model, chat_data, copy, *SHARDED, *STEPS, "--resume_from_checkpoint", "auto"))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"resuming from {copy / 'checkpoint-3'}" in resumed.stderr
    assert json.loads((copy / "summary.json").read_text())["steps"] == 6
    assert largest_difference(adapter(copy), adapter(runs["single"])) < RESUME_TOLERANCE


def test_the_sharded_runs_adapter_merges_with_the_logit_proof(runs: dict, tiny_model: Path, tmp_path: Path) -> None:
    from trainer import merge

    result = merge.merge_adapter(str(tiny_model), runs["sharded"] / "adapter", tmp_path / "merged")
    assert result.check.max_abs_diff <= result.check.tolerance * result.check.logit_scale  # merge also raised if not
    assert (tmp_path / "merged" / "config.json").is_file()


def test_packing_and_fused_lora_shard_as_they_train_in_one_process(tiny_model: Path, chat_data: Path,
                                                                   tmp_path: Path) -> None:
    flags = ["--packing", "on", "--fused_lora", "on", "--max_steps", "4", "--save_steps", "4", "--logging_steps", "1"]
    sharded = torchrun(train_args(tiny_model, chat_data, tmp_path / "sharded", *SHARDED, *flags))
    assert sharded.returncode == 0, sharded.stderr[-4000:]
    assert "--fsdp: the chunked fused cross-entropy is off" in sharded.stderr
    single = run_trainer(train_args(tiny_model, chat_data, tmp_path / "single", *flags, "--fused_ce", "off",
                                    "--per_device_train_batch_size", "8"))
    assert single.returncode == 0, single.stderr[-4000:]
    for (_step, first), (_same, second) in zip(logged(tmp_path / "sharded", "loss"), logged(tmp_path / "single",
                                                                                            "loss"), strict=True):
        assert first == pytest.approx(second, rel=LOSS_TOLERANCE)
    assert largest_difference(adapter(tmp_path / "sharded"), adapter(tmp_path / "single")) < ADAPTER_TOLERANCE


def test_fsdp_with_the_fused_loss_on_is_refused_before_anything_loads(tiny_model: Path, chat_data: Path,
                                                                      tmp_path: Path) -> None:
    result = run_trainer(train_args(tiny_model, chat_data, tmp_path / "out", "--fsdp", "--fused_ce", "on"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --fsdp with --fused_ce on: the fused loss bypasses FSDP's gathering of the embeddings and head; use "
        "--fused_ce off (or auto, which is off under --fsdp)"]
    assert not (tmp_path / "out").exists()
