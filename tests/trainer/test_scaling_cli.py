"""benchmarks/scaling.py on CPU: the tiny Llama under torchrun (gloo) on 1 and 2 processes, then a resume on 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, TEST_STACK, subprocess_env

pytestmark = pytest.mark.slow
pytest.importorskip("peft")


def test_one_and_two_processes_measured_and_the_two_process_checkpoint_resumes_on_one(tiny_model: Path,
                                                                                     tmp_path: Path) -> None:
    out = tmp_path / "scaling.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "scaling.py"), "--model", str(tiny_model), "--stack", TEST_STACK,
         "--gpus", "1,2", "--seq", "32", "--words", "40", "--batch", "2", "--accum", "2", "--steps", "6",
         "--warmup-steps", "2", "--resume", "--resume-steps", "2", "--workdir", str(tmp_path / "work"),
         "--json-out", str(out)],
        env=subprocess_env(), capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    logs = "".join(path.read_text()[-1500:] for path in (tmp_path / "work").glob("*.log"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:] + logs
    report = json.loads(out.read_text())
    one, two = report["rows"]
    assert (one["gpus"], two["gpus"]) == (1, 2) and one["status"] == two["status"] == "ok"
    assert one["measured_steps"] == two["measured_steps"] == 3  # steps 3..6, rated between the logs of 3 and 6
    assert one["samples_per_hour"] > 0 and two["samples_per_hour"] > 0 and one["speedup"] == 1.0
    assert two["speedup"] == pytest.approx(two["samples_per_hour"] / one["samples_per_hour"])
    assert two["useful_tokens_per_s"] > 0
    assert report["resume"]["ok"], report["resume"]["message"]
    assert "steps 7..8 trained" in report["resume"]["message"]
    table = done.stdout[done.stdout.index("shape: 32-token samples"):]
    assert "   2 GPU(s)" in table and "efficiency)" in table and "resume: ok" in table
