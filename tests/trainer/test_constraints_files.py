"""constraints/<stack>.txt: in step with matrices/stacks and pyproject's [train] extra; the README names them."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

import pytest
from helpers import REPO
from packaging.requirements import Requirement

from envdoctor.matrices import Stack, StackVariant, load_matrices
from trainer.config import DEFAULT_STACK


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("constraints_generate", REPO / "constraints" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


generate = load_generator()


def test_constraints_files_are_in_step_with_the_stacks() -> None:
    assert generate.stale_files() == [], "run: python constraints/generate.py"


def test_every_file_pins_its_stack_and_torch() -> None:
    for path, text in generate.expected_files().items():
        stack = load_matrices().stack(path.stem)
        pinned = dict(line.split("==") for line in text.splitlines() if line and not line.startswith("#"))
        assert {name: pinned[name] for name in stack.pins} == stack.pins
        assert pinned["torch"] == stack.variants[0].torch


def test_the_default_training_stack_is_installable_and_named_in_the_readme() -> None:
    assert (REPO / "constraints" / f"{DEFAULT_STACK}.txt").is_file()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for stack in (DEFAULT_STACK, "cpu-test"):
        assert f'pip install ".[train]" -c constraints/{stack}.txt' in readme
    assert re.search(rf"default\s+`?{re.escape(DEFAULT_STACK)}`?", readme), "the README names the default stack"


def test_a_stack_the_extra_cannot_install_gets_no_file() -> None:
    old = Stack(name="old", summary="", python=">=3.9,<3.12", pins={"transformers": "4.43.3"},
                variants=(StackVariant(cuda="cu121", torch="2.3.1"),))
    found = generate.stack_constraints(old, [Requirement("torch>=2.4"), Requirement("transformers>=4.46")])
    assert len(found.problems) == 2 and "transformers 4.43.3" in found.problems[1]
    assert (REPO / "constraints" / "phase1a-2.0.txt").exists() is False  # phase1a-2.0 pins transformers 4.43.3


@pytest.mark.parametrize("variants,torch", [
    ((StackVariant("cu128", "2.8.0"), StackVariant("cu126", "2.8.0")), "2.8.0"),
    ((StackVariant("cu130", "2.11.0"), StackVariant("cu128", "2.9.1")), None),
])
def test_torch_is_pinned_only_when_the_variants_agree(variants: tuple, torch: str | None) -> None:
    found = generate.stack_constraints(Stack(name="s", summary="", variants=variants), [])
    assert found.pins.get("torch") == torch
    assert bool(found.problems) == (torch is None)
