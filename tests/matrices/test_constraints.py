"""The test suite's install constraints are the cpu-test stack's pins: the tests run on the stack they check."""

from __future__ import annotations

from pathlib import Path

from envdoctor.matrices import load_matrices

CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints.txt"


def test_constraints_file_matches_the_cpu_test_stack() -> None:
    stack = load_matrices().stack("cpu-test")
    wanted = {**stack.pins, **{name: version for v in stack.variants for name, version in v.pins().items()}}
    lines = [line.split("#")[0].strip() for line in CONSTRAINTS.read_text().splitlines()]
    pinned = dict(line.split("==") for line in lines if line)
    assert pinned == wanted
