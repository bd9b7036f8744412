"""The CLI end to end: exit codes, stdout vs stderr, one-line errors, atomic output, lazy imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import venv

import pytest

from conftest import ROOT, SNAPSHOTS, python_env, run_envdoctor
from envdoctor import load_snapshot
from envdoctor.cli import main

FAILING = SNAPSHOTS / "h100-torch211-numpy2.json"


def _one_error_line(stderr: str, *needles: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("envdoctor: error: ")
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


# --- bad input: exit 2, one line ----------------------------------------------------------


def test_truncated_snapshot_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "node7.json"
    path.write_text(FAILING.read_text()[:200])
    assert main(["check", "--snapshot", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _one_error_line(captured.err, "node7.json", "invalid JSON at line")


def test_missing_snapshot_exits_2(tmp_path, capsys):
    assert main(["check", "--snapshot", str(tmp_path / "absent.json")]) == 2
    _one_error_line(capsys.readouterr().err, "absent.json", "cannot read")


def test_wrongly_typed_field_exits_2_naming_it(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"schema": "envdoctor.snapshot/1", "nvidia": {"gpus": [{"memory_mib": "lots"}]}}))
    assert main(["check", "--snapshot", str(path)]) == 2
    _one_error_line(capsys.readouterr().err, "bad.json", "nvidia.gpus[0].memory_mib")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["bogus"], "invalid choice"),
        ([], "required"),
        (["check", "--json", "--markdown"], "not allowed with"),
        (["check", "--frobnicate"], "unrecognized arguments"),
        (["check", "--deep", "--snapshot", "x.json"], "--deep"),
    ],
)
def test_bad_usage_exits_2_with_one_line(argv, needle, capsys):
    assert main(argv) == 2
    _one_error_line(capsys.readouterr().err, needle)


# --- probe ----------------------------------------------------------------------------------


def test_probe_prints_a_loadable_snapshot(tmp_path, capsys):
    assert main(["probe", "--json"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "snap.json"
    path.write_text(out)
    snapshot = load_snapshot(path)
    assert snapshot.packages["pytest"].version
    assert snapshot.nvidia is not None


def test_probe_output_file_is_written_atomically(tmp_path, capsys):
    target = tmp_path / "snap.json"
    target.write_text("old")
    assert main(["probe", "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(target.read_text())["schema"] == "envdoctor.snapshot/1"
    assert [p.name for p in tmp_path.iterdir()] == ["snap.json"]  # no temp file left behind


def test_probe_output_into_missing_dir_exits_2(tmp_path, capsys):
    assert main(["probe", "-o", str(tmp_path / "no" / "such" / "dir.json")]) == 2
    _one_error_line(capsys.readouterr().err, "cannot write")


# --- check and stacks (need the engine) ------------------------------------------------------


def test_failing_snapshot_exits_1_with_json_report():
    done = run_envdoctor("check", "--snapshot", str(FAILING), "--stack", "phase1a-2.0", "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["schema"] == "envdoctor.report/1"
    assert report["status"] == "fail"
    assert report["stack"] == "phase1a-2.0"
    assert done.stderr.startswith("envdoctor: fail (score ")  # summary line, since stdout is a pipe


def test_markdown_and_table_formats(capsys):
    assert main(["check", "--snapshot", str(FAILING), "--stack", "phase1a-2.0", "--markdown"]) == 1
    markdown = capsys.readouterr().out
    assert markdown.startswith("### envdoctor: FAIL")
    assert "<details><summary>Environment</summary>" in markdown
    assert main(["check", "--snapshot", str(FAILING), "--stack", "phase1a-2.0"]) == 1
    table = capsys.readouterr().out
    assert table.startswith("envdoctor check: FAIL")
    assert "\x1b[" not in table  # not a terminal: plain text


def test_unknown_stack_exits_2(capsys):
    assert main(["check", "--snapshot", str(FAILING), "--stack", "no-such-stack"]) == 2
    _one_error_line(capsys.readouterr().err, "no-such-stack")


def test_check_json_imports_neither_rich_nor_torch():
    code = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from envdoctor.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            main(["check", "--json", "--snapshot", {str(FAILING)!r}])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("rich", "torch", "numpy", "transformers"))
        print(json.dumps(heavy))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=python_env(), check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_stacks_lists_bundled_stacks(capsys):
    assert main(["stacks", "--json"]) == 0
    stacks = json.loads(capsys.readouterr().out)
    names = [s["name"] for s in stacks]
    assert "phase1a-2.0" in names
    assert all(s["summary"] for s in stacks)
    assert main(["stacks", "--validate"]) == 0


# --- packaging ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.network
def test_wheel_ships_matrices_and_runs_outside_the_repo(tmp_path):
    """Build the wheel, install it with core deps into a fresh venv, run `envdoctor stacks` from elsewhere."""
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)], check=True, timeout=300)
    wheel = next(wheels.glob("envdoctor-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "-q", "install", "--no-deps", str(wheel)], check=True, timeout=300)
    subprocess.run([str(py), "-m", "pip", "-q", "install", "packaging>=22", "rich>=13", "nvidia-ml-py>=12"],
                   check=True, timeout=300)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    done = subprocess.run([str(env_dir / "bin" / "envdoctor"), "stacks"], capture_output=True, text=True,
                          cwd=outside, timeout=60, env={"PATH": "/usr/bin:/bin"}, check=False)
    assert done.returncode == 0, done.stderr
    assert "phase1a-2.0" in done.stdout
    assert shutil.which("envdoctor", path=str(env_dir / "bin"))
