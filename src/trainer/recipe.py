"""LoRA fine-tuning of a full-precision base: init (early checks) -> setup -> train -> cleanup.

Heavy libraries (torch, transformers, peft, datasets) are imported here, after the gate has passed.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer.config import TrainConfig
from trainer.types import IGNORE_INDEX, TokenizedExample

EXIT_OK, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 2, 4, 130
ADAPTER_DIR = "adapter"


class TrainerInputError(ValueError):
    """Bad flags or inputs, found before training; the message says what to change."""


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    message: str


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def log(message: str) -> None:
    if is_main_process():
        print(f"[trainer] {message}", file=sys.stderr, flush=True)


class PadCollator:
    """Pads input_ids/labels to the longest sample in the batch and adds the attention mask."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = max(len(row["input_ids"]) for row in rows)
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "attention_mask": []}
        for row in rows:
            missing = longest - len(row["input_ids"])
            batch["input_ids"].append(list(row["input_ids"]) + [self.pad_token_id] * missing)
            batch["labels"].append(list(row["labels"]) + [IGNORE_INDEX] * missing)
            batch["attention_mask"].append([1] * len(row["input_ids"]) + [0] * missing)
        return {name: torch.tensor(values, dtype=torch.long) for name, values in batch.items()}


class LoRARecipe:
    def __init__(self, config: TrainConfig) -> None:
        check_config(config)
        self.config = config
        self.output_dir = Path(config.output_dir).expanduser()
        self.trainer: Any = None
        self.guard: Any = None
        self.interrupt: Any = None
        self.data: Any = None

    # ---- setup ---------------------------------------------------------------------------------------------
    def setup(self) -> None:
        from transformers import set_seed

        from trainer.callbacks import DivergenceGuard, MetricsLogger, SaveOnInterrupt
        from trainer.checkpoint import CompleteMarkerCallback

        set_seed(self.config.seed)  # before the LoRA weights are initialised, so runs (and resumes) repeat exactly
        self.output_dir.mkdir(parents=True, exist_ok=True)
        tokenizer = load_tokenizer(self.config)
        self.data = load_data(self.config, tokenizer)
        model = load_lora_model(self.config)
        train_set, collator = self._train_set_and_collator(model, tokenizer)
        self.guard, self.interrupt = DivergenceGuard(self.config.grad_norm_limit), SaveOnInterrupt()
        callbacks = [CompleteMarkerCallback(), self.guard, self.interrupt, MetricsLogger(self.output_dir)]
        self.trainer = build_trainer(self.config, model, tokenizer, train_set, self.data.eval, collator, callbacks)

    def _train_set_and_collator(self, model: Any, tokenizer: Any) -> tuple[Any, Any]:
        if not self.config.packing:
            return self.data.train, PadCollator(tokenizer.pad_token_id)
        from trainer.packing import PackedCollator, enable_packed_attention, pack_examples, packing_efficiency

        examples = [TokenizedExample(tuple(r["input_ids"]), tuple(r["labels"])) for r in self.data.train]
        rows = pack_examples(examples, self.config.max_seq_length)
        backend = enable_packed_attention(model)
        log(f"packing: {len(examples)} samples -> {len(rows)} rows of {self.config.max_seq_length} tokens "
            f"({packing_efficiency(rows, self.config.max_seq_length):.0%} filled), attention {backend}")
        return rows, PackedCollator(self.config.max_seq_length, tokenizer.pad_token_id)

    # ---- train ---------------------------------------------------------------------------------------------
    def train(self) -> tuple[float, Any]:
        from trainer.checkpoint import remove_incomplete, resolve_resume

        resume = resolve_resume(self.config.resume_from_checkpoint, self.output_dir)
        if is_main_process():
            for path in remove_incomplete(self.output_dir):
                log(f"removed incomplete checkpoint {path} (a save was interrupted)")
        log(f"resuming from {resume}" if resume else "starting from step 0")
        started = time.perf_counter()
        self.trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        return time.perf_counter() - started, self.trainer.state

    # ---- cleanup -------------------------------------------------------------------------------------------
    def cleanup(self, wall: float, state: Any) -> Outcome:
        from trainer.summary import build_summary, plot_loss, read_metrics, write_summary

        stopped = self.guard.stop_reason or ("interrupted (Ctrl-C)" if self.interrupt.interrupted else None)
        if not self.guard.stop_reason and not self.interrupt.interrupted:
            self._save_adapter()
        if not self.trainer.is_world_process_zero():
            return Outcome(EXIT_OK, "")
        metrics = read_metrics(self.output_dir)
        summary = build_summary(state.global_step, wall, self._samples_seen(state), state.num_input_tokens_seen,
                                peak_gpu_memory_gib(), metrics, stopped)
        write_summary(self.output_dir, summary)
        plot_loss(self.output_dir, metrics)
        log(summary.describe())
        return self._outcome()

    def _samples_seen(self, state: Any) -> int:
        args = self.trainer.args
        return state.global_step * args.per_device_train_batch_size * args.gradient_accumulation_steps * \
            args.world_size

    def _save_adapter(self) -> None:
        target = self.output_dir / ADAPTER_DIR
        staging = self.output_dir / f".{ADAPTER_DIR}.tmp"
        if self.trainer.is_world_process_zero():
            shutil.rmtree(staging, ignore_errors=True)
            self.trainer.model.save_pretrained(str(staging), safe_serialization=True)
            self.trainer.processing_class.save_pretrained(str(staging))
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
            log(f"adapter saved to {target}")

    def _outcome(self) -> Outcome:
        from trainer.checkpoint import newest_complete

        last = newest_complete(self.output_dir)
        if self.guard.stop_reason:
            return Outcome(EXIT_DIVERGED, f"training stopped: {self.guard.stop_reason}. Weights after this point are "
                           f"not saved; the last good checkpoint is {last}. Lower --learning_rate or raise "
                           "--warmup_ratio, then resume with --resume_from_checkpoint PATH")
        if self.interrupt.interrupted:
            return Outcome(EXIT_INTERRUPTED, f"interrupted: checkpoint saved at {last}; continue with "
                           "--resume_from_checkpoint auto")
        return Outcome(EXIT_OK, f"done: adapter in {self.output_dir / ADAPTER_DIR}")


def check_config(config: TrainConfig) -> None:
    """Early checks on flag values, before anything heavy loads. Raises TrainerInputError."""
    from trainer.config import DATASET_FORMATS

    problems = []
    if not config.model_name:
        problems.append("--model_name is required (a local model directory or a hub id)")
    if not config.dataset_path or not Path(config.dataset_path).is_file():
        problems.append(f"--dataset_path {config.dataset_path!r}: no such file; pass a JSONL file")
    if config.dataset_format not in DATASET_FORMATS:
        problems.append(f"--dataset_format must be one of {', '.join(DATASET_FORMATS)}")
    if config.on_bad_row not in ("fail", "skip"):
        problems.append("--on_bad_row must be fail or skip")
    if not 0 <= config.eval_split < 1:
        problems.append("--eval_split must be in [0, 1)")
    if config.validate and not config.merge:
        problems.append("--validate needs --merge (it validates the merged model)")
    if problems:
        raise TrainerInputError("; ".join(problems))


def load_tokenizer(config: Any) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model_name, revision=config.revision,
                                                  trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as error:
        raise TrainerInputError(f"cannot load the tokenizer of {config.model_name}: {_first_line(error)}. Pass a "
                                "local model directory, or a hub id that is cached or reachable") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def load_data(config: Any, tokenizer: Any) -> Any:
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
    data.train = data.train.remove_columns(["line"])
    data.eval = data.eval.remove_columns(["line"]) if data.eval is not None else None
    return data


def load_lora_model(config: TrainConfig) -> Any:
    """The base in bf16 (fp32 on CPU), never quantized, with LoRA adapters on the target modules."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(config.model_name, dtype=dtype, revision=config.revision,
                                                     trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as error:
        raise TrainerInputError(f"cannot load {config.model_name}: {_first_line(error)}") from None
    model.config.use_cache = False
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    trainable, total = model.get_nb_trainable_parameters()
    log(f"base {config.model_name} in {dtype}, LoRA r={config.lora_r}: {trainable:,} of {total:,} parameters train")
    return model


def build_trainer(config: TrainConfig, model: Any, tokenizer: Any, train_set: Any, eval_set: Any, collator: Any,
                  callbacks: list[Any]) -> Any:
    import torch
    from transformers import Trainer, TrainingArguments

    has_eval = eval_set is not None
    args = TrainingArguments(
        output_dir=str(config.output_dir), num_train_epochs=config.num_train_epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio, lr_scheduler_type=config.lr_scheduler_type,
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, logging_steps=config.logging_steps,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        eval_strategy="steps" if has_eval else "no", eval_steps=config.eval_steps or config.save_steps,
        bf16=torch.cuda.is_available(), dataloader_num_workers=config.dataloader_num_workers, seed=config.seed,
        data_seed=config.seed, torch_compile=config.torch_compile, gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        report_to=["tensorboard"] if config.report_to == "tensorboard" else "none",
        include_num_input_tokens_seen="non_padding", remove_unused_columns=False,
        disable_tqdm=not is_main_process(),
    )
    return Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set, data_collator=collator,
                   processing_class=tokenizer, callbacks=callbacks)


def run_training(config: TrainConfig) -> Outcome:
    """init -> setup -> train -> cleanup, then --merge/--validate. Raises TrainerInputError, DataError."""
    recipe = LoRARecipe(config)
    log("settings: " + ", ".join(f"{k}={v}" for k, v in asdict(config).items() if v not in (None, False, "")))
    recipe.setup()
    wall, state = recipe.train()
    outcome = recipe.cleanup(wall, state)
    if outcome.exit_code == EXIT_OK and config.merge and is_main_process():
        return merge_and_validate(config, recipe.output_dir / ADAPTER_DIR)
    return outcome


def merge_and_validate(config: TrainConfig, adapter: Path) -> Outcome:
    from trainer import merge

    merged_dir = Path(config.output_dir) / "merged"
    result = merge.merge_adapter(config.model_name, adapter, merged_dir, overwrite=True, revision=config.revision,
                                 log=log)
    log(merge.render_result(result))
    if not config.validate:
        return Outcome(EXIT_OK, f"done: adapter in {adapter}, merged model in {merged_dir}")
    from trainer import validate

    report = validate.validate_model(str(merged_dir))
    code = getattr(report, "exit_code", 0)
    return Outcome(code, f"done: merged model in {merged_dir}; validation: {report}")


def peak_gpu_memory_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)
