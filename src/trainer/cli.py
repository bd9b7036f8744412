"""`python -m trainer [train|pretokenize|merge|validate] ...`: flags from the config dataclasses, --config YAML.

Precedence: dataclass defaults < YAML (--config) < command-line flags. Only this module prints, installs signal
handlers (merge's SIGTERM; training's Ctrl-C is trainer.callbacks.SaveOnInterrupt's) and maps errors to exit codes.
Exit codes (trainer.errors): 0 ok, 1 --merge check or --validate failed, 2 bad input, 3 refused (gate, or merge of
a quantized base), 4 training diverged, 5 out of GPU memory (progress saved; the message names the peak and flags
that fit), 130 interrupted (checkpoint saved).
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from trainer.config import DataConfig, MergeConfig, TrainConfig, ValidateConfig
from trainer.errors import EXIT_OK, EXIT_REFUSED, BadInputError, RefusedError, TrainerError
from trainer.preflight import check_inputs

SUBCOMMANDS = ("train", "pretokenize", "merge", "validate")
CONFIGS = {"train": TrainConfig, "pretokenize": DataConfig, "merge": MergeConfig, "validate": ValidateConfig}


class ConfigError(BadInputError):
    """A bad --config file or flag value; the message names the file and key."""


def _flag_type(annotation: str) -> Any:
    base = annotation.replace(" | None", "")
    return {"str": str, "int": int, "float": float, "bool": bool, "list[str]": str}[base]


def add_dataclass_flags(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One flag per field; defaults are SUPPRESSed so that only flags actually given override the YAML."""
    for item in fields(config_class):
        kind = _flag_type(str(item.type))
        help_text = item.metadata.get("help", "").replace("%", "%%")  # argparse reads % as a format code
        names = [f"--{name}" for name in (item.name, *item.metadata.get("aliases", ()))]  # TRL's names too
        if item.metadata.get("switch"):  # auto|on|off; --NAME alone means on, --no-NAME off
            parser.add_argument(*names, dest=item.name, nargs="?", const="on", choices=("auto", "on", "off"),
                                default=argparse.SUPPRESS, help=help_text)
            parser.add_argument(f"--no-{item.name}", dest=item.name, action="store_const", const="off",
                                default=argparse.SUPPRESS, help=f"the same as --{item.name} off")
        elif kind is bool:
            parser.add_argument(*names, dest=item.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
        elif str(item.type) == "list[str]":
            parser.add_argument(*names, dest=item.name, nargs="+", default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(*names, dest=item.name, type=kind, choices=item.metadata.get("choices"),
                                default=argparse.SUPPRESS, help=help_text)
    parser.add_argument("--config", default=None, help="YAML file with the same keys as the flags")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Gated LoRA fine-tuning of bf16 bases.")
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {"train": "fine-tune (default)", "pretokenize": "build the tokenized data cache only",
             "merge": "merge (see trainer.merge)", "validate": "validate (see trainer.validate)"}
    for name, config_class in CONFIGS.items():
        command = commands.add_parser(name, help=helps[name])
        add_dataclass_flags(command, config_class)
        command.set_defaults(command_parser=command)  # to report missing required flags as argparse does
    return parser


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
    aliases = {alias: item.name for item in fields(config_class) for alias in item.metadata.get("aliases", ())}
    values: dict[str, Any] = {}
    if namespace.config:
        for given, value in read_yaml(namespace.config).items():
            key = aliases.get(given, given)  # TRL / LLaMA-Factory names (model_name_or_path, max_length, ...)
            if key in values:
                raise ConfigError(f"{namespace.config}: keys '{given}' and '{key}' name the same setting; keep one")
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


def require_flags(config: Any, parser: argparse.ArgumentParser) -> None:
    """Flags marked required that neither the command line nor --config gave: argparse's usage error (exit 2)."""
    missing = [f"--{item.name}" for item in fields(config) if item.metadata.get("required")
               and not getattr(config, item.name)]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (trainer.errors: each TrainerError carries its own)."""
    args = build_parser().parse_args(normalize_argv(list(sys.argv[1:] if argv is None else argv)))
    try:
        config = build_config(CONFIGS[args.command], args)
        require_flags(config, args.command_parser)
        commands = {"train": run_train, "pretokenize": run_pretokenize, "merge": run_merge_command,
                    "validate": run_validate_command}
        return commands[args.command](config)
    except TrainerError as error:
        print(render_error(args.command, error), file=sys.stderr)
        return error.exit_code


def render_error(command: str, error: TrainerError) -> str:
    """The line an error is printed as: bad input is an `error:`, a refused merge `refused:`; training's stops and
    the stages after it carry their own wording."""
    if isinstance(error, BadInputError):
        return f"error: {error}"
    if command == "merge":
        return f"{'refused' if isinstance(error, RefusedError) else 'error'}: {error}"
    return str(error)


def print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_train(config: TrainConfig) -> int:
    """The gate first (on every rank, whatever the backend), then the backend choice, then training."""
    from trainer.distributed import (
        configure_distributed_env,
        debug_record,
        is_main_process,
        rank,
        shutdown_process_group,
    )
    from trainer.gate import refusals, render_refusals
    from trainer.preflight import check_config

    check_inputs(config)  # flag values and input files, before the gate and before anything heavy loads
    check_config(config)  # the flag combinations, also before the gate
    from trainer.sharding import check_fsdp

    check_fsdp(config)  # --fsdp's combinations
    configure_distributed_env()
    found = refusals(config.model_name, config.stack, config.load_in_4bit, config.load_in_8bit, config.revision)
    debug_record("gate", [f"rank {rank()}: {'refused' if found else 'passed'}"])
    if found:
        if is_main_process():
            print(render_refusals(found), file=sys.stderr)
        return EXIT_REFUSED
    from trainer.datasets_source import with_dataset_rows
    from trainer.hub import push_results
    from trainer.pipeline import run_pipeline

    config = with_dataset_rows(config)  # --dataset_name: its rows as the JSONL file the pipeline reads
    try:
        result = run_pipeline(config)
    finally:
        shutdown_process_group()
    if result.message:
        print(result.message)
    push_results(config, result, log=print_progress)  # --push_to_hub; only after every stage passed
    return EXIT_OK


def run_pretokenize(config: DataConfig) -> int:
    """Build the tokenized data cache only (trainer.loaders.load_data)."""
    from trainer.loaders import load_data, load_tokenizer

    check_inputs(config)
    from trainer.datasets_source import with_dataset_rows

    config = with_dataset_rows(config)
    if not config.dataset_path or not Path(config.dataset_path).is_file():
        raise BadInputError(f"--dataset_path {config.dataset_path!r}: no such file; pass a JSONL file")
    load_data(config, load_tokenizer(config))
    return EXIT_OK


def run_merge_command(config: MergeConfig) -> int:
    """Merge and verify (trainer.merge); the report goes to stdout."""
    from trainer.merge import render_result, run_merge

    signal.signal(signal.SIGTERM, exit_on_sigterm)  # SystemExit unwinds the merge, which removes its staging dir
    print(render_result(run_merge(config, log=print_progress)))
    return EXIT_OK


def run_validate_command(config: ValidateConfig) -> int:
    """Validate a model (trainer.validate); the summary goes to stdout, exit 1 when a check failed."""
    from trainer.validate import render_summary, run_validation

    result = run_validation(config, log=print_progress)
    print(render_summary(result))
    return result.exit_code


def exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
