"""Inputs of the Hugging Face conventions run: a base model without a chat template and a Parquet dataset with
its own column name.

    python conventions_inputs.py MODEL_DIR CHAT_JSONL WORK_DIR

WORK_DIR/base: MODEL_DIR's weights (linked) and tokenizer with the chat template taken out, as a base (non-Instruct)
model ships; WORK_DIR/chat.parquet: the JSONL's chat rows with `messages` renamed to `conversation`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def base_without_template(model: Path, base: Path) -> None:
    base.mkdir(parents=True, exist_ok=True)
    for path in model.iterdir():
        target = base / path.name
        if path.name in TEMPLATE_FILES or target.exists():
            continue
        if path.name == "tokenizer_config.json":
            config = json.loads(path.read_text(encoding="utf-8"))
            config.pop("chat_template", None)
            target.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        else:
            target.symlink_to(path.resolve())


def chat_parquet(rows_file: Path, out: Path) -> int:
    rows = [json.loads(line) for line in rows_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    table = pa.Table.from_pylist([{"conversation": row["messages"]} for row in rows])
    pq.write_table(table, out)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="model directory (weights, tokenizer, chat template)")
    parser.add_argument("rows", type=Path, help="chat-rows JSONL with a `messages` column")
    parser.add_argument("work", type=Path, help="where base/ and chat.parquet are written")
    args = parser.parse_args(argv)
    model, rows_file, work = args.model, args.rows, args.work
    base_without_template(model, work / "base")
    count = chat_parquet(rows_file, work / "chat.parquet")
    print(f"{work / 'base'}: weights of {model}, no chat template; {work / 'chat.parquet'}: {count} rows "
          "in column 'conversation'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
