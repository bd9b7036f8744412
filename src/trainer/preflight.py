"""Checks on flag values, their combinations and input paths, made before the gate and before anything heavy loads.

Each problem is one phrase that names the flag (and its value or file) and what to pass instead; check_inputs joins
them into one line and raises InputError (the CLI prints it and exits 2). Nothing is created or written, except an
empty probe directory, removed at once, that proves --output_dir (or its nearest existing parent) is writable.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from trainer.chat_templates import chat_template_problem
from trainer.config import (
    AUTO_ON_OFF,
    AUTO_ON_OFF_FLAGS,
    BACKENDS,
    COMPILE_MODES,
    DATASET_FORMATS,
    DataConfig,
    TrainConfig,
)
from trainer.datasets_source import dataset_problems
from trainer.errors import BadInputError
from trainer.fast_defaults import packing_problem
from trainer.trackers import report_to_problem

BAD_ROW_CHOICES = ("fail", "skip")
MEMORY_FIT_CHOICES = ("auto", "off")
SEED_LIMIT = 2**32  # NumPy's seed range, which transformers' set_seed passes it


class InputError(BadInputError):
    """Flag values or input files that cannot work; the message is one line naming each flag."""


def check_inputs(config: DataConfig) -> None:
    """Raise InputError listing every problem found in config's flags and input paths (train or pretokenize)."""
    problems = data_problems(config)
    if isinstance(config, TrainConfig):
        problems += training_problems(config)
    if problems:
        raise InputError("; ".join(problems))


def data_problems(config: DataConfig) -> list[str]:
    """The data flags shared by train and pretokenize: files, format, lengths, output and cache directories."""
    problems = [
        None if config.model_name else "--model_name is required (a local model directory or a hub id)",
        None if config.dataset_name else input_file_problem("--dataset_path", config.dataset_path, required=True),
        *dataset_problems(config),  # --dataset_name and its split, config and column mapping
        chat_template_problem(config.chat_template),
        input_file_problem("--eval_dataset_path", config.eval_dataset_path),
        _choice("--dataset_format", config.dataset_format, DATASET_FORMATS),
        _choice("--on_bad_row", config.on_bad_row, BAD_ROW_CHOICES),
        _at_least("--max_seq_length", config.max_seq_length, 1),
        _at_least("--dataloader_num_workers", config.dataloader_num_workers, 0),
        writable_directory_problem("--output_dir", config.output_dir),
    ]
    if not (math.isfinite(config.eval_split) and 0 <= config.eval_split < 1):
        problems.append(f"--eval_split {config.eval_split}: must be a fraction in [0, 1), e.g. 0.01")
    if not 0 <= config.seed < SEED_LIMIT:
        problems.append(f"--seed {config.seed}: must be in [0, 2**32)")
    if config.cache_dir is not None:
        problems.append(writable_directory_problem("--cache_dir", config.cache_dir))
    return [problem for problem in problems if problem]


def training_problems(config: TrainConfig) -> list[str]:
    """Training flags whose values cannot train: step counts, batch sizes, rates, LoRA shape, the stack name."""
    problems = [_epochs_problem(config.num_train_epochs, config.max_steps)]
    for flag in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                 "logging_steps", "save_steps", "lora_r", "lora_alpha"):
        problems.append(_at_least(f"--{flag}", getattr(config, flag), 1))
    for flag in ("save_total_limit", "eval_steps"):
        value = getattr(config, flag)
        problems.append(None if value is None else _at_least(f"--{flag}", value, 1))
    problems += [
        _positive("--learning_rate", config.learning_rate, "e.g. 2e-4"),
        _positive("--grad_norm_limit", config.grad_norm_limit, "e.g. 1e4"),
        _positive("--max_perplexity", config.max_perplexity, "e.g. 10"),
        _not_negative("--weight_decay", config.weight_decay),
        _not_negative("--max_grad_norm", config.max_grad_norm),
        report_to_problem(config.report_to),
        stack_problem(config.stack),
    ]
    if not (math.isfinite(config.lora_dropout) and 0 <= config.lora_dropout < 1):
        problems.append(f"--lora_dropout {config.lora_dropout}: must be in [0, 1), e.g. 0.05")
    if config.max_steps < -1:
        problems.append(f"--max_steps {config.max_steps}: must be a number of steps >= 1, or -1 to train "
                        "--num_train_epochs")
    if not config.target_modules:
        problems.append("--target_modules is empty: name the projections to adapt, e.g. q_proj v_proj")
    return [problem for problem in problems if problem]


def _epochs_problem(epochs: float, max_steps: int) -> str | None:
    if not math.isfinite(epochs) or epochs < 0:
        return f"--num_train_epochs {epochs}: must be a positive number of passes over the data, e.g. 3"
    if epochs == 0 and max_steps <= 0:
        return "--num_train_epochs 0 trains nothing: pass a positive number, or --max_steps N"
    return None


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> str | None:
    return None if value in choices else f"{flag} {value!r}: must be one of {', '.join(choices)}"


def _at_least(flag: str, value: int, lowest: int) -> str | None:
    return None if value >= lowest else f"{flag} {value}: must be >= {lowest}"


def _positive(flag: str, value: float, example: str) -> str | None:
    return None if math.isfinite(value) and value > 0 else f"{flag} {value}: must be a number > 0, {example}"


def _not_negative(flag: str, value: float) -> str | None:
    return None if math.isfinite(value) and value >= 0 else f"{flag} {value}: must be a number >= 0"


def input_file_problem(flag: str, value: str | None, required: bool = False) -> str | None:
    """Why value is not a readable, non-empty regular file (a JSONL data set), or None. None/'' passes unless
    required."""
    if not value:
        return f"{flag} is required: a JSONL file" if required else None
    path = Path(value).expanduser()
    if not path.exists():
        return f"{flag} {value}: no such file; pass a JSONL file"
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        return f"{flag} {value}: {kind}; pass a JSONL file"
    try:
        with path.open("rb") as handle:
            empty = not handle.read(1)
    except OSError as error:
        return f"{flag} {value}: cannot be read ({error.strerror or error}); check its permissions"
    return f"{flag} {value}: the file is empty; pass a JSONL file with one row per line" if empty else None


def writable_directory_problem(flag: str, value: str) -> str | None:
    """Why value cannot be (or become) a directory this process writes into, or None. The test is a real write:
    an empty directory made and removed in value, or in its nearest existing parent when value does not exist yet."""
    if not value:
        return f"{flag} is empty: pass a directory"
    path = Path(value).expanduser().absolute()
    existing = next((candidate for candidate in (path, *path.parents) if candidate.exists()), None)
    if existing is None:
        return f"{flag} {value}: no part of the path exists"
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is a file)"
        return f"{flag} {value}: not a directory{where}; pass a new or existing directory"
    try:
        probe = tempfile.mkdtemp(prefix=".trainer-write-check-", dir=existing)
    except OSError as error:
        return f"{flag} {value}: cannot write in {existing} ({error.strerror or error}); pass a writable directory"
    os.rmdir(probe)
    return None


def stack_problem(stack: str | None) -> str | None:
    """--stack naming no bundled stack is bad input (exit 2), found before the gate; a broken matrices folder is left
    to the gate, which refuses with envdoctor's message."""
    if stack is None:
        return None
    from envdoctor.matrices import MatrixError, StackNotFoundError, load_matrices

    try:
        load_matrices().stack(stack)
    except StackNotFoundError as error:
        return f"--stack {stack}: {error} (`envdoctor stacks` lists them)"
    except MatrixError:
        return None
    return None


def check_config(config: TrainConfig) -> None:
    """The training flags' choices and combinations, checked again before training (LoRARecipe relies on them).
    Raises InputError."""
    problems = []
    if not config.model_name:
        problems.append("--model_name is required (a local model directory or a hub id)")
    if not config.dataset_name and (not config.dataset_path or not Path(config.dataset_path).is_file()):
        problems.append(f"--dataset_path {config.dataset_path!r}: no such file; pass a JSONL file")
    if config.dataset_format not in DATASET_FORMATS:
        problems.append(f"--dataset_format must be one of {', '.join(DATASET_FORMATS)}")
    problems.append(packing_problem(config))
    if config.memory_fit not in MEMORY_FIT_CHOICES:
        problems.append(f"--memory_fit must be one of {', '.join(MEMORY_FIT_CHOICES)}")
    if config.on_bad_row not in BAD_ROW_CHOICES:
        problems.append("--on_bad_row must be fail or skip")
    if not 0 <= config.eval_split < 1:
        problems.append("--eval_split must be in [0, 1)")
    problems += combination_problems(config)
    problems = [problem for problem in problems if problem]
    if problems:
        raise InputError("; ".join(problems))


def combination_problems(config: TrainConfig) -> list[str]:
    """Flags that are valid alone but not together (or need another flag)."""
    problems = []
    if not 0 <= config.warmup_ratio < 1:
        problems.append(f"--warmup_ratio {config.warmup_ratio}: must be a fraction of the steps in [0, 1)")
    if config.backend not in BACKENDS:
        problems.append(f"--backend must be one of {', '.join(BACKENDS)}")
    for flag in AUTO_ON_OFF_FLAGS:
        if getattr(config, flag) not in AUTO_ON_OFF:
            problems.append(f"--{flag} must be one of {', '.join(AUTO_ON_OFF)}")
    if config.torch_compile_mode not in COMPILE_MODES:
        problems.append(f"--torch_compile_mode must be one of {', '.join(COMPILE_MODES)}")
    elif config.torch_compile_mode not in ("auto", "default") and config.torch_compile_backend != "inductor":
        problems.append(f"--torch_compile_mode {config.torch_compile_mode} needs --torch_compile_backend inductor "
                        f"(it is {config.torch_compile_backend}); drop one of them")
    budget = config.activation_memory_budget
    if not 0 < budget <= 1:
        problems.append(f"--activation_memory_budget {budget}: must be a share in (0, 1], e.g. 0.6")
    elif budget < 1 and not (config.torch_compile and config.torch_compile_backend == "inductor"):
        problems.append(f"--activation_memory_budget {budget} needs --torch_compile with the inductor backend (the "
                        "compiler chooses what to recompute); without it use --gradient_checkpointing")
    if config.fused_lora == "on" and config.backend == "unsloth":
        problems.append("--fused_lora on does not apply to --backend unsloth (Unsloth fuses its own LoRA); drop it")
    if config.validate and not config.merge:
        problems.append("--validate needs --merge (it validates the merged model)")
    if config.validate and not (config.validate_test_set or config.eval_dataset_path or config.eval_split > 0):
        problems.append("--validate needs a test set: pass --validate_test_set PATH, --eval_dataset_path PATH or "
                        "--eval_split 0.01")
    if config.validate_test_set and not Path(config.validate_test_set).is_file():
        problems.append(f"--validate_test_set {config.validate_test_set!r}: no such file; pass a JSONL file")
    return problems
