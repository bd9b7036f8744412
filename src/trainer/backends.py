"""Which library loads the base and adds LoRA: the default path (transformers + peft) or Unsloth (optional).

Everything else (data, packing, checkpoints, guards, metrics, merge, validate) is the same for both, and both save
peft's adapter format with the same LoRA settings, so a checkpoint written by one backend resumes with the other.

The choice is made after the gate and before anything imports transformers: Unsloth must be imported first, so
select_backend imports it when it is chosen. The `auto` rule is data: matrices/backends.toml.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import Any, Protocol

from trainer.errors import BadInputError, first_line, log

REQUESTS = ("auto", "hf", "unsloth")
DATA_SHAPES = {False: "fixed", True: "packed"}  # matrices/backends.toml data_shape, by --packing


class Backend(Protocol):
    """What the rest of the trainer reads of a backend choice: its name ("hf" or "unsloth") and why."""

    @property
    def name(self) -> str: ...

    def describe(self) -> str: ...


class BackendError(BadInputError):
    """A backend cannot be used; one line that says what to do (the CLI exits 2)."""


@dataclass(frozen=True)
class BackendChoice:
    name: str  # "hf" | "unsloth"
    reason: str

    def describe(self) -> str:
        return f"backend {self.name}: {self.reason}"


# ---- what the matrices record --------------------------------------------------------------------------


def auto_rules(matrices: Any = None) -> tuple[Any, ...]:
    """The measured `--backend auto` rules (matrices/backends.toml), in order. Raises BackendError."""
    import envdoctor

    try:
        return tuple(matrices.backends if matrices is not None else envdoctor.backend_rules())
    except envdoctor.MatrixError as error:
        raise BackendError(f"cannot read the backend rules (matrices/backends.toml): {first_line(error)}") from None


def unsloth_install_command(matrices: Any = None) -> str:
    """pip install line for the newest Unsloth release the matrices record together with its unsloth_zoo."""
    from packaging.version import Version

    import envdoctor

    try:
        declared = (matrices if matrices is not None else envdoctor.load_matrices()).declared
    except envdoctor.MatrixError:
        declared = {}
    versions = [version for package, version in declared if package == "unsloth"
                and ("unsloth-zoo", version) in declared]
    if not versions:
        return "pip install unsloth unsloth_zoo"
    newest = max(versions, key=Version)
    return f'pip install "unsloth=={newest}" "unsloth_zoo=={newest}"'


# ---- selection -----------------------------------------------------------------------------------------


def unsloth_installed() -> bool:
    """Whether `import unsloth` can find the package (nothing is imported)."""
    return importlib.util.find_spec("unsloth") is not None


def select_backend(requested: str, packing: bool, matrices: Any = None) -> BackendChoice:
    """Choose the backend; an Unsloth choice imports Unsloth now, before transformers. Raises BackendError."""
    if requested not in REQUESTS:
        raise BackendError(f"--backend {requested!r}: choose one of {', '.join(REQUESTS)}")
    if requested == "hf":
        return BackendChoice("hf", "asked for with --backend hf (transformers + peft and the trainer's kernels)")
    if requested == "unsloth":
        problem = unsloth_problem(matrices)
        if problem:
            raise BackendError(f"--backend unsloth: {problem}")
        return BackendChoice("unsloth", "asked for with --backend unsloth")
    return _auto_choice(auto_rules(matrices), packing, matrices)


def unsloth_problem(matrices: Any = None) -> str | None:
    """Why Unsloth cannot be used in this process (None when it is imported and ready). Imports it if it can."""
    if "unsloth" in sys.modules:
        return None
    if not unsloth_installed():
        return (f"Unsloth is not installed; install it with: {unsloth_install_command(matrices)} "
                "(or pip install .[unsloth]), or use --backend hf")
    if "transformers" in sys.modules:
        return ("transformers was imported before Unsloth in this process, and Unsloth must be imported first to "
                "patch it; start a fresh process (python -m trainer --backend unsloth ...) and import nothing else "
                "before the backend is chosen")
    return _import_unsloth()


def _import_unsloth() -> str | None:
    try:
        importlib.import_module("unsloth")
    except Exception as error:  # noqa: BLE001 - Unsloth raises many kinds (no GPU, version checks)
        return f"Unsloth is installed but failed to import ({type(error).__name__}: {first_line(error)})"
    return None


def _auto_choice(rules: tuple[Any, ...], packing: bool, matrices: Any) -> BackendChoice:
    shape = DATA_SHAPES[packing]
    rows = "packed variable-length rows (--packing)" if packing else "fixed-length rows (no --packing)"
    passed_over = []
    for rule in (rule for rule in rules if rule.data_shape == shape):
        problem = unsloth_problem(matrices) if rule.backend == "unsloth" else None
        if problem is None:
            why = f"{rule.note} [{rule.source}]" if rule.note else f"[{rule.source}]"
            skipped = f"; {'; '.join(passed_over)}" if passed_over else ""
            return BackendChoice(rule.backend, f"auto for {rows}: {why}{skipped}")
        passed_over.append(f"matrices/backends.toml prefers unsloth ({rule.note or rule.source}) but {problem}")
    if passed_over:
        return BackendChoice("hf", f"auto for {rows}: {'; '.join(passed_over)}; using the default path")
    return BackendChoice("hf", f"auto for {rows}: matrices/backends.toml has no {shape} rule; using the default path")


# ---- loading -------------------------------------------------------------------------------------------


def lora_settings(config: Any) -> dict[str, Any]:
    """The LoRA settings both backends pass, so the saved adapters are interchangeable."""
    return {
        "r": config.lora_r,
        "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout,
        "target_modules": list(config.target_modules),
        "bias": "none",
    }


def load_lora_model_for(choice: Backend, config: Any) -> Any:
    """The peft-wrapped model: bf16 on GPU (fp32 on CPU for hf), never quantized, LoRA on the target modules."""
    if choice.name == "unsloth":
        model = _load_unsloth(config)
    elif choice.name == "hf":
        model = _load_hf(config)
    else:
        raise BackendError(f"unknown backend {choice.name!r}; use {', '.join(REQUESTS[1:])}")
    check_lora_settings(model, config)
    return model


def _load_hf(config: Any) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(config.model_name, dtype=dtype, revision=config.revision,
                                                     trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as error:
        raise BadInputError(f"cannot load {config.model_name}: {first_line(error)}") from None
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora_settings(config)))
    _log_trainable(model, config, f"{dtype}, transformers + peft")
    return model


def unsloth_load_arguments(config: Any) -> dict[str, Any]:
    """FastLanguageModel.from_pretrained arguments (unsloth 2026.10.9): always full precision, never 4/8-bit.

    use_exact_model_name: Unsloth otherwise maps names to its own repos (the gate checked this name, not those).
    """
    import torch

    if getattr(config, "load_in_4bit", False) or getattr(config, "load_in_8bit", False):
        raise BackendError("--load_in_4bit/--load_in_8bit are refused: the trainer trains LoRA on a bf16 base only")
    return {
        "model_name": config.model_name, "max_seq_length": config.max_seq_length, "dtype": torch.bfloat16,
        "load_in_4bit": False, "load_in_8bit": False, "load_in_16bit": True, "full_finetuning": False,
        "trust_remote_code": config.trust_remote_code, "revision": config.revision, "use_exact_model_name": True,
        "use_gradient_checkpointing": _unsloth_checkpointing(config), "random_state": config.seed,
    }


def unsloth_peft_arguments(config: Any) -> dict[str, Any]:
    """FastLanguageModel.get_peft_model arguments: the same LoRA settings as the default path."""
    return {**lora_settings(config), "use_gradient_checkpointing": _unsloth_checkpointing(config),
            "random_state": config.seed, "use_rslora": False}


def _unsloth_checkpointing(config: Any) -> str | bool:
    return "unsloth" if config.gradient_checkpointing else False


def _load_unsloth(config: Any) -> Any:
    from unsloth import FastLanguageModel  # imported (first) by select_backend

    try:
        model, _tokenizer = FastLanguageModel.from_pretrained(**unsloth_load_arguments(config))
    except (OSError, ValueError, RuntimeError) as error:
        raise BadInputError(f"Unsloth cannot load {config.model_name}: {first_line(error)}") from None
    model.config.use_cache = False
    model = FastLanguageModel.get_peft_model(model, **unsloth_peft_arguments(config))
    _log_trainable(model, config, "bf16, Unsloth")
    return model


def _log_trainable(model: Any, config: Any, how: str) -> None:
    trainable, total = model.get_nb_trainable_parameters()
    log(f"base {config.model_name} in {how}, LoRA r={config.lora_r}: {trainable:,} of {total:,} parameters train")


def check_lora_settings(model: Any, config: Any) -> None:
    """Raise BackendError when the model's peft LoRA config differs from the trainer's settings (adapters would
    then not load across backends)."""
    peft_config = model.peft_config["default"]
    wanted = lora_settings(config)
    found = {key: getattr(peft_config, key) for key in wanted}
    found["target_modules"] = sorted(found["target_modules"] or [])
    wanted["target_modules"] = sorted(wanted["target_modules"])
    different = [f"{key}={found[key]!r} (wanted {wanted[key]!r})" for key in wanted if found[key] != wanted[key]]
    if getattr(peft_config, "use_rslora", False):
        different.append("use_rslora=True (wanted False)")
    if different:
        raise BackendError("the LoRA config the backend built differs from the trainer's: " + ", ".join(different))
