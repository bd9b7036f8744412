"""envdoctor plan: install steps for a stack on a target (CUDA driver, Python, GPU).

``build_plan`` is pure; ``command`` holds the ``envdoctor plan`` command's logic (``envdoctor.cli`` owns its flags
and prints); renderers live in ``formats`` and ``envdoctor.render.script``.
"""

from __future__ import annotations

from envdoctor.plan.model import Plan, PlanError, Step, Target

__all__ = ["Plan", "PlanError", "Step", "Target", "build_plan"]


def __getattr__(name: str):  # build_plan imports packaging and the matrices; load it only when asked
    if name == "build_plan":
        from envdoctor.plan.build import build_plan

        return build_plan
    raise AttributeError(name)
