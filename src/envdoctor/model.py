"""Inspect a base model without loading weights: config.json, safetensors headers and the name.

The main job is to spot a pre-quantized base (bitsandbytes 4/8-bit, GPTQ, AWQ, any quantization_config) from
every signal, so that a config stripped of `quantization_config` but holding packed tensors is still caught.
Hub ids are looked up in the local Hugging Face cache only; nothing is downloaded. What could not be looked at
(a hub id not in the cache, a directory without config.json or weights) is said in ``ModelInfo.unchecked``, never
passed over in silence.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envdoctor.errors import EnvdoctorError

MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_CONFIG_BYTES = 16 * 1024 * 1024
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
# Name fragments that mark a quantized checkpoint; matched between non-alphanumeric boundaries.
QUANT_NAME_MARKERS = (
    "bnb-4bit", "bnb-8bit", "4bit", "8bit", "4-bit", "8-bit", "gptq", "awq", "int4", "int8", "nf4", "fp4",
    "exl2", "gguf", "hqq", "eetq", "aqlm", "bnb",
)
# Tensor-name endings that only quantized checkpoints have.
QUANT_TENSOR_SUFFIXES = (
    ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".qweight", ".qzeros", ".scales",
    ".g_idx", ".SCB", ".weight_format",
)
QUANT_TENSOR_FRAGMENTS = (".quant_state.",)
PACKED_DTYPES = {"U8", "I8", "I32", "U32", "I4", "U4"}
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"}


class ModelError(EnvdoctorError, ValueError):
    """The model cannot be inspected: missing directory, unreadable config.json or safetensors header."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path | None
    config: dict[str, Any] | None
    architecture: str | None
    quantized: bool
    quantization_signals: tuple[str, ...]
    torch_dtype: str | None
    num_parameters: int | None
    rope_type: str | None
    unchecked: str | None = None  # why the config and weights could not be looked at, when they could not


def inspect_model(path_or_id: str, revision: str | None = None) -> ModelInfo:
    """Inspect a local model dir or a cached hub id. Returns ModelInfo; raises ModelError on unreadable files."""
    path = resolve_model_dir(path_or_id, revision)
    config = read_config(path) if path else None
    header_signals, num_parameters = scan_safetensors(path) if path else ((), None)
    signals = name_signals(path_or_id) + config_signals(config) + header_signals
    if path is None:
        unchecked = (f"{path_or_id} is not in the local Hugging Face cache ({hf_hub_cache()}); nothing is downloaded,"
                     " so only its name was checked")
    elif config is None and num_parameters is None:
        unchecked = f"{path} has neither config.json nor *.safetensors files, so there was nothing to check"
    else:
        unchecked = None
    return ModelInfo(
        name=path_or_id,
        path=path,
        config=config,
        architecture=_first(config.get("architectures")) if config else None,
        quantized=bool(signals),
        quantization_signals=signals,
        torch_dtype=_dtype_of(config),
        num_parameters=num_parameters,
        rope_type=_rope_type_of(config),
        unchecked=unchecked,
    )


def resolve_model_dir(path_or_id: str, revision: str | None = None) -> Path | None:
    """A local directory, the cached snapshot of a hub id, or None when the id is not in the local cache."""
    if not path_or_id.strip():
        raise ModelError("the model name is empty; pass a model directory or a hub id (org/name)")
    candidate = Path(path_or_id).expanduser()
    if candidate.is_dir():
        return candidate
    if candidate.exists():
        raise ModelError(f"{path_or_id}: is a file; pass the model directory that holds config.json")
    if _looks_like_path(path_or_id) or not HUB_ID.match(path_or_id):
        raise ModelError(f"{path_or_id!r}: no such directory and not a hub id; pass an existing model directory or a"
                         " hub id (org/name)")
    return _cached_snapshot(path_or_id, revision)


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep != "/" and os.sep in text


def hf_hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(hf_home).expanduser() / "hub"


def _cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    repo_dir = hf_hub_cache() / ("models--" + repo_id.replace("/", "--"))
    ref = revision or "main"
    ref_file = repo_dir / "refs" / ref
    try:
        commit = ref_file.read_text(encoding="utf-8").strip() if ref_file.is_file() else ref
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"{ref_file}: unreadable ({error}); repair or remove the cached model") from None
    snapshot = repo_dir / "snapshots" / commit
    return snapshot if commit and "/" not in commit and snapshot.is_dir() else None


def read_config(path: Path) -> dict[str, Any] | None:
    """config.json as a dict, None when absent; raises ModelError naming the file when it is not valid JSON."""
    from envdoctor.bounded_json import JsonFileError, load_json_file

    config_file = path / "config.json"
    if not os.path.lexists(config_file):
        return None
    try:
        data = load_json_file(config_file, max_bytes=MAX_CONFIG_BYTES)
    except JsonFileError as error:
        raise ModelError(f"{error}; restore the model's config.json") from None
    if not isinstance(data, dict):
        raise ModelError(f"{config_file}: expected a JSON object at the top level; restore the model's config.json")
    return data


def name_signals(name: str) -> tuple[str, ...]:
    """One sentence per quantization marker found in the model's name or path."""
    lowered = name.lower()
    found: list[str] = []
    for marker in QUANT_NAME_MARKERS:
        if re.search(rf"(?<![a-z0-9]){re.escape(marker)}(?![a-z0-9])", lowered) and not _covered(marker, found):
            found.append(marker)
    return tuple(f"name contains '{marker}'" for marker in found)


def _covered(marker: str, found: list[str]) -> bool:
    return any(marker in earlier for earlier in found)


def config_signals(config: dict[str, Any] | None) -> tuple[str, ...]:
    if not config:
        return ()
    signals = []
    for key in ("quantization_config", "compression_config"):
        if config.get(key):
            signals.append(f"config.json has {key} ({_describe_quant_config(config[key])})")
    for key in ("load_in_4bit", "load_in_8bit"):
        if config.get(key) is True:
            signals.append(f"config.json sets {key} = true")
    return tuple(signals)


def _describe_quant_config(quant: Any) -> str:
    if not isinstance(quant, dict):
        return "unrecognised format"
    method = quant.get("quant_method") or quant.get("quant_type") or "unknown method"
    if quant.get("load_in_4bit"):
        return f"{method}, 4-bit"
    if quant.get("load_in_8bit"):
        return f"{method}, 8-bit"
    bits = quant.get("bits") or quant.get("w_bit")
    return f"{method}, {bits}-bit" if bits else str(method)


def read_safetensors_header(file: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file (8-byte little-endian length, then JSON); weights are not read."""
    try:
        with file.open("rb") as handle:
            raw_length = handle.read(8)
            if len(raw_length) != 8:
                raise ModelError(f"{file}: too short to be a safetensors file; re-download it")
            (length,) = struct.unpack("<Q", raw_length)
            if length > MAX_HEADER_BYTES:
                raise ModelError(f"{file}: header length {length} is implausible; the file is corrupt, re-download it")
            header = json.loads(handle.read(length).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise ModelError(f"{file}: unreadable safetensors header ({error}); re-download it") from None
    except RecursionError:
        raise ModelError(f"{file}: safetensors header nested too deeply; the file is corrupt, re-download it") from None
    if not isinstance(header, dict):
        raise ModelError(f"{file}: safetensors header is not a JSON object; re-download it")
    return header


def scan_safetensors(path: Path) -> tuple[tuple[str, ...], int | None]:
    """(quantization signals, parameter count) from every *.safetensors header in path."""
    files = sorted(path.glob("*.safetensors"))
    if not files:
        return (), None
    signals: list[str] = []
    total = 0
    for file in files:
        header = read_safetensors_header(file)
        signals.extend(tensor_signals(file.name, header))
        total += _count_parameters(file, header)
    return tuple(signals), total


def tensor_signals(file_name: str, header: dict[str, Any]) -> list[str]:
    """At most one sentence per kind of quantized tensor in one file, naming the first tensor of that kind."""
    signals: dict[str, str] = {}
    for tensor_name, entry in header.items():
        if tensor_name == "__metadata__" or not isinstance(entry, dict):
            continue
        kind = _quant_kind(tensor_name, str(entry.get("dtype", "")))
        if kind and kind not in signals:
            signals[kind] = f"{file_name}: tensor '{tensor_name}'" + _dtype_note(kind, entry)
    return list(signals.values())


def _quant_kind(tensor_name: str, dtype: str) -> str | None:
    for suffix in QUANT_TENSOR_SUFFIXES:
        if tensor_name.endswith(suffix):
            return suffix
    for fragment in QUANT_TENSOR_FRAGMENTS:
        if fragment in tensor_name:
            return fragment
    if tensor_name.endswith(".weight") and dtype in PACKED_DTYPES:
        return "packed-weight"
    return None


def _dtype_note(kind: str, entry: dict[str, Any]) -> str:
    if kind == "packed-weight":
        return f" is {entry.get('dtype')} (packed integers where a float weight is expected)"
    return ""


def _count_parameters(file: Path, header: dict[str, Any]) -> int:
    total = 0
    for name, entry in header.items():
        if name == "__metadata__" or not isinstance(entry, dict):
            continue
        shape = entry.get("shape") or []
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise ModelError(f"{file}: tensor {name!r} has shape {shape!r:.60}, not a list of sizes; re-download it")
        count = 1
        for dim in shape:
            count *= dim
        total += count
    return total


def _first(values: Any) -> str | None:
    return str(values[0]) if isinstance(values, list) and values else None


def _dtype_of(config: dict[str, Any] | None) -> str | None:
    if not config:
        return None
    value = config.get("torch_dtype") or config.get("dtype")
    return str(value) if value else None


def _rope_type_of(config: dict[str, Any] | None) -> str | None:
    if not config:
        return None
    for key in ("rope_scaling", "rope_parameters"):
        rope = config.get(key)
        if isinstance(rope, dict) and (rope.get("rope_type") or rope.get("type")):
            return str(rope.get("rope_type") or rope.get("type"))
    return None
