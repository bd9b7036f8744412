"""Bad flags and bad data: one line naming the flag or the file and line, exit 2, no traceback.

Flag values and input paths are rejected before the gate and before any model loads (nothing is written); bad data
rows are found by the reader, before the model loads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import FAST_FLAGS, train_args
from tiny import synthetic_chat_rows, write_jsonl

from trainer.cli import main
from trainer.data import DataError, read_rows

EXIT_BAD_INPUT = 2


def rejected(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI in-process; assert exit 2 with one line on stderr; return that line."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[trainer]")]
    assert code == EXIT_BAD_INPUT, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture()
def chat_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "chat.jsonl", synthetic_chat_rows(8))


def flag_args(tmp_path: Path, chat_file: Path, *extra: str) -> list[str]:
    # The model need not exist: these are rejected before the gate inspects it.
    return train_args(tmp_path / "no-model", chat_file, tmp_path / "out", "--max_steps", "2", *extra)


@pytest.mark.parametrize("extra,flag", [
    (["--num_train_epochs", "-1", "--max_steps", "-1"], "--num_train_epochs"),
    (["--num_train_epochs", "0", "--max_steps", "-1"], "--num_train_epochs"),
    (["--num_train_epochs", "nan"], "--num_train_epochs"),
    (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps"),
    (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size"),
    (["--learning_rate", "0"], "--learning_rate"),
    (["--learning_rate=-1e-4"], "--learning_rate"),
    (["--learning_rate", "nan"], "--learning_rate"),
    (["--max_seq_length", "0"], "--max_seq_length"),
    (["--lora_r", "0"], "--lora_r"),
    (["--lora_dropout", "1.5"], "--lora_dropout"),
    (["--save_steps", "0"], "--save_steps"),
    (["--max_steps=-5"], "--max_steps"),
    (["--stack", "nosuch"], "--stack"),
    (["--eval_dataset_path", "/nonexistent/eval.jsonl"], "--eval_dataset_path"),
])
def test_bad_flag_values_name_the_flag(extra: list[str], flag: str, tmp_path: Path, chat_file: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    line = rejected(flag_args(tmp_path, chat_file, *extra), capsys)
    assert flag in line
    assert not (tmp_path / "out").exists()  # rejected before anything was written


def test_zero_epochs_with_max_steps_is_accepted(tmp_path: Path, chat_file: Path) -> None:
    from trainer.config import TrainConfig
    from trainer.preflight import check_inputs

    check_inputs(TrainConfig(model_name="m", dataset_path=str(chat_file), output_dir=str(tmp_path / "out"),
                             num_train_epochs=0, max_steps=3))


def test_stack_nosuch_is_bad_input_naming_the_known_stacks(tmp_path: Path, chat_file: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    line = rejected(flag_args(tmp_path, chat_file, "--stack", "nosuch"), capsys)
    assert "cpu-test" in line and "REFUSED" not in line


def test_output_dir_that_is_a_file(tmp_path: Path, chat_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = rejected(train_args(tmp_path / "m", chat_file, chat_file), capsys)
    assert "--output_dir" in line and "not a directory" in line
    assert chat_file.read_text().startswith('{"messages"')  # untouched


def test_output_dir_below_a_file(tmp_path: Path, chat_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = rejected(train_args(tmp_path / "m", chat_file, chat_file / "run"), capsys)
    assert "--output_dir" in line and f"{chat_file} is a file" in line


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc refuses new directories, even to root")
def test_output_dir_in_an_unwritable_place(tmp_path: Path, chat_file: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    line = rejected(train_args(tmp_path / "m", chat_file, Path("/proc/trainer-test/run")), capsys)
    assert "--output_dir /proc/trainer-test/run" in line and "cannot write in /proc" in line


@pytest.mark.parametrize("content,expected", [(b"", "the file is empty"), (None, "a directory")])
def test_unusable_dataset_files(content: bytes | None, expected: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data.jsonl"
    if content is None:
        data.mkdir()
    else:
        data.write_bytes(content)
    line = rejected(train_args(tmp_path / "m", data, tmp_path / "out"), capsys)
    assert f"--dataset_path {data}" in line and expected in line


# ---- bad rows: found by the reader, in train, pretokenize and validate -----------------------------------------

BAD_FIRST_ROWS = {
    "bare number": (b"5\n", "line 1: expected a JSON object, got number"),
    "null": (b"null\n", "line 1: expected a JSON object, got null"),
    "nested 100k deep": (b"[" * 100_000 + b"]" * 100_000 + b"\n", "line 1: JSON nested deeper than"),
    "not UTF-8": (b'{"text": "caf\xe9"}\n', "line 1: not UTF-8 (byte 0xe9"),
}


@pytest.mark.parametrize("case", sorted(BAD_FIRST_ROWS))
@pytest.mark.parametrize("command", ["train", "pretokenize", "validate"])
def test_bad_rows_are_one_line_naming_file_and_line(case: str, command: str, tiny_model: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    content, expected = BAD_FIRST_ROWS[case]
    data = tmp_path / "data.jsonl"
    data.write_bytes(content)
    if command == "validate":
        argv = ["validate", "--model_path", str(tiny_model), "--test_set", str(data)]
    else:
        argv = [command, "--model_name", str(tiny_model), "--dataset_path", str(data), "--output_dir",
                str(tmp_path / "out"), "--max_seq_length", "32"]
        argv += FAST_FLAGS[:2] if command == "train" else []  # --stack cpu-test
    line = rejected(argv, capsys)
    assert str(data) in line and expected in line


@pytest.mark.parametrize("command", ["train", "pretokenize"])
def test_a_file_of_blank_lines_has_no_usable_rows(command: str, tiny_model: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data.jsonl"
    data.write_bytes(b"\n  \n")
    argv = [command, "--model_name", str(tiny_model), "--dataset_path", str(data), "--output_dir",
            str(tmp_path / "out")] + (FAST_FLAGS[:2] if command == "train" else [])
    assert f"{data}: no usable rows (the file is empty)" in rejected(argv, capsys)


def test_a_bad_row_among_good_ones_is_counted_by_line(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", synthetic_chat_rows(3)).read_bytes()
    data = tmp_path / "mixed.jsonl"
    data.write_bytes(b"null\n" + good + b"\xff\xfe\n" + b"[" * 50 + b"]" * 50 + b"\n7\n")
    lines, records, bad, fmt = read_rows(data)
    assert lines == [2, 3, 4] and len(records) == 3 and fmt == "chat"
    assert [row.line for row in bad] == [1, 5, 6, 7]
    assert "not UTF-8" in bad[1].reason and "nested deeper" in bad[2].reason and "got number" in bad[3].reason


def test_a_line_over_the_size_bound_is_a_bad_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trainer.data

    monkeypatch.setattr(trainer.data, "MAX_LINE_BYTES", 1024)
    data = tmp_path / "long.jsonl"
    data.write_bytes(b'{"text": "' + b"a" * 5000 + b'"}\n{"text": "short"}\n')
    lines, _records, bad, _fmt = read_rows(data)
    assert lines == [2] and [row.line for row in bad] == [1] and "longer than" in bad[0].reason


def test_a_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_rows(tmp_path / "absent.jsonl")


def test_an_assistant_first_chat_is_a_bad_row(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "assistant", "content": "v1"}]}, *synthetic_chat_rows(1)]
    _lines, _records, bad, _fmt = read_rows(write_jsonl(tmp_path / "d.jsonl", rows))
    assert [row.line for row in bad] == [1] and "messages[0] is the assistant's" in bad[0].reason


def test_a_chat_template_that_refuses_a_row_names_its_line(tmp_path: Path) -> None:
    from tiny import build_tiny_tokenizer

    from trainer.data import DataSettings, tokenize_file

    tokenizer = build_tiny_tokenizer(tmp_path / "tok")
    tokenizer.chat_template = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role here') }}"
                               "{% endif %}" + tokenizer.chat_template)
    system_first = {"messages": [{"role": "system", "content": "hello"}, *synthetic_chat_rows(1)[0]["messages"]]}
    data = write_jsonl(tmp_path / "d.jsonl", [*synthetic_chat_rows(2), system_first])
    with pytest.raises(DataError, match="line 3: the tokenizer or its chat template refused it: no system role here"):
        tokenize_file(data, tokenizer, DataSettings(max_seq_length=64), num_proc=0)
    dataset, stats = tokenize_file(data, tokenizer, DataSettings(max_seq_length=64, on_bad_row="skip"), num_proc=0)
    assert list(dataset["line"]) == [1, 2] and stats.rows_skipped == 1 and stats.rows_total == 3


@pytest.mark.parametrize("yaml_line,flag", [
    ("lora_r: true", "lora_r"), ("num_train_epochs: .nan", "--num_train_epochs"),
    ("gradient_accumulation_steps: 0", "--gradient_accumulation_steps"),
])
def test_bad_values_in_the_yaml_config(yaml_line: str, flag: str, tmp_path: Path, chat_file: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml_line + "\n", encoding="utf-8")
    line = rejected(flag_args(tmp_path, chat_file, "--config", str(config)), capsys)
    assert flag in line
