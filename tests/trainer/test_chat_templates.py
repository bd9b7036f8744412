"""--chat_template: bundled names and files, and the assistant-only loss mask under each template
(trainer.chat_templates, trainer.data.tokenize_chat)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hf_data import build_base_model_dir

from trainer.chat_templates import (
    BUNDLED,
    END_OF_TURN,
    ChatTemplateError,
    chat_template_problem,
    end_of_turn_id,
    resolve_chat_template,
    stop_generation_at_end_of_turn,
    use_chat_template,
)
from trainer.data import DataError, tokenize_chat, tokenize_record, tokenizer_fingerprint
from trainer.types import IGNORE_INDEX

CONVERSATION = [
    {"role": "system", "content": "hello world"},
    {"role": "user", "content": "what is the answer for k1 ?"},
    {"role": "assistant", "content": "v4"},
    {"role": "user", "content": "what is the answer for k2 ?"},
    {"role": "assistant", "content": "v7 v7"},
]


@pytest.fixture(scope="module")
def base_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoTokenizer

    directory = build_base_model_dir(tmp_path_factory.mktemp("base"))
    return AutoTokenizer.from_pretrained(str(directory))


def trained_ids(ids: list[int], labels: list[int]) -> list[int]:
    assert all(label in (IGNORE_INDEX, token) for token, label in zip(ids, labels, strict=True))
    return [label for label in labels if label != IGNORE_INDEX]


def test_a_base_tokenizer_without_a_template_refuses_chat_rows(base_tokenizer: Any) -> None:
    assert not base_tokenizer.chat_template
    with pytest.raises(DataError, match="no chat template"):
        tokenize_record({"kind": "chat", "messages": CONVERSATION}, base_tokenizer)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_the_mask_covers_exactly_the_assistant_turns(name: str, base_tokenizer: Any) -> None:
    use_chat_template(base_tokenizer, name)
    try:
        ids, labels = tokenize_chat(CONVERSATION, base_tokenizer)
        end = END_OF_TURN[name]
        expected = [token for message in CONVERSATION if message["role"] == "assistant"
                    for token in base_tokenizer(message["content"] + end, add_special_tokens=False)["input_ids"]]
        assert trained_ids(ids, labels) == expected
        text = base_tokenizer.decode(ids)
        assert text.count(end) == len(CONVERSATION)  # every turn is closed, only the assistant's are trained on
    finally:
        base_tokenizer.chat_template = None


def test_a_template_file_is_used_as_written(base_tokenizer: Any, tmp_path: Path) -> None:
    template = tmp_path / "plain.jinja"
    template.write_text("{% for m in messages %}{{ m['role'] + ' ' + m['content'] + ' <|eot_id|> ' }}{% endfor %}"
                        "{% if add_generation_prompt %}{{ 'assistant ' }}{% endif %}", encoding="utf-8")
    assert use_chat_template(base_tokenizer, str(template)) == f"the template in {template}"
    try:
        ids, labels = tokenize_chat(CONVERSATION[1:3], base_tokenizer)
        assert base_tokenizer.decode(trained_ids(ids, labels)) == "v4 <|eot_id|>"
    finally:
        base_tokenizer.chat_template = None


def test_the_cache_key_follows_the_template(base_tokenizer: Any) -> None:
    before = tokenizer_fingerprint(base_tokenizer, "")
    use_chat_template(base_tokenizer, "chatml")
    try:
        assert tokenizer_fingerprint(base_tokenizer, "") != before
    finally:
        base_tokenizer.chat_template = None


def test_bad_template_values_are_one_line_each(tmp_path: Path) -> None:
    assert chat_template_problem(None) is None
    assert chat_template_problem("llama3") is None
    assert chat_template_problem("vicuna") == ("--chat_template vicuna: neither a bundled template (llama3, chatml) "
                                               "nor a file; pass one of those names or a Jinja file")
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}\n{{ m['content'] }", encoding="utf-8")
    assert "not valid Jinja at line 2" in chat_template_problem(str(broken))
    empty = tmp_path / "empty.jinja"
    empty.write_text("  \n", encoding="utf-8")
    with pytest.raises(ChatTemplateError, match="the file is empty"):
        resolve_chat_template(str(empty))


def test_generation_blocks_of_transformers_templates_are_accepted(tmp_path: Path) -> None:
    template = tmp_path / "gen.jinja"
    template.write_text("{% for m in messages %}{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}"
                        "{% endgeneration %}{% else %}{{ m['content'] }}{% endif %}{% endfor %}", encoding="utf-8")
    assert chat_template_problem(str(template)) is None


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_generation_of_a_merged_model_stops_at_the_templates_end_of_turn(name: str, base_tokenizer: Any,
                                                                          tmp_path: Path) -> None:
    from transformers import GenerationConfig

    use_chat_template(base_tokenizer, name)
    try:
        base_tokenizer.save_pretrained(str(tmp_path))
        GenerationConfig(eos_token_id=base_tokenizer.eos_token_id).save_pretrained(str(tmp_path))
        end = base_tokenizer.convert_tokens_to_ids(END_OF_TURN[name])
        assert stop_generation_at_end_of_turn(tmp_path) is not None
        assert GenerationConfig.from_pretrained(str(tmp_path)).eos_token_id == [base_tokenizer.eos_token_id, end]
        assert stop_generation_at_end_of_turn(tmp_path) is None  # already there
    finally:
        base_tokenizer.chat_template = None


def test_a_template_that_ends_turns_with_eos_needs_no_extra_stop(base_tokenizer: Any) -> None:
    from tiny import CHAT_TEMPLATE

    base_tokenizer.chat_template = CHAT_TEMPLATE  # closes assistant turns with eos_token
    try:
        assert end_of_turn_id(base_tokenizer) is None
    finally:
        base_tokenizer.chat_template = None
