"""docs/trainer.md's generated flag tables match the config dataclasses, and its `trl sft` table names real fields
on both sides (tools/trainer_flags_doc.py)."""

from __future__ import annotations

import importlib.util
from dataclasses import fields
from pathlib import Path
from types import ModuleType

import pytest

from trainer.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("trainer_flags_doc", REPO / "tools" / "trainer_flags_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def test_the_doc_is_in_step_with_the_config() -> None:
    document = tool.DOC.read_text(encoding="utf-8")
    assert tool.render(document) == document, "run: python tools/trainer_flags_doc.py"


def test_every_flag_and_alias_is_documented() -> None:
    document = tool.DOC.read_text(encoding="utf-8")
    for item in fields(TrainConfig):
        for name in (item.name, *item.metadata.get("aliases", ())):
            assert f"`--{name}`" in document


def test_a_changed_help_text_makes_the_doc_stale() -> None:
    document = tool.DOC.read_text(encoding="utf-8")
    stale = document.replace("| longest tokenized row |", "| the longest row |")
    assert stale != document and tool.render(stale) == document


def test_the_trl_table_names_this_trainers_flags() -> None:
    ours = {item.name for item in fields(TrainConfig)}
    for mine, _, _ in tool.TRL_NAMES:
        assert not mine or set(mine.split(", ")) <= ours


def test_the_trl_table_names_trls_own_fields() -> None:
    pytest.importorskip("trl")  # not a dependency: checked where it is installed
    from trl import ModelConfig, ScriptArguments, SFTConfig

    theirs = {item.name for config in (SFTConfig, ScriptArguments, ModelConfig) for item in fields(config)}
    assert {name for _, name, _ in tool.TRL_NAMES if name} <= theirs


def test_every_alias_is_a_trl_name_in_the_table() -> None:
    aliases = {alias for item in fields(TrainConfig) for alias in item.metadata.get("aliases", ())}
    assert aliases <= {name for _, name, _ in tool.TRL_NAMES}
