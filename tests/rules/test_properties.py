"""Random or truncated snapshots never crash the checker."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envdoctor.checker import run_check
from envdoctor.matrices import load_matrices
from envdoctor.snapshot import SnapshotError, snapshot_from_dict

MATRICES = load_matrices()
DATA = Path(__file__).parents[1] / "data" / "snapshots"
EXAMPLES = [json.loads(p.read_text()) for p in sorted(DATA.glob("*.json")) if p.stem != "expected"]
VERSIONS = st.sampled_from([
    "2.3.1+cu121", "2.8.0", "1.26.4", "2.0.1", "0.9.6", "26.0.1", "x", "1!2.0", "2.6.0.dev1", "2.3.1+cu12", "2.8.0+cpu",
])
NAMES = st.sampled_from(["torch", "numpy", "trl", "pyarrow", "flash-attn", "torchvision", "xformers", "peft"])
TEXT = st.one_of(st.none(), st.text(max_size=8), VERSIONS)


def _drop(value, keys):
    if isinstance(value, dict):
        return {k: _drop(v, keys) for k, v in value.items() if k not in keys}
    return value


SNAPSHOTS = st.fixed_dictionaries({}, optional={
    "host": st.fixed_dictionaries({}, optional={"os": TEXT, "arch": TEXT, "glibc": TEXT}),
    "python": st.fixed_dictionaries({}, optional={"version": TEXT}),
    "nvidia": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
        "driver": TEXT, "cuda_driver": TEXT, "error": TEXT,
        "gpus": st.one_of(st.none(), st.lists(st.fixed_dictionaries({}, optional={
            "compute_capability": st.one_of(TEXT, st.sampled_from(["7.5", "8.0", "9.0", "12.0", "1!2.0", "8.x"])),
            "memory_mib": st.one_of(st.none(), st.integers(0, 200_000))}), max_size=3))})),
    "packages": st.one_of(st.none(), st.dictionaries(NAMES, st.fixed_dictionaries({"version": VERSIONS}, optional={
        "direct_url": TEXT, "requested_revision": TEXT,
        "requires": st.lists(st.sampled_from(["numpy<2", "torch==2.6.0", "bad req ((", "rich; extra == 'x'"]))}))),
    "torch": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
        "cuda": TEXT, "cxx11abi": st.one_of(st.none(), st.booleans()),
        "archs": st.one_of(st.none(), st.lists(st.sampled_from(["sm_80", "sm_90", "compute_90", "junk"])))})),
    "smoke": st.one_of(st.none(), st.dictionaries(NAMES, st.fixed_dictionaries({"ok": st.booleans()},
                                                                                optional={"error": TEXT}))),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=SNAPSHOTS, stack=st.sampled_from([None, *MATRICES.stack_names()]))
def test_random_snapshots_never_crash(data: dict, stack: str | None) -> None:
    try:
        snapshot = snapshot_from_dict(data)
    except SnapshotError:
        return
    report = run_check(snapshot, stack=stack, cwd=Path("/nonexistent"), matrices=MATRICES)
    assert report.status.value in ("ok", "warn", "fail")


@settings(max_examples=60, deadline=None)
@given(example=st.sampled_from(EXAMPLES), drop=st.sets(st.sampled_from(
    ["nvidia", "packages", "torch", "gpus", "driver", "version", "cuda", "compute_capability", "host"])))
def test_truncated_examples_never_crash(example: dict, drop: set) -> None:
    try:
        snapshot = snapshot_from_dict(_drop(example, drop))
    except SnapshotError:
        return
    run_check(snapshot, stack="phase1a-2.0", cwd=Path("/nonexistent"), matrices=MATRICES)
