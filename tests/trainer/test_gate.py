"""The gate refuses NumPy 2, quantized bases (name, config, safetensors header alone) and load_in_4bit/8bit."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from envdoctor import inspect_model
from trainer import gate
from trainer.cli import main
from trainer.errors import EXIT_REFUSED


def write_safetensors_header(path: Path, tensors: dict[str, dict]) -> None:
    """A safetensors file whose header lists these tensors (data bytes zero-filled)."""
    offset, header = 0, {}
    for name, spec in tensors.items():
        size = spec["bytes"]
        header[name] = {"dtype": spec["dtype"], "shape": spec["shape"], "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


BNB_4BIT_TENSORS = {
    "model.layers.0.mlp.down_proj.weight": {"dtype": "U8", "shape": [2048, 1], "bytes": 2048},
    "model.layers.0.mlp.down_proj.weight.absmax": {"dtype": "F32", "shape": [64], "bytes": 256},
    "model.layers.0.mlp.down_proj.weight.quant_state.bitsandbytes__nf4": {"dtype": "U8", "shape": [100], "bytes": 100},
}


@pytest.fixture
def stripped_4bit_model(tmp_path: Path, tiny_model: Path) -> Path:
    """A model dir named innocently, config.json without quantization_config, but bnb 4-bit tensors."""
    directory = tmp_path / "llama-finetune"
    directory.mkdir()
    shutil.copy(tiny_model / "config.json", directory / "config.json")
    write_safetensors_header(directory / "model.safetensors", BNB_4BIT_TENSORS)
    return directory


def test_numpy_2_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate, "installed_numpy_version", lambda: "2.1.0")
    found = gate.refusals("some/model", "cpu-test")
    numpy_refusal = next(r for r in found if "NumPy 2.1.0" in r.reason)
    assert numpy_refusal.fix == 'pip install "numpy==1.26.4"'
    assert gate.numpy_refusal("1.26.4") is None


def test_full_precision_tiny_model_passes_the_model_gates(tiny_model: Path) -> None:
    info = inspect_model(str(tiny_model))
    assert not info.quantized and info.architecture == "LlamaForCausalLM" and info.num_parameters > 0
    assert gate.quantized_base_refusal(str(tiny_model)) is None


@pytest.mark.parametrize("name", ["unsloth/meta-llama-3.1-8b-instruct-unsloth-bnb-4bit", "TheBloke/Llama-2-7B-GPTQ",
                                  "org/llama-awq", "org/model-int4", "org/llama-nf4", "org/model-8bit"])
def test_quantized_name_is_refused(name: str) -> None:
    refusal = gate.quantized_base_refusal(name)
    assert refusal is not None and any(s.startswith("name contains") for s in refusal.details)


def test_plain_names_are_not_flagged() -> None:
    assert gate.quantized_base_refusal("meta-llama/Meta-Llama-3.1-8B-Instruct") is None


def test_quantization_config_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    directory = shutil.copytree(tiny_model, tmp_path / "plain-name")
    config = json.loads((directory / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (directory / "config.json").write_text(json.dumps(config))
    refusal = gate.quantized_base_refusal(str(directory))
    assert refusal is not None
    assert "config.json has quantization_config (bitsandbytes, 4-bit)" in refusal.details


def test_stripped_config_with_quantized_tensors_is_refused(stripped_4bit_model: Path) -> None:
    refusal = gate.quantized_base_refusal(str(stripped_4bit_model))
    assert refusal is not None
    details = " | ".join(refusal.details)
    assert ".absmax'" in details and "quant_state" in details and "packed integers" in details
    assert not any(s.startswith("config.json") or s.startswith("name") for s in refusal.details)


@pytest.mark.parametrize("tensor", ["model.layers.0.self_attn.q_proj.qweight", "model.layers.0.self_attn.q_proj.g_idx",
                                    "model.layers.0.mlp.up_proj.SCB", "model.layers.0.mlp.up_proj.weight_format"])
def test_gptq_awq_and_int8_tensor_names_are_signals(tmp_path: Path, tensor: str) -> None:
    directory = tmp_path / "model"
    directory.mkdir()
    write_safetensors_header(directory / "model.safetensors", {tensor: {"dtype": "I32", "shape": [4], "bytes": 16}})
    assert inspect_model(str(directory)).quantized


def test_load_in_4bit_and_8bit_options_are_refused() -> None:
    refusal = gate.load_option_refusal(True, True)
    assert refusal is not None and "--load_in_4bit and --load_in_8bit" in refusal.reason
    assert gate.load_option_refusal(False, False) is None


def test_cli_refuses_with_exit_code_3_and_no_traceback(stripped_4bit_model: Path, chat_data: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out"
    code = main(["--model_name", str(stripped_4bit_model), "--dataset_path", str(chat_data), "--output_dir",
                 str(output), "--stack", "cpu-test", "--load_in_4bit"])
    err = capsys.readouterr().err
    assert code == EXIT_REFUSED
    assert "REFUSED" in err and "--load_in_4bit" in err and "pre-quantized" in err and "Traceback" not in err
    assert not output.exists()  # refused before anything was written


def test_corrupt_safetensors_header_is_a_clear_refusal(tmp_path: Path) -> None:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "model.safetensors").write_bytes(struct.pack("<Q", 10) + b"not json!!")
    refusal = gate.quantized_base_refusal(str(directory))
    assert refusal is not None and "model.safetensors" in refusal.reason


def test_uncached_hub_id_is_inspected_by_name_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    info = inspect_model("meta-llama/Meta-Llama-3.1-8B-Instruct")
    assert info.path is None and info.config is None and not info.quantized
