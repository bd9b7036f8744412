"""Data: bad rows with line numbers, loss masking of prompt tokens, cache reuse and invalidation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny import (
    ANSWER_OF,
    build_tiny_tokenizer,
    synthetic_alpaca_rows,
    synthetic_chat_rows,
    synthetic_prompt_completion_rows,
    write_jsonl,
)

from trainer.data import DataError, DataSettings, prepare_data, read_rows, tokenize_chat
from trainer.types import IGNORE_INDEX


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def trained_text(tokenizer, row: dict) -> str:  # noqa: ANN001
    return tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"], strict=True)
                             if label != IGNORE_INDEX])


def test_chat_loss_only_on_assistant_tokens(tokenizer) -> None:  # noqa: ANN001
    messages = [{"role": "system", "content": "hello"}, {"role": "user", "content": "what is k1 ?"},
                {"role": "assistant", "content": "v4"}, {"role": "user", "content": "what is k2 ?"},
                {"role": "assistant", "content": "v7 world"}]
    ids, labels = tokenize_chat(messages, tokenizer)
    kept = [tokenizer.convert_ids_to_tokens(t) for t, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    assert kept == ["v4", "</s>", "v7", "world", "</s>"]
    assert all(label == IGNORE_INDEX or label == token for token, label in zip(ids, labels, strict=True))


FORMATS = [synthetic_chat_rows(4), synthetic_alpaca_rows(4), synthetic_prompt_completion_rows(4)]


@pytest.mark.parametrize("rows", FORMATS)
def test_every_format_masks_the_prompt(rows: list[dict], tokenizer, tmp_path: Path) -> None:  # noqa: ANN001
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    prepared = prepare_data(data, tokenizer, DataSettings(), tmp_path / "cache")
    for row in prepared.train:
        assert trained_text(tokenizer, row).split()[0] in ANSWER_OF.values()
        assert trained_text(tokenizer, row).split()[-1] == "</s>"
        assert row["labels"][0] == IGNORE_INDEX


def test_bad_rows_are_reported_with_line_numbers(tokenizer, tmp_path: Path) -> None:  # noqa: ANN001
    rows = [*synthetic_chat_rows(2), "{not json", {"messages": [{"role": "user", "content": "hi"}]},
            {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "v1"}]},
            {"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "v1"}]},
            {"messages": [{"role": "user", "content": "what " * 40}, {"role": "assistant", "content": "v1"}]}]
    data = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as failure:
        prepare_data(data, tokenizer, DataSettings(max_seq_length=32), tmp_path / "cache")
    message = str(failure.value)
    assert "5 bad rows" in message and "--on_bad_row skip" in message
    for fragment in ("line 3: not valid JSON", "line 4: no assistant message", "line 5: messages[0]: field 'content' "
                     "is empty", "line 6: messages[0]: field 'content' must be a string", "line 7: over-long"):
        assert fragment in message
    skipped = prepare_data(data, tokenizer, DataSettings(max_seq_length=32, on_bad_row="skip"), tmp_path / "cache")
    stats = skipped.train_stats
    assert (stats.rows_total, stats.rows_used, stats.rows_skipped) == (7, 2, 5)


def test_truncation_is_counted(tokenizer, tmp_path: Path) -> None:  # noqa: ANN001
    data = write_jsonl(tmp_path / "t.jsonl", [{"text": "hello " * 50}, {"text": "hello world"}])
    prepared = prepare_data(data, tokenizer, DataSettings(max_seq_length=16, truncate_long_rows=True), tmp_path / "c")
    assert prepared.train_stats.rows_truncated == 1 and max(len(r) for r in prepared.train["input_ids"]) == 16


def test_cache_is_reused_and_invalidated_by_changes(tokenizer, tmp_path: Path) -> None:  # noqa: ANN001
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_chat_rows(10))
    cache = tmp_path / "cache"
    first = prepare_data(data, tokenizer, DataSettings(), cache)
    again = prepare_data(data, tokenizer, DataSettings(), cache)
    assert not first.reused and again.reused and again.cache_path == first.cache_path
    assert again.train["input_ids"] == first.train["input_ids"]
    other_settings = prepare_data(data, tokenizer, DataSettings(max_seq_length=100), cache)
    assert not other_settings.reused and other_settings.cache_path != first.cache_path
    write_jsonl(data, synthetic_chat_rows(11))
    changed = prepare_data(data, tokenizer, DataSettings(), cache)
    assert not changed.reused and changed.cache_path != first.cache_path and len(changed.train) == 11


def test_eval_split_holds_rows_out(tokenizer, tmp_path: Path) -> None:  # noqa: ANN001
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_chat_rows(20))
    prepared = prepare_data(data, tokenizer, DataSettings(eval_split=0.1), tmp_path / "cache", num_proc=2)
    assert (len(prepared.train), len(prepared.eval)) == (18, 2)


def test_format_detection_reports_unknown_rows(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"question": "x"}, *synthetic_prompt_completion_rows(1)])
    _lines, records, bad, fmt = read_rows(data)
    assert fmt == "prompt_completion" and len(records) == 1 and bad[0].line == 1 and "unknown format" in bad[0].reason
    assert json.loads(records[0])["kind"] == "pc"
