"""--verify: offline sources are reported, never failed; PyPI resolution reports resolved or the conflict.

The network tests share one module-scoped run: every plan below is verified once, all plans concurrently (pip
spends its time waiting on PyPI), and each test asserts on its own plan's result. Nothing is cached across runs.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest

from envdoctor.matrices import load_matrices
from envdoctor.plan.build import build_plan
from envdoctor.plan.model import Plan, Source, Step, StepKind, Target
from envdoctor.plan.verify import PYPI_PROBE_URL, StepCheck, Verdict, reach, verify_plan

RESOLVING = [("phase1a-2.0", "12.4", "3.10"), ("lora-cu128-2026.11", "12.8", "3.11")]  # cu118: offline goldens


def _plan(stack: str, cuda: str, python: str) -> Plan:
    return build_plan(load_matrices().stack(stack), Target(cuda=cuda, python=python))


def _numpy2_plan() -> Plan:
    """phase1a's packages step with its numpy pin dropped and numpy==2.0.2 forced by the constraints.

    Nothing asks for numpy 1.26.4 any more, so the only cause of a conflict is trl 0.9.6's numpy<2.
    """
    plan = _plan("phase1a-2.0", "12.4", "3.10").only_steps(("packages",))
    (packages,) = plan.steps
    requirements = tuple(r for r in packages.requirements if not r.startswith("numpy"))
    constraints = tuple("numpy==2.0.2" if line.startswith("numpy") else line for line in plan.constraints)
    steps = (dataclasses.replace(packages, requirements=requirements),)
    return dataclasses.replace(plan, constraints=constraints, steps=steps)


def test_everything_offline_is_reported_not_failed():
    checks = verify_plan(_plan("phase1a-2.0", "12.4", "3.10"), reach_url=lambda url: None)
    assert [c.step for c in checks] == ["torch", "flash-attn", "packages"]
    assert all(c.verdict is Verdict.OFFLINE for c in checks)


def test_only_install_steps_are_checked_and_vcs_is_not_pretended():
    plan = _plan("phase1a-2.0", "12.4", "3.10")
    vcs = Step("vcs-x", StepKind.INSTALL, "x from git", ("x @ git+https://example.invalid/x.git@v1",), Source.VCS)
    checks = verify_plan(dataclasses.replace(plan, steps=(plan.steps[0], vcs, plan.steps[-1])), lambda url: None)
    assert [(c.step, c.verdict) for c in checks] == [("vcs-x", Verdict.OFFLINE)]


@pytest.fixture(scope="module")
def verified() -> dict[str, tuple[StepCheck, ...]]:
    """One verify run per plan, run concurrently; keyed by 'stack-cuda-python' and 'numpy2'."""
    if reach(PYPI_PROBE_URL) is None:
        pytest.skip("PyPI not reachable")
    plans = {"-".join(case): _plan(*case) for case in RESOLVING}
    plans["numpy2"] = _numpy2_plan()
    with ThreadPoolExecutor(max_workers=len(plans)) as pool:
        futures = {key: pool.submit(verify_plan, plan) for key, plan in plans.items()}
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("stack,cuda,python", RESOLVING)
def test_bundled_stack_resolves_on_pypi(verified, stack, cuda, python):
    checks = {c.step: c for c in verified[f"{stack}-{cuda}-{python}"]}
    assert checks["packages"].verdict is Verdict.RESOLVED, checks["packages"].detail
    plan = _plan(stack, cuda, python)
    index_up = reach(plan.torch.index_url) is not None  # else PyPI's build resolved, the variant's is unseen
    assert checks["torch"].verdict is (Verdict.RESOLVED if index_up else Verdict.OFFLINE), checks["torch"].detail
    assert f"torch=={plan.torch.version}" in checks["torch"].detail
    packages = next(step for step in plan.steps if step.id == "packages")
    for requirement in packages.requirements:  # every pin resolved to exactly its version
        if "==" in requirement:
            assert requirement in checks["packages"].detail
    assert checks["flash-attn"].verdict in (Verdict.RESOLVED, Verdict.OFFLINE)


@pytest.mark.network
@pytest.mark.slow
def test_conflict_is_reported_with_pips_reason(verified):
    (packages,) = verified["numpy2"]
    assert packages.step == "packages"
    assert packages.verdict is Verdict.CONFLICT
    assert "numpy" in packages.detail and "trl" in packages.detail, packages.detail
