"""envdoctor plan as a real process: exit codes, stdout vs stderr, formats, script hygiene."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.conftest import run_envdoctor

FIXTURE_MATRICES = str(Path(__file__).parent / "data" / "matrices")


def test_script_for_phase1a_is_deterministic_and_valid_bash(tmp_path):
    args = ("plan", "--cuda", "12.4", "--python", "3.10", "--stack", "phase1a-2.0", "--venv", "/tmp/my env")
    first, second = run_envdoctor(*args), run_envdoctor(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    script = first.stdout
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script
    assert "torch==2.3.1+cu121" in script and "--index-url https://download.pytorch.org/whl/cu121" in script
    assert "VENV='/tmp/my env'" in script
    assert "--no-build-isolation" not in script and "force-reinstall" not in script
    assert '"$PY" -m envdoctor check --stack phase1a-2.0\n' in script
    path = tmp_path / "install.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("stack,cuda,python", [("phase1a-2.0", "12.4", "3.11"), ("lora-cu130-2026.11", "13.0", "3.12")])
def test_script_passes_shellcheck(tmp_path, stack, cuda, python):
    done = run_envdoctor("plan", "--cuda", cuda, "--python", python, "--stack", stack)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "install.sh"
    path.write_text(done.stdout)
    check = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize(
    "flag,value",
    [("--cuda", "12.4; rm -rf /"), ("--python", "3.10$(id)"), ("--gpu-arch", "8.0`id`"), ("--stack", "x;y")],
)
def test_hostile_input_is_rejected_before_printing(flag, value):
    args = ["plan", "--cuda", "12.4", "--python", "3.10", flag, value]
    done = run_envdoctor(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and flag in done.stderr


def test_unknown_stack_exits_2_naming_nearest():
    done = run_envdoctor("plan", "--cuda", "12.4", "--stack", "phase1a-2.1")
    assert done.returncode == 2 and done.stdout == ""
    assert "phase1a-2.0" in done.stderr


def test_no_working_plan_exits_1_with_reason():
    done = run_envdoctor("plan", "--cuda", "11.2", "--python", "3.10", "--stack", "lora-cu128-2026.11")
    assert done.returncode == 1 and done.stdout == ""
    assert "needs Python >=3.11" in done.stderr


def test_cuda_too_old_exits_1_and_names_stacks_that_work():
    done = run_envdoctor("plan", "--cuda", "12.8", "--python", "3.11", "--gpu-arch", "6.1",
                         "--stack", "cu128-only", "--matrices", FIXTURE_MATRICES)
    assert done.returncode == 1 and done.stdout == ""
    assert "no kernels for sm_61" in done.stderr and "old-torch-cu118" in done.stderr


def test_json_format():
    done = run_envdoctor("plan", "--cuda", "12.4", "--python", "3.10", "--stack", "phase1a-2.0", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["schema"] == "envdoctor.plan/1"
    assert data["torch"]["variant"] == "cu121" and data["target"]["cuda"] == "12.4"
    assert [s["id"] for s in data["steps"]] == ["remove-conflicts", "torch", "flash-attn", "packages", "check"]


def test_requirements_format_writes_constraints(tmp_path):
    done = run_envdoctor("plan", "--cuda", "12.4", "--python", "3.10", "--stack", "phase1a-2.0",
                         "--format", "requirements", "--constraints", "c.txt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "-c c.txt" in done.stdout and "torch==2.3.1+cu121" in done.stdout
    assert "flash-attn @ https://github.com/Dao-AILab/flash-attention/releases/download/v2.5.8/" in done.stdout
    constraints = (tmp_path / "c.txt").read_text()
    assert "numpy==1.26.4" in constraints.splitlines() and "torch==2.3.1+cu121" in constraints.splitlines()


def test_unwritable_constraints_path_is_a_one_line_error(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    done = run_envdoctor("plan", "--cuda", "12.4", "--python", "3.10", "--format", "requirements",
                         "--constraints", str(tmp_path / "a-file" / "c.txt"), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "cannot write" in done.stderr, done.stderr
