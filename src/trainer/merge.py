"""Merge a LoRA adapter into its full-precision base, prove the merge on disk, and publish it atomically.

    python -m trainer merge --base_model PATH_OR_ID --adapter_path ./checkpoints/run \
        --output_dir ./checkpoints/run/merged

Order: refuse (quantized base, adapter trained on a quantized or different base) -> load base + adapter in float32
-> reference logits -> merge_and_unload in float32 -> cast to the output dtype and save into a hidden temp dir beside
the target -> reload the SAVED model -> compare logits -> rename into place. A failed check or an interruption leaves
no output dir behind.

The proof. The reference is base + adapter computed in float32 (exact arithmetic on the stored weights). A float32
merge must match it to EXACT_TOLERANCE of the largest logit. A bf16/fp16 merge cannot: rounding W + BA to 8 bits of
mantissa and computing in bf16 move the logits of a deep model by a few percent. So for those dtypes the check also
loads base + adapter UNMERGED in that dtype and measures how far it lands from the reference (the dtype's noise
floor, what running the adapter unmerged would give), and passes when the merged model lands no further than
NOISE_FLOOR_FACTOR times that. A merge into a 4-bit round-tripped base, or a lost adapter, lands far beyond it.
Memory: the float32 stage holds the model in float32 (about 32 GB for an 8B model) on --device.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer.config import DTYPE_CHOICES, MergeConfig
from trainer.errors import BadInputError, CheckFailedError, RefusedError

MERGE_INFO_FILE = "merge_info.json"
MERGE_INFO_SCHEMA = "trainer.merge/1"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# float32: largest |merged - reference| logit difference allowed, as a fraction of the largest |logit| (summation
# order only; measured ~1e-7 on tiny Llamas). bf16/fp16: NOISE_FLOOR_FACTOR x the unmerged model's own difference.
EXACT_TOLERANCE = 1e-4
NOISE_FLOOR_FACTOR = 2.0
CHECK_PROMPTS = (
    "The capital of France is",
    "def fibonacci(n):",
    "Solve for x: 3x + 5 = 20. First,",
    "what is the answer for k3 ?",
)
# peft adapter_config.json fields that only exist when the adapter was made for a quantized base.
QUANTIZED_ADAPTER_FIELDS = ("quantization_config", "loftq_config", "use_qalora")

Log = Callable[[str], None]


class MergeInputError(BadInputError):
    """Bad input (missing adapter, unreadable adapter_config.json, existing output dir): exit 2."""


class MergeRefused(RefusedError):
    """The merge would be corrupt by construction (quantized base, adapter from another base): exit 3."""


class MergeCheckError(CheckFailedError):
    """The saved merged model's logits differ from base + adapter beyond the tolerance: exit 1."""


@dataclass(frozen=True)
class AdapterInfo:
    path: Path
    base_model: str | None
    revision: str | None
    config: dict[str, Any]


@dataclass(frozen=True)
class EquivalenceCheck:
    """The saved merged model's logits vs the float32 base + adapter reference on CHECK_PROMPTS."""

    prompts: int
    tokens: int
    max_abs_diff: float  # merged (reloaded from disk) vs the float32 reference
    logit_scale: float  # largest |logit| of the reference
    tolerance: float  # fraction of logit_scale always allowed (float32 summation order)
    noise_floor: float = 0.0  # base + adapter unmerged in the output dtype vs the reference; 0 for float32
    floor_factor: float = NOISE_FLOOR_FACTOR

    @property
    def relative_diff(self) -> float:
        return self.max_abs_diff / max(self.logit_scale, 1e-6)

    @property
    def allowed(self) -> float:
        return max(self.floor_factor * self.noise_floor, self.tolerance * self.logit_scale)

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.allowed

    def describe(self) -> str:
        floor = f"; unmerged in the same dtype: {self.noise_floor:.3g}" if self.noise_floor else ""
        return (f"max |logit diff| from float32 base + adapter {self.max_abs_diff:.3g} ({self.relative_diff:.3%} of "
                f"max |logit| {self.logit_scale:.3g}){floor}; allowed {self.allowed:.3g}; over {self.prompts} "
                f"prompts / {self.tokens} tokens")


@dataclass(frozen=True)
class MergeResult:
    output_dir: Path
    base_model: str
    adapter_path: Path
    dtype: str
    check: EquivalenceCheck
    num_parameters: int
    size_bytes: int


def merge_adapter(
    base_model: str,
    adapter_path: str | Path,
    output_dir: str | Path,
    dtype: str | None = None,
    overwrite: bool = False,
    revision: str | None = None,
    allow_base_mismatch: bool = False,
    tolerance: float | None = None,
    device: str = "cpu",
    log: Log = lambda message: None,
) -> MergeResult:
    """Merge, save, reload and verify. Raises MergeInputError, MergeRefused or MergeCheckError (nothing left behind)."""
    adapter = read_adapter(Path(adapter_path))
    target = Path(output_dir).expanduser()
    check_output_dir(target, overwrite, protected=(adapter.path, Path(base_model).expanduser()))
    reasons = base_refusals(base_model, revision) + adapter_refusals(adapter, base_model, revision, allow_base_mismatch)
    if reasons:
        raise MergeRefused("refusing to merge: " + "; ".join(reasons))
    dtype = dtype or saved_dtype(base_model, revision)
    tolerance = EXACT_TOLERANCE if tolerance is None else tolerance
    remove_stale_partials(target)
    with staged_directory(target, overwrite) as staging:
        check, num_parameters = merge_into(staging, base_model, adapter, dtype, revision, tolerance, device, log)
        write_merge_info(staging, base_model, adapter, dtype, check)
    return MergeResult(target, base_model, adapter.path, dtype, check, num_parameters, directory_size(target))


def merge_into(
    staging: Path, base_model: str, adapter: AdapterInfo, dtype: str, revision: str | None,
    tolerance: float, device: str, log: Log,
) -> tuple[EquivalenceCheck, int]:
    """Merge into staging and prove it by reloading; raises MergeCheckError when the logits disagree."""
    tokenizer = load_tokenizer(adapter.path, base_model, revision)
    log(f"loading {base_model} + adapter {adapter.path} in float32 (the reference)")
    adapted = load_adapted_model(base_model, adapter.path, "float32", revision, device)
    reference = prompt_logits(adapted, tokenizer, device)
    log(f"merging in float32 (merge_and_unload), saving safetensors in {dtype}")
    save_merged(cast(merge_weights(adapted), dtype), tokenizer, staging)
    del adapted
    free_memory()  # peft holds reference cycles: free the float32 copy before loading the next
    log("reloading the saved merged model to compare logits")
    reloaded = load_model(str(staging), dtype, None, device)
    merged, num_parameters = prompt_logits(reloaded, tokenizer, device), count_parameters(reloaded)
    del reloaded
    free_memory()
    floor = 0.0
    if dtype != "float32":
        log(f"measuring the {dtype} noise floor: base + adapter unmerged in {dtype}")
        unmerged = load_adapted_model(base_model, adapter.path, dtype, revision, device)
        floor = max_abs_diff(reference, prompt_logits(unmerged, tokenizer, device))
        del unmerged
        free_memory()
    check = compare_logits(reference, merged, tolerance, floor)
    if not check.passed:
        raise MergeCheckError(
            f"merge check failed: {check.describe()}; nothing was written. Check that the base is the "
            "full-precision model the adapter was trained on"
        )
    return check, num_parameters


# ---- input checks and refusals (no torch) ----


def read_adapter(path: Path) -> AdapterInfo:
    """The adapter dir's config; raises MergeInputError naming the file when something is missing or malformed."""
    config_file = path / ADAPTER_CONFIG
    if not path.is_dir():
        raise MergeInputError(f"{path}: no such adapter directory; pass the dir that holds {ADAPTER_CONFIG}")
    if not config_file.is_file():
        raise MergeInputError(f"{config_file}: missing; pass a peft adapter dir (saved with save_pretrained)")
    if not (path / ADAPTER_WEIGHTS).is_file():
        raise MergeInputError(
            f"{path / ADAPTER_WEIGHTS}: missing; only safetensors adapters are merged (re-save the adapter with "
            "safe_serialization=True)"
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MergeInputError(f"{config_file}: not valid JSON ({error}); re-save the adapter") from None
    if not isinstance(config, dict):
        raise MergeInputError(f"{config_file}: expected a JSON object; re-save the adapter")
    return AdapterInfo(path, config.get("base_model_name_or_path"), config.get("revision"), config)


def check_output_dir(target: Path, overwrite: bool, protected: tuple[Path, ...]) -> None:
    """Raises MergeInputError when target exists (without overwrite) or would replace the adapter or the base."""
    for path in protected:
        if path.exists() and target.resolve() == path.resolve():
            raise MergeInputError(f"{target}: is the adapter or base model dir; choose a new --output_dir")
    if target.exists() and not overwrite:
        raise MergeInputError(f"{target}: already exists; choose a new --output_dir or pass --overwrite")
    if target.exists() and not target.is_dir():
        raise MergeInputError(f"{target}: exists and is not a directory; choose a new --output_dir")


def base_refusals(base_model: str, revision: str | None) -> list[str]:
    """Why the base cannot be merged into (quantized), from envdoctor.inspect_model; [] when it can."""
    from envdoctor import ModelError, inspect_model

    try:
        info = inspect_model(base_model, revision)
    except ModelError as error:
        raise MergeInputError(str(error)) from None
    if not info.quantized:
        return []
    return [
        f"base {base_model} is quantized ({'; '.join(info.quantization_signals)}); merge into the full-precision "
        "(bf16/fp32) base instead"
    ]


def adapter_refusals(adapter: AdapterInfo, base_model: str, revision: str | None, allow_mismatch: bool) -> list[str]:
    """Why this adapter must not be merged into base_model: trained on a quantized base, or on a different base."""
    reasons = [
        f"{adapter.path / ADAPTER_CONFIG} has {field} (the adapter was made for a quantized base); retrain it on the "
        "full-precision base"
        for field in QUANTIZED_ADAPTER_FIELDS
        if adapter.config.get(field)
    ]
    if adapter.config.get("init_lora_weights") == "loftq":
        reasons.append(f"{adapter.path / ADAPTER_CONFIG} has init_lora_weights = 'loftq' (made for a 4-bit base)")
    signals = recorded_base_signals(adapter.base_model, adapter.revision)
    if signals:
        reasons.append(
            f"{adapter.path / ADAPTER_CONFIG}: the adapter was trained on a quantized base {adapter.base_model} "
            f"({'; '.join(signals)}); merging it into a full-precision base corrupts the model, retrain it on the "
            "full-precision base"
        )
    if not allow_mismatch and not signals:
        reasons.extend(base_mismatch(adapter, base_model, revision))
    return reasons


def recorded_base_signals(recorded: str | None, revision: str | None) -> tuple[str, ...]:
    """Quantization signals of the base recorded in adapter_config.json (it may not exist on this machine)."""
    from envdoctor import ModelError, inspect_model

    if not recorded:
        return ()
    try:
        return inspect_model(recorded, revision).quantization_signals
    except ModelError:
        # A path from another machine: a bare name still gets inspect_model's name checks.
        return inspect_model(Path(recorded).name).quantization_signals


def base_mismatch(adapter: AdapterInfo, base_model: str, revision: str | None) -> list[str]:
    where = adapter.path / ADAPTER_CONFIG
    reasons = []
    if adapter.base_model and not same_base(base_model, adapter.base_model):
        reasons.append(
            f"{where}: base_model_name_or_path is '{adapter.base_model}' but --base_model is '{base_model}'; pass the "
            "base the adapter was trained on (or --allow_base_mismatch if it is a copy of the same weights)"
        )
    if adapter.revision and revision and adapter.revision != revision:
        reasons.append(f"{where}: revision is '{adapter.revision}' but --revision is '{revision}'; use the same one")
    return reasons


def same_base(given: str, recorded: str) -> bool:
    """True when given and recorded name the same model: same string or path, or a local copy of the hub id."""
    given_path, recorded_path = Path(given).expanduser(), Path(recorded).expanduser()
    if given.rstrip("/") == recorded.rstrip("/"):
        return True
    if given_path.exists() and recorded_path.exists():
        return given_path.resolve() == recorded_path.resolve()
    cache_dir = "models--" + recorded.replace("/", "--")
    if given_path.exists():
        resolved = given_path.resolve()
        return cache_dir in resolved.parts or resolved.name.lower() == recorded_path.name.lower()
    return Path(given).name.lower() == recorded_path.name.lower()


def saved_dtype(base_model: str, revision: str | None) -> str:
    """The dtype the base was saved in (config.json), when it is one we merge in; float32 when unknown."""
    from envdoctor import inspect_model

    saved = (inspect_model(base_model, revision).torch_dtype or "").replace("torch.", "")
    return saved if saved in DTYPE_CHOICES else "float32"


# ---- staging: temp dir beside the target, renamed into place when complete ----


@contextmanager
def staged_directory(target: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a hidden temp dir beside target; rename it to target on success, delete it on any exception."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-{os.getpid()}-", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish(staging, target, overwrite)


def publish(staging: Path, target: Path, overwrite: bool) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    if not overwrite:  # appeared while we were merging
        shutil.rmtree(staging, ignore_errors=True)
        raise MergeInputError(f"{target}: appeared during the merge; choose a new --output_dir or pass --overwrite")
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, retired / target.name)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def remove_stale_partials(target: Path) -> None:
    """Delete temp dirs left beside target by merges that were killed (their process is gone)."""
    for partial in target.parent.glob(f".{target.name}.partial-*"):
        pid_text = partial.name.rsplit(".partial-", 1)[1].split("-", 1)[0]
        if pid_text.isdigit() and not process_alive(int(pid_text)):
            shutil.rmtree(partial, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def directory_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def write_merge_info(
    directory: Path, base_model: str, adapter: AdapterInfo, dtype: str, check: EquivalenceCheck
) -> None:
    """Provenance + the equivalence check, read back by `trainer validate` for the 'No Merge Corruption' item."""
    info = {
        "schema": MERGE_INFO_SCHEMA,
        "base_model": base_model,
        "adapter_path": str(adapter.path),
        "adapter_base_model": adapter.base_model,
        "dtype": dtype,
        "check": {**asdict(check), "relative_diff": check.relative_diff, "allowed": check.allowed,
                  "passed": check.passed},
    }
    (directory / MERGE_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


# ---- torch side (imported lazily so that refusals stay cheap) ----


def load_model(path_or_id: str, dtype: str, revision: str | None, device: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        path_or_id, dtype=getattr(torch, dtype), revision=revision, trust_remote_code=False, use_safetensors=True
    )
    return model.to(device).eval()


def load_adapted_model(base_model: str, adapter_path: Path, dtype: str, revision: str | None, device: str) -> Any:
    from peft import PeftModel

    base = load_model(base_model, dtype, revision, device)
    return PeftModel.from_pretrained(base, str(adapter_path), is_trainable=False).eval()


def load_tokenizer(adapter_path: Path, base_model: str, revision: str | None) -> Any:
    """The adapter's tokenizer when it saved one (it may add tokens), else the base's."""
    from transformers import AutoTokenizer

    if (adapter_path / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(adapter_path), trust_remote_code=False)
    return AutoTokenizer.from_pretrained(base_model, revision=revision, trust_remote_code=False)


def merge_weights(adapted: Any) -> Any:
    """Fold the LoRA weights into the base weights; returns the plain transformers model."""
    return adapted.merge_and_unload()


def save_merged(model: Any, tokenizer: Any, directory: Path) -> None:
    """Safetensors shards + config.json + generation_config.json + tokenizer files, loadable by transformers/vLLM."""
    model.save_pretrained(str(directory), max_shard_size="5GB")
    if not (directory / "generation_config.json").is_file() and getattr(model, "generation_config", None):
        model.generation_config.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))


def prompt_logits(model: Any, tokenizer: Any, device: str) -> list[Any]:
    """Float32 CPU logits for each of CHECK_PROMPTS, one prompt per forward pass (no padding involved)."""
    import torch

    logits = []
    with torch.no_grad():
        for prompt in CHECK_PROMPTS:
            encoded = tokenizer(prompt, return_tensors="pt").to(device)
            logits.append(model(**encoded).logits.float().cpu())
    return logits


def max_abs_diff(reference: list[Any], other: list[Any]) -> float:
    return max(float((ref - out).abs().max()) for ref, out in zip(reference, other, strict=True))


def compare_logits(reference: list[Any], merged: list[Any], tolerance: float, noise_floor: float = 0.0
                   ) -> EquivalenceCheck:
    scale = max(float(ref.abs().max()) for ref in reference)
    tokens = sum(int(ref.shape[1]) for ref in reference)
    return EquivalenceCheck(len(reference), tokens, max_abs_diff(reference, merged), scale, tolerance, noise_floor)


def cast(model: Any, dtype: str) -> Any:
    import torch

    return model.to(getattr(torch, dtype))


def free_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def count_parameters(model: Any) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


# ---- the merge command ----


def run_merge(config: MergeConfig, log: Log = lambda message: None) -> MergeResult:
    """`python -m trainer merge`: merge_adapter with the command's settings. Raises MergeInputError, MergeRefused or
    MergeCheckError."""
    return merge_adapter(config.base_model, config.adapter_path, config.output_dir, dtype=config.dtype,
                         overwrite=config.overwrite, revision=config.revision,
                         allow_base_mismatch=config.allow_base_mismatch, tolerance=config.tolerance,
                         device=config.device, log=log)


def render_result(result: MergeResult) -> str:
    check = result.check
    return "\n".join([
        f"merged {result.adapter_path} into {result.base_model} -> {result.output_dir} ({result.dtype})",
        f"  logit check: {check.describe()}: ok",
        f"  parameters: {result.num_parameters:,}",
        f"  size on disk: {human_size(result.size_bytes)}",
    ])


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{size} B"
