"""`python -m trainer [train|pretokenize|merge|validate] ...`: flags from the config dataclasses, --config YAML.

Precedence: dataclass defaults < YAML (--config) < command-line flags. Only this module prints and exits.
Exit codes: 0 ok, 1 --merge check or --validate failed, 2 bad input, 3 refused (gate, or merge of a quantized base),
4 training diverged, 5 out of GPU memory (progress saved; the message names the peak and flags that fit),
130 interrupted (checkpoint saved).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from trainer.config import DataConfig, TrainConfig
from trainer.preflight import check_inputs

SUBCOMMANDS = ("train", "pretokenize", "merge", "validate")
EXIT_BAD_INPUT = 2


class ConfigError(ValueError):
    """A bad --config file or flag value; the message names the file and key."""


def _flag_type(annotation: str) -> Any:
    base = annotation.replace(" | None", "")
    return {"str": str, "int": int, "float": float, "bool": bool, "list[str]": str}[base]


def add_dataclass_flags(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One flag per field; defaults are SUPPRESSed so that only flags actually given override the YAML."""
    for item in fields(config_class):
        kind = _flag_type(str(item.type))
        help_text = item.metadata.get("help", "").replace("%", "%%")  # argparse reads % as a format code
        if item.metadata.get("switch"):  # auto|on|off; --NAME alone means on, --no-NAME off
            parser.add_argument(f"--{item.name}", nargs="?", const="on", choices=("auto", "on", "off"),
                                default=argparse.SUPPRESS, help=help_text)
            parser.add_argument(f"--no-{item.name}", dest=item.name, action="store_const", const="off",
                                default=argparse.SUPPRESS, help=f"the same as --{item.name} off")
        elif kind is bool:
            parser.add_argument(f"--{item.name}", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=help_text)
        elif str(item.type) == "list[str]":
            parser.add_argument(f"--{item.name}", nargs="+", default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(f"--{item.name}", type=kind, default=argparse.SUPPRESS, help=help_text)
    parser.add_argument("--config", default=None, help="YAML file with the same keys as the flags")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Gated LoRA fine-tuning of bf16 bases.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_dataclass_flags(commands.add_parser("train", help="fine-tune (default)"), TrainConfig)
    add_dataclass_flags(commands.add_parser("pretokenize", help="build the tokenized data cache only"), DataConfig)
    for name in ("merge", "validate"):
        module = _optional_module(name)
        if module is not None:
            module.add_arguments(commands.add_parser(name, help=f"{name} (see trainer.{name})"))
    return parser


def _optional_module(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(f"trainer.{name}")
    except ImportError:
        return None


def read_yaml(path: str) -> dict[str, Any]:
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of flag names to values")
    return data


def _coerce(path: str, key: str, value: Any, annotation: str) -> Any:
    if value is None and "None" in annotation:
        return None
    kind = _flag_type(annotation)
    if annotation == "list[str]":
        values = value if isinstance(value, list) else [value]
        return [str(item) for item in values]
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{path}: key '{key}' must be true or false, got {value!r}")
    if kind in (int, float) and isinstance(value, bool):  # a bool is an int to isinstance
        raise ConfigError(f"{path}: key '{key}' must be a number, got {value!r}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, kind):
        raise ConfigError(f"{path}: key '{key}' must be {kind.__name__}, got {value!r}")
    return value


def build_config(config_class: type, namespace: argparse.Namespace) -> Any:
    """Dataclass defaults, then the YAML file, then the flags given. Raises ConfigError."""
    known = {item.name: str(item.type) for item in fields(config_class)}
    switches = {item.name for item in fields(config_class) if item.metadata.get("switch")}
    values: dict[str, Any] = {}
    if namespace.config:
        for key, value in read_yaml(namespace.config).items():
            if key not in known:
                raise ConfigError(f"{namespace.config}: unknown key '{key}'; the keys are the flag names")
            if key in switches and isinstance(value, bool):
                value = "on" if value else "off"  # YAML true/false for an auto|on|off switch
            values[key] = _coerce(namespace.config, key, value, known[key])
    values.update({key: value for key, value in vars(namespace).items() if key in known})
    return config_class(**values)


def normalize_argv(argv: list[str]) -> list[str]:
    """train is the default subcommand."""
    if argv and argv[0] in SUBCOMMANDS or argv[:1] in (["-h"], ["--help"]):
        return argv
    return ["train", *argv]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(normalize_argv(list(sys.argv[1:] if argv is None else argv)))
    if args.command in ("merge", "validate"):
        return int(_optional_module(args.command).run(args))
    try:
        config = build_config(TrainConfig if args.command == "train" else DataConfig, args)
        check_inputs(config)  # flag values and input files, before the gate and before anything heavy loads
        return run_train(config) if args.command == "train" else run_pretokenize(config)
    except ValueError as error:  # ConfigError, TrainerInputError, DataError, CheckpointError, ModelError
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def run_train(config: TrainConfig) -> int:
    """The gate first (on every rank, whatever the backend), then the backend choice, then training."""
    from trainer.distributed import (
        configure_distributed_env,
        debug_record,
        is_main_process,
        rank,
        shutdown_process_group,
    )
    from trainer.gate import REFUSED_EXIT_CODE, refusals, render_refusals
    from trainer.recipe import check_config

    check_config(config)  # the flag combinations, also before the gate
    configure_distributed_env()
    found = refusals(config.model_name, config.stack, config.load_in_4bit, config.load_in_8bit, config.revision)
    debug_record("gate", [f"rank {rank()}: {'refused' if found else 'passed'}"])
    if found:
        if is_main_process():
            print(render_refusals(found), file=sys.stderr)
        return REFUSED_EXIT_CODE
    from trainer.recipe import run_training

    try:
        outcome = run_training(config, choose_backend(config))
    finally:
        shutdown_process_group()
    if outcome.message:
        print(outcome.message, file=sys.stderr if outcome.exit_code else sys.stdout)
    return outcome.exit_code


def choose_backend(config: TrainConfig) -> Any:
    """trainer.backends' choice (made before transformers is imported, as Unsloth requires); raises BackendError."""
    from trainer.backends import select_backend
    from trainer.distributed import is_main_process
    from trainer.fast_defaults import packing_decision

    choice = select_backend(config.backend, packing_decision(config).on)
    if is_main_process():
        print(f"[trainer] backend {choice.name}: {choice.reason}", file=sys.stderr, flush=True)
    return choice


def run_pretokenize(config: DataConfig) -> int:
    from trainer.recipe import TrainerInputError, load_data, load_tokenizer

    if not config.dataset_path or not Path(config.dataset_path).is_file():
        raise TrainerInputError(f"--dataset_path {config.dataset_path!r}: no such file; pass a JSONL file")
    load_data(config, load_tokenizer(config))
    return 0
