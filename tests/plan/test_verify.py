"""--verify: offline sources are reported, never failed; PyPI resolution reports resolved or the conflict."""

from __future__ import annotations

import dataclasses

import pytest

from envdoctor.matrices import load_matrices
from envdoctor.plan.build import build_plan
from envdoctor.plan.model import Target
from envdoctor.plan.verify import PYPI_PROBE_URL, Verdict, reach, verify_plan


def _plan(stack: str, cuda: str, python: str):
    return build_plan(load_matrices().stack(stack), Target(cuda=cuda, python=python))


def test_everything_offline_is_reported_not_failed():
    checks = verify_plan(_plan("phase1a-2.0", "12.4", "3.10"), reach_url=lambda url: None)
    assert [c.step for c in checks] == ["torch", "flash-attn", "packages"]
    assert all(c.verdict is Verdict.OFFLINE for c in checks)


@pytest.fixture(scope="module")
def pypi():
    if reach(PYPI_PROBE_URL) is None:
        pytest.skip("PyPI not reachable")


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("stack,cuda,python", [("phase1a-2.0", "12.4", "3.10"), ("phase1a-2.0", "11.8", "3.11"),
                                               ("lora-cu128-2026.11", "12.8", "3.11")])
def test_bundled_stack_resolves_on_pypi(pypi, stack, cuda, python):
    checks = {c.step: c for c in verify_plan(_plan(stack, cuda, python))}
    assert checks["packages"].verdict is Verdict.RESOLVED, checks["packages"].detail
    assert checks["torch"].verdict is Verdict.RESOLVED, checks["torch"].detail
    version = _plan(stack, cuda, python).torch.version
    assert f"torch=={version}" in checks["torch"].detail
    assert checks["flash-attn"].verdict in (Verdict.RESOLVED, Verdict.OFFLINE)


@pytest.mark.network
@pytest.mark.slow
def test_conflict_is_reported_with_pips_reason(pypi):
    plan = _plan("phase1a-2.0", "12.4", "3.10")
    broken = dataclasses.replace(plan, constraints=(*plan.constraints[:-1], "numpy==2.0.2"))  # trl 0.9.6: numpy<2
    broken = dataclasses.replace(broken, constraints=tuple(c for c in broken.constraints if c != "numpy==1.26.4"))
    packages = next(c for c in verify_plan(broken) if c.step == "packages")
    assert packages.verdict is Verdict.CONFLICT
    assert "numpy" in packages.detail
