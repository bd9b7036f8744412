"""--dataset_name: files in every format `datasets` reads, local dataset directories, splits, the column mapping, and
bad rows named by row index (trainer.datasets_source)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hf_data import FORMATS, renamed_chat_rows, write_dataset_file
from tiny import synthetic_prompt_completion_rows, write_jsonl

from trainer.config import TrainConfig
from trainer.data import DataError
from trainer.datasets_source import dataset_problems, with_dataset_rows
from trainer.errors import BadInputError
from trainer.preflight import InputError, check_inputs


def qa_rows(count: int) -> list[dict[str, object]]:
    """prompt/completion rows under other column names, plus a column the trainer does not use."""
    return [{"question": row["prompt"], "answer": row["completion"], "source": "synthetic"}
            for row in synthetic_prompt_completion_rows(count)]


def config_for(name: str, output: Path, **flags: object) -> TrainConfig:
    return TrainConfig(model_name="unused", dataset_name=name, output_dir=str(output), **flags)


def written_rows(config: TrainConfig) -> list[object]:
    return [json.loads(line) for line in Path(config.dataset_path).read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_file_format_is_read_with_the_column_mapping(fmt: str, tmp_path: Path) -> None:
    source = write_dataset_file(qa_rows(12), tmp_path / f"data.{fmt}", fmt)
    config = with_dataset_rows(config_for(str(source), tmp_path / "out", prompt_field="question",
                                          completion_field="answer"))
    expected = [{"prompt": row["prompt"], "completion": row["completion"]}
                for row in synthetic_prompt_completion_rows(12)]
    assert written_rows(config) == expected
    assert Path(config.dataset_path).parent == tmp_path / "out" / "dataset"


@pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if fmt != "csv"])  # CSV cannot hold nested messages
def test_chat_rows_come_from_a_renamed_messages_column(fmt: str, tmp_path: Path) -> None:
    source = write_dataset_file(renamed_chat_rows(6), tmp_path / f"chat.{fmt}", fmt)
    config = with_dataset_rows(config_for(str(source), tmp_path / "out", messages_field="conversation"))
    assert written_rows(config) == [{"messages": row["conversation"]} for row in renamed_chat_rows(6)]


def test_a_saved_dataset_directory_and_its_splits(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    splits = DatasetDict({"train": Dataset.from_list(qa_rows(8)), "test": Dataset.from_list(qa_rows(3))})
    splits.save_to_disk(str(tmp_path / "saved"))
    mapping = {"prompt_field": "question", "completion_field": "answer"}
    test_split = with_dataset_rows(config_for(str(tmp_path / "saved"), tmp_path / "out", dataset_split="test",
                                              **mapping))
    assert len(written_rows(test_split)) == 3
    with pytest.raises(BadInputError, match="no split 'validation'; its splits are train, test"):
        with_dataset_rows(config_for(str(tmp_path / "saved"), tmp_path / "out", dataset_split="validation",
                                     **mapping))


def test_a_directory_of_data_files_is_loaded_like_a_hub_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    write_dataset_file(qa_rows(5), folder / "part-0.parquet", "parquet")
    write_dataset_file(qa_rows(4), folder / "part-1.parquet", "parquet")
    config = with_dataset_rows(config_for(str(folder), tmp_path / "out", prompt_field="question",
                                          completion_field="answer"))
    assert len(written_rows(config)) == 9


def test_bad_rows_are_named_by_row_index_and_source_column(tmp_path: Path) -> None:
    rows = qa_rows(6)
    rows[2]["answer"] = ""
    rows[4]["answer"] = None
    source = write_dataset_file(rows, tmp_path / "data.parquet", "parquet")
    flags = {"prompt_field": "question", "completion_field": "answer"}
    with pytest.raises(DataError) as raised:
        with_dataset_rows(config_for(str(source), tmp_path / "out", **flags))
    message = str(raised.value)
    assert "2 bad rows" in message
    assert "row 2: field 'completion' (column 'answer') is empty" in message
    assert "row 4: missing field 'completion' (column 'answer')" in message
    kept = with_dataset_rows(config_for(str(source), tmp_path / "skip", on_bad_row="skip", **flags))
    assert [row is None for row in written_rows(kept)] == [False, False, True, False, True, False]  # line N: row N-1


def test_a_mapped_column_that_does_not_exist_is_named(tmp_path: Path) -> None:
    source = write_dataset_file(qa_rows(3), tmp_path / "data.csv", "csv")
    with pytest.raises(BadInputError, match="no column reply; its columns are question, answer, source"):
        with_dataset_rows(config_for(str(source), tmp_path / "out", prompt_field="question",
                                     completion_field="reply"))


def test_a_plain_jsonl_file_is_read_directly_with_line_numbers(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "data.jsonl", synthetic_prompt_completion_rows(3))
    config = with_dataset_rows(config_for(str(source), tmp_path / "out"))
    assert config.dataset_path == str(source)  # data.py's JSONL reader, with its line-numbered errors


def test_an_unreachable_hub_dataset_is_one_bad_input_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # read at import, so the variables come too late
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BadInputError, match=r"^cannot load --dataset_name nobody/no-such-dataset \(split train\): "):
        with_dataset_rows(config_for("nobody/no-such-dataset", tmp_path / "out", cache_dir=str(tmp_path / "c")))


def flags(**values: object) -> SimpleNamespace:
    base = {"dataset_name": "", "dataset_path": "", "dataset_config": None, "dataset_split": "train",
            "messages_field": None, "prompt_field": None, "completion_field": None, "text_field": None}
    return SimpleNamespace(**{**base, **values})


def test_preflight_phrases_for_the_source_flags(tmp_path: Path) -> None:
    odd = tmp_path / "data.xlsx"
    odd.write_text("x", encoding="utf-8")
    assert dataset_problems(flags(dataset_name="org/name")) == []
    assert dataset_problems(flags(prompt_field="q")) == [
        "--prompt_field apply to --dataset_name; pass the data as --dataset_name PATH_OR_HUB_ID"]
    assert dataset_problems(flags(dataset_name="org/name", dataset_path="a.jsonl")) == [
        "--dataset_path a.jsonl and --dataset_name org/name: pass one"]
    assert "`datasets` does not read by name" in dataset_problems(flags(dataset_name=str(odd)))[0]
    assert "not a hub id" in dataset_problems(flags(dataset_name="./missing dir/x"))[0]


def test_check_inputs_accepts_dataset_name_instead_of_dataset_path(tmp_path: Path) -> None:
    check_inputs(TrainConfig(model_name="m", dataset_name="org/name", output_dir=str(tmp_path / "out")))
    with pytest.raises(InputError, match="--dataset_path is required"):
        check_inputs(TrainConfig(model_name="m", output_dir=str(tmp_path / "out")))


def test_pretokenize_reads_dataset_name(tiny_model: Path, tmp_path: Path) -> None:
    from trainer.cli import main

    source = write_dataset_file(qa_rows(10), tmp_path / "data.parquet", "parquet")
    code = main(["pretokenize", "--model_name", str(tiny_model), "--dataset_name", str(source), "--prompt_field",
                 "question", "--completion_field", "answer", "--output_dir", str(tmp_path / "out")])
    assert code == 0
    assert list((tmp_path / "out" / "tokenized").glob("*/COMPLETE"))
