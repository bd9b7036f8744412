"""--dataset_name: training rows from anything `datasets` loads, as TRL and LLaMA-Factory take them.

A hub dataset id, a local dataset directory (save_to_disk output, or a folder of data files) or one JSON, JSONL,
Parquet, CSV or Arrow file; --dataset_config and --dataset_split pick the subset and split, and --messages_field,
--prompt_field, --completion_field and --text_field name the columns that hold the trainer's fields. The rows are
checked here (the same checks as a JSONL file's, naming the row index) and written, one per line in row order, to
OUTPUT_DIR/dataset/<split>.jsonl, which the rest of the pipeline reads as --dataset_path: line N is row N-1. A local
.jsonl file without a column mapping is read directly, with the JSONL reader's line-numbered errors.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trainer.data import BadRow, DataError, detect_format, row_error
from trainer.errors import BadInputError, first_line, log

# File suffix -> the `datasets` builder that reads it.
FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}
ROWS_DIR = "dataset"
# Hub ids: NAME or OWNER/NAME, letters, digits, '-', '_', '.'.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# The record keys the trainer's formats use (trainer.data.detect_format); other columns are dropped.
RECORD_KEYS = ("messages", "instruction", "input", "output", "prompt", "completion", "text")
SHOWN_BAD_ROWS = 5


@dataclass(frozen=True)
class ColumnMapping:
    """Source column for each trainer field (None: the field's own name)."""

    messages: str | None = None
    prompt: str | None = None
    completion: str | None = None
    text: str | None = None

    @property
    def renames(self) -> dict[str, str]:
        """source column -> trainer field, for the fields mapped to another column."""
        named = {"messages": self.messages, "prompt": self.prompt, "completion": self.completion, "text": self.text}
        return {column: key for key, column in named.items() if column and column != key}


@dataclass(frozen=True)
class DatasetSource:
    name: str
    config: str | None = None
    split: str = "train"
    columns: ColumnMapping = ColumnMapping()

    @property
    def local_path(self) -> Path | None:
        path = Path(self.name).expanduser()
        return path if path.exists() else None

    def describe(self) -> str:
        subset = f", config {self.config}" if self.config else ""
        return f"--dataset_name {self.name} (split {self.split}{subset})"


def source_of(config: Any) -> DatasetSource:
    columns = ColumnMapping(config.messages_field, config.prompt_field, config.completion_field, config.text_field)
    return DatasetSource(config.dataset_name, config.dataset_config, config.dataset_split, columns)


def dataset_problems(config: Any) -> list[str]:
    """Preflight phrases for the data-source flags (nothing is loaded): one of --dataset_path / --dataset_name, a
    name that is a local path or a hub id, a file type `datasets` reads, a mapping only with --dataset_name."""
    mapped = [f"--{flag}" for flag in ("messages_field", "prompt_field", "completion_field", "text_field")
              if getattr(config, flag)]
    if not config.dataset_name:
        if mapped or config.dataset_config:
            flags = " ".join(mapped + (["--dataset_config"] if config.dataset_config else []))
            return [f"{flags} apply to --dataset_name; pass the data as --dataset_name PATH_OR_HUB_ID"]
        return []
    problems = []
    if config.dataset_path:
        problems.append(f"--dataset_path {config.dataset_path} and --dataset_name {config.dataset_name}: pass one")
    path = Path(config.dataset_name).expanduser()
    if path.is_file() and path.suffix.lower() not in FILE_BUILDERS:
        problems.append(f"--dataset_name {config.dataset_name}: a {path.suffix or 'suffix-less'} file, which "
                        f"`datasets` does not read by name; pass a {', '.join(FILE_BUILDERS)} file or a directory")
    elif not path.exists() and not HUB_ID.match(config.dataset_name):
        problems.append(f"--dataset_name {config.dataset_name}: no such file or directory, and not a hub id "
                        "(OWNER/NAME)")
    if not config.dataset_split:
        problems.append("--dataset_split is empty: name a split, e.g. train")
    return problems


def is_plain_jsonl(source: DatasetSource) -> bool:
    """A local .jsonl file read as it is (no mapping, the default split, no config): the JSONL reader takes it."""
    path = source.local_path
    return (path is not None and path.is_file() and path.suffix.lower() == ".jsonl" and not source.columns.renames
            and source.split == "train" and source.config is None)


def with_dataset_rows(config: Any) -> Any:
    """config with --dataset_path set from --dataset_name (unchanged without one). Raises DataError/BadInputError."""
    if not config.dataset_name:
        return config
    source = source_of(config)
    if is_plain_jsonl(source):
        return replace(config, dataset_path=str(source.local_path))
    dataset = load_source(source, config.cache_dir)
    records, bad = check_rows(dataset, source, config.dataset_format)
    if bad and config.on_bad_row == "fail":
        raise DataError(f"{source.describe()}: {len(bad)} bad rows: {describe_bad(bad)}; fix them or pass "
                        "--on_bad_row skip")
    if bad:
        log(f"{source.describe()}: {len(bad)} bad rows skipped: {describe_bad(bad)}")
    target = Path(config.output_dir).expanduser() / ROWS_DIR / f"{_safe(source.split)}.jsonl"
    write_rows(target, records)
    log(f"{source.describe()}: {len(records)} rows written to {target} (line N is row N-1)")
    return replace(config, dataset_path=str(target))


def load_source(source: DatasetSource, cache_dir: str | None = None) -> Any:
    """The split as a datasets.Dataset. Raises BadInputError naming the source and what to change."""
    import datasets

    path = source.local_path
    try:
        if path is not None and path.is_file():
            builder = FILE_BUILDERS[path.suffix.lower()]
            if source.split != "train":
                raise BadInputError(f"{source.describe()}: a single file has one split, 'train'; drop "
                                    "--dataset_split")
            return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache_dir)
        if path is not None and _saved_to_disk(path):
            loaded = datasets.load_from_disk(str(path))
            return _pick_split(loaded, source)
        return datasets.load_dataset(source.name, source.config, split=source.split, cache_dir=cache_dir)
    except BadInputError:
        raise
    except Exception as error:  # noqa: BLE001 - datasets raises many kinds (not found, offline, bad split, parse)
        raise BadInputError(f"cannot load {source.describe()}: {first_line(error)}") from None


def _saved_to_disk(path: Path) -> bool:
    """A Dataset or DatasetDict written by save_to_disk."""
    return path.is_dir() and any((path / name).is_file() for name in ("state.json", "dataset_dict.json"))


def _pick_split(loaded: Any, source: DatasetSource) -> Any:
    if not hasattr(loaded, "keys"):  # one Dataset
        return loaded
    if source.split not in loaded:
        raise BadInputError(f"{source.describe()}: no split '{source.split}'; its splits are "
                            f"{', '.join(loaded.keys())}")
    return loaded[source.split]


def check_rows(dataset: Any, source: DatasetSource, fmt: str = "auto") -> tuple[list[str], list[BadRow]]:
    """Each row with its mapped columns as a JSON record (row order), and the bad rows by row index (BadRow.line
    holds the index). A bad row is written as `null`, so that line N stays row N-1."""
    renames = source.columns.renames
    missing = [column for column in renames if column not in dataset.column_names]
    if missing:
        raise BadInputError(f"{source.describe()}: no column {', '.join(missing)}; its columns are "
                            f"{', '.join(dataset.column_names)}")
    records: list[str] = []
    bad: list[BadRow] = []
    for index, row in enumerate(dataset):
        record = {renames.get(column, column): value for column, value in row.items()
                  if column in renames or (column not in renames.values() and column in RECORD_KEYS)}
        record = {key: value for key, value in record.items() if key in RECORD_KEYS and value is not None}
        if fmt == "auto":
            fmt = detect_format(record) or "auto"
        problem = row_error(record, fmt) or _not_json(record)
        if problem:
            bad.append(BadRow(index, _with_column(problem, renames)))
            records.append("null")
        else:
            records.append(json.dumps(record, ensure_ascii=False))
    return records, bad


def _not_json(record: dict[str, Any]) -> str | None:
    try:
        json.dumps(record)
    except (TypeError, ValueError) as error:
        return f"a value JSON cannot hold ({error})"
    return None


def _with_column(problem: str, renames: dict[str, str]) -> str:
    """Name the source column beside the trainer field it was mapped to."""
    for column, key in renames.items():
        problem = problem.replace(f"field '{key}'", f"field '{key}' (column '{column}')")
    return problem


def describe_bad(bad: list[BadRow]) -> str:
    shown = "; ".join(f"row {row.line}: {row.reason}" for row in bad[:SHOWN_BAD_ROWS])
    return shown + (f"; and {len(bad) - SHOWN_BAD_ROWS} more" if len(bad) > SHOWN_BAD_ROWS else "")


def write_rows(target: Path, records: list[str]) -> None:
    """One record per line, written atomically (each process of a launch writes the same bytes)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    staging.write_text("".join(f"{record}\n" for record in records), encoding="utf-8")
    os.replace(staging, target)


def _safe(split: str) -> str:
    """A split expression (train[:90%]) as a file name."""
    return re.sub(r"[^\w.-]", "_", split)
