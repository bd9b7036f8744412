"""Training data: JSONL rows -> validated records -> tokenized, loss-masked examples in a reusable Arrow cache.

Formats: chat {"messages": [{role, content}]}, alpaca {"instruction", "input", "output"}, {"prompt", "completion"},
{"text"}. Loss is taken only on assistant/completion tokens (prompt labels are IGNORE_INDEX). Every bad row is
counted with its line number; nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import DEFAULT_MAX_SEQ_LENGTH
from trainer.errors import BadInputError
from trainer.types import IGNORE_INDEX

CACHE_VERSION = "trainer-data/2"  # 2: stricter rows (UTF-8, nesting, roles), template errors per row
ROLES = ("system", "user", "assistant")
ALPACA_PROMPT = "### Instruction:\n{instruction}\n\n{input_block}### Response:\n"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "tokenizer.model", "vocab.json", "merges.txt")
SHOWN_BAD_ROWS = 5
UNKNOWN_FORMAT = "unknown format: expected messages, instruction/output, prompt/completion or text"
# Bounds on one JSONL line, so that a broken or hostile file cannot exhaust memory or the parser's stack: a chat row
# of 2,048 tokens is about 10 KB and nests 3 levels ({"messages": [{...}]}).
MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 32


class DataError(BadInputError):
    """Bad training data: the message names the file, the lines and what to do."""


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


@dataclass
class DataStats:
    rows_total: int = 0
    rows_used: int = 0
    rows_skipped: int = 0
    rows_truncated: int = 0
    tokens: int = 0
    trainable_tokens: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)

    def describe(self, name: str) -> str:
        return (f"{name}: {self.rows_total} rows, {self.rows_used} used, {self.rows_skipped} skipped, "
                f"{self.rows_truncated} truncated, {self.tokens} tokens ({self.trainable_tokens} trained on)")


@dataclass(frozen=True)
class DataSettings:
    dataset_format: str = "auto"
    on_bad_row: str = "fail"
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
    truncate_long_rows: bool = False
    eval_split: float = 0.0
    seed: int = 42


@dataclass
class PreparedData:
    train: Any  # datasets.Dataset with input_ids, labels
    eval: Any | None
    train_stats: DataStats
    eval_stats: DataStats | None
    cache_path: Path
    reused: bool


# ---- reading and validating rows -------------------------------------------------------------------------------

def detect_format(row: Any) -> str | None:
    """The format a parsed row is written in, or None (also for anything that is not a JSON object)."""
    if not isinstance(row, dict):
        return None
    if "messages" in row:
        return "chat"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "text" in row:
        return "text"
    return None


def json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type (null, boolean, number, string, array, object)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(type(value), "value")


def _need_str(row: dict[str, Any], key: str, allow_empty: bool = False) -> str | None:
    if key not in row:
        return f"missing field '{key}'"
    if not isinstance(row[key], str):
        return f"field '{key}' must be a string, got {json_kind(row[key])}"
    if not _is_unicode(row[key]):
        return f"field '{key}' holds an unpaired surrogate escape (\\ud800-\\udfff), which is not text"
    if not allow_empty and not row[key].strip():
        return f"field '{key}' is empty"
    return None


def _chat_error(row: dict[str, Any]) -> str | None:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return "field 'messages' must be a non-empty list"
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{index}] must be an object with role and content"
        if message.get("role") not in ROLES:
            return f"messages[{index}].role must be one of {', '.join(ROLES)}, got {_shown(message.get('role'))}"
        problem = _need_str(message, "content")
        if problem:
            return f"messages[{index}]: {problem}"
    if not any(message["role"] == "assistant" for message in messages):
        return "no assistant message (nothing to train on)"
    if messages[0]["role"] == "assistant":  # its prompt part would be an empty conversation, which templates refuse
        return "messages[0] is the assistant's: start the conversation with a system or user message"
    return None


def row_error(row: Any, fmt: str) -> str | None:
    """Why a parsed row is unusable for format fmt, or None."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {json_kind(row)}"
    if fmt == "chat":
        return _chat_error(row)
    fields = {"alpaca": ("instruction", "output"), "prompt_completion": ("prompt", "completion"), "text": ("text",)}
    if fmt not in fields:  # auto: no format detected in this row nor in the rows before it
        return UNKNOWN_FORMAT
    for key in fields[fmt]:
        problem = _need_str(row, key)
        if problem:
            return problem
    if fmt == "alpaca" and "input" in row:
        return _need_str(row, "input", allow_empty=True)
    return None


def normalize(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    """One shape per kind: chat messages, prompt/completion pair, or plain text."""
    if fmt == "chat":
        return {"kind": "chat", "messages": [{"role": m["role"], "content": m["content"]} for m in row["messages"]]}
    if fmt == "alpaca":
        extra = row.get("input") or ""
        input_block = f"### Input:\n{extra}\n\n" if extra.strip() else ""
        prompt = ALPACA_PROMPT.format(instruction=row["instruction"], input_block=input_block)
        return {"kind": "pc", "prompt": prompt, "completion": row["output"]}
    if fmt == "prompt_completion":
        return {"kind": "pc", "prompt": row["prompt"], "completion": row["completion"]}
    return {"kind": "text", "text": row["text"]}


def read_rows(path: Path, fmt: str = "auto") -> tuple[list[int], list[str], list[BadRow], str]:
    """(line numbers, normalized records as JSON, bad rows, format) for a JSONL file.

    Every line that is not usable becomes a BadRow naming its line: not UTF-8, longer than MAX_LINE_BYTES, not
    JSON, nested deeper than MAX_JSON_DEPTH, not an object, or not in the format. Raises DataError only for the file
    itself (missing, not a regular file, unreadable)."""
    lines: list[int] = []
    records: list[str] = []
    bad: list[BadRow] = []
    for number, raw in _numbered_lines(path):
        row, problem = _parse(raw)
        if problem is None and fmt == "auto":
            fmt = detect_format(row) or "auto"
        problem = problem or row_error(row, fmt)
        if problem:
            bad.append(BadRow(number, problem))
        else:
            lines.append(number)
            records.append(json.dumps(normalize(row, fmt)))
    return lines, records, bad, fmt


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) for each non-blank line; a line over MAX_LINE_BYTES comes as None (it is not kept)."""
    if not path.is_file():
        kind = "not a regular file" if path.exists() else "no such file"
        raise DataError(f"{path}: {kind}; pass --dataset_path pointing at a JSONL file")
    try:
        with path.open("rb") as handle:
            number = 0
            while True:
                raw = handle.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                number += 1
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    _skip_rest_of_line(handle)
                    yield number, None
                elif raw.strip():
                    yield number, raw
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error}); check its permissions") from None


def _skip_rest_of_line(handle: Any) -> None:
    while True:
        chunk = handle.readline(1 << 20)
        if not chunk or chunk.endswith(b"\n"):
            return


def _parse(raw: bytes | None) -> tuple[Any, str | None]:
    if raw is None:
        return None, f"longer than {MAX_LINE_BYTES / 2**20:g} MiB; split the row or shorten it"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return None, f"not UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1} of the line); save the " \
            "file as UTF-8"
    too_deep = f"JSON nested deeper than {MAX_JSON_DEPTH} levels; a row needs at most 3"
    try:
        row = json.loads(text)
    except json.JSONDecodeError as error:
        return None, f"not valid JSON ({error.msg} at column {error.colno})"
    except RecursionError:  # the parser's own guard, far deeper than MAX_JSON_DEPTH
        return None, too_deep
    except ValueError as error:  # an integer longer than Python's digit limit
        return None, f"not valid JSON ({str(error).splitlines()[0]})"
    return (None, too_deep) if nested_deeper_than(row, MAX_JSON_DEPTH) else (row, None)


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects in a parsed JSON value nest more than limit levels; iterative (any depth is safe)."""
    todo = [(value, 1)] if isinstance(value, (dict, list)) else []
    while todo:
        item, depth = todo.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        todo.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _shown(value: Any, limit: int = 40) -> str:
    """A value as it may appear in a message: its repr (control characters escaped), cut to limit characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---- tokenization and masking ----------------------------------------------------------------------------------

def _ids(tokenizer: Any, text: str, special: bool = False) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def tokenize_chat(messages: list[dict[str, str]], tokenizer: Any) -> tuple[list[int], list[int]]:
    """Render through the chat template; labels only on the assistant turns (their end-of-turn token included)."""
    def render(part: list[dict[str, str]], generation: bool) -> list[int]:
        text = tokenizer.apply_chat_template(part, tokenize=False, add_generation_prompt=generation)
        return _ids(tokenizer, text)

    input_ids = render(messages, False)
    labels = [IGNORE_INDEX] * len(input_ids)
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(render(messages[:index], True))
        end = min(len(render(messages[: index + 1], False)), len(input_ids))
        labels[start:end] = input_ids[start:end]
    return input_ids, labels


def tokenize_prompt_completion(prompt: str, completion: str, tokenizer: Any) -> tuple[list[int], list[int]]:
    prompt_ids = _ids(tokenizer, prompt, special=True)
    completion_ids = _ids(tokenizer, completion) + [tokenizer.eos_token_id]
    return prompt_ids + completion_ids, [IGNORE_INDEX] * len(prompt_ids) + completion_ids


def tokenize_text(text: str, tokenizer: Any) -> tuple[list[int], list[int]]:
    ids = _ids(tokenizer, text, special=True) + [tokenizer.eos_token_id]
    return ids, list(ids)


def tokenize_record(record: dict[str, Any], tokenizer: Any) -> tuple[list[int], list[int]]:
    if record["kind"] == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise DataError("the tokenizer has no chat template; use --dataset_format prompt_completion or text data")
        return tokenize_chat(record["messages"], tokenizer)
    if record["kind"] == "pc":
        return tokenize_prompt_completion(record["prompt"], record["completion"], tokenizer)
    return tokenize_text(record["text"], tokenizer)


def fit_length(ids: list[int], labels: list[int], max_len: int, truncate: bool) -> tuple[list[int], list[int], str]:
    """(ids, labels, status) where status is ok, truncated, too_long or no_labels."""
    if len(ids) > max_len:
        if not truncate:
            return ids, labels, "too_long"
        ids, labels = ids[:max_len], labels[:max_len]
        status = "truncated"
    else:
        status = "ok"
    if all(label == IGNORE_INDEX for label in labels):
        return ids, labels, "no_labels"
    return ids, labels, status


def _tokenize_batch(batch: dict[str, list[Any]], tokenizer: Any, settings: DataSettings) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "status": [], "length": [], "problem": []}
    for record in batch["record"]:
        problem = ""
        try:
            ids, labels = tokenize_record(json.loads(record), tokenizer)
        except DataError:
            raise
        except Exception as error:  # the chat template's own raise_exception(), or the tokenizer refusing this row
            ids, labels, problem = [], [], (str(error).strip().splitlines() or [type(error).__name__])[0]
        full_length = len(ids)
        ids, labels, status = fit_length(ids, labels, settings.max_seq_length, settings.truncate_long_rows)
        status = "unrenderable" if problem else status
        values = (("input_ids", ids), ("labels", labels), ("status", status), ("length", full_length),
                  ("problem", problem))
        for key, value in values:
            out[key].append(value)
    return out


STATUS_REASONS = {
    "too_long": "over-long: {length} tokens > --max_seq_length {max_len} (raise it, or pass --truncate_long_rows)",
    "no_labels": "no trainable tokens left after truncation to {max_len}",
    "unrenderable": "the tokenizer or its chat template refused it: {problem}",
}


def tokenize_file(path: Path, tokenizer: Any, settings: DataSettings, num_proc: int) -> tuple[Any, DataStats]:
    """Tokenize one JSONL file into a datasets.Dataset; returns it with its stats. Raises DataError on bad rows."""
    from datasets import Dataset

    lines, records, bad, _fmt = read_rows(path, settings.dataset_format)
    stats = DataStats(rows_total=len(lines) + len(bad))
    if not records:
        raise DataError(f"{path}: no usable rows ({_describe_bad(bad)}); check the file's format")
    dataset = Dataset.from_dict({"line": lines, "record": records})
    dataset = dataset.map(
        _tokenize_batch, batched=True, remove_columns=["record"], num_proc=num_proc if num_proc > 1 else None,
        fn_kwargs={"tokenizer": tokenizer, "settings": settings}, desc=f"tokenizing {path.name}",
    )
    columns = (dataset["line"], dataset["status"], dataset["length"], dataset["problem"])
    for line, status, length, problem in zip(*columns, strict=True):
        if status in STATUS_REASONS:
            reason = STATUS_REASONS[status].format(length=length, max_len=settings.max_seq_length, problem=problem)
            bad.append(BadRow(line, reason))
    bad.sort(key=lambda row: row.line)
    stats.bad_rows = bad
    if bad and settings.on_bad_row == "fail":
        raise DataError(f"{path}: {len(bad)} bad rows: {_describe_bad(bad)}; fix them or pass --on_bad_row skip")
    dataset = dataset.filter(lambda status: status in ("ok", "truncated"), input_columns="status")
    if len(dataset) == 0:  # --on_bad_row skip, and every row was too long or kept no trainable token
        raise DataError(f"{path}: no usable rows ({_describe_bad(bad)}); raise --max_seq_length or fix the rows")
    _fill_stats(stats, dataset)
    return dataset.remove_columns(["status", "length", "problem"]), stats


def _describe_bad(bad: list[BadRow]) -> str:
    shown = "; ".join(f"line {row.line}: {row.reason}" for row in bad[:SHOWN_BAD_ROWS])
    more = f"; and {len(bad) - SHOWN_BAD_ROWS} more" if len(bad) > SHOWN_BAD_ROWS else ""
    return shown + more if bad else "the file is empty"


def _fill_stats(stats: DataStats, dataset: Any) -> None:
    stats.rows_used = len(dataset)
    stats.rows_skipped = len(stats.bad_rows)
    stats.rows_truncated = sum(1 for status in dataset["status"] if status == "truncated")
    stats.tokens = sum(len(ids) for ids in dataset["input_ids"])
    stats.trainable_tokens = sum(sum(1 for x in labels if x != IGNORE_INDEX) for labels in dataset["labels"])


# ---- cache -----------------------------------------------------------------------------------------------------

def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: Any, model_name: str) -> str:
    """Hash of the tokenizer's files when local, else of its vocabulary and chat template."""
    directory = Path(getattr(tokenizer, "name_or_path", "") or model_name)
    files = [directory / name for name in TOKENIZER_FILES if (directory / name).is_file()]
    if files:  # the template in use too: --chat_template replaces the one in the files
        digests = "".join(f.name + file_digest(f) for f in files) + str(getattr(tokenizer, "chat_template", None))
        return hashlib.sha256(digests.encode()).hexdigest()
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256((vocab + str(tokenizer.chat_template)).encode()).hexdigest()


def cache_key(data_path: Path, eval_path: Path | None, tokenizer_hash: str, settings: DataSettings) -> str:
    parts = [CACHE_VERSION, file_digest(data_path), file_digest(eval_path) if eval_path else "-", tokenizer_hash,
             json.dumps(asdict(settings), sort_keys=True)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def prepare_data(
    data_path: Path, tokenizer: Any, settings: DataSettings, cache_root: Path, num_proc: int = 0,
    eval_path: Path | None = None, model_name: str = "",
) -> PreparedData:
    """Load the tokenized cache for these inputs, or build it (atomically) and load it memory-mapped."""
    key = cache_key(data_path, eval_path, tokenizer_fingerprint(tokenizer, model_name), settings)
    target = cache_root / key
    reused = (target / "COMPLETE").is_file()
    if not reused:
        _build_cache(target, data_path, eval_path, tokenizer, settings, num_proc)
    return _load_cache(target, reused)


def _build_cache(target: Path, data_path: Path, eval_path: Path | None, tokenizer: Any, settings: DataSettings,
                 num_proc: int) -> None:
    train, train_stats = tokenize_file(data_path, tokenizer, settings, num_proc)
    evaluation, eval_stats = (tokenize_file(eval_path, tokenizer, settings, num_proc) if eval_path else (None, None))
    if evaluation is None and settings.eval_split > 0:
        train, evaluation = _split(train, settings)
    staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    train.save_to_disk(str(staging / "train"))
    if evaluation is not None:
        evaluation.save_to_disk(str(staging / "eval"))
    stats = {"train": asdict(train_stats), "eval": asdict(eval_stats) if eval_stats else None}
    (staging / "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    (staging / "COMPLETE").write_text("ok\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def _split(dataset: Any, settings: DataSettings) -> tuple[Any, Any]:
    held_out = max(1, round(len(dataset) * settings.eval_split))
    if held_out >= len(dataset):
        raise DataError(f"--eval_split {settings.eval_split} leaves no training rows out of {len(dataset)}")
    parts = dataset.train_test_split(test_size=held_out, seed=settings.seed)
    return parts["train"], parts["test"]


def _stats_from_dict(data: dict[str, Any] | None) -> DataStats | None:
    if data is None:
        return None
    bad = [BadRow(**row) for row in data.pop("bad_rows", [])]
    return DataStats(**data, bad_rows=bad)


def _load_cache(target: Path, reused: bool) -> PreparedData:
    from datasets import load_from_disk

    stats = json.loads((target / "stats.json").read_text(encoding="utf-8"))
    evaluation = load_from_disk(str(target / "eval")) if (target / "eval").is_dir() else None
    train_stats = _stats_from_dict(stats["train"]) or DataStats()
    return PreparedData(load_from_disk(str(target / "train")), evaluation, train_stats,
                        _stats_from_dict(stats["eval"]), target, reused)
