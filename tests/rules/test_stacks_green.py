"""Every bundled stack, installed exactly, passes every rule and check for each of its CUDA variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.matrices import load_matrices
from envdoctor.rules import evaluate

from .synth import stack_snapshot

MATRICES = load_matrices()
VARIANTS = [(s.name, v.cuda) for s in MATRICES.stacks() for v in s.variants]


@pytest.mark.parametrize(("stack_name", "cuda"), VARIANTS, ids=[f"{s}-{c}" for s, c in VARIANTS])
def test_stack_is_green(stack_name: str, cuda: str, tmp_path: Path) -> None:
    stack = MATRICES.stack(stack_name)
    snapshot = stack_snapshot(stack, stack.variant(cuda))
    report = run_check(snapshot, stack=stack_name, cwd=tmp_path)
    assert report.status.value == "ok", [f.message for f in report.findings]
    assert not [f for f in evaluate(MATRICES.rules, snapshot) if f.severity.rank >= 2]


def test_expected_bundled_stacks_exist() -> None:
    names = MATRICES.stack_names()
    assert {"phase1a-2.0", "lora-cu128-2026.11", "lora-cu130-2026.11", "cpu-test"} <= set(names)
    assert MATRICES.stack("cpu-test").cpu_ok
    assert MATRICES.stack("phase1a-2.0").vcs["unsloth"].ref == "July-Llama-2024"


def test_stack_pins_agree_with_the_facts() -> None:
    from envdoctor.facts import Facts

    facts = Facts(MATRICES.root)
    for stack in MATRICES.stacks():
        for variant in stack.variants:
            release = facts.torch(variant.torch)
            assert release is not None, (stack.name, variant.torch)
            assert variant.cuda in (*release.variants, "cpu"), (stack.name, variant.cuda)
            flash = variant.packages.get("flash-attn")
            if flash:
                assert ".".join(variant.torch.split(".")[:2]) in facts.flash_attn(flash).torch_minors
