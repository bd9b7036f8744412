"""Random JSONL through the data reader: no exception but DataError, and every non-blank line is counted once.

Lines are random JSON (wrong types, deep nesting, control characters, unpaired surrogates, huge strings), rows of
the known formats with random field values, and raw bytes (not UTF-8, not JSON). With --on_bad_row skip the
tokenized data keeps its count: rows used + rows skipped = rows read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tiny import build_tiny_tokenizer, synthetic_chat_rows

from trainer.data import MAX_JSON_DEPTH, DataError, DataSettings, read_rows, tokenize_file

TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)  # control chars and surrogates too
HUGE = st.integers(min_value=10_000, max_value=200_000).map(lambda size: "\x00\x1b[31m" + "x" * size)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(TEXT, inner, max_size=3), max_leaves=12)
ANY_FIELD = JSON_VALUES | HUGE | st.sampled_from(["", " ", "hello world", "k1", "v2"])
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "bot"]) | JSON_VALUES,
                                 "content": ANY_FIELD})
FORMAT_ROWS = (
    st.fixed_dictionaries({"messages": st.lists(MESSAGE | JSON_VALUES, max_size=4) | JSON_VALUES})
    | st.fixed_dictionaries({"instruction": ANY_FIELD, "output": ANY_FIELD}, optional={"input": ANY_FIELD})
    | st.fixed_dictionaries({"prompt": ANY_FIELD, "completion": ANY_FIELD})
    | st.fixed_dictionaries({"text": ANY_FIELD})
)


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


LINES = st.one_of(
    FORMAT_ROWS.map(json.dumps),
    JSON_VALUES.map(lambda value: json.dumps(value, allow_nan=True)),
    st.integers(min_value=MAX_JSON_DEPTH - 2, max_value=5_000).map(deep),
    st.binary(max_size=40).map(lambda raw: raw.replace(b"\n", b" ").decode("latin-1")),
    st.just(deep(100_000)),
).map(lambda line: line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line)


# Chat rows that tokenize (known words; one is 25 tokens long), mixed in so that the tokenizing step always runs.
LONG_CHAT = {"messages": [{"role": "user", "content": "hello world " * 10}, {"role": "assistant", "content": "v1"}]}
USABLE_ROWS = tuple(json.dumps(row).encode() for row in [*synthetic_chat_rows(3), LONG_CHAT])
USABLE = st.sampled_from(USABLE_ROWS)


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    return path


def non_blank_line_numbers(path: Path) -> list[int]:
    return [number for number, line in enumerate(path.read_bytes().split(b"\n")[:-1], start=1) if line.strip()]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines=st.lists(LINES, min_size=1, max_size=6), fmt=st.sampled_from(["auto", "chat", "text", "alpaca"]))
def test_reader_accounts_for_every_line(lines: list[bytes], fmt: str, tmp_path: Path) -> None:
    data = write_lines(tmp_path / "fuzz.jsonl", lines)
    used, records, bad, detected = read_rows(data, fmt)
    assert len(records) == len(used)
    assert sorted(used + [row.line for row in bad]) == non_blank_line_numbers(data)
    assert all(isinstance(row.reason, str) and "\n" not in row.reason for row in bad)
    assert not records or detected != "auto"
    for record in records:
        json.loads(record)  # every kept record is valid JSON that the tokenizer step reads back


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # a bar per example slows the run and floods the log
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines=st.lists(LINES | USABLE | USABLE, min_size=1, max_size=8).filter(lambda found: any(
           line in USABLE_ROWS for line in found)),
       max_len=st.integers(min_value=1, max_value=40))
def test_skip_keeps_the_counts(lines: list[bytes], max_len: int, tokenizer, tmp_path: Path) -> None:  # noqa: ANN001
    data = write_lines(tmp_path / "fuzz.jsonl", lines)
    skip = DataSettings(dataset_format="chat", on_bad_row="skip", max_seq_length=max_len)
    try:
        dataset, stats = tokenize_file(data, tokenizer, skip, num_proc=0)
    except DataError as error:  # no usable row at all: the one error skip still raises
        assert "no usable rows" in str(error)
        event("no usable rows")
        return
    event(f"rows used: {'none' if not stats.rows_used else 'some'}, skipped: {'some' if stats.bad_rows else 'none'}")
    assert stats.rows_total == len(non_blank_line_numbers(data))
    assert stats.rows_used + stats.rows_skipped == stats.rows_total == stats.rows_used + len(stats.bad_rows)
    assert stats.rows_used == len(dataset) > 0  # an empty result is the DataError above, never 0 rows to train
    assert sorted(list(dataset["line"]) + [row.line for row in stats.bad_rows]) == non_blank_line_numbers(data)
