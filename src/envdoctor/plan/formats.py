"""Plan -> requirements.txt, constraints.txt and JSON text (each a pure function returning str)."""

from __future__ import annotations

import json

from envdoctor.plan.model import Plan, StepKind


def render_constraints(plan: Plan) -> str:
    """The constraints file (-c): every pin, torch with its local tag, numpy's bound."""
    target = plan.target
    header = f"# envdoctor plan constraints: stack {plan.stack}, driver CUDA {target.cuda}, Python {target.python}"
    return "\n".join([header, *plan.constraints]) + "\n"


def render_requirements(plan: Plan, constraints_name: str = "constraints.txt") -> str:
    """A requirements file that installs the plan with one ``pip install -r`` (after the conflicts are removed)."""
    removed = next((s.requirements for s in plan.steps if s.kind is StepKind.UNINSTALL), ())
    lines = [
        f"# envdoctor plan: stack {plan.stack}, driver CUDA {plan.target.cuda}, Python {plan.target.python}",
        f"# First: pip uninstall -y {' '.join(removed)}",
        f"# Then:  pip install -r <this file>   (keeps {constraints_name} next to it)",
        *[f"# Note: {' '.join(note.split())}" for note in plan.notes],
        f"-c {constraints_name}",
        f"--extra-index-url {plan.torch.index_url}",
        "--prefer-binary",
    ]
    for step in plan.steps:
        if step.kind is StepKind.INSTALL:
            lines.append(f"# {step.id}: {' '.join(step.why.split())}")
            lines += list(step.requirements)
    return "\n".join(lines) + "\n"


def render_plan_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2) + "\n"
