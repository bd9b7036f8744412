"""End-to-end training on the tiny Llama (CPU): the loss falls, the model learns, kill -9 + resume, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import FAST_FLAGS, REPO, run_trainer, subprocess_env, trainer_command
from tiny import ANSWER_OF, KEY_WORDS, question_for

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")


def train_args(model: Path, data: Path, output: Path, *extra: str) -> list[str]:
    return ["--model_name", str(model), "--dataset_path", str(data), "--output_dir", str(output), *FAST_FLAGS, *extra]


def logged(output: Path, key: str) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return [(row["step"], row[key]) for row in rows if key in row]


def greedy_answers(model_dir: Path, adapter: Path) -> dict[str, str]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(model_dir)), str(adapter)).eval()
    answers = {}
    for key in KEY_WORDS:
        text = tokenizer.apply_chat_template([{"role": "user", "content": question_for(key)}], tokenize=False,
                                             add_generation_prompt=True)
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            out = model.generate(input_ids=ids, max_new_tokens=1, do_sample=False, pad_token_id=0)
        answers[key] = tokenizer.decode(out[0, ids.shape[1]:]).strip()
    return answers


def test_training_lowers_loss_and_learns_the_mapping(tiny_model: Path, chat_data: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    result = run_trainer(train_args(tiny_model, chat_data, output, "--max_steps", "40", "--save_steps", "20",
                                    "--eval_split", "0.1", "--eval_steps", "20"))
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [loss for _step, loss in logged(output, "loss")]
    assert losses[0] > 1.0 and losses[-1] < 0.2 * losses[0], losses
    assert logged(output, "eval_loss")[-1][1] < 0.5
    assert greedy_answers(tiny_model, output / "adapter") == ANSWER_OF
    summary = json.loads((output / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["tokens_per_second"] > 0 and summary["samples_per_hour"] > 0
    assert (output / "loss.png").stat().st_size > 0
    assert all((output / f"checkpoint-{step}" / "COMPLETE").is_file() for step in (20, 40))
    assert "Traceback" not in result.stderr


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def adapter_weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(directory / "adapter_model.safetensors"))


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
