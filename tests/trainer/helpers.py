"""Shared helpers for the trainer tests: the tiny model dir, runs of the CLI in-process and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TEST_STACK = "cpu-test"
# Settings that make the tiny synthetic task learnable in a few dozen CPU steps.
FAST_FLAGS = [
    "--stack", TEST_STACK, "--max_seq_length", "32", "--per_device_train_batch_size", "8",
    "--learning_rate", "1e-2", "--lora_r", "8", "--lora_alpha", "16", "--lora_dropout", "0.0",
    "--warmup_ratio", "0.0", "--lr_scheduler_type", "constant", "--logging_steps", "5", "--seed", "7",
    "--packing", "off",  # the tests' expectations are for padded batches unless a test passes --packing
]


def engine_ready() -> bool:
    """True when envdoctor's check and the bundled cpu-test stack exist (the engine owner ships them)."""
    try:
        import envdoctor

        report = envdoctor.check(stack=TEST_STACK)
    except Exception:  # noqa: BLE001 - any failure means the engine is not wired yet
        return False
    return report.exit_code == 0


# Until envdoctor's check and the cpu-test stack exist, the subprocess runs skip only the environment check;
# the NumPy and quantized-base gates always run.
_BOOT_WITHOUT_ENGINE = (
    "import sys, trainer.gate as g; g.environment_refusal = lambda *a, **k: None; "
    "from trainer.cli import main; sys.exit(main(sys.argv[1:]))"
)


def trainer_command(args: list[str]) -> list[str]:
    if engine_ready():
        return [sys.executable, "-m", "trainer", *args]
    return [sys.executable, "-c", _BOOT_WITHOUT_ENGINE, *args]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env.update({"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"})
    return env


def run_trainer(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(trainer_command(args), env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def train_args(model: Path, data: Path, output: Path, *extra: str) -> list[str]:
    return ["--model_name", str(model), "--dataset_path", str(data), "--output_dir", str(output), *FAST_FLAGS, *extra]


def logged(output: Path, key: str) -> list[tuple[int, Any]]:
    """(step, value) for every metrics.jsonl row that has key."""
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return [(row["step"], row[key]) for row in rows if key in row]


def greedy_answers(model_dir: Path, adapter: Path | None = None) -> dict[str, str]:
    """The one-token greedy answer to every synthetic question (base + adapter, or a merged model dir)."""
    import torch
    from tiny import KEY_WORDS, question_for
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(adapter or model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    answers = {}
    for key in KEY_WORDS:
        text = tokenizer.apply_chat_template([{"role": "user", "content": question_for(key)}], tokenize=False,
                                             add_generation_prompt=True)
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            out = model.generate(input_ids=ids, max_new_tokens=1, do_sample=False, pad_token_id=0)
        answers[key] = tokenizer.decode(out[0, ids.shape[1]:]).strip()
    return answers


def torchrun(args: list[str], debug_dir: Path | None = None, processes: int = 2,
             *launcher_flags: str) -> subprocess.CompletedProcess:
    """The trainer under torchrun on gloo processes (the torchrun next to this Python); on a timeout the whole
    process group (torchrun and its workers) is killed."""
    import shutil
    import signal
    import socket

    import pytest

    launcher = Path(sys.executable).with_name("torchrun")
    if not launcher.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = subprocess_env() | ({"TRAINER_DEBUG_DIR": str(debug_dir)} if debug_dir else {})
    command = [str(launcher) if launcher.exists() else "torchrun", "--nproc_per_node", str(processes),
               "--master_addr", "127.0.0.1", "--master_port", str(port), *launcher_flags, "-m", "trainer", *args]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
