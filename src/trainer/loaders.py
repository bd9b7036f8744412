"""Loading what a run trains on: the tokenizer, the tokenized data (cached), the LoRA-wrapped model, the model shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.backends import Backend, BackendChoice, load_lora_model_for
from trainer.chat_templates import use_chat_template
from trainer.errors import BadInputError, first_line, log


def load_tokenizer(config: Any) -> Any:
    """The model's tokenizer, with the EOS token as padding when it has none. Raises BadInputError."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model_name, revision=config.revision,
                                                  trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as error:
        raise BadInputError(f"cannot load the tokenizer of {config.model_name}: {first_line(error)}. Pass a "
                            "local model directory, or a hub id that is cached or reachable") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    used = use_chat_template(tokenizer, getattr(config, "chat_template", None))
    if used:
        log(f"chat template: {used} (--chat_template)")
    return tokenizer


def load_data(config: Any, tokenizer: Any) -> Any:
    """The tokenized train (and eval) rows, from the cache when it matches (trainer.data). Raises DataError."""
    from trainer.data import DataSettings, prepare_data

    settings = DataSettings(config.dataset_format, config.on_bad_row, config.max_seq_length,
                            config.truncate_long_rows, config.eval_split, config.seed)
    cache_root = Path(config.cache_dir) if config.cache_dir else Path(config.output_dir) / "tokenized"
    eval_path = Path(config.eval_dataset_path) if config.eval_dataset_path else None
    data = prepare_data(Path(config.dataset_path), tokenizer, settings, cache_root, config.dataloader_num_workers,
                        eval_path, config.model_name)
    log(f"data cache {'reused' if data.reused else 'built'}: {data.cache_path}")
    log(data.train_stats.describe("train"))
    if data.eval_stats:
        log(data.eval_stats.describe("eval"))
    for bad in data.train_stats.bad_rows[:5]:
        log(f"skipped line {bad.line}: {bad.reason}")
    return data  # the 'line' column stays: collators ignore it, the debug trace and --validate use it


def load_model_for(backend: Backend | None, config: Any) -> Any:
    """The LoRA-wrapped base from the chosen backend (trainer.backends); None means the default hf path."""
    return load_lora_model_for(backend or BackendChoice("hf", "default"), config)


def model_shape(config: Any) -> Any:
    """trainer.memory.ModelShape from the model's config.json (local directory, or the hub cache), no weights."""
    from transformers import AutoConfig

    from trainer.memory import ModelShape

    loaded = AutoConfig.from_pretrained(config.model_name, revision=config.revision,
                                        trust_remote_code=config.trust_remote_code)
    return ModelShape.from_config(loaded.to_dict())
