"""benchmarks/suites.toml: each suite names scripts that exist, with flags their parsers accept; the runner's checks."""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "benchmarks" / "run_suite.py"


def load_runner():
    spec = importlib.util.spec_from_file_location("run_suite", RUNNER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_suite"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


run_suite = load_runner()
CATALOG = run_suite.load_catalog()

# Runs each (script, argv) through the script's own argparse in one process: parse_args is wrapped so that a
# successful parse stops the script there. Heavy imports (torch) are paid once.
PARSE_CHECK = textwrap.dedent("""
    import argparse, json, runpy, sys
    from pathlib import Path

    class Parsed(Exception):
        pass

    original = argparse.ArgumentParser.parse_args
    def parse_then_stop(self, args=None, namespace=None):
        original(self, args, namespace)
        raise Parsed
    argparse.ArgumentParser.parse_args = parse_then_stop

    request = json.loads(sys.stdin.read())
    results = []
    for target, argv in request["commands"]:
        sys.argv = [target, *argv]
        try:
            if target.endswith(".py"):
                sys.path.insert(0, str(Path(target).parent))
                runpy.run_path(target, run_name="__main__")
            else:
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            results.append("ran to the end without parsing its arguments")
        except Parsed:
            results.append("ok")
        except SystemExit as stop:
            results.append(f"rejected (exit {stop.code})")
    argparse.ArgumentParser.parse_args = original
    sys.path.insert(0, "benchmarks")
    import train_speed
    unknown = []
    for name in request["setups"]:
        try:
            train_speed.parse_setup(name)
        except (KeyError, ValueError) as error:
            unknown.append(f"{name}: {error}")
    print(json.dumps({"verdicts": results, "unknown_setups": unknown}))
""")


def python_commands() -> list[tuple[str, str, list[str]]]:
    """(suite, script or module, argv) for every python3 command, and the trainer flags passed through scaling.py."""
    commands = []
    for suite in CATALOG.suites.values():
        for command in suite.commands:
            if command[0] != "python3":
                continue
            if command[1] == "-m":
                commands.append((suite.name, command[2], list(command[3:])))
                continue
            commands.append((suite.name, str(REPO / command[1]), list(command[2:])))
            trainer_flags = [arg.split("=", 1)[1] for arg in command if arg.startswith("--trainer-arg=")]
            if trainer_flags:
                required = ["--model_name", "m", "--dataset_path", "d.jsonl", "--output_dir", "o"]
                commands.append((suite.name, "trainer", required + trainer_flags))
    return commands


def test_every_suite_has_its_keys_and_runs_in_one_device_call() -> None:
    assert len(CATALOG.suites) >= 20
    for suite in CATALOG.suites.values():
        assert suite.measures and suite.commands, suite.name
        assert 0 <= suite.gpus <= 2, suite.name
        assert 0 < suite.limit_s <= 600, f"{suite.name}: a device call runs at most 600 s"


def test_every_command_names_a_script_or_module_that_exists() -> None:
    for suite in CATALOG.suites.values():
        for command in suite.commands:
            if command[0] == "bash":
                script = REPO / command[1]
                assert script.is_file(), f"{suite.name}: {command[1]} is missing"
                assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, f"{suite.name}: {command[1]}"
            elif command[1] == "-m":
                assert importlib.util.find_spec(command[2]) is not None, f"{suite.name}: no module {command[2]}"
            else:
                assert command[0] == "python3", f"{suite.name}: run python scripts with python3: {command}"
                assert (REPO / command[1]).is_file(), f"{suite.name}: {command[1]} is missing"


def train_speed_setups() -> list[str]:
    names = []
    for suite in CATALOG.suites.values():
        for command in suite.commands:
            if command[1:2] == ("benchmarks/train_speed.py",):
                for flag in ("--setups", "--profile"):
                    if flag in command:
                        names += command[command.index(flag) + 1].split(",")
    return names


@pytest.fixture(scope="module")
def parse_check() -> tuple[list[tuple[str, str, list[str]]], dict]:
    """Every python command through its script's own argparse, and train_speed.py's set-up names, in one process."""
    # envdoctor's and pytest's commands are checked by other tests; dataset_words.py reads sys.argv itself
    commands = [entry for entry in python_commands() if entry[1] not in ("envdoctor", "pytest")
                and not entry[1].endswith("dataset_words.py")]
    request = {"commands": [entry[1:] for entry in commands], "setups": train_speed_setups()}
    completed = subprocess.run([sys.executable, "-c", PARSE_CHECK], input=json.dumps(request), capture_output=True,
                               text=True, cwd=REPO, timeout=120,
                               env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert completed.returncode == 0, completed.stderr[-2000:]
    return commands, json.loads(completed.stdout.strip().splitlines()[-1])


def test_every_python_command_parses_with_its_own_argparse(parse_check) -> None:
    commands, answer = parse_check
    assert len(answer["verdicts"]) == len(commands) > 20
    wrong = [(suite, Path(target).name, argv, verdict)
             for (suite, target, argv), verdict in zip(commands, answer["verdicts"], strict=True) if verdict != "ok"]
    assert not wrong


def test_train_speed_setups_are_ones_it_knows(parse_check) -> None:
    assert len(train_speed_setups()) >= 10
    assert parse_check[1]["unknown_setups"] == []


def test_envdoctor_commands_use_known_subcommands_and_stacks() -> None:
    stacks = {path.stem for path in (REPO / "matrices" / "stacks").glob("*.toml")}
    assert CATALOG.stack in stacks
    for suite in CATALOG.suites.values():
        for command in suite.commands:
            if command[:3] == ("python3", "-m", "envdoctor"):
                assert command[3] in ("check", "probe"), suite.name
                if "--stack" in command:
                    stack = command[command.index("--stack") + 1]
                    assert stack == "{stack}" or stack in stacks, f"{suite.name}: unknown stack {stack}"


def test_pytest_and_row_writer_commands_name_what_exists() -> None:
    for suite in CATALOG.suites.values():
        for command in suite.commands:
            if command[1:3] == ("-m", "pytest"):
                tests = [arg for arg in command if arg.startswith("tests/")]
                assert tests and all((REPO / test).is_file() for test in tests), suite.name
            if command[1] == "benchmarks/device/dataset_words.py":
                assert len(command) == 5 and command[3].isdigit() and command[4].isdigit(), suite.name


def test_suites_name_the_parts_their_scripts_know() -> None:
    first_run = (REPO / "benchmarks" / "device" / "first_run.sh").read_text()
    for suite in CATALOG.suites.values():
        for command in suite.commands:
            if command[1] == "benchmarks/device/first_run.sh":
                for part in command[6].split(","):
                    assert re.search(rf"\bwant {part}\b", first_run), f"{suite.name}: first_run.sh has no {part}"
            if command[1] == "benchmarks/device/peers.sh":
                assert command[3] in ("all", "plain", "unsloth"), suite.name


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUNNER), *args], capture_output=True, text=True, timeout=60)


def test_runner_rejects_an_unknown_suite_with_exit_2() -> None:
    result = run("no-such-suite")
    assert result.returncode == 2
    assert result.stderr.strip() == "run_suite: error: unknown suite no-such-suite (--list shows the " \
        f"{len(CATALOG.suites)} suites)"
    assert result.stdout == ""


def test_runner_names_the_missing_wheel_set(tmp_path: Path) -> None:
    result = run("cli-var", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "d.jsonl"))
    assert result.returncode == 2
    assert "--wheels DIR" in result.stderr and "make_wheels.sh numpy1" in result.stderr


def test_runner_lists_every_suite() -> None:
    result = run("--list")
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == list(CATALOG.suites)


def test_dry_run_fills_the_placeholders_and_prepares_what_is_missing(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "numpy-1.26.4-cp312-cp312-manylinux2014_x86_64.whl").write_bytes(b"")
    result = run("cli-var", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "d.jsonl"), "--wheels",
                 str(wheels), "--out", str(tmp_path / "out"), "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"PYTHONPATH={tmp_path}/out/work/site-numpy1:{REPO}/src" in lines[1]
    assert lines[2].endswith(f"benchmarks/device/make_llama8b.py {tmp_path}/m")
    assert lines[3].endswith(f"benchmarks/device/dataset_words.py {tmp_path}/d.jsonl 4000 0")
    assert "--target" in lines[4] and lines[4].endswith("numpy-1.26.4-cp312-cp312-manylinux2014_x86_64.whl")
    assert f"--dataset {tmp_path}/d.jsonl" in lines[-1] and "{" not in lines[-1]


@pytest.fixture
def tiny_catalog(tmp_path: Path) -> Path:
    suites = (REPO / "benchmarks" / "suites.toml").read_text().split("\n[suites.")[0]
    suites += textwrap.dedent("""
        [suites.echo]
        measures = "nothing"
        gpus = 0
        needs = []
        wheels = []
        limit_s = 30
        accept = [0, 3]
        commands = [["python3", "-c", "import os; print('out', os.environ['SUITE_OUT']); raise SystemExit(3)"],
                    ["python3", "-c", "print('progress 5/9 [00:01, 4.00it/s]'); print('kept')"]]
        env = { SUITE_OUT = "{out}" }

        [suites.packed]
        measures = "a module from the numpy1 set"
        gpus = 0
        needs = []
        wheels = ["numpy1"]
        limit_s = 30
        commands = [["python3", "-c", "import packed_module; print('from the set', packed_module.VALUE)"]]

        [suites.own-accept]
        measures = "a command with its own accepted codes beside one without"
        gpus = 0
        needs = []
        wheels = []
        limit_s = 30
        commands = [{ run = ["python3", "-c", "raise SystemExit(1)"], accept = [0, 1] },
                    ["python3", "-c", "raise SystemExit(1)"]]

        [suites.slow]
        measures = "nothing, slowly"
        gpus = 0
        needs = []
        wheels = []
        limit_s = 1
        commands = [["python3", "-c", "import time; time.sleep(30)"]]
    """)
    path = tmp_path / "suites.toml"
    path.write_text(suites)
    return path


def test_runner_runs_a_suite_and_writes_its_log_and_summary(tiny_catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("echo", "--out", str(out), "--suites-file", str(tiny_catalog))
    assert result.returncode == 0, result.stderr
    log = (out / "echo.log").read_text()
    assert f"out {out}" in log and "\nkept\n" in log and "\nprogress" not in log
    summary = json.loads((out / "echo.json").read_text())
    assert [entry["exit"] for entry in summary["results"]] == [3, 0]
    assert all(entry["accepted"] for entry in summary["results"])


def test_a_command_may_accept_its_own_exit_codes(tiny_catalog: Path, tmp_path: Path) -> None:
    """validate exits 1 on random weights by design: only that command accepts it, the suite's others do not."""
    out = tmp_path / "out"
    result = run("own-accept", "--out", str(out), "--suites-file", str(tiny_catalog))
    assert result.returncode == 1
    summary = json.loads((out / "own-accept.json").read_text())
    assert [(entry["exit"], entry["accepted"]) for entry in summary["results"]] == [(1, True), (1, False)]


def test_runner_unpacks_a_packed_site_once_and_puts_it_on_the_path(tiny_catalog: Path, tmp_path: Path) -> None:
    """pack_site.sh's archive: unpacked into WORK/site-numpy1 on the first run, reused on the next."""
    module = tmp_path / "packed_module.py"
    module.write_text("VALUE = 41 + 1\n")
    packed = tmp_path / "packed"
    packed.mkdir()
    with tarfile.open(packed / "site.tar.xz", "w:xz") as archive:
        archive.add(module, arcname="./packed_module.py")
    out = tmp_path / "out"
    for expected_commands in (3, 1):  # unpack, mark, the command; then the command alone
        result = run("packed", "--wheels", str(packed), "--out", str(out), "--suites-file", str(tiny_catalog))
        assert result.returncode == 0, result.stderr
        summary = json.loads((out / "packed.json").read_text())
        assert len(summary["results"]) == expected_commands
        assert "from the set 42" in (out / "packed.log").read_text()
    assert (out / "work" / "site-numpy1" / "packed_module.py").is_file()


def test_runner_stops_a_suite_at_its_limit_and_fails(tiny_catalog: Path, tmp_path: Path) -> None:
    result = run("slow", "--out", str(tmp_path / "out"), "--suites-file", str(tiny_catalog))
    assert result.returncode == 1
    summary = json.loads((tmp_path / "out" / "slow.json").read_text())
    assert summary["results"][0]["seconds"] < 10 and not summary["results"][0]["accepted"]


def test_runner_started_with_sigint_ignored_still_stops_a_suite_at_its_limit(tiny_catalog: Path,
                                                                          tmp_path: Path) -> None:
    """Under nohup or `&` the runner inherits SIGINT ignored; its commands must not, or the limit waits for SIGKILL."""
    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    subprocess.run([sys.executable, str(RUNNER), "slow", "--out", str(tmp_path / "out"), "--suites-file",
                    str(tiny_catalog)], capture_output=True, text=True, timeout=60, preexec_fn=ignore_sigint)
    summary = json.loads((tmp_path / "out" / "slow.json").read_text())
    assert summary["results"][0]["seconds"] < 10 and not summary["results"][0]["accepted"]


def test_benchmarks_readme_documents_every_suite() -> None:
    readme = (REPO / "benchmarks" / "README.md").read_text()
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \| [0-2] \|", readme, flags=re.MULTILINE))
    assert documented == set(CATALOG.suites)


def test_runner_refuses_a_suites_file_with_an_unknown_placeholder(tiny_catalog: Path, tmp_path: Path) -> None:
    tiny_catalog.write_text(tiny_catalog.read_text().replace('"{out}"', '"{output}"'))
    result = run("echo", "--suites-file", str(tiny_catalog))
    assert result.returncode == 2
    assert result.stderr.strip() == f"run_suite: error: {tiny_catalog}: suites.echo: unknown placeholder {{output}} " \
        "(known: model, data, out, work, stack)"
