"""The trainer's module layout: no import circle, errors.py a leaf, only the CLI parses flags for merge/validate."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from trainer.cli import main

REPO = Path(__file__).resolve().parents[2]


def load_import_graph() -> object:
    spec = importlib.util.spec_from_file_location("import_graph", REPO / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


def test_the_trainer_has_no_import_circle_and_errors_is_a_leaf() -> None:
    tool = load_import_graph()
    graph = tool.build_graph(REPO / "src" / "trainer")
    assert tool.find_cycle(graph) is None
    assert graph["trainer.errors"] == set() and graph["trainer.config"] == set()
    assert "trainer.recipe" not in graph["trainer.backends"]


def test_the_import_graph_tool_finds_a_circle() -> None:
    tool = load_import_graph()
    assert tool.find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert tool.find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("command", ["merge", "validate"])
def test_required_flags_may_come_from_the_yaml_and_are_reported_as_argparse_does(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([command])
    assert stopped.value.code == 2
    assert "the following arguments are required: --" in capsys.readouterr().err
    config = tmp_path / "c.yaml"
    key = "adapter_path" if command == "merge" else "model_path"
    other = "--base_model m --output_dir o" if command == "merge" else "--test_set t.jsonl"
    config.write_text(f"{key}: {tmp_path / 'missing'}\n")
    assert main([command, "--config", str(config), *other.split()]) == 2  # the library's bad input, not argparse's
    assert capsys.readouterr().err.startswith("error: ")
