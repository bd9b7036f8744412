from __future__ import annotations

from pathlib import Path

import pytest
from tiny import build_tiny_model_dir, synthetic_chat_rows, write_jsonl


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init Llama + word-level tokenizer with a chat template (built once per session)."""
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def chat_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "chat.jsonl", synthetic_chat_rows(160))
