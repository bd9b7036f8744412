"""Run named benchmark suites from benchmarks/suites.toml on this machine.

Each suite's commands run in order from the repository root, with the wheel sets it names installed into
WORK/site-NAME and put first on PYTHONPATH, then src/. Each command's output goes to OUT/SUITE.log (progress-bar
lines dropped) and a summary (commands, exit codes, seconds, commit, GPUs) to OUT/SUITE.json.

Usage:
  python3 benchmarks/run_suite.py --list
  python3 benchmarks/run_suite.py SUITE [SUITE ...] --model DIR --data FILE [--wheels DIR] [--peer-wheels DIR]
                                  [--tracker-wheels DIR] [--out DIR] [--work DIR] [--stack NAME]
                                  [--uninstall-conflicts] [--dry-run]

--model and --data are prepared (suites.toml's [prepare]) when a suite needs them and they are missing.
--wheels / --peer-wheels / --tracker-wheels: a directory of wheels (benchmarks/device/make_wheels.sh), a directory
holding site.tar.xz (benchmarks/device/pack_site.sh: the wheels installed and packed, small enough to travel with
the repository to the device) or an installed site-packages directory. --uninstall-conflicts removes the image's
packages that the NumPy-1 set cannot sit beside (pip uninstall, in this interpreter's environment). Exit codes: 0
every command ended as its suite accepts, 1 one did not, 2 bad input (an unknown suite, a missing argument, an
unreadable suites file).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
SUITES_FILE = REPO / "benchmarks" / "suites.toml"
PROGRESS = re.compile(r"(it/s\]|s/it\])$")
GRACE_S = 15
PACKED_SITE = "site.tar.xz"  # benchmarks/device/pack_site.sh
PLACEHOLDERS = ("model", "data", "out", "work", "stack")
PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


class SuiteError(ValueError):
    """Bad input: an unknown suite, a missing argument or a malformed suites file."""


@dataclass(frozen=True)
class WheelSet:
    name: str
    flag: str
    files: tuple[str, ...]
    make: str
    conflicts: tuple[str, ...]


@dataclass(frozen=True)
class Suite:
    name: str
    measures: str
    gpus: int
    needs: tuple[str, ...]
    wheels: tuple[str, ...]
    limit_s: int
    commands: tuple[tuple[str, ...], ...]
    accept: tuple[int, ...] = (0,)
    env: dict[str, str] = field(default_factory=dict)
    command_accept: tuple[tuple[int, ...] | None, ...] = ()  # per command: its own accepted codes, else ``accept``

    def accepts(self, index: int, code: int | None) -> bool:
        """Whether the suite's own command ``index`` ending with ``code`` counts as success."""
        own = self.command_accept[index] if index < len(self.command_accept) else None
        return code in (own if own is not None else self.accept)


@dataclass(frozen=True)
class Catalog:
    stack: str
    prepare: dict[str, tuple[str, ...]]
    wheel_sets: dict[str, WheelSet]
    suites: dict[str, Suite]


def load_catalog(path: Path = SUITES_FILE) -> Catalog:
    """Read and check the suites file. Raises SuiteError naming the file and the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SuiteError(f"{path}: {error}") from error
    try:
        wheel_sets = {name: WheelSet(name, ws["flag"], tuple(ws["files"]), ws["make"], tuple(ws.get("conflicts", ())))
                      for name, ws in data["wheel_sets"].items()}
        suites = {name: _suite(name, raw) for name, raw in data["suites"].items()}
        prepare = {key: tuple(command) for key, command in data["prepare"].items()}
        stack = data["defaults"]["stack"]
    except (KeyError, TypeError, ValueError) as error:
        raise SuiteError(f"{path}: missing or malformed key {error}") from error
    for suite in suites.values():
        problem = suite_problem(suite, wheel_sets, prepare)
        if problem:
            raise SuiteError(f"{path}: suites.{suite.name}: {problem}")
    return Catalog(stack, prepare, wheel_sets, suites)


def suite_problem(suite: Suite, wheel_sets: dict[str, WheelSet], prepare: dict[str, tuple[str, ...]]) -> str:
    """What is wrong with the suite's references to wheel sets, preparations and placeholders ("" when nothing)."""
    unknown_sets = [name for name in suite.wheels if name not in wheel_sets]
    if unknown_sets:
        return f"unknown wheel set {unknown_sets[0]!r} (one of {sorted(wheel_sets)})"
    unknown_needs = [need for need in suite.needs if need not in prepare]
    if unknown_needs:
        return f"unknown need {unknown_needs[0]!r} (one of {sorted(prepare)})"
    texts = [arg for command in suite.commands for arg in command] + list(suite.env.values())
    unknown = sorted({name for text in texts for name in re.findall(r"\{(\w+)\}", text)} - set(PLACEHOLDERS))
    if unknown:
        return f"unknown placeholder {{{unknown[0]}}} (known: {', '.join(PLACEHOLDERS)})"
    return ""


def _suite(name: str, raw: dict) -> Suite:
    """A command is an argument list, or a table ``{ run = [...], accept = [0, 1] }`` with its own accepted codes."""
    entries = [entry if isinstance(entry, dict) else {"run": entry} for entry in raw["commands"]]
    return Suite(name=name, measures=raw["measures"], gpus=int(raw["gpus"]), needs=tuple(raw["needs"]),
                 wheels=tuple(raw["wheels"]), limit_s=int(raw["limit_s"]),
                 commands=tuple(tuple(str(arg) for arg in entry["run"]) for entry in entries),
                 accept=tuple(raw.get("accept", (0,))), env={k: str(v) for k, v in raw.get("env", {}).items()},
                 command_accept=tuple(tuple(int(c) for c in entry["accept"]) if "accept" in entry else None
                                      for entry in entries))


@dataclass(frozen=True)
class Places:
    model: Path | None
    data: Path | None
    out: Path
    work: Path
    stack: str
    wheel_dirs: dict[str, Path]  # flag -> directory given

    def command(self, args: tuple[str, ...]) -> list[str]:
        """The command with its placeholders filled; `python3` is the interpreter running this script."""
        filled = [self.fill(arg) for arg in args]
        return [sys.executable, *filled[1:]] if filled[0] == "python3" else filled

    def fill(self, text: str) -> str:
        values = {"model": self.model or "", "data": self.data or "", "out": self.out, "work": self.work,
                  "stack": self.stack}
        return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)


def check_suite_inputs(suite: Suite, catalog: Catalog, places: Places) -> None:
    """Raise SuiteError when an argument the suite needs was not given."""
    for need in suite.needs:
        if getattr(places, need) is None:
            raise SuiteError(f"suite {suite.name} needs --{need} (prepared there when missing)")
    for name in suite.wheels:
        wheel_set = catalog.wheel_sets[name]
        given = places.wheel_dirs.get(wheel_set.flag)
        if given is None:
            raise SuiteError(f"suite {suite.name} needs {wheel_set.flag} DIR (the {name} set: make it with "
                             f"`{wheel_set.make}`)")
        if not given.is_dir():
            raise SuiteError(f"{wheel_set.flag} {given}: not a directory (make it with `{wheel_set.make}`)")


def site_dir(wheel_set: WheelSet, given: Path, work: Path) -> tuple[Path, list[list[str]]]:
    """Where the set is importable from, and the commands that put it there (none: already there, or `given` is an
    installed site-packages directory used as it is). `given` may hold wheels, or the xz archive of an installed
    site-packages (pack_site.sh), which is unpacked whole."""
    packed = given / PACKED_SITE
    if not packed.is_file() and not any(given.glob("*.whl")):
        return given, []
    target = work / f"site-{wheel_set.name}"
    marker = target / ".installed-wheels"
    if packed.is_file():
        listing = f"{PACKED_SITE} {packed.stat().st_size}"
        install = ["bash", "-c", 'rm -rf "$1" && mkdir -p "$1" && tar -C "$1" -xJf "$2"', "unpack", str(target),
                   str(packed)]
    else:
        wheels = sorted({str(path) for pattern in wheel_set.files for path in given.glob(pattern)})
        listing = "\n".join(Path(wheel).name for wheel in wheels)
        install = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                   "--no-cache-dir", "--upgrade", "--target", str(target), *wheels]
    if marker.is_file() and marker.read_text(encoding="utf-8") == listing:
        return target, []
    mark = [sys.executable, "-c", "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])",
            str(marker), listing]
    return target, [install, mark]


def plan_suite(suite: Suite, catalog: Catalog, places: Places) -> tuple[list[list[str]], dict[str, str]]:
    """The commands to run (preparation, installs, the suite's own) and the environment they run in."""
    steps: list[list[str]] = []
    if "model" in suite.needs and not (places.model / "config.json").is_file():
        steps.append(places.command(catalog.prepare["model"]))
    if "data" in suite.needs and not places.data.is_file():
        steps.append(places.command(catalog.prepare["data"]))
    sites = []
    for name in suite.wheels:
        wheel_set = catalog.wheel_sets[name]
        target, installs = site_dir(wheel_set, places.wheel_dirs[wheel_set.flag], places.work)
        steps.extend(installs)
        sites.append(str(target))
    env = {"PYTHONPATH": os.pathsep.join([*sites, str(REPO / "src")]), "PYTHONUNBUFFERED": "1",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "UNSLOTH_DISABLE_STATISTICS": "1"}
    env.update({key: places.fill(value) for key, value in suite.env.items()})
    steps.extend(places.command(command) for command in suite.commands)
    return steps, env


def run_command(command: list[str], env: dict[str, str], log: TextIO, deadline: float) -> tuple[int, float]:
    """Run one command, its output appended to `log`; SIGINT at the deadline, then SIGKILL. Returns (code, s)."""
    started = time.monotonic()
    log.write(f"\n=== {' '.join(command)}\n")
    log.flush()
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
    copier = threading.Thread(target=copy_without_progress, args=(process.stdout, log), daemon=True)
    copier.start()
    try:
        code = process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        code = _stop(process)
        copier.join(timeout=GRACE_S)
        log.write(f"=== stopped at the suite's time limit (exit {code})\n")
    copier.join(timeout=GRACE_S)
    return code, time.monotonic() - started


def copy_without_progress(stream: TextIO, log: TextIO) -> None:
    """Copy a child's output line by line, dropping tqdm's progress-bar updates and blank lines."""
    for line in stream:
        for part in line.split("\r"):
            if part.strip() and not PROGRESS.search(part.rstrip()):
                log.write(part if part.endswith("\n") else part + "\n")
        log.flush()


def _stop(process: subprocess.Popen) -> int:
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def machine_facts() -> dict[str, str]:
    facts = {}
    for key, command in (("commit", ["git", "describe", "--always", "--dirty", "--abbrev=12"]),
                         ("gpus", ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                   "--format=csv,noheader"])):
        try:
            facts[key] = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            facts[key] = "unknown"
    return facts


def run_suite(suite: Suite, catalog: Catalog, places: Places) -> bool:
    """Run every step of one suite; True when the suite's own commands all ended with an accepted code."""
    steps, env = plan_suite(suite, catalog, places)
    own = len(suite.commands)
    places.out.mkdir(parents=True, exist_ok=True)
    places.work.mkdir(parents=True, exist_ok=True)
    if places.data is not None:
        places.data.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + suite.limit_s
    results = []
    with open(places.out / f"{suite.name}.log", "w", encoding="utf-8") as log:
        for index, command in enumerate(steps):
            code, seconds = run_command(command, env, log, deadline)
            first_own = len(steps) - own
            accepted = suite.accepts(index - first_own, code) if index >= first_own else code == 0
            results.append({"command": command, "exit": code, "seconds": round(seconds, 1), "accepted": accepted})
            print(f"[{suite.name}] exit {code} in {seconds:.0f} s: {' '.join(command)[:160]}", file=sys.stderr)
            if not accepted and index < len(steps) - own:
                break  # a failed preparation or install leaves nothing to measure
    summary = {"suite": suite.name, "measures": suite.measures, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ",
               time.gmtime()), **machine_facts(), "env": env, "results": results}
    (places.out / f"{suite.name}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return len(results) == len(steps) and all(result["accepted"] for result in results)


def uninstall_conflicts(suites: list[Suite], catalog: Catalog) -> list[str]:
    names = sorted({name for suite in suites for ws in suite.wheels for name in catalog.wheel_sets[ws].conflicts})
    return [sys.executable, "-m", "pip", "uninstall", "-y", *names] if names else []


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("suites", nargs="*", metavar="SUITE", help="names from benchmarks/suites.toml")
    parser.add_argument("--list", action="store_true", help="list the suites and exit")
    parser.add_argument("--model", type=Path, help="Llama-3.1-8B-shaped model directory (built there if missing)")
    parser.add_argument("--data", type=Path, help="chat-rows JSONL (written there if missing)")
    parser.add_argument("--wheels", type=Path, help="the NumPy-1 wheel set (make_wheels.sh numpy1) or a site dir")
    parser.add_argument("--peer-wheels", type=Path, help="the peers' wheel set (make_wheels.sh peers) or a site dir")
    parser.add_argument("--tracker-wheels", type=Path,
                        help="the ClearML wheel set (make_wheels.sh clearml) or a site dir")
    parser.add_argument("--out", type=Path, default=Path("out"), help="logs and JSON results (default out/)")
    parser.add_argument("--work", type=Path, default=None, help="scratch space (default OUT/work)")
    parser.add_argument("--stack", default=None, help="envdoctor stack for the trainer's gate (default: suites.toml)")
    parser.add_argument("--uninstall-conflicts", action="store_true",
                        help="pip uninstall the image's NumPy-2-only packages the NumPy-1 set cannot sit beside")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and environment, run nothing")
    parser.add_argument("--suites-file", type=Path, default=SUITES_FILE, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A runner started in the background (nohup, `&`) inherits SIGINT ignored, and so would every command it starts:
    # the limit's SIGINT would then do nothing until the SIGKILL. A handled SIGINT resets to the default at exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        catalog = load_catalog(args.suites_file)
        if args.list:
            for suite in catalog.suites.values():
                print(f"{suite.name:26} {suite.gpus} GPU  {suite.measures}")
            return 0
        if not args.suites:
            raise SuiteError("name at least one suite (--list shows them)")
        unknown = [name for name in args.suites if name not in catalog.suites]
        if unknown:
            raise SuiteError(f"unknown suite {', '.join(unknown)} (--list shows the {len(catalog.suites)} suites)")
        out = args.out.resolve()
        places = Places(model=args.model and args.model.resolve(), data=args.data and args.data.resolve(), out=out,
                        work=(args.work or out / "work").resolve(), stack=args.stack or catalog.stack,
                        wheel_dirs={flag: path.resolve() for flag, path in (("--wheels", args.wheels),
                                    ("--peer-wheels", args.peer_wheels), ("--tracker-wheels", args.tracker_wheels))
                                    if path is not None})
        suites = [catalog.suites[name] for name in args.suites]
        for suite in suites:
            check_suite_inputs(suite, catalog, places)
    except SuiteError as error:
        print(f"run_suite: error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        for suite in suites:
            steps, env = plan_suite(suite, catalog, places)
            print(f"# {suite.name} ({suite.gpus} GPU, limit {suite.limit_s} s): {suite.measures}")
            print("# env: " + " ".join(f"{key}={value}" for key, value in env.items()))
            for command in steps:
                print(" ".join(command))
        return 0
    conflicts = uninstall_conflicts(suites, catalog) if args.uninstall_conflicts else []
    if conflicts:
        subprocess.run(conflicts, check=False)
    failed = [suite.name for suite in suites if not run_suite(suite, catalog, places)]
    print(f"run_suite: {len(suites) - len(failed)} of {len(suites)} suites passed; logs in {places.out}"
          + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
