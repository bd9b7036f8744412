"""Golden plans for the bundled stacks, checked against hand-copied compat-facts expectations; refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from envdoctor.matrices import load_matrices
from envdoctor.plan.build import MINOR_COMPAT_NOTE, build_plan
from envdoctor.plan.model import PlanError, Source, StepKind, Target

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

DATA = Path(__file__).parent / "data"
EXPECTED = tomllib.loads((DATA / "expected_plans.toml").read_text())
FIXTURES = load_matrices(DATA / "matrices")


@pytest.fixture(scope="module")
def bundled():
    return load_matrices()


@pytest.mark.parametrize("case", EXPECTED["case"], ids=lambda c: f"{c['stack']}-cuda{c['cuda']}-py{c['python']}")
def test_golden_plan(bundled, case):
    plan = build_plan(bundled.stack(case["stack"]), Target(cuda=case["cuda"], python=case["python"]))
    torch_step = next(s for s in plan.steps if s.id == "torch")
    assert torch_step.requirements[0] == case["torch"]
    variant = case["torch"].split("+")[1]
    assert torch_step.index_url == f"https://download.pytorch.org/whl/{variant}"
    assert plan.torch.minor_compat is case["minor_compat"]
    assert any(MINOR_COMPAT_NOTE in note for note in plan.notes) is case["minor_compat"]
    fa_steps = [s for s in plan.steps if s.id == "flash-attn"]
    if "flash_attn" in case:
        assert fa_steps[0].requirements == (f"flash-attn @ {EXPECTED['FA']}{case['flash_attn']}",)
        assert fa_steps[0].source is Source.URL
    else:
        assert fa_steps == []


def test_phase1a_plan_pins_everything_and_holds_torch_and_numpy(bundled):
    plan = build_plan(bundled.stack("phase1a-2.0"), Target(cuda="12.4", python="3.10"))
    assert "torch==2.3.1+cu121" in plan.constraints
    assert "numpy==1.26.4" in plan.constraints
    assert not any(line.startswith("flash-attn") for line in plan.constraints)  # pip refuses URL + version pin
    packages = next(s for s in plan.steps if s.id == "packages")
    assert "trl==0.9.6" in packages.requirements and "transformers==4.43.3" in packages.requirements
    assert packages.only_binary and packages.use_constraints
    assert [s.kind for s in plan.steps][0] is StepKind.UNINSTALL
    assert plan.steps[-1].kind is StepKind.CHECK and plan.steps[-1].requirements == ("phase1a-2.0",)


def test_gpu_arch_picks_a_variant_that_has_its_kernels():
    # cu118 and cu121 of torch 2.1.0 both carry sm_50..sm_90; sm_61 runs sm_60 SASS
    plan = build_plan(FIXTURES.stack("old-torch-cu118"), Target(cuda="12.1", python="3.10", gpu_cc="6.1"))
    assert plan.torch.variant == "cu121"


def test_refuses_gpu_too_old_for_the_only_variant():
    with pytest.raises(PlanError, match=r"no kernels for sm_61 \(built for sm_70"):
        build_plan(FIXTURES.stack("cu128-only"), Target(cuda="12.8", python="3.11", gpu_cc="6.1"))


def test_refuses_gpu_below_the_stack_floor_and_names_working_stacks(bundled):
    others = [FIXTURES.stack("old-torch-cu118")]
    with pytest.raises(PlanError, match=r"compute capability >= 8.0.*sm_61.*stacks that do.*old-torch-cu118"):
        build_plan(bundled.stack("phase1a-2.0"), Target("12.4", "3.10", gpu_cc="6.1"), other_stacks=others)


def test_refuses_cuda_too_old_for_any_variant(bundled):
    with pytest.raises(PlanError, match=r"no torch build that runs.*cu121: built for CUDA 12.1, newer than the"):
        build_plan(bundled.stack("phase1a-2.0"), Target(cuda="10.2", python="3.10"))


def test_refuses_a_13_driver_for_cu13_only_when_driver_is_12(bundled):
    plan = build_plan(bundled.stack("lora-cu130-2026.11"), Target(cuda="12.8", python="3.11"))
    assert plan.torch.variant == "cu128"  # cu130 would need a 13.x driver: minor compat never crosses majors


def test_refuses_python_without_torch_wheels():
    with pytest.raises(PlanError, match=r"torch 2.1.0 has no CPython 3.12 wheels"):
        build_plan(FIXTURES.stack("old-torch-cu118"), Target(cuda="12.1", python="3.12"))


def test_refuses_python_outside_the_stack(bundled):
    with pytest.raises(PlanError, match=r"needs Python >=3.9,<3.12, the target is Python 3.12"):
        build_plan(bundled.stack("phase1a-2.0"), Target(cuda="12.4", python="3.12"))


def test_refuses_missing_flash_attn_wheel_and_offers_nearest_target():
    with pytest.raises(PlanError, match=r"no prebuilt wheel .*CPython 3.12.*nearest target with one: --python 3.11"):
        build_plan(FIXTURES.stack("fa-cp312"), Target(cuda="12.4", python="3.12"))


def test_refuses_flash_attn_on_turing():
    with pytest.raises(PlanError, match=r"flash-attn 2.5.8 needs compute capability >= 8.0; the target GPU is sm_75"):
        build_plan(FIXTURES.stack("fa-cp312"), Target(cuda="12.4", python="3.11", gpu_cc="7.5"))


def test_refuses_blackwell_for_a_torch_without_its_kernels():
    with pytest.raises(PlanError, match=r"torch 2.3.1\+cu121 has no kernels for sm_120"):
        build_plan(FIXTURES.stack("fa-cp312"), Target(cuda="12.8", python="3.11", gpu_cc="12.0"))


def test_cpu_stack_uses_the_cpu_index(bundled):
    plan = build_plan(bundled.stack("cpu-test"), Target(cuda="12.4", python="3.11"))
    assert plan.steps[1].requirements[0] == "torch==2.13.0+cpu"
    assert plan.steps[1].index_url == "https://download.pytorch.org/whl/cpu"
