"""Test inputs in the Hugging Face conventions: a base model without a chat template whose tokenizer knows the Llama 3
and ChatML markers, and the synthetic rows written in every file format `datasets` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiny import build_tiny_llama, build_tiny_tokenizer, synthetic_chat_rows

# The markers of the bundled templates, special tokens in the tiny tokenizer as they are in Llama 3's and Qwen's.
TEMPLATE_TOKENS = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|im_start|>",
                   "<|im_end|>")
ROLE_WORDS = ("system", "user", "assistant")
FORMATS = ("json", "jsonl", "parquet", "csv", "arrow")


def build_base_model_dir(directory: Path) -> Path:
    """A tiny Llama whose tokenizer has no chat template (a base model) and knows the templates' markers."""
    tokenizer = build_tiny_tokenizer(directory)
    tokenizer.add_tokens(list(TEMPLATE_TOKENS), special_tokens=True)
    tokenizer.add_tokens(list(ROLE_WORDS))
    tokenizer.chat_template = None
    tokenizer.save_pretrained(str(directory))
    (directory / "chat_template.jinja").unlink(missing_ok=True)
    return build_tiny_llama(directory, vocab=len(tokenizer))


def renamed_chat_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """synthetic_chat_rows with the messages in a 'conversation' column (and an unrelated 'id' column)."""
    rows = synthetic_chat_rows(count, seed)
    return [{"id": index, "conversation": row["messages"]} for index, row in enumerate(rows)]


def write_dataset_file(rows: list[dict[str, Any]], path: Path, fmt: str) -> Path:
    """rows as a `fmt` file (csv: nested values must already be strings); arrow: the file save_to_disk writes."""
    from datasets import Dataset

    dataset = Dataset.from_list(rows)
    if fmt == "json":
        dataset.to_json(str(path), lines=False)
    elif fmt == "jsonl":
        dataset.to_json(str(path), lines=True)
    elif fmt == "parquet":
        dataset.to_parquet(str(path))
    elif fmt == "csv":
        dataset.to_csv(str(path), index=False)
    else:
        saved = path.with_suffix(".saved")
        dataset.save_to_disk(str(saved))
        next(saved.glob("*.arrow")).rename(path)
    return path
