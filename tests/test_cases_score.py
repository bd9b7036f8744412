"""The diagnosis rate on the real cases under tests/cases never drops below its recorded floor."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

CASES = Path(__file__).parent / "cases"
SCRIPT = Path(__file__).parents[1] / "tools" / "score_cases.py"


def _scorer():
    spec = importlib.util.spec_from_file_location("score_cases", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_every_case_is_well_formed() -> None:
    for path in sorted(CASES.rglob("*.json")):
        if path.name == "floor.json":
            continue
        case = json.loads(path.read_text(encoding="utf-8"))
        assert case["url"].startswith("https://github.com/"), path
        assert case["class"] == path.parent.name, path
        assert case["expect"] and all(isinstance(c, list) and c for c, _ in case["expect"]), path
        assert case["snapshot"]["schema"] == "envdoctor.snapshot/1", path


def test_rates_hold_their_floor() -> None:
    scorer = _scorer()
    results = [scorer.score_case(path) for path in scorer.case_files([CASES])]
    assert len(results) >= 80
    table = scorer.rates(results)
    floor = json.loads((CASES / "floor.json").read_text(encoding="utf-8"))
    assert scorer.below_floor(table, floor) == [], [
        f"{r.path.name}: expected {r.missing}, got {r.got or r.error}" for r in results if not r.diagnosed]


def test_gpu_arch_cases_hold_their_floor_when_gpus_are_given_by_name_only() -> None:
    """Threads paste nvidia-smi's default output, which names a GPU without its compute capability: the GPU
    architecture cases are diagnosed from the model name (matrices/gpu_names.toml) nearly as well."""
    scorer = _scorer()
    paths = scorer.case_files([CASES / "gpu-arch"])
    named = [path for path in paths if scorer.names_only(json.loads(path.read_text())["snapshot"])
             != json.loads(path.read_text())["snapshot"]]
    assert len(named) >= 200
    results = [scorer.score_case(path, gpu_names_only=True) for path in named]
    hit, total = scorer.rates(results)["all"]
    floor = json.loads((CASES / "floor.json").read_text(encoding="utf-8"))["gpu-arch-names-only"]
    assert hit / total >= floor, [f"{r.path.name}: expected {r.missing}" for r in results if not r.diagnosed]
