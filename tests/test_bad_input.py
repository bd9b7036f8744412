"""Hostile or careless input to envdoctor: one clear line and a documented exit code, never a traceback, never a
clobbered file, never a false green, and no snapshot text that reaches the terminal or a fix command unescaped."""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from envdoctor.atomic import UnsafeTargetError, write_atomic
from envdoctor.cli import main

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "tests" / "data" / "snapshots"
T4 = SNAPSHOTS / "t4-flash-attn.json"
EXIT_IO = 74


def _run(*args: str, shell_suffix: str = "", env: dict[str, str] | None = None, cwd: Path | None = None,
         memory_mib: int | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m envdoctor ARGS`` through bash, so the test can close or redirect stdout (``>&-``)."""
    command = " ".join([sys.executable, "-m", "envdoctor", *(f"'{a}'" for a in args)]) + shell_suffix

    def limit_memory() -> None:
        if memory_mib:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mib << 20, memory_mib << 20))

    child_env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                                          os.environ.get("PYTHONPATH")]))}
    child_env.pop("NO_COLOR", None)
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=False,
                          env={**child_env, **(env or {})}, cwd=cwd or ROOT, preexec_fn=limit_memory)


def _one_line(stderr: str, *needles: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- safe writes ------------------------------------------------------------------------------------------


def test_probe_refuses_a_fifo_and_leaves_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert main(["probe", "-o", str(fifo)]) == 2
    _one_line(capsys.readouterr().err, "pipe", "FIFO", "not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]  # no temp file left


def test_probe_refuses_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["probe", "-o", str(folder)]) == 2
    _one_line(capsys.readouterr().err, "directory")
    assert folder.is_dir() and not any(folder.iterdir())


def test_a_device_node_is_refused_not_replaced() -> None:
    before = os.stat("/dev/null")
    with pytest.raises(UnsafeTargetError, match="character device"):
        write_atomic(Path("/dev/null"), "x")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_plan_constraints_refuses_a_fifo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "constraints.txt"
    os.mkfifo(fifo)
    code = main(["plan", "--cuda", "12.4", "--python", "3.10", "--format", "requirements", "--constraints", str(fifo)])
    assert code == 2
    assert "not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_is_written_through_to_its_target(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]


def test_new_files_get_the_umask_mode_and_old_files_keep_theirs(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        fresh = tmp_path / "snapshot.json"
        write_atomic(fresh, "{}")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
        private = tmp_path / "private.json"
        private.write_text("x")
        private.chmod(0o600)
        write_atomic(private, "y")
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)


# --- output errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [" >&-", " > /dev/full"], ids=["closed", "full"])
@pytest.mark.parametrize("args", [("check", "--snapshot", str(T4), "--json"), ("check", "--snapshot", str(T4)),
                                  ("stacks",)], ids=["check-json", "check-table", "stacks"])
def test_unwritable_stdout_is_one_line_and_exit_74(args: tuple[str, ...], suffix: str) -> None:
    done = _run(*args, shell_suffix=suffix)
    assert done.returncode == EXIT_IO, done.stderr
    _one_line(done.stderr.replace(_summary_line(done.stderr), ""), "envdoctor: error: ", "stdout")


def _summary_line(stderr: str) -> str:
    """The 'envdoctor: fail (score ...' line check prints when stdout is not a terminal, with its newline."""
    return next((line + "\n" for line in stderr.splitlines() if line.startswith("envdoctor: fail (")), "")


def test_probe_with_closed_stdout_is_exit_74() -> None:
    done = _run("probe", shell_suffix=" >&-")
    assert done.returncode == EXIT_IO
    _one_line(done.stderr, "stdout is closed")


def test_ascii_stdout_gets_an_ascii_table() -> None:
    done = _run("check", "--snapshot", str(T4), "--stack", "phase1a-2.0", env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.isascii()
    assert "+----" in done.stdout and "| FAIL" in done.stdout


def test_ascii_stdout_gets_ascii_json() -> None:
    done = _run("check", "--snapshot", str(T4), "--json", env={"PYTHONIOENCODING": "ascii"})
    assert done.stdout.isascii() and "Traceback" not in done.stderr
    assert json.loads(done.stdout)["schema"] == "envdoctor.report/1"


# --- colour -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "flag", "colour"),
    [
        ({"FORCE_COLOR": "1"}, [], True),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, [], False),
        ({"FORCE_COLOR": "1"}, ["--no-color"], False),
        ({}, [], False),  # not a terminal
    ],
)
def test_colour_follows_force_color_no_color_and_the_flag(env: dict[str, str], flag: list[str], colour: bool,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("FORCE_COLOR", "NO_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    main(["check", "--snapshot", str(T4), "--stack", "phase1a-2.0", *flag])
    assert ("\x1b[" in capsys.readouterr().out) is colour


def test_a_dumb_terminal_gets_no_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    from envdoctor import cli

    for name in ("FORCE_COLOR", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli, "_stdout_is_terminal", lambda: True)
    monkeypatch.setenv("TERM", "dumb")
    assert cli._wants_color(no_color=False) is False
    monkeypatch.setenv("TERM", "xterm-256color")
    assert cli._wants_color(no_color=False) is True


# --- untrusted strings ------------------------------------------------------------------------------------

HOSTILE_NAME = "NVIDIA H100\x1b[2J\x1b[31m\n| FAIL | forged | row |\r</details>@everyone `x` [a](http://e.invalid)"


def _hostile_snapshot(tmp_path: Path) -> Path:
    data = json.loads(T4.read_text())
    data["note"] = "line one\nline two\x1b]0;title\x07"
    data["nvidia"]["gpus"][0]["name"] = HOSTILE_NAME
    data["host"]["distro"] = "Ubuntu\u202egnp.exe\x1b[0m"
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("fmt", [[], ["--markdown"], ["--json"]], ids=["table", "markdown", "json"])
def test_snapshot_text_is_shown_escaped(fmt: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # even with colour on, only envdoctor's own escapes appear
    code = main(["check", "--snapshot", str(_hostile_snapshot(tmp_path)), "--stack", "phase1a-2.0", *fmt])
    out = capsys.readouterr().out
    assert code in (1, 2)
    if code == 2:
        return  # refused as invalid: nothing of it reached stdout
    assert "\x1b[2J" not in out and "\x1b]0" not in out and "\r" not in out and "\u202e" not in out
    assert "forged" not in "".join(line for line in out.splitlines() if line.startswith("| FAIL | forged"))
    if fmt == ["--markdown"]:
        assert out.count("</details>") == 1 and "@everyone" not in out and "[a](http" not in out
    if not fmt:
        assert "\\x1b[2J" in out  # shown, escaped


def test_markdown_cells_cannot_forge_structure() -> None:
    from envdoctor.untrusted import markdown_code, markdown_text

    cell = markdown_text("a | b\n</details><img src=x> **bold** [l](u) `c` @me")
    assert "|" not in cell.replace("\\|", "") and "\n" not in cell and "<" not in cell and "@me" not in cell
    assert markdown_code("pip install `x` | y") == "``pip install `x` \\| y``"


def test_a_fix_with_a_newline_never_leaves_the_renderer() -> None:
    from envdoctor.findings import Category, Finding, Report, Score, Severity
    from envdoctor.render import render
    from envdoctor.snapshot import Snapshot

    evil = Finding("stack-requires", Category.VERSION, Severity.FAIL, "m", ("torch",),
                   fix='pip install "torch==1\ntouch /tmp/x #"')
    report = Report("s", "because", (evil,), Score(0), Snapshot())
    for fmt in ("table", "markdown", "json"):
        assert "touch /tmp/x" not in render(report, fmt)
    assert json.loads(render(report, "json"))["findings"][0]["fix"] is None


@pytest.mark.parametrize(
    ("name", "spec"),
    [("numpy", '>=1.0"; touch /tmp/x; "'), ("numpy", ">=1.0$(touch /tmp/x)"), ("num`id`py", ">=1"),
     ("numpy", "==999.0\ntouch /tmp/x #"), ("$(reboot)", "")],
)
def test_fix_commands_take_only_validated_values(name: str, spec: str) -> None:
    from envdoctor.checks import CheckContext
    from envdoctor.checks.commands import requirement_install
    from envdoctor.facts import Facts
    from envdoctor.matrices import load_matrices
    from envdoctor.snapshot import snapshot_from_dict

    matrices = load_matrices()
    ctx = CheckContext(snapshot_from_dict({"schema": "envdoctor.snapshot/1"}), matrices, Facts(matrices.root))
    assert requirement_install(ctx, name, spec) is None
    assert requirement_install(ctx, "numpy", "<2") == 'pip install "numpy<2"'


def test_shell_words_survive_the_shell() -> None:
    from envdoctor.checks.commands import double_quoted, shell_word

    for text in ("numpy<2", "a b", "x!y", "$(id)", "`id`", 'q"uote', "back\\slash", "1!2.0", "numpy!=1.0"):
        for quote in (shell_word, double_quoted):
            echoed = subprocess.run(["bash", "-c", f"printf %s {quote(text)}"], capture_output=True, text=True,
                                    check=True).stdout
            assert echoed == text, (quote.__name__, text)


def test_smoke_fix_takes_only_a_module_name() -> None:
    from envdoctor.checks.commands import import_command

    assert import_command("flash-attn") == 'run: python -c "import flash_attn" to see the full error'
    assert import_command('x"; rm -rf ~; "') is None


def test_error_lines_escape_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--snapshot", str(T4), "--stack", "no\x1b[31mstack\nforged"]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err
    _one_line(err, "envdoctor: error: ")


# --- envdoctor.toml ---------------------------------------------------------------------------------------


def test_envdoctor_toml_that_is_a_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "envdoctor.toml").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["check", "--snapshot", str(T4), "--json"]) == 2
    _one_line(capsys.readouterr().err, "envdoctor.toml", "directory")


def test_envdoctor_toml_without_stack_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "envdoctor.toml").write_text('[tool]\nname = "x"\n')
    monkeypatch.chdir(tmp_path)
    main(["check", "--snapshot", str(T4), "--json"])
    reason = json.loads(capsys.readouterr().out)["stack_reason"]
    assert "has no 'stack' key" in reason and "no envdoctor.toml" not in reason


@pytest.mark.parametrize(("content", "needle"), [("stack = ", "invalid TOML"), ("stack = 3", "stack"),
                                                 ('stack = "nosuch"', "nosuch"), (b"\xff\xfe", "UTF-8")])
def test_bad_envdoctor_toml_exits_2(content: str | bytes, needle: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "envdoctor.toml"
    project.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.chdir(tmp_path)
    assert main(["check", "--snapshot", str(T4), "--json"]) == 2
    _one_line(capsys.readouterr().err, "envdoctor.toml", needle)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_envdoctor_toml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "envdoctor.toml"
    project.write_text('stack = "cpu-test"\n')
    project.chmod(0)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "--snapshot", str(T4), "--json"]) == 2
    _one_line(capsys.readouterr().err, "envdoctor.toml", "cannot read")


def test_unknown_stack_is_bad_input_not_a_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--snapshot", str(T4), "--stack", "nosuch"]) == 2
    _one_line(capsys.readouterr().err, "nosuch")


# --- --model ----------------------------------------------------------------------------------------------


def _model_findings(capsys: pytest.CaptureFixture[str], model: str) -> dict[str, dict]:
    main(["check", "--snapshot", str(T4), "--stack", "phase1a-2.0", "--json", "--model", model])
    report = json.loads(capsys.readouterr().out)
    return {f["rule"]: f for f in report["findings"] if "model" in f["components"]}


def test_model_in_an_empty_directory_is_an_unverified_warning(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    finding = _model_findings(capsys, str(tmp_path))["model-unchecked"]
    assert finding["verified"] is False and finding["severity"] == "warn"
    assert "neither config.json nor" in finding["message"]


def test_model_config_that_is_a_directory_is_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.json").mkdir()
    finding = _model_findings(capsys, str(tmp_path))["model-unreadable"]
    assert finding["severity"] == "fail" and "directory" in finding["message"]


def test_model_hub_id_not_in_the_cache_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    finding = _model_findings(capsys, "some-org/some-model")["model-unchecked"]
    assert finding["verified"] is False and "not in the local Hugging Face cache" in finding["message"]
    assert finding["fix"].startswith("hf download some-org/some-model")


def test_empty_model_name_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--snapshot", str(T4), "--model", ""]) == 2
    _one_line(capsys.readouterr().err, "--model")


# --- plan --verify ----------------------------------------------------------------------------------------


def test_verify_format_json_prints_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from envdoctor.plan import verify

    monkeypatch.setattr(verify, "reach", lambda url: None)  # this machine offline: nothing is asked
    assert main(["plan", "--cuda", "12.4", "--python", "3.10", "--verify", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "envdoctor.plan-verify/1"
    assert {s["status"] for s in data["steps"]} == {"not verified (offline)"}


# --- snapshot size and nesting ----------------------------------------------------------------------------


def test_snapshot_from_dev_zero_is_refused_quickly() -> None:
    done = _run("check", "--snapshot", "/dev/zero", "--json", memory_mib=1024)
    assert done.returncode == 2, done.stderr[-500:]
    _one_line(done.stderr, "/dev/zero")


def test_deeply_nested_snapshot_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"schema": "envdoctor.snapshot/1", "note": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert main(["check", "--snapshot", str(path), "--json"]) == 2
    _one_line(capsys.readouterr().err, "deep.json", "nested")


def test_hostile_requires_lines_give_no_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(T4.read_text())
    data["packages"]["okpkg"] = {"version": "1.0", "requires": ["numpy>=3.0$(touch /tmp/x)", "torch (>=9.0`id`)",
                                                                "scipy>=1"]}
    path = tmp_path / "requires.json"
    path.write_text(json.dumps(data))
    assert main(["check", "--snapshot", str(path), "--json"]) == 1
    fixes = [f["fix"] for f in json.loads(capsys.readouterr().out)["findings"] if f["fix"]]
    assert 'pip install "scipy>=1"' in fixes
    assert not [fix for fix in fixes if "$(" in fix or "`" in fix]
