"""The README's training install, from scratch: a new venv, `pip install ".[train]" -c constraints/cpu-test.txt`,
then `envdoctor check --stack cpu-test` passes and the trainer runs 2 steps on a tiny local model (CPU).

Slow (minutes: torch and transformers are installed) and needs the package index that pip is configured with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, TEST_STACK
from tiny import build_tiny_model_dir, synthetic_chat_rows, write_jsonl

INSTALL = f'pip install ".[train]" -c constraints/{TEST_STACK}.txt'


def clean_env() -> dict[str, str]:
    """This process's environment without what would let the new venv see the checkout or this venv."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSAFEPATH")}
    env.update({"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"})
    return env


def run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
@pytest.mark.network
def test_readme_install_checks_green_and_trains(tmp_path: Path) -> None:
    assert INSTALL in (REPO / "README.md").read_text(encoding="utf-8")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--no-input", "--quiet", f"{REPO}[train]", "-c",
         str(REPO / "constraints" / f"{TEST_STACK}.txt")], cwd=tmp_path, timeout=1800)

    work = tmp_path / "work"  # outside the checkout: the installed envdoctor and trainer are the ones that run
    work.mkdir()
    check = run([str(venv / "bin" / "envdoctor"), "check", "--stack", TEST_STACK, "--json"], cwd=work, timeout=300)
    assert json.loads(check.stdout)["status"] == "ok"  # and it exited 0 (run asserts it)

    model = build_tiny_model_dir(tmp_path / "model")
    data = write_jsonl(tmp_path / "chat.jsonl", synthetic_chat_rows(32))
    output = tmp_path / "out"
    trained = run([str(python), "-m", "trainer", "--model_name", str(model), "--dataset_path", str(data),
                   "--output_dir", str(output), "--stack", TEST_STACK, "--max_steps", "2", "--max_seq_length", "32",
                   "--per_device_train_batch_size", "4", "--logging_steps", "1"], cwd=work, timeout=600)
    assert "Traceback" not in trained.stderr
    where = run([str(python), "-c", "import trainer; print(trainer.__file__)"], cwd=work, timeout=60)
    assert str(venv) in where.stdout  # the installed package trained, not the checkout
    summary = json.loads((output / "summary.json").read_text())
    assert summary["steps"] == 2
    assert (output / "adapter" / "adapter_model.safetensors").is_file()
