"""CI use: ``--fail-on``, the documented GitHub Actions step and the pre-commit hook, each run for real."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SNAPSHOTS, python_env
from envdoctor.cli import main

yaml = pytest.importorskip("yaml")  # PyYAML: installed with the test extras (transformers needs it)

OK_SNAPSHOT = SNAPSHOTS / "h100-device-2026-11-25.json"
FAIL_SNAPSHOT = SNAPSHOTS / "old-driver.json"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
WORKFLOW = ROOT / "docs" / "ci" / "github-actions.yml"


def _warn_snapshot(tmp_path: Path) -> Path:
    """The green H100 snapshot with its GPU mostly in use by another process: one warning, nothing failing."""
    data = json.loads(OK_SNAPSHOT.read_text())
    gpu = data["nvidia"]["gpus"][0]
    gpu["memory_used_mib"], gpu["processes"] = int(gpu["memory_mib"] * 0.9), 1
    path = tmp_path / "busy.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("which", "fail_on", "status", "code"), [
    ("ok", "fail", "ok", 0), ("ok", "warn", "ok", 0),
    ("warn", "fail", "warn", 0), ("warn", "warn", "warn", 1), ("warn", None, "warn", 0),
    ("fail", "fail", "fail", 1), ("fail", "warn", "fail", 1),
])
def test_fail_on_sets_the_level_that_exits_1(tmp_path: Path, capsys, which, fail_on, status, code) -> None:
    path = {"ok": OK_SNAPSHOT, "warn": _warn_snapshot(tmp_path), "fail": FAIL_SNAPSHOT}[which]
    argv = ["check", "--json", "--snapshot", str(path)] + (["--fail-on", fail_on] if fail_on else [])
    assert main(argv) == code
    assert json.loads(capsys.readouterr().out)["status"] == status


def test_fail_on_accepts_only_warn_or_fail(capsys) -> None:
    assert main(["check", "--snapshot", str(OK_SNAPSHOT), "--fail-on", "info"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "--fail-on" in err[0]


def _venv_with_torch(root: Path) -> Path:
    from probe.test_interpreter import TORCH_VERSION_PY, make_venv

    python, site = make_venv(root)
    (site / "torch-2.8.0+cu128.dist-info").mkdir()
    (site / "torch-2.8.0+cu128.dist-info" / "METADATA").write_text("Name: torch\nVersion: 2.8.0+cu128\n")
    (site / "torch").mkdir()
    (site / "torch" / "version.py").write_text(TORCH_VERSION_PY)
    return python


def _shim_dir(tmp_path: Path) -> Path:
    """A PATH directory whose ``envdoctor`` is this checkout's, as ``pipx install`` would put it on PATH."""
    bin_dir = tmp_path / "shims"
    bin_dir.mkdir()
    shim = bin_dir / "envdoctor"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m envdoctor \"$@\"\n")
    shim.chmod(0o755)
    return bin_dir


def test_pre_commit_hook_manifest_runs_its_command_on_the_projects_venv(tmp_path: Path) -> None:
    hooks = yaml.safe_load(HOOKS.read_text())
    hook = next(h for h in hooks if h["id"] == "envdoctor-check")
    assert {"id", "name", "entry", "language"} <= set(hook)  # what pre-commit requires of a manifest entry
    assert hook["language"] == "python" and hook["pass_filenames"] is False
    project = tmp_path / "project"
    project.mkdir()
    python = _venv_with_torch(project / ".venv")
    for changed, runs in (("pyproject.toml", True), ("requirements-train.txt", True), ("src/train.py", False),
                          ("sub/uv.lock", True)):
        assert bool(re.search(hook["files"], changed)) is runs, changed
    command = shlex.split(hook["entry"]) + list(hook.get("args", [])) + ["--json"]
    assert command[:2] == ["envdoctor", "check"]
    env = python_env()
    env["PATH"] = f"{_shim_dir(tmp_path)}{os.pathsep}{env['PATH']}"
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env, timeout=60, check=False)
    report = json.loads(done.stdout)
    assert done.returncode == (1 if report["status"] == "fail" else 0), done.stderr
    assert report["snapshot"]["python"]["executable"] == str(python)
    assert report["snapshot"]["packages"]["torch"]["version"] == "2.8.0+cu128"


def test_github_actions_step_is_in_the_readme_and_runs(tmp_path: Path) -> None:
    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    steps = workflow["jobs"]["check-environment"]["steps"]
    step = next(s for s in steps if "envdoctor check" in s.get("run", ""))
    readme = (ROOT / "README.md").read_text()
    assert step["run"] in readme and "docs/ci/github-actions.yml" in readme
    python = _venv_with_torch(tmp_path / ".venv")
    summary = tmp_path / "summary.md"
    env = python_env()
    env.update(PATH=f"{_shim_dir(tmp_path)}{os.pathsep}{env['PATH']}", GITHUB_STEP_SUMMARY=str(summary))
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=60, check=False)  # bash -eo pipefail: what Actions runs
    written = summary.read_text()
    assert written.startswith("### envdoctor: ") and "2.8.0+cu128" in written, written[:400]
    status = written.split()[2]
    assert done.returncode == (0 if status == "OK" else 1), (status, done.stderr)
    assert python.exists()
