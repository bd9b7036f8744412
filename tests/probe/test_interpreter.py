"""``--python PATH``: probe another interpreter's environment, one where envdoctor (and packaging, rich,
nvidia-ml-py) is not installed, and refuse every path that is not a usable Python with one line, exit 2."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

from envdoctor.cli import main
from envdoctor.probe.interpreter import PACKAGE_DIR, InterpreterError, PendingInterpreterProbe, start_interpreter_probe

TORCH_VERSION_PY = '__version__ = "2.8.0+cu128"\ncuda: str | None = "12.8"\n'


@pytest.fixture(autouse=True)
def _no_pythonpath(monkeypatch) -> None:
    """The other interpreter keeps the caller's PYTHONPATH (it is part of its environment): clear it, so that this
    checkout's src/ is not what the other venv sees."""
    monkeypatch.delenv("PYTHONPATH", raising=False)


def make_venv(root: Path, with_pip: bool = False) -> tuple[Path, Path]:
    """A real venv made by ``venv``; (its python, its site-packages)."""
    venv.EnvBuilder(with_pip=with_pip, symlinks=True).create(root)
    python = root / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True, env=env).stdout.strip())
    return python, site


@pytest.fixture(scope="module")
def other_venv(tmp_path_factory) -> Path:
    """A real venv plus a torch dist-info and torch/version.py written into it, as a CUDA torch wheel leaves them;
    neither envdoctor nor packaging, rich or nvidia-ml-py is installed there."""
    python, site = make_venv(tmp_path_factory.mktemp("other") / "venv")
    dist = site / "torch-2.8.0+cu128.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.8.0+cu128\n"
                                   "Requires-Dist: nvidia-nvjitlink-cu12==12.8.93\n\nlong description\n")
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text("raise ImportError('a fake torch: never imported by the probe')\n")
    (site / "torch" / "version.py").write_text(TORCH_VERSION_PY)
    return python


def _run_in(python: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False, env=env)


def test_the_other_venv_has_neither_envdoctor_nor_its_dependencies(other_venv: Path) -> None:
    for module in ("envdoctor", "packaging", "rich", "pynvml"):
        assert _run_in(other_venv, f"import {module}").returncode == 1, module


def test_probe_python_reads_the_other_environment(other_venv: Path, capsys) -> None:
    assert main(["probe", "--python", str(other_venv)]) == 0
    snapshot = json.loads(capsys.readouterr().out)
    assert snapshot["python"]["executable"] == str(other_venv)
    assert snapshot["python"]["venv"] is True
    packages = snapshot["packages"]
    assert packages["torch"]["version"] == "2.8.0+cu128"
    assert packages["torch"]["requires"] == ["nvidia-nvjitlink-cu12==12.8.93"]
    assert not {"envdoctor", "packaging", "rich", "nvidia-ml-py", "pytest"} & set(packages)  # this venv's, not there
    assert snapshot["torch"]["version"] == "2.8.0+cu128" and snapshot["torch"]["cuda"] == "12.8"
    assert snapshot["nvidia"] is not None  # NVML is queried from envdoctor's own interpreter
    assert "env" in snapshot


def test_check_python_judges_the_other_environment(other_venv: Path, capsys) -> None:
    code = main(["check", "--json", "--python", str(other_venv), "--stack", "lora-cu128-2026.11"])
    report = json.loads(capsys.readouterr().out)
    assert code == (1 if report["status"] == "fail" else 0)
    assert report["snapshot"]["python"]["executable"] == str(other_venv)
    assert report["snapshot"]["packages"]["torch"]["version"] == "2.8.0+cu128"  # envdoctor's own venv: 2.13 CPU
    assert "rich" not in report["snapshot"]["packages"]
    judged = {c for f in report["findings"] for c in f["components"]}
    assert "torch" in judged


def test_a_venv_directory_means_its_bin_python(other_venv: Path, capsys) -> None:
    assert main(["probe", "--python", str(other_venv.parent.parent)]) == 0
    assert json.loads(capsys.readouterr().out)["python"]["executable"] == str(other_venv)


def test_the_working_directory_does_not_leak_into_the_probe(other_venv: Path, tmp_path: Path, monkeypatch,
                                                           capsys) -> None:
    shadow = tmp_path / "json.py"
    shadow.write_text("raise SystemExit('the working directory was on sys.path')\n")
    fake = tmp_path / "fakepkg-1.0.dist-info"
    fake.mkdir()
    (fake / "METADATA").write_text("Name: fakepkg\nVersion: 1.0\n")
    monkeypatch.chdir(tmp_path)
    assert main(["probe", "--python", str(other_venv)]) == 0
    assert "fakepkg" not in json.loads(capsys.readouterr().out)["packages"]


def _script(tmp_path: Path, name: str, body: str, mode: int = 0o755) -> Path:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(("make", "needle"), [
    (lambda tmp: tmp / "missing" / "python", "no such file"),
    (lambda tmp: _script(tmp, "python", "#!/bin/sh\nexit 0\n", 0o644), "not executable"),
    (lambda tmp: tmp, "is a directory without bin/python"),
    (lambda tmp: _script(tmp, "python", "#!/bin/sh\nexit 0\n"), "printed no snapshot (exit status 0, no output)"),
    (lambda tmp: _script(tmp, "python", "#!/bin/sh\necho 'segfault in libfoo' >&2\nexit 139\n"),
     "printed no snapshot (segfault in libfoo)"),
    (lambda tmp: _script(tmp, "python", "#!/bin/sh\necho ENVDOCTOR_SNAPSHOT='{not json'\n"),
     "printed an unreadable snapshot"),
    (lambda tmp: _script(tmp, "python", "\x7fELF garbage"), "cannot run it"),
])
def test_a_path_that_is_not_a_usable_python_exits_2_with_one_line(tmp_path: Path, capsys, make, needle) -> None:
    path = make(tmp_path)
    for argv in (["check", "--python", str(path)], ["probe", "--python", str(path)]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        lines = captured.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"envdoctor: error: --python {path}: "), lines
        assert needle in lines[0], lines[0]
        assert captured.out == ""


def test_a_python_older_than_the_probe_needs_is_named(tmp_path: Path) -> None:
    pending = PendingInterpreterProbe(sys.executable, deep=False, smoke_timeout=1, timeout=30, minimum=(99, 0))
    with pytest.raises(InterpreterError, match=rf"Python {sys.version_info[0]}\.\d+\.\d+ is older than 3\.9"):
        pending.finish()


def test_a_hanging_interpreter_is_killed_after_the_timeout(tmp_path: Path) -> None:
    hang = _script(tmp_path, "python", "#!/bin/sh\nsleep 60 &\nwait\n")
    pending = start_interpreter_probe(str(hang), timeout=0.5)
    with pytest.raises(InterpreterError, match="did not finish within 0.5 s"):
        pending.finish()
    # the whole group is killed, the backgrounded sleep included; on a loaded machine a killed process may take a
    # moment to leave the process table, so the test waits up to 5 s for that
    deadline = time.monotonic() + 5
    while _live_members(pending.child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _live_members(pending.child.pid) == []


def _live_members(group: int) -> list[int]:
    """Processes of a process group that are not zombies (a killed orphan may wait a moment to be reaped)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


def test_python_cannot_be_combined_with_snapshot(tmp_path: Path, capsys) -> None:
    assert main(["check", "--python", sys.executable, "--snapshot", str(tmp_path / "s.json")]) == 2
    assert "cannot be combined with --snapshot" in capsys.readouterr().err


def test_every_module_the_probe_loads_there_is_python_3_9_grammar() -> None:
    """The other interpreter may be older than envdoctor's own: what it imports must parse as Python 3.9."""
    code = ("import contextlib, io, json, sys\n"
            "import envdoctor.probe._interpreter_child as child, envdoctor.probe.deep\n"
            "with contextlib.redirect_stdout(io.StringIO()): child.main(['plain', '60'])\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('envdoctor'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(PACKAGE_DIR.parent)})
    loaded = json.loads(done.stdout)
    assert "envdoctor.snapshot" in loaded and "envdoctor.probe.packages" in loaded
    for name in loaded:
        parts = name.split(".")[1:]
        path = PACKAGE_DIR.joinpath(*parts)
        source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        ast.parse(source.read_text(), filename=str(source), feature_version=(3, 9))
    third_party = subprocess.run([sys.executable, "-c", code.replace("m.startswith('envdoctor')",
                                  "m.split('.')[0] in ('packaging', 'rich', 'pynvml')")],
                                 capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONPATH": str(PACKAGE_DIR.parent)})
    assert json.loads(third_party.stdout) == []


def test_the_interpreter_starts_before_parsing_and_is_claimed_or_killed(other_venv: Path, capsys) -> None:
    from envdoctor.probe import interpreter

    assert main(["probe", "--python", str(other_venv)]) == 0
    assert interpreter._early == {}  # started by main() before parsing, then taken by the probe
    capsys.readouterr()
    assert main(["check", f"--python={other_venv}", "--no-such-flag"]) == 2
    (left,) = interpreter._early.values()  # bad usage: nobody took it ...
    interpreter._stop_unclaimed()  # ... so the exit handler kills it
    assert interpreter._early == {} and left.child.returncode is not None
