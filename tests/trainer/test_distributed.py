"""Multi-process training on CPU: torchrun --nproc_per_node 2 with the gloo backend, on the tiny Llama.

The trainer's debug trace (TRAINER_DEBUG_DIR) records per rank the gate's verdict, the data-file line of every
training sample the rank consumed, and how the model was wrapped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import logged, run_trainer, torchrun, train_args

pytestmark = pytest.mark.slow


def trace(debug_dir: Path, kind: str, rank: int) -> list[str]:
    return (debug_dir / f"{kind}-rank{rank}.txt").read_text().splitlines()


@pytest.fixture(scope="module")
def two_process_run(tiny_model: Path, chat_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    root = tmp_path_factory.mktemp("ddp")
    output, debug = root / "run", root / "debug"
    result = torchrun(train_args(tiny_model, chat_data, output, "--num_train_epochs", "1", "--save_steps", "5"),
                      debug)
    return output, debug, result


def test_every_rank_gates_and_trains_its_own_shard(two_process_run: tuple, chat_data: Path) -> None:
    output, debug, result = two_process_run
    assert result.returncode == 0, result.stderr[-4000:]
    assert [trace(debug, "gate", rank) for rank in (0, 1)] == [["rank 0: passed"], ["rank 1: passed"]]
    for rank in (0, 1):
        assert trace(debug, "setup", rank)[0].startswith("world_size 2, model wrapped in DistributedDataParallel")
    seen = [[int(line) for line in trace(debug, "samples", rank)] for rank in (0, 1)]
    rows = len(chat_data.read_text().splitlines())
    assert len(seen[0]) == len(seen[1]) == rows // 2  # one epoch: every sample once, split evenly
    assert sorted(seen[0] + seen[1]) == list(range(1, rows + 1))
    assert trace(debug, "weights", 0) == trace(debug, "weights", 1)  # DDP synchronised the gradients


def test_packed_rows_train_with_the_fused_loss_under_ddp(tiny_model: Path, chat_data: Path, tmp_path: Path) -> None:
    output, debug = tmp_path / "packed", tmp_path / "debug"
    result = torchrun(train_args(tiny_model, chat_data, output, "--packing", "--max_steps", "12", "--fused_lora",
                                 "on", "--per_device_train_batch_size", "2", "--save_steps", "12"), debug)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "loss: chunked fused cross-entropy" in result.stderr
    assert "--fused_lora on: fused LoRA on 14 projections in 8 groups" in result.stderr  # (as the GPU default)
    # the fused loss runs DDP's forward, so both ranks' gradients were averaged: identical weights after 12 steps
    weights = [trace(debug, "weights", rank) for rank in (0, 1)]
    assert weights[0] == weights[1] and weights[0][0].startswith("lora sum")
    losses = [loss for _step, loss in logged(output, "loss")]
    assert losses[-1] < losses[0], losses


def test_only_rank_zero_prints_and_writes(two_process_run: tuple) -> None:
    output, _debug, result = two_process_run
    combined = result.stdout + result.stderr
    assert combined.count("[trainer] settings:") == 1 and combined.count("done: adapter in") == 1
    steps = [step for step, _loss in logged(output, "loss")]
    assert steps == sorted(set(steps)) == [5, 10]  # one metrics row per logging step, not one per rank
    assert all((output / f"checkpoint-{step}" / "COMPLETE").is_file() for step in (5, 10))
    assert json.loads((output / "summary.json").read_text())["steps"] == 10  # 160 rows / (2 ranks x 8)


def test_a_two_process_checkpoint_resumes_in_one_process(two_process_run: tuple, tiny_model: Path,
                                                         chat_data: Path, tmp_path: Path) -> None:
    output, _debug, _result = two_process_run
    copy = shutil.copytree(output, tmp_path / "run")
    shutil.rmtree(copy / "adapter")
    resumed = run_trainer(train_args(tiny_model, chat_data, copy, "--num_train_epochs", "1", "--save_steps", "5",
                                     "--resume_from_checkpoint", str(copy / "checkpoint-5")))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {copy / 'checkpoint-5'}" in resumed.stderr
    assert json.loads((copy / "summary.json").read_text())["steps"] == 20  # one process: 160 rows / 8 per step
    assert (copy / "adapter" / "adapter_model.safetensors").is_file() and "Traceback" not in resumed.stderr


def test_the_gate_refuses_on_every_rank_and_rank_zero_says_why(tiny_model: Path, chat_data: Path,
                                                               tmp_path: Path) -> None:
    quantized = shutil.copytree(tiny_model, tmp_path / "tiny-llama-bnb-4bit")
    debug = tmp_path / "debug"
    # torchrun stops the other workers as soon as one fails: poll slowly so that both finish their gate first
    result = torchrun(train_args(quantized, chat_data, tmp_path / "out", "--max_steps", "2"), debug, 2,
                      "--monitor-interval", "8")
    assert result.returncode != 0
    assert [trace(debug, "gate", rank) for rank in (0, 1)] == [["rank 0: refused"], ["rank 1: refused"]]
    assert (result.stdout + result.stderr).count("REFUSED: the base model") == 1
    assert not (tmp_path / "out").exists()
