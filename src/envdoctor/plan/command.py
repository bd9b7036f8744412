"""``envdoctor plan``'s command logic: checks the flags, builds the plan and renders it or verifies it.

Nothing here prints or exits: bad input raises ``PlanInputError`` (exit 2), a target no plan can work for raises
``PlanError`` (exit 1), and ``envdoctor.cli`` prints the results and the errors.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from envdoctor.atomic import write_atomic
from envdoctor.errors import UsageError
from envdoctor.plan.model import Installer, Plan, Target

if TYPE_CHECKING:
    from envdoctor.plan.resolvers import Resolver

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


class PlanInputError(UsageError, ValueError):
    """A command-line value of ``envdoctor plan`` that is not acceptable; exit 2."""


def make_plan(args: argparse.Namespace) -> Plan:
    """The plan the flags ask for, with only the ``--steps`` chosen. Raises PlanInputError or PlanError."""
    target, stack_name = _target_from_args(args)
    return _selected_steps(_make_plan(args, target, stack_name), _validated("steps", args.steps))


def plan_text(plan: Plan, args: argparse.Namespace) -> str:
    """The plan in ``--format``; ``requirements`` also writes the constraints file (PlanInputError when it cannot)."""
    from envdoctor.plan.formats import render_constraints, render_plan_json, render_requirements

    if args.plan_format == "json":
        return render_plan_json(plan)
    if args.plan_format == "requirements":
        path = Path(args.constraints)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, render_constraints(plan))
        except OSError as exc:
            raise PlanInputError(f"{exc.filename or args.constraints}: cannot write ({exc.strerror or exc}); pass "
                                 "--constraints with a writable path") from None
        return render_requirements(plan, constraints_name=path.name if path.parent == Path(".") else str(path))
    from envdoctor.render.script import render_script

    return render_script(plan)


def verify_resolver(installer: str | None) -> Resolver:
    """What ``--verify`` resolves with: uv when found, else pip; ``--installer pip`` forces pip."""
    from envdoctor.plan.resolvers import choose_resolver

    return choose_resolver(Installer(installer) if installer else None)


def verify(plan: Plan, resolver: Resolver, plan_format: str) -> tuple[str, bool]:
    """(the per-step verdicts as text or envdoctor.plan-verify/1 JSON, whether any step conflicts)."""
    from envdoctor.plan.verify import Verdict, render_checks, render_checks_json, verify_plan

    checks = verify_plan(plan, resolver=resolver)
    text = render_checks_json(plan, checks, resolver) if plan_format == "json" else render_checks(checks)
    return text, any(c.verdict is Verdict.CONFLICT for c in checks)


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
