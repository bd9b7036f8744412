"""trainer merge on a tiny local Llama: merged == base + adapter, refusals, corruption caught, atomic output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from tiny import build_tiny_llama, build_tiny_model_dir, build_tiny_tokenizer  # noqa: E402

from trainer import merge  # noqa: E402
from trainer.cli import main  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_adapter(base_dir: Path, adapter_dir: Path, seed: int = 1) -> Path:
    """A peft LoRA adapter with random non-zero B weights (so the merge changes the model), saved as safetensors."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    adapted = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=TARGET_MODULES))
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.05)
    adapted.save_pretrained(str(adapter_dir))
    return adapter_dir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("merge")
    base = build_tiny_model_dir(root / "base")
    return base, make_adapter(base, root / "adapter")


def edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def copy_adapter(adapter: Path, destination: Path, **config_changes: object) -> Path:
    destination.mkdir()
    for file in adapter.iterdir():
        (destination / file.name).write_bytes(file.read_bytes())
    edit_json(destination / merge.ADAPTER_CONFIG, **config_changes)
    return destination


def run_cli(*argv: str) -> int:
    return main(["merge", *argv])


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if ".partial-" in path.name or ".old-" in path.name)


def independent_logits(model_dir: Path, adapter: Path | None, prompt: str) -> torch.Tensor:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    ids = AutoTokenizer.from_pretrained(str(model_dir))(prompt, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**ids).logits


def test_fp32_merge_matches_base_plus_adapter_and_is_loadable(tiny, tmp_path, capsys):
    base, adapter = tiny
    out = tmp_path / "merged"
    assert run_cli("--base_model", str(base), "--adapter_path", str(adapter), "--output_dir", str(out)) == 0
    printed = capsys.readouterr().out
    assert "parameters:" in printed and "size on disk:" in printed and "max |logit diff|" in printed
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "merge_info.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin")) and not (out / merge.ADAPTER_CONFIG).exists()
    assert leftovers(tmp_path) == []
    info = json.loads((out / "merge_info.json").read_text())
    assert info["dtype"] == "float32" and info["check"]["passed"] and info["check"]["relative_diff"] < 1e-4
    prompt = "what is the answer for k3 ?"
    merged, expected = independent_logits(out, None, prompt), independent_logits(base, adapter, prompt)
    assert torch.allclose(merged, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(independent_logits(base, None, prompt), expected, atol=1e-3)  # the adapter matters


def test_result_reports_parameters_and_size(tiny, tmp_path):
    base, adapter = tiny
    result = merge.merge_adapter(str(base), adapter, tmp_path / "merged")
    from envdoctor import inspect_model

    assert result.num_parameters == inspect_model(str(base)).num_parameters
    assert result.size_bytes == sum(f.stat().st_size for f in result.output_dir.iterdir())
    assert result.check.prompts == len(merge.CHECK_PROMPTS) and result.check.tokens > 0


def test_bf16_merge_is_held_to_the_bf16_noise_floor(tiny, tmp_path):
    base, adapter = tiny
    result = merge.merge_adapter(str(base), adapter, tmp_path / "merged", dtype="bfloat16")
    check = result.check
    assert result.dtype == "bfloat16" and check.passed
    assert check.noise_floor > 0 and check.allowed == merge.NOISE_FLOOR_FACTOR * check.noise_floor
    assert check.max_abs_diff > check.tolerance * check.logit_scale  # bf16 cannot meet the float32 bound
    config = json.loads((result.output_dir / "config.json").read_text())
    assert (config.get("dtype") or config.get("torch_dtype")) == "bfloat16"


def test_default_dtype_is_the_dtype_the_base_was_saved_in(tmp_path):
    base = tmp_path / "base"
    build_tiny_tokenizer(base)
    build_tiny_llama(base, dtype="bfloat16")
    adapter = make_adapter(base, tmp_path / "adapter")
    assert merge.merge_adapter(str(base), adapter, tmp_path / "merged").dtype == "bfloat16"


def fake_4bit(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric per-row absmax round trip through 16 levels: what a merge into a dequantized 4-bit base sees."""
    scale = weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-8) / 7
    return (weight / scale).round().clamp(-8, 7) * scale


def merge_into_4bit_round_tripped_base(adapted):
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_" not in name and parameter.dim() == 2 and "embed" not in name:
                parameter.copy_(fake_4bit(parameter))
    return adapted.merge_and_unload()


def test_corrupted_merge_is_caught_and_leaves_nothing(tiny, tmp_path, monkeypatch, capsys):
    base, adapter = tiny
    monkeypatch.setattr(merge, "merge_weights", merge_into_4bit_round_tripped_base)
    out = tmp_path / "merged"
    assert run_cli("--base_model", str(base), "--adapter_path", str(adapter), "--output_dir", str(out)) == 1
    error = capsys.readouterr().err
    assert "merge check failed" in error and "nothing was written" in error
    assert not out.exists() and leftovers(tmp_path) == []


def test_corrupted_merge_is_caught_in_bf16_too(tiny, tmp_path, monkeypatch):
    base, adapter = tiny
    monkeypatch.setattr(merge, "merge_weights", merge_into_4bit_round_tripped_base)
    with pytest.raises(merge.MergeCheckError):
        merge.merge_adapter(str(base), adapter, tmp_path / "merged", dtype="bfloat16")
    assert not (tmp_path / "merged").exists()


def test_a_merge_that_drops_the_adapter_is_caught_in_bf16(tiny, tmp_path, monkeypatch):
    """The bf16 allowance is the unmerged model's own rounding noise: losing the adapter's delta exceeds it."""
    base, adapter = tiny
    monkeypatch.setattr(merge, "merge_weights", lambda adapted: adapted.unload())  # base weights, adapter gone
    with pytest.raises(merge.MergeCheckError, match="unmerged in the same dtype"):
        merge.merge_adapter(str(base), adapter, tmp_path / "merged", dtype="bfloat16")


def test_refuses_a_quantized_base(tiny, tmp_path, capsys):
    base, adapter = tiny
    quantized = tmp_path / "base"
    quantized.mkdir()
    for file in base.iterdir():
        (quantized / file.name).write_bytes(file.read_bytes())
    edit_json(quantized / "config.json", quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True})
    out = tmp_path / "merged"
    code = run_cli("--base_model", str(quantized), "--adapter_path", str(adapter), "--output_dir", str(out),
                   "--allow_base_mismatch")
    assert code == 3
    error = capsys.readouterr().err
    assert "quantized" in error and "quantization_config" in error and "full-precision" in error
    assert not out.exists()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"base_model_name_or_path": "unsloth/meta-llama-3.1-8b-instruct-unsloth-bnb-4bit"}, "trained on a quantized"),
        ({"base_model_name_or_path": "/content/models/llama-3.1-8b-bnb-4bit"}, "name contains 'bnb-4bit'"),
        ({"init_lora_weights": "loftq", "loftq_config": {"loftq_bits": 4}}, "loftq"),
        ({"base_model_name_or_path": "/elsewhere/another-model"}, "base_model_name_or_path is '/elsewhere"),
    ],
)
def test_refuses_an_adapter_from_a_quantized_or_different_base(tiny, tmp_path, capsys, changes, expected):
    base, adapter = tiny
    if "base_model_name_or_path" not in changes:
        changes = {**changes, "base_model_name_or_path": str(base)}
    bad = copy_adapter(adapter, tmp_path / "adapter", **changes)
    out = tmp_path / "merged"
    assert run_cli("--base_model", str(base), "--adapter_path", str(bad), "--output_dir", str(out)) == 3
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_refuses_a_different_revision(tiny, tmp_path, capsys):
    base, adapter = tiny
    bad = copy_adapter(adapter, tmp_path / "adapter", revision="abc123")
    code = run_cli("--base_model", str(base), "--adapter_path", str(bad), "--output_dir", str(tmp_path / "m"),
                   "--revision", "def456")
    assert code == 3 and "revision is 'abc123'" in capsys.readouterr().err


def test_same_base_accepts_a_local_copy_of_the_hub_id(tmp_path):
    copy = tmp_path / "Llama-3.1-8B-Instruct"
    copy.mkdir()
    assert merge.same_base(str(copy), "meta-llama/Llama-3.1-8B-Instruct")
    cached = tmp_path / "models--meta-llama--Llama-3.1-8B" / "snapshots" / "0123abc"
    cached.mkdir(parents=True)
    assert merge.same_base(str(cached), "meta-llama/Llama-3.1-8B")
    assert not merge.same_base(str(copy), "meta-llama/Llama-3.1-70B")


def test_allow_base_mismatch_merges_a_copy_of_the_base(tiny, tmp_path):
    base, adapter = tiny
    moved = copy_adapter(adapter, tmp_path / "adapter", base_model_name_or_path="/trained/on/another/machine")
    result = merge.merge_adapter(str(base), moved, tmp_path / "merged", allow_base_mismatch=True)
    assert result.check.passed


@pytest.mark.parametrize("problem", ["no_dir", "no_config", "bad_json", "bin_only"])
def test_bad_adapter_is_a_one_line_error(tiny, tmp_path, capsys, problem):
    base, adapter = tiny
    bad = tmp_path / "adapter"
    if problem != "no_dir":
        copy_adapter(adapter, bad)
    if problem == "no_config":
        (bad / merge.ADAPTER_CONFIG).unlink()
    if problem == "bad_json":
        (bad / merge.ADAPTER_CONFIG).write_text("{not json")
    if problem == "bin_only":
        (bad / merge.ADAPTER_WEIGHTS).rename(bad / "adapter_model.bin")
    assert run_cli("--base_model", str(base), "--adapter_path", str(bad), "--output_dir", str(tmp_path / "m")) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and str(bad) in error


def test_existing_output_is_kept_without_overwrite_and_replaced_with_it(tiny, tmp_path, capsys):
    base, adapter = tiny
    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ("--base_model", str(base), "--adapter_path", str(adapter), "--output_dir", str(out))
    assert run_cli(*args) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"
    assert run_cli(*args, "--overwrite") == 0
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert leftovers(tmp_path) == []


def test_output_cannot_replace_the_adapter(tiny, tmp_path):
    base, adapter = tiny
    with pytest.raises(merge.MergeInputError, match="adapter or base"):
        merge.merge_adapter(str(base), adapter, adapter, overwrite=True)


def test_exception_during_save_leaves_no_output_dir(tiny, tmp_path, monkeypatch):
    base, adapter = tiny
    real_save = merge.save_merged

    def save_then_fail(model, tokenizer, directory):
        real_save(model, tokenizer, directory)
        raise OSError("disk full")

    monkeypatch.setattr(merge, "save_merged", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        merge.merge_adapter(str(base), adapter, tmp_path / "merged")
    assert not (tmp_path / "merged").exists() and leftovers(tmp_path) == []


KILLED_MERGE = """
import sys, time
from pathlib import Path
from trainer import merge
real_save = merge.save_merged
def save_and_hang(model, tokenizer, directory):
    real_save(model, tokenizer, directory)
    Path(sys.argv[4]).write_text("saved")
    time.sleep(120)
merge.save_merged = save_and_hang
merge.merge_adapter(sys.argv[1], sys.argv[2], sys.argv[3])
"""


@pytest.mark.slow
def test_sigkill_during_save_leaves_no_output_dir_and_the_next_merge_cleans_up(tiny, tmp_path):
    base, adapter = tiny
    out, ready = tmp_path / "merged", tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", KILLED_MERGE, str(base), str(adapter), str(out), str(ready)]
    child = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 120
    while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ready.exists(), "the child never reached the save"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert not out.exists()
    stale = leftovers(tmp_path)
    assert len(stale) == 1 and stale[0].startswith(".merged.partial-")
    assert merge.merge_adapter(str(base), adapter, out).check.passed
    assert leftovers(tmp_path) == []


def test_python_m_trainer_merge_end_to_end(tiny, tmp_path):
    base, adapter = tiny
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "merged"
    command = [sys.executable, "-m", "trainer", "merge", "--base_model", str(base), "--adapter_path", str(adapter),
               "--output_dir", str(out), "--dtype", "bfloat16"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "logit check" in done.stdout and "(bfloat16)" in done.stdout and (out / "model.safetensors").is_file()
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert again.returncode == 2 and "already exists" in again.stderr
