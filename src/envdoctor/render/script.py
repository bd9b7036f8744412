"""render_script: a Plan -> a bash install script (deterministic: same plan, same bytes).

Every value from the plan is passed through ``shlex.quote``; nothing is interpolated unquoted. The plan's installer
decides the form of each step: ``"$PY" -m pip install ...`` or ``uv pip install --python "$PY" ...`` with the same
pins, index URLs and constraints.
"""

from __future__ import annotations

import shlex

from envdoctor.plan.model import Installer, Plan, Step, StepKind
from envdoctor.untrusted import escape_control

q = shlex.quote


def render_script(plan: Plan) -> str:
    """The whole script, ending in a newline."""
    lines = _header(plan) + _python_setup(plan) + _constraints_file(plan)
    for number, step in enumerate(plan.steps, start=1):
        lines += ["", f"# Step {number} ({step.id}): {_comment(step.why)}"] + _step_lines(step, plan)
    lines += ["", "echo 'envdoctor plan: done' >&2"]
    return "\n".join(lines) + "\n"


def _comment(text: str) -> str:
    """One line (a newline in data must not end the comment), with any other control character escaped."""
    return escape_control(" ".join(text.split()))


def _header(plan: Plan) -> list[str]:
    target = plan.target
    gpu = f"sm_{target.gpu_cc.replace('.', '')}" if target.gpu_cc else "unknown"
    if target.gpu_name:
        gpu += f" ({target.gpu_name})"
    lines = [
        "#!/usr/bin/env bash",
        "# Written by 'envdoctor plan'. Re-run 'envdoctor plan' rather than editing by hand.",
        f"# Stack:  {_comment(plan.stack)}: {_comment(plan.stack_summary)}",
        f"# Target: driver CUDA {target.cuda}, Python {target.python}, GPU {_comment(gpu)}, {target.platform}",
        f"# Torch:  {plan.torch.pin} from {plan.torch.index_url}",
        f"# Installer: {plan.installer.value} ({_comment(plan.installer_reason or 'the default')})",
    ]
    lines += [f"# Note:   {_comment(note)}" for note in plan.notes]
    return lines + ["set -euo pipefail", ""]


def _python_setup(plan: Plan) -> list[str]:
    want = plan.target.python
    uv = plan.installer is Installer.UV
    lines = _uv_present() if uv else []
    if plan.venv:
        make = f"uv venv --python {q(want)} -- \"$VENV\"" if uv else f"python{want} -m venv -- \"$VENV\""
        lines += ["# A fresh virtual environment for this stack.", f"VENV={q(plan.venv)}", make,
                  'PY="$VENV/bin/python"']
    else:
        lines += ["# The interpreter to install into (override with PYTHON=/path/to/python).",
                  'PY="${PYTHON:-python3}"']
    major, minor = want.split(".")
    check = f"import sys; sys.exit(sys.version_info[:2] != ({int(major)}, {int(minor)}))"
    lines += [
        f"if ! \"$PY\" -c {q(check)}; then",
        f"  echo {q(f'envdoctor plan: this plan is for Python {want}; set PYTHON to a Python {want} interpreter')} >&2",
        "  exit 1",
        "fi",
    ]
    return lines if uv else lines + _pip_present()


def _uv_present() -> list[str]:
    missing = "envdoctor plan: this script installs with uv, which is not on PATH; install uv or write the plan" \
              " with --installer pip"
    return ["if ! command -v uv >/dev/null 2>&1; then", f"  echo {q(missing)} >&2", "  exit 1", "fi"]


def _pip_present() -> list[str]:
    missing = "envdoctor plan: pip is missing for this interpreter; run: PYTHON -m ensurepip --upgrade, or write" \
              " the plan with --installer uv"
    return ['if ! "$PY" -m pip --version >/dev/null 2>&1; then', f"  echo {q(missing)} >&2", "  exit 1", "fi"]


def _pip(plan: Plan, command: str) -> str:
    """The start of a pip command for the target interpreter: ``"$PY" -m pip install`` or its uv form."""
    if plan.installer is Installer.UV:
        return f'uv pip {command} --python "$PY"'
    return f'"$PY" -m pip {command}'


def _constraints_file(plan: Plan) -> list[str]:
    body = "\n".join(plan.constraints)
    return [
        "",
        "# Constraints (-c) for every later pip step: no step may upgrade or replace torch, numpy or a pin.",
        'WORKDIR="$(mktemp -d)"',
        "trap 'rm -rf -- \"$WORKDIR\"' EXIT",
        'CONSTRAINTS="$WORKDIR/constraints.txt"',
        f"printf '%s\\n' {q(body)} > \"$CONSTRAINTS\"",
    ]


def _step_lines(step: Step, plan: Plan) -> list[str]:
    if step.kind is StepKind.UNINSTALL:
        assume_yes = "" if plan.installer is Installer.UV else " -y"  # uv pip uninstall never asks
        return [_pip(plan, "uninstall") + assume_yes + " " + " ".join(q(r) for r in step.requirements)]
    if step.kind is StepKind.CHECK:
        return _check_lines(step, plan)
    args = [_pip(plan, "install")]
    if step.only_binary:
        args.append("--only-binary=:all:")
    if step.index_url:
        args.append(f"--index-url {q(step.index_url)}")
    if step.use_constraints:
        args.append('-c "$CONSTRAINTS"')
    args += [q(r) for r in step.requirements]
    return [" \\\n    ".join(args)]


def _check_lines(step: Step, plan: Plan) -> list[str]:
    if not step.requirements:  # the target Python is too old for envdoctor itself
        return [f"echo {q('envdoctor plan: ' + _comment(step.why))} >&2"]
    stack = step.requirements[0]
    source = plan.envdoctor_source or "envdoctor"
    return [
        "# envdoctor checks the interpreter it runs in, so it runs as $PY, not from the venv you ran 'plan' in.",
        "# If $PY lacks it, it is installed there from ENVDOCTOR_SOURCE: by default the release (or the VCS commit)",
        "# of the envdoctor that wrote this plan; set ENVDOCTOR_SOURCE to a checkout path, a wheel or a pip",
        "# requirement to override. The constraints keep torch, numpy and the pins as installed.",
        f'if [ -z "${{ENVDOCTOR_SOURCE:-}}" ]; then ENVDOCTOR_SOURCE={q(source)}; fi',
        "if ! \"$PY\" -c 'import envdoctor' 2>/dev/null; then",
        f'  {_pip(plan, "install")} -c "$CONSTRAINTS" "$ENVDOCTOR_SOURCE"',
        "fi",
        f'"$PY" -m envdoctor check --stack {q(stack)}',
    ]

