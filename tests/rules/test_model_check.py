"""``check --model``: a local model dir (config.json + safetensors headers only) against transformers and the GPU."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from envdoctor.checker import run_check
from envdoctor.snapshot import load_snapshot

from .synth import snapshot

DATA = Path(__file__).parents[1] / "data" / "snapshots"
LLAMA31 = {"architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16",
           "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}
EIGHT_B = 8_030_261_248


def _model(root: Path, name: str = "llama31", config: dict | None = None, tensors: dict | None = None) -> str:
    """A model dir with config.json and one header-only safetensors file (inspect_model reads headers only)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config if config is not None else LLAMA31))
    tensors = tensors if tensors is not None else {"model.embed_tokens.weight": ("BF16", [EIGHT_B])}
    header = {k: {"dtype": d, "shape": s, "data_offsets": [0, 0]} for k, (d, s) in tensors.items()}
    raw = json.dumps(header).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    return str(folder)


def _model_findings(snap, model: str, tmp_path: Path, stack: str = "phase1a-2.0") -> dict:
    report = run_check(snap, stack=stack, model=model, cwd=tmp_path)
    return {f.rule: f for f in report.findings if "model" in f.components}


def test_llama3_rope_needs_transformers_4_43(tmp_path: Path) -> None:
    model = _model(tmp_path)
    old = _model_findings(snapshot({"transformers": "4.42.4"}), model, tmp_path)
    finding = old["model-needs-newer-transformers"]
    assert "'llama3'" in finding.message and "4.42.4" in finding.message
    assert finding.fix == 'pip install "transformers==4.43.3"'  # the stack's pin meets the floor
    assert "model-needs-newer-transformers" not in _model_findings(snapshot({"transformers": "4.43.3"}), model,
                                                                   tmp_path)


def test_bf16_model_on_a_t4_fails(tmp_path: Path) -> None:
    model = _model(tmp_path)
    t4 = _model_findings(load_snapshot(DATA / "t4-flash-attn.json"), model, tmp_path)
    assert t4["model-bf16-gpu"].severity.value == "fail" and "7.5" in t4["model-bf16-gpu"].message
    assert "model-bf16-gpu" not in _model_findings(snapshot({"transformers": "4.43.3"}), model, tmp_path)


def test_lora_memory_estimate_says_how(tmp_path: Path) -> None:
    model = _model(tmp_path)
    small = {"index": 0, "name": "L4", "compute_capability": "8.9", "memory_mib": 23034}
    snap = snapshot({"transformers": "4.43.3"}, nvidia={"driver": "580.1", "gpus": [small]})
    finding = _model_findings(snap, model, tmp_path)["model-gpu-memory"]
    assert "8.0B parameters" in finding.message and "x 2 bytes" in finding.message
    assert "16.4 GiB" in finding.message and "31.4 GiB" in finding.message and "22.5 GiB" in finding.message
    assert "model-gpu-memory" not in _model_findings(snapshot({"transformers": "4.43.3"}), model, tmp_path)


def test_prequantized_models_fail(tmp_path: Path) -> None:
    quant_config = {**LLAMA31, "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}}
    absmax = {"model.layers.0.mlp.down_proj.weight": ("U8", [1024, 1]),
              "model.layers.0.mlp.down_proj.weight.absmax": ("F32", [64])}
    models = [
        _model(tmp_path, "with-config", config=quant_config),
        _model(tmp_path, "stripped-config", tensors=absmax),
        _model(tmp_path, "Meta-Llama-3.1-8B-bnb-4bit"),
    ]
    for model in models:
        finding = _model_findings(snapshot({"transformers": "4.43.3"}), model, tmp_path)["model-quantized"]
        assert finding.severity.value == "fail" and finding.category.value == "model", model
    clean = _model_findings(snapshot({"transformers": "4.43.3"}), _model(tmp_path, "plain"), tmp_path)
    assert "model-quantized" not in clean


def test_unreadable_model_is_one_finding(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    findings = _model_findings(snapshot({}), str(folder), tmp_path)
    assert list(findings) == ["model-unreadable"] and "config.json" in findings["model-unreadable"].message
