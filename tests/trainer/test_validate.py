"""trainer validate on tiny local Llamas: a model fitted to the test set passes, a random one fails, reports written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tiny import (  # noqa: E402
    build_tiny_model_dir,
    synthetic_alpaca_rows,
    synthetic_chat_rows,
    synthetic_prompt_completion_rows,
    synthetic_text_rows,
    write_jsonl,
)

from trainer import merge, validate  # noqa: E402
from trainer.cli import main  # noqa: E402
from trainer.data import normalize, tokenize_record  # noqa: E402


def fit_to_chat_task(model_dir: Path, steps: int = 30) -> Path:
    """Full fine-tune of the tiny model on the synthetic chat task (completion-only loss), saved in place."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    examples = [tokenize_record(normalize(row, "chat"), tokenizer) for row in synthetic_chat_rows(64, seed=0)]
    input_ids = torch.tensor([ids for ids, _ in examples])  # all rows have the same length in this task
    labels = torch.tensor([labels for _, labels in examples])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        model(input_ids=input_ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(str(model_dir))
    return model_dir


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_to_chat_task(build_tiny_model_dir(tmp_path_factory.mktemp("fitted") / "model"))


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("random") / "model")


@pytest.fixture
def chat_test_set(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "test.jsonl", synthetic_chat_rows(16, seed=7))


def run_cli(*argv: str) -> int:
    return main(["validate", *argv])


def test_a_model_fitted_to_the_task_passes_and_reports(fitted, chat_test_set, capsys):
    assert run_cli("--model_path", str(fitted), "--test_set", str(chat_test_set)) == 0
    printed = capsys.readouterr().out
    assert "PASS perplexity" in printed and "PASS generation" in printed
    report = json.loads((fitted / validate.REPORT_JSON).read_text())
    assert report["passed"] and report["schema"] == validate.REPORT_SCHEMA
    assert 1.0 <= report["perplexity"]["value"] < 1.5
    assert report["perplexity"]["tokens"] == 2 * 16  # answer word + end of turn: completion tokens only
    samples = report["generation"]["samples"]
    assert len(samples) == 5 and all(sample["output"] == sample["reference"] for sample in samples)
    assert report["generation"]["garbled_rate"] == 0.0
    markdown = (fitted / validate.REPORT_MD).read_text()
    assert "Validation Checklist" in markdown and "Sample 1 (ok)" in markdown
    assert not [path for path in fitted.iterdir() if path.name.endswith(".tmp")]


def test_checklist_marks_judge_items_not_checked(fitted, chat_test_set):
    result = validate.validate_model(fitted, chat_test_set, write_report=False)
    status = {item.item.split(":")[0]: item for item in result.checklist}
    assert status["MATH Benchmark"].status == "not_checked" and "GPT-4 judge" in status["MATH Benchmark"].detail
    assert status["CODE Benchmark"].status == "not_checked"
    assert status["Perplexity"].status == "pass"
    assert status["Generation Quality"].status == "partial"  # coherence needs a human or judge
    corruption = status["No Merge Corruption"]  # no merge_info.json: this model was not made by trainer merge
    assert corruption.status == "partial" and "merge_info.json" in corruption.detail


def test_a_random_model_fails(random_model, chat_test_set, capsys):
    assert run_cli("--model_path", str(random_model), "--test_set", str(chat_test_set)) == 1
    assert "FAIL perplexity" in capsys.readouterr().out
    report = json.loads((random_model / validate.REPORT_JSON).read_text())
    assert not report["passed"] and report["perplexity"]["value"] > 10
    status = {item["item"].split(":")[0]: item["status"] for item in report["checklist"]}
    assert status["Perplexity"] == "fail" and status["No Merge Corruption"] == "fail"


def test_base_model_perplexity_before_and_after(fitted, random_model, chat_test_set):
    result = validate.validate_model(fitted, chat_test_set, base_model=str(random_model), write_report=False)
    assert result.base_perplexity is not None
    assert result.base_perplexity.value > 10 * result.perplexity.value
    assert result.passed  # the base's perplexity is informational


def test_threshold_is_configurable(fitted, chat_test_set):
    result = validate.validate_model(fitted, chat_test_set, max_perplexity=1.0, write_report=False)
    assert not result.passed and result.exit_code == 1


@pytest.mark.parametrize(
    ("rows", "completion_tokens"),
    [(synthetic_prompt_completion_rows, 2), (synthetic_alpaca_rows, 2), (synthetic_text_rows, 8)],
)
def test_other_formats_take_loss_on_completion_tokens(fitted, tmp_path, rows, completion_tokens):
    test_set = write_jsonl(tmp_path / "test.jsonl", rows(6, seed=3))
    result = validate.validate_model(fitted, test_set, write_report=False, num_samples=2)
    assert result.perplexity.rows == 6 and result.perplexity.tokens == completion_tokens * 6
    assert math.isfinite(result.perplexity.value) and len(result.generation.samples) == 2


def test_merge_then_validate_pipeline_passes_every_automatic_item(fitted, tmp_path, chat_test_set):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    adapted = get_peft_model(AutoModelForCausalLM.from_pretrained(str(fitted)), LoraConfig(r=2))
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 1e-3)  # a small real change: the task stays solved
    adapted.save_pretrained(str(tmp_path / "adapter"))
    merged = merge.merge_adapter(str(fitted), tmp_path / "adapter", tmp_path / "merged").output_dir
    result = validate.validate_model(merged, chat_test_set, num_samples=2)
    checks = {check.name: check for check in result.checks}
    assert result.passed and checks["merge_logits"].passed and "merge_info.json" in checks["merge_logits"].detail
    status = {item.item.split(":")[0]: item.status for item in result.checklist}
    assert status["No Merge Corruption"] == "pass" and status["Perplexity"] == "pass"
    assert (merged / validate.REPORT_JSON).is_file() and (merged / validate.REPORT_MD).is_file()


@pytest.mark.parametrize(
    ("text", "ids", "flag"),
    [
        ("   ", [], "empty"),
        ("the answer is \ufffd\ufffd", [1, 2, 3], "replacement_chars"),
        ("abc\x00\x01\x02def", [1, 2], "nonprintable"),
        ("v1 v2 " * 10, [7, 8] * 10, "repetition"),
    ],
)
def test_garbled_flags(text, ids, flag):
    assert flag in validate.garbled_flags(text, ids)


def test_normal_text_is_not_flagged():
    text = "The derivative of x squared is two x, because the power rule lowers the exponent by one.\nDone."
    assert validate.garbled_flags(text, list(range(20))) == ()
    assert validate.repetition_share([1, 2, 3]) == 0.0  # too short to judge


def test_generation_rates_and_threshold():
    ok = validate.GenerationSample("p", "fine", "r", 1, ())
    bad = validate.GenerationSample("p", "", "r", 0, ("empty",))
    summary = validate.summarize_generation([ok, ok, ok, bad], max_garbled_rate=0.2)
    assert summary.garbled_rate == 0.25 and summary.flag_rates["empty"] == 0.25 and not summary.passed
    assert validate.summarize_generation([ok, ok, ok, ok, bad], max_garbled_rate=0.2).passed


def test_bad_inputs_are_one_line_errors(fitted, tmp_path, capsys):
    bad_rows = write_jsonl(tmp_path / "bad.jsonl", [synthetic_chat_rows(1)[0], "{oops", {"messages": []}])
    cases = [
        ("--model_path", str(tmp_path / "missing"), "--test_set", str(bad_rows)),
        ("--model_path", str(fitted), "--test_set", str(tmp_path / "missing.jsonl")),
        ("--model_path", str(fitted), "--test_set", str(bad_rows)),
    ]
    for argv in cases:
        assert run_cli(*argv) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("error: ") and "\n" not in error
    assert "line 2" in error and "line 3" in error


def test_python_m_trainer_validate_end_to_end(random_model, chat_test_set):
    import os
    import subprocess
    import sys

    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "trainer", "validate", "--model_path", str(random_model),
               "--test_set", str(chat_test_set), "--num_samples", "1", "--max_perplexity", "1000"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr  # a generous threshold: the random model's perplexity passes it
    assert "PASS perplexity" in done.stdout and "checklist: not_checked MATH Benchmark" in done.stdout
