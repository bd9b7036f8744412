"""End-to-end training on the tiny Llama (CPU): the loss falls, the model learns, kill -9 + resume, Ctrl-C."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import REPO, greedy_answers, logged, run_trainer, subprocess_env, train_args, trainer_command
from tiny import ANSWER_OF

torch = pytest.importorskip("torch")


def test_training_lowers_loss_and_learns_the_mapping(tiny_model: Path, chat_data: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    result = run_trainer(train_args(tiny_model, chat_data, output, "--max_steps", "40", "--save_steps", "20",
                                    "--eval_split", "0.1", "--eval_steps", "20"))
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [loss for _step, loss in logged(output, "loss")]
    assert losses[0] > 1.0 and losses[-1] < 0.2 * losses[0], losses
    eval_loss = logged(output, "eval_loss")
    assert eval_loss[-1][1] < 0.5
    assert logged(output, "eval_perplexity") == [(step, pytest.approx(math.exp(loss))) for step, loss in eval_loss]
    assert greedy_answers(tiny_model, output / "adapter") == ANSWER_OF
    summary = json.loads((output / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["tokens_per_second"] > 0 and summary["samples_per_hour"] > 0
    assert summary["samples"] == 40 * 8  # unpacked: the rows of 40 batches of 8
    assert "padding: batches of 8 padded to their longest row are" in result.stderr  # the --packing hint
    assert summary["wall_seconds"] > 0 and summary["peak_gpu_memory_gib"] is None  # CPU: no GPU memory to report
    assert "samples/h" in result.stderr and "tokens/s" in result.stderr and "peak GPU memory" in result.stderr
    assert all(f"{field}=" in result.stderr for field in ("loss", "lr", "tok/s"))  # the progress bar's postfix
    assert (output / "loss.png").stat().st_size > 0
    assert all((output / f"checkpoint-{step}" / "COMPLETE").is_file() for step in (20, 40))
    assert "Traceback" not in result.stderr


def test_packed_training_evaluates_on_packed_rows(tiny_model: Path, chat_data: Path, tmp_path: Path) -> None:
    """--packing with held-out rows: the eval set is packed like the train set (the collator takes packed rows)."""
    output = tmp_path / "packed"
    result = run_trainer(train_args(tiny_model, chat_data, output, "--packing", "on", "--max_steps", "10",
                                    "--eval_split", "0.1", "--eval_steps", "5"))
    assert result.returncode == 0, result.stderr[-3000:]
    eval_loss = logged(output, "eval_loss")
    assert [step for step, _loss in eval_loss] == [5, 10] and all(math.isfinite(loss) for _step, loss in eval_loss)
    assert eval_loss[-1][1] < eval_loss[0][1]


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def adapter_weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(directory / "adapter_model.safetensors"))


@pytest.mark.slow
def test_resume_after_kill_matches_an_uninterrupted_run(tiny_model: Path, chat_data: Path, tmp_path: Path) -> None:
    steps = ["--max_steps", "150", "--save_steps", "10", "--logging_steps", "10"]
    reference = tmp_path / "reference"
    assert run_trainer(train_args(tiny_model, chat_data, reference, *steps)).returncode == 0
    crashed = tmp_path / "crashed"
    process = subprocess.Popen(trainer_command(train_args(tiny_model, chat_data, crashed, *steps)),
                               env=subprocess_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(crashed / "checkpoint-20" / "COMPLETE", process)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert not (crashed / "adapter").exists() and not (crashed / "checkpoint-150").exists()
    resumed = run_trainer(train_args(tiny_model, chat_data, crashed, *steps, "--resume_from_checkpoint", "auto"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    expected, actual = adapter_weights(reference / "adapter"), adapter_weights(crashed / "adapter")
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, atol=1e-4, rtol=1e-3, msg=name)
    assert logged(crashed, "loss")[-1] == pytest.approx(logged(reference, "loss")[-1], rel=1e-3)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tiny_model: Path, chat_data: Path, tmp_path: Path) -> None:
    output = tmp_path / "interrupted"
    args = train_args(tiny_model, chat_data, output, "--max_steps", "100000", "--save_steps", "100000")
    process = subprocess.Popen(trainer_command(args), env=subprocess_env(), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    wait_for(output / "metrics.jsonl", process)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "--resume_from_checkpoint auto" in err
    checkpoints = [p for p in output.glob("checkpoint-*") if (p / "COMPLETE").is_file()]
    assert len(checkpoints) == 1
