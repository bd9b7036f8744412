"""``envdoctor plan``: argparse glue. Validates every input before anything is printed (bad input -> exit 2)."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path

from envdoctor.atomic import write_atomic
from envdoctor.plan.model import Plan, PlanError, Target
from envdoctor.stdout import write_stderr, write_stdout
from envdoctor.untrusted import escape_control

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_STACK = "phase1a-2.0"
FORMATS = ("script", "requirements", "json")
INSTALLERS = ("pip", "uv")
_PATTERNS = {
    "cuda": (re.compile(r"^\d{1,2}\.\d{1,2}(\.\d{1,3})?$"), "a CUDA version like 12.4"),
    "python": (re.compile(r"^3\.\d{1,2}$"), "a Python version like 3.10"),
    "gpu_arch": (re.compile(r"^\d{1,2}\.\d$"), "a compute capability like 8.0"),
    "stack": (re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$"), "a stack name like phase1a-2.0"),
    "steps": (re.compile(r"^[a-z0-9-]{1,40}(,[a-z0-9-]{1,40}){0,20}$"), "step ids like torch,packages"),
}


class PlanInputError(ValueError):
    """A command-line value that is not acceptable; exit 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``envdoctor plan``."""
    parser.add_argument("--cuda", help="CUDA version the target driver supports (nvidia-smi 'CUDA Version')")
    parser.add_argument("--python", help="target Python, e.g. 3.10 (default: this interpreter)")
    parser.add_argument("--stack", help=f"bundled stack name (default: {DEFAULT_STACK})")
    parser.add_argument("--gpu-arch", dest="gpu_arch", help="target GPU compute capability, e.g. 8.0")
    parser.add_argument("--from-probe", dest="from_probe", action="store_true",
                        help="take CUDA, Python and GPU from this machine's probe")
    parser.add_argument("--format", dest="plan_format", choices=FORMATS, default="script")
    parser.add_argument("--constraints", default="constraints.txt",
                        help="where --format requirements writes the constraints file (default: constraints.txt)")
    parser.add_argument("--venv", help="create this virtual environment and install into it")
    parser.add_argument("--installer", choices=INSTALLERS,
                        help="what the script installs with (default: uv when the target interpreter has no pip and"
                             " uv is on PATH, else pip); --verify: pip forces pip's resolver")
    parser.add_argument("--verify", action="store_true",
                        help="resolve every step (no install) for the target with uv pip compile when uv is found,"
                             " else pip; report per step")
    parser.add_argument("--steps", help="only these step ids, comma-separated (e.g. packages); see --format json")
    parser.add_argument("--matrices", help=argparse.SUPPRESS)


def cli_main(args: argparse.Namespace) -> int:
    """Run ``envdoctor plan``; returns the exit code (0 ok, 1 no working plan or a conflict, 2 bad input)."""
    try:
        target, stack_name = _target_from_args(args)
        plan = _selected_steps(_make_plan(args, target, stack_name), _validated("steps", args.steps))
    except PlanInputError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except PlanError as exc:
        return _fail(str(exc), EXIT_FAIL)
    if args.verify:
        return _run_verify(plan, args.plan_format, args.installer)
    try:
        text = _render(plan, args)
    except OSError as exc:  # --constraints names a path that cannot be written
        return _fail(f"{exc.filename or args.constraints}: cannot write ({exc.strerror or exc}); pass --constraints "
                     "with a writable path", EXIT_USAGE)
    write_stdout(text)
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    write_stderr(f"envdoctor plan: {escape_control(message)}\n")
    return code


def _validated(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    pattern, expected = _PATTERNS[name]
    if not pattern.match(value):
        flag = "--" + name.replace("_", "-")
        raise PlanInputError(f"{flag} {value!r} is not {expected}")
    return value


def _target_from_args(args: argparse.Namespace) -> tuple[Target, str | None]:
    stack = _validated("stack", args.stack)
    cuda, python, gpu_cc = (_validated(n, getattr(args, n)) for n in ("cuda", "python", "gpu_arch"))
    if args.venv is not None and (not args.venv or any(ord(ch) < 32 for ch in args.venv)):
        raise PlanInputError("--venv must be a non-empty path without control characters")
    if args.plan_format == "requirements" and any(ord(ch) < 32 for ch in args.constraints):
        raise PlanInputError("--constraints must be a path without control characters")
    gpu_name = None
    if args.from_probe:
        cuda, python, gpu_cc, gpu_name = _from_probe(cuda, python, gpu_cc)
    if cuda is None:
        raise PlanInputError("pass --cuda (the CUDA version of the target driver) or --from-probe")
    python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    return Target(cuda=cuda, python=python, gpu_cc=gpu_cc, gpu_name=gpu_name), stack


def _from_probe(cuda: str | None, python: str | None, gpu_cc: str | None) -> tuple[str, str, str | None, str | None]:
    from envdoctor import probe

    snapshot = probe()
    nvidia = snapshot.nvidia
    probed_cuda = nvidia.cuda_driver if nvidia else None
    if cuda is None and probed_cuda is None:
        why = (nvidia.error if nvidia else None) or "no NVIDIA driver found"
        raise PlanInputError(
            f"--from-probe: this machine has no usable NVIDIA driver ({why}), so there is no CUDA version to plan"
            " for; pass --cuda X.Y (and --gpu-arch) of the machine the plan is for"
        )
    gpus = [g for g in ((nvidia.gpus if nvidia else None) or ()) if g.compute_capability]
    weakest = min(gpus, key=lambda g: tuple(int(p) for p in g.compute_capability.split(".")), default=None)
    probed_python = ".".join((snapshot.python.version or "").split(".")[:2]) or None
    return (
        _validated("cuda", cuda or probed_cuda) or "",
        _validated("python", python or probed_python) or "",
        gpu_cc or (weakest.compute_capability if weakest else None),
        weakest.name if weakest and not gpu_cc else None,
    )


def _selected_steps(plan: Plan, steps: str | None) -> Plan:
    if steps is None:
        return plan
    wanted = tuple(steps.split(","))
    known = [step.id for step in plan.steps]
    unknown = [step for step in wanted if step not in known]
    if unknown:
        raise PlanInputError(f"--steps: no step {', '.join(unknown)} in this plan; its steps are {','.join(known)}")
    return plan.only_steps(wanted)


def _make_plan(args: argparse.Namespace, target: Target, stack_name: str | None) -> Plan:
    from envdoctor.matrices import MatrixError, StackNotFoundError, load_matrices
    from envdoctor.plan.build import build_plan

    try:
        matrices = load_matrices(args.matrices)
        names = matrices.stack_names()
        name = stack_name or (DEFAULT_STACK if DEFAULT_STACK in names or not names else names[0])
        stack = matrices.stack(name)
        others = [matrices.stack(n) for n in names if n != name]
    except StackNotFoundError as exc:
        raise PlanInputError(str(exc)) from None
    except MatrixError as exc:
        raise PlanInputError(str(exc).splitlines()[0]) from None
    from envdoctor.plan.installer import choose_installer
    from envdoctor.plan.source import envdoctor_source

    plan = build_plan(stack, target, venv=args.venv, other_stacks=others)
    wanted = args.plan_format != "requirements" and not args.verify
    choice = choose_installer(args.installer, args.venv) if wanted else None
    if choice is None:
        return replace(plan, envdoctor_source=envdoctor_source())
    return replace(plan, envdoctor_source=envdoctor_source(), installer=choice.installer,
                   installer_reason=choice.reason)


def _render(plan: Plan, args: argparse.Namespace) -> str:
    from envdoctor.plan.formats import render_constraints, render_plan_json, render_requirements

    if args.plan_format == "json":
        return render_plan_json(plan)
    if args.plan_format == "requirements":
        path = Path(args.constraints)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, render_constraints(plan))
        return render_requirements(plan, constraints_name=path.name if path.parent == Path(".") else str(path))
    from envdoctor.render.script import render_script

    return render_script(plan)


def _run_verify(plan: Plan, plan_format: str, installer: str | None) -> int:
    """Per step: resolved, conflict or not verified (offline); ``--format json`` prints envdoctor.plan-verify/1.
    The resolver used (and why) goes to stderr."""
    from envdoctor.plan.model import Installer
    from envdoctor.plan.resolvers import choose_resolver
    from envdoctor.plan.verify import Verdict, render_checks, render_checks_json, verify_plan

    resolver = choose_resolver(Installer(installer) if installer else None)
    write_stderr(f"envdoctor plan --verify: resolving with {resolver.label} ({resolver.reason})\n")
    checks = verify_plan(plan, resolver=resolver)
    write_stdout(render_checks_json(plan, checks, resolver) if plan_format == "json" else render_checks(checks))
    return EXIT_FAIL if any(c.verdict is Verdict.CONFLICT for c in checks) else EXIT_OK
