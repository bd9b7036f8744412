"""envdoctor beside the tools a fine-tuning user reaches for: time each (median of whole-process runs) and say what
each one judges. Writes the Markdown table that docs/comparison.md holds.

Usage: python benchmarks/compare_tools.py [--python PATH] [--runs 5] [--tools-venv DIR | --no-install]

``--python``: the environment every tool looks at (default: the interpreter running this script); envdoctor, the
Hugging Face CLIs and torch's collect_env run from there. Tools that are not installed there (pipdeptree, uv) are
installed into ``--tools-venv`` (default: a throwaway venv in the temp directory) from the configured package index,
and pointed at the environment with their own ``--python`` option. A tool that still cannot run is listed as not
available. Each tool runs once untimed (warm file cache), then ``--runs`` times; the table gives the median.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 120.0
# What each tool judges, as its documentation and its output say; the same wording for every run.
JUDGES = {
    "envdoctor check": "judges: driver vs torch's CUDA build, GPU arch vs compiled kernels, extension ABI "
                       "(torch/C++/CUDA), NumPy 1/2 breakage, declared requirements, pins of a stack, "
                       "CUDA_VISIBLE_DEVICES, LD_LIBRARY_PATH, GPU memory in use, --model; exit 1 on a failure, "
                       "every finding with a fix",
    "envdoctor check --python": "the same, run from outside the environment (envdoctor not installed in it)",
    "python -m torch.utils.collect_env": "reports versions (torch, its CUDA, driver and GPUs via nvidia-smi, cuDNN, "
                                         "OS, compilers, pip/conda packages); judges nothing",
    "pip check": "judges: every installed package's declared requirements (Requires-Dist) are met; nothing about "
                 "CUDA, GPU, driver or ABI",
    "uv pip check": "the same judgement as pip check",
    "pipdeptree --warn fail": "prints the dependency tree; judges: conflicting or cyclic declared requirements "
                              "(exit 1 with --warn fail)",
    "transformers env": "reports versions (transformers, huggingface_hub, safetensors, accelerate, torch and whether "
                        "a GPU is usable, Python, platform); judges nothing",
    "accelerate env": "reports accelerate's config, versions, torch's GPU availability, memory; judges nothing",
    "hf env": "reports huggingface_hub's version, paths and HF_* settings (cache, offline mode, token); "
              "judges nothing",
}


@dataclass(frozen=True)
class Outcome:
    name: str
    command: list[str] | None
    times: tuple[float, ...] = ()
    exit_code: int | None = None
    lines: int | None = None
    why_not: str | None = None


def tool_commands(python: Path, tools_bin: Path | None, envdoctor_python: Path) -> dict[str, list[str] | str]:
    """Each tool's command line, or why it cannot run here."""
    bin_dir = python.parent
    commands: dict[str, list[str] | str] = {
        "envdoctor check": [str(python), "-m", "envdoctor", "check", "--json"],
        "envdoctor check --python": [str(envdoctor_python), "-m", "envdoctor", "check", "--json", "--python",
                                     str(python)],
        "python -m torch.utils.collect_env": [str(python), "-m", "torch.utils.collect_env"],
        "pip check": [str(python), "-m", "pip", "check"],
    }
    for name, tool, args in (("uv pip check", "uv", ["pip", "check", "--python", str(python)]),
                             ("pipdeptree --warn fail", "pipdeptree", ["--python", str(python), "--warn", "fail"])):
        found = _find(tool, bin_dir, tools_bin)
        commands[name] = [found, *args] if found else f"{tool} is not installed and could not be installed"
    for name, tool in (("transformers env", "transformers"), ("accelerate env", "accelerate"), ("hf env", "hf")):
        found = bin_dir / tool
        commands[name] = [str(found), "env"] if found.exists() else f"{tool} is not installed in that environment"
    return commands


def _find(tool: str, *dirs: Path | None) -> str | None:
    for directory in dirs:
        if directory is not None and (directory / tool).exists():
            return str(directory / tool)
    return shutil.which(tool)


def runs_there(python: Path, module: str) -> bool:
    done = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, check=False)
    return done.returncode == 0


def install_tools(tools_venv: Path, names: list[str]) -> Path | None:
    """A venv with ``names`` installed from the configured index; None when that fails (no index reachable)."""
    if not (tools_venv / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=True).create(tools_venv)
    done = subprocess.run([str(tools_venv / "bin" / "python"), "-m", "pip", "install", "-q", *names],
                          capture_output=True, text=True, check=False)
    return tools_venv / "bin" if done.returncode == 0 else None


def measure(name: str, command: list[str] | str, runs: int) -> Outcome:
    if isinstance(command, str):
        return Outcome(name, None, why_not=command)
    env = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    times, done = [], None
    for attempt in range(runs + 1):
        started = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Outcome(name, command, why_not=f"could not run: {exc}")
        if attempt:  # the first run warms the file cache and is not counted
            times.append(time.perf_counter() - started)
    assert done is not None
    if done.returncode not in (0, 1):
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:160]
        return Outcome(name, command, tuple(times), done.returncode, why_not=f"exit {done.returncode}: {last}")
    return Outcome(name, command, tuple(times), done.returncode, len((done.stdout + done.stderr).splitlines()))


def table(outcomes: list[Outcome], python: Path, runs: int) -> str:
    rows = [f"| tool | median of {runs} runs | exit code | output lines | what it judges |",
            "| --- | ---: | ---: | ---: | --- |"]
    for outcome in outcomes:
        if outcome.why_not and not outcome.times:
            continue
        median = f"{statistics.median(outcome.times):.2f} s" if outcome.times else "-"
        rows.append(f"| `{outcome.name}` | {median} | {outcome.exit_code} | {outcome.lines or '-'} | "
                    f"{JUDGES[outcome.name]}{' (' + outcome.why_not + ')' if outcome.why_not else ''} |")
    missing = [o for o in outcomes if o.why_not and not o.times]
    notes = "".join(f"- `{o.name}`: not available here ({o.why_not})\n" for o in missing)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (f"Environment checked: `{python}`; {os.cpu_count()} CPU cores, load average {load:.1f} at the start;"
              f" each tool ran once untimed, then {runs} times.\n\n")
    return header + "\n".join(rows) + "\n" + ("\nNot available:\n\n" + notes if notes else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", type=Path, default=Path(sys.executable))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tools-venv", type=Path, help="venv for tools missing from --python (default: temporary)")
    parser.add_argument("--no-install", action="store_true",
                        help="install nothing: tools missing from --python are looked up on PATH only")
    parser.add_argument("--envdoctor-python", type=Path, default=Path(sys.executable),
                        help="interpreter with envdoctor, for the --python row (default: this one)")
    args = parser.parse_args()
    python = args.python.absolute()
    with tempfile.TemporaryDirectory() as scratch:
        missing = [tool for tool in ("pipdeptree", "uv") if not _find(tool, python.parent)]
        tools_bin = None
        if missing and not args.no_install:
            tools_bin = install_tools(args.tools_venv or Path(scratch) / "tools", missing)
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        outcomes = [measure(name, command, args.runs)
                    for name, command in tool_commands(python, tools_bin, args.envdoctor_python).items()]
    if not runs_there(python, "torch"):
        outcomes = [o if o.name != "python -m torch.utils.collect_env" else
                    Outcome(o.name, None, why_not="torch is not installed there") for o in outcomes]
    print(f"$ {shlex.join([sys.executable, *sys.argv])}\n")
    print(table(outcomes, python, args.runs), end="")
    if load_before is not None:
        print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
