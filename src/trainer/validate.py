"""Validate a (merged) model: perplexity on a held-out JSONL set and a garbled-output check on a few generations.

    python -m trainer validate --model_path ./checkpoints/run/merged --test_set data/validation/math_code_mix.jsonl

Reads the same JSONL formats as training (trainer.data), with loss on completion tokens only. Writes
validation_report.json and validation_report.md into the model dir (atomically) and exits 0 only when every check
passes. The seed README's GPT-4-judged MATH/CODE win rates need an external judge: they are reported as not checked.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from envdoctor import write_atomic
from trainer.config import DEFAULT_MAX_SEQ_LENGTH, ValidateConfig
from trainer.errors import EXIT_FAILED, EXIT_OK, BadInputError
from trainer.types import IGNORE_INDEX

REPORT_SCHEMA = "trainer.validation/1"
REPORT_JSON, REPORT_MD = "validation_report.json", "validation_report.md"
MERGE_INFO_FILE = "merge_info.json"  # written by trainer.merge
REPLACEMENT_CHAR = "\ufffd"
NONPRINTABLE_RUN = 3  # this many non-printable characters in a row (not newline/tab) mark garbled output
MIN_TOKENS_FOR_REPETITION = 12
REPETITION_NGRAM = 4
MAX_REPETITION = 0.5  # share of repeated 4-grams above which an output counts as a loop
JUDGE_NOTE = "needs an external GPT-4 judge (pairwise win/tie rates); not run by this tool"

Log = Callable[[str], None]


class ValidationInputError(BadInputError):
    """Bad input (missing model dir, test set, bad JSONL rows): exit 2."""


@dataclass(frozen=True)
class Perplexity:
    value: float
    rows: int
    tokens: int  # completion tokens the loss was taken on
    truncated_rows: int


@dataclass(frozen=True)
class GenerationSample:
    prompt: str
    output: str
    reference: str
    new_tokens: int
    flags: tuple[str, ...]  # empty, replacement_chars, nonprintable, repetition


@dataclass(frozen=True)
class GenerationCheck:
    samples: tuple[GenerationSample, ...]
    flag_rates: dict[str, float]  # share of samples with each flag
    replacement_char_rate: float  # U+FFFD chars / all output chars
    garbled_rate: float  # share of samples with any flag
    max_garbled_rate: float

    @property
    def passed(self) -> bool:
        return bool(self.samples) and self.garbled_rate <= self.max_garbled_rate


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class ChecklistItem:
    item: str
    status: str  # pass, fail, partial, not_checked
    detail: str


@dataclass
class ValidationResult:
    model_path: Path
    test_set: Path
    perplexity: Perplexity
    max_perplexity: float
    generation: GenerationCheck
    base_model: str | None = None
    base_perplexity: Perplexity | None = None
    merge_info: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)
    checklist: list[ChecklistItem] = field(default_factory=list)
    report_paths: tuple[Path, ...] = ()

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed else EXIT_FAILED


def validate_model(
    model_path: str | Path,
    test_set: str | Path,
    max_perplexity: float = 10.0,
    base_model: str | None = None,
    num_samples: int = 5,
    max_new_tokens: int = 64,
    max_garbled_rate: float = 0.2,
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
    batch_size: int = 8,
    dtype: str | None = None,
    device: str | None = None,
    dataset_format: str = "auto",
    write_report: bool = True,
    log: Log = lambda message: None,
) -> ValidationResult:
    """Run the checks and write the reports into model_path. Raises ValidationInputError on bad input."""
    model_dir, test_file = check_inputs(Path(model_path).expanduser(), Path(test_set).expanduser())
    records = load_records(test_file, dataset_format)
    device = device or default_device()
    model, tokenizer = load_model(str(model_dir), dtype, device)
    log(f"perplexity of {model_dir} on {len(records)} rows")
    perplexity = measure_perplexity(model, tokenizer, records, max_seq_length, batch_size, device)
    log(f"generating {min(num_samples, len(records))} samples")
    samples = generate_samples(model, tokenizer, records[:num_samples], max_new_tokens, device)
    generation = summarize_generation(samples, max_garbled_rate)
    del model
    gc.collect()
    base_perplexity = None
    if base_model:
        log(f"perplexity of the base {base_model}")
        base, _ = load_model(base_model, dtype, device)
        base_perplexity = measure_perplexity(base, tokenizer, records, max_seq_length, batch_size, device)
    result = ValidationResult(model_dir, test_file, perplexity, max_perplexity, generation, base_model, base_perplexity,
                              read_merge_info(model_dir))
    result.checks = build_checks(result)
    result.checklist = build_checklist(result)
    if write_report:
        result.report_paths = write_reports(result)
    return result


# ---- inputs ----


def check_inputs(model_dir: Path, test_file: Path) -> tuple[Path, Path]:
    if not model_dir.is_dir() or not (model_dir / "config.json").is_file():
        raise ValidationInputError(f"{model_dir}: not a model directory (no config.json); pass the merged model dir")
    if not (model_dir / "tokenizer_config.json").is_file():
        raise ValidationInputError(f"{model_dir}: no tokenizer_config.json; save the tokenizer with the model")
    if not test_file.is_file():
        raise ValidationInputError(f"{test_file}: no such file; pass --test_set pointing at a JSONL file")
    return model_dir, test_file


def load_records(test_file: Path, dataset_format: str = "auto") -> list[dict[str, Any]]:
    """Normalized records (trainer.data); raises ValidationInputError naming the bad lines."""
    from trainer.data import read_rows

    _lines, records, bad, _fmt = read_rows(test_file, dataset_format)
    if bad:
        shown = "; ".join(f"line {row.line}: {row.reason}" for row in bad[:5])
        raise ValidationInputError(f"{test_file}: {len(bad)} bad rows: {shown}; fix them")
    if not records:
        raise ValidationInputError(f"{test_file}: no rows; pass a non-empty JSONL test set")
    return [json.loads(record) for record in records]


def read_merge_info(model_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((model_dir / MERGE_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) else None


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(path_or_id: str, dtype: str | None, device: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        path_or_id, dtype=getattr(torch, dtype) if dtype else "auto", trust_remote_code=False, use_safetensors=True
    )
    tokenizer = AutoTokenizer.from_pretrained(path_or_id, trust_remote_code=False)
    return model.to(device).eval(), tokenizer


# ---- perplexity (loss on completion tokens only, as in training) ----


def measure_perplexity(
    model: Any, tokenizer: Any, records: Sequence[dict[str, Any]], max_seq_length: int, batch_size: int, device: str
) -> Perplexity:
    from trainer.data import tokenize_record

    examples, truncated = [], 0
    for record in records:
        ids, labels = tokenize_record(record, tokenizer)
        truncated += len(ids) > max_seq_length
        ids, labels = ids[:max_seq_length], labels[:max_seq_length]
        if any(label != IGNORE_INDEX for label in labels[1:]):
            examples.append((ids, labels))
    total_loss, total_tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        loss, tokens = batch_loss(model, examples[start : start + batch_size], pad_id(tokenizer), device)
        total_loss, total_tokens = total_loss + loss, total_tokens + tokens
    value = math.exp(total_loss / total_tokens) if total_tokens else math.inf
    return Perplexity(value, len(examples), total_tokens, truncated)


def batch_loss(model: Any, batch: list[tuple[list[int], list[int]]], pad: int, device: str) -> tuple[float, int]:
    """(summed next-token NLL over label tokens, label token count) for one right-padded batch."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch], device=device)
    labels = torch.tensor([lab + [IGNORE_INDEX] * (width - len(lab)) for _, lab in batch], device=device)
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch], device=device)
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
    targets = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return float(loss), int((targets != IGNORE_INDEX).sum())


def pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad) if pad is not None else 0


# ---- generation sanity ----


def generation_prompt(record: dict[str, Any], tokenizer: Any) -> tuple[str, str]:
    """(prompt text, reference answer) for a record: the turns before the last assistant reply, or the prompt."""
    if record["kind"] == "chat":
        messages = record["messages"]
        last = max(index for index, message in enumerate(messages) if message["role"] == "assistant")
        prompt = tokenizer.apply_chat_template(messages[:last], tokenize=False, add_generation_prompt=True)
        return prompt, messages[last]["content"]
    if record["kind"] == "pc":
        return record["prompt"], record["completion"]
    words = record["text"].split(" ")
    half = max(1, len(words) // 2)
    return " ".join(words[:half]), " ".join(words[half:])


def generate_samples(
    model: Any, tokenizer: Any, records: Sequence[dict[str, Any]], max_new_tokens: int, device: str
) -> list[GenerationSample]:
    """Greedy continuation of each record's prompt, flagged for garbled output."""
    import torch

    samples = []
    for record in records:
        prompt, reference = generation_prompt(record, tokenizer)
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=record["kind"] != "chat").to(device)
        with torch.no_grad():
            output = model.generate(
                **encoded, max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                top_k=None, pad_token_id=pad_id(tokenizer),
            )
        new_ids = [int(token) for token in output[0, encoded["input_ids"].shape[1] :]]
        text = tokenizer.decode(new_ids, skip_special_tokens=True)
        content_ids = [token for token in new_ids if token not in set(tokenizer.all_special_ids)]
        samples.append(GenerationSample(prompt, text, reference, len(new_ids), garbled_flags(text, content_ids)))
    return samples


def garbled_flags(text: str, token_ids: Sequence[int]) -> tuple[str, ...]:
    """Why an output looks garbled: empty, U+FFFD replacement chars, non-printable runs, or a repetition loop."""
    flags = []
    if not text.strip():
        flags.append("empty")
    if REPLACEMENT_CHAR in text:
        flags.append("replacement_chars")
    if longest_nonprintable_run(text) >= NONPRINTABLE_RUN:
        flags.append("nonprintable")
    if repetition_share(token_ids) > MAX_REPETITION:
        flags.append("repetition")
    return tuple(flags)


def longest_nonprintable_run(text: str) -> int:
    longest = current = 0
    for char in text:
        current = current + 1 if not char.isprintable() and char not in "\n\r\t" else 0
        longest = max(longest, current)
    return longest


def repetition_share(token_ids: Sequence[int], n: int = REPETITION_NGRAM) -> float:
    """Share of n-grams that repeat an earlier one (0 for varied text, near 1 for a loop); 0 for short outputs."""
    if len(token_ids) < MIN_TOKENS_FOR_REPETITION:
        return 0.0
    grams = [tuple(token_ids[i : i + n]) for i in range(len(token_ids) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


def summarize_generation(samples: Sequence[GenerationSample], max_garbled_rate: float) -> GenerationCheck:
    count = max(len(samples), 1)
    kinds = ("empty", "replacement_chars", "nonprintable", "repetition")
    rates = {kind: sum(kind in sample.flags for sample in samples) / count for kind in kinds}
    chars = sum(len(sample.output) for sample in samples)
    replacement = sum(sample.output.count(REPLACEMENT_CHAR) for sample in samples) / max(chars, 1)
    garbled = sum(bool(sample.flags) for sample in samples) / count
    return GenerationCheck(tuple(samples), rates, replacement, garbled, max_garbled_rate)


# ---- checks, checklist, reports ----


def build_checks(result: ValidationResult) -> list[Check]:
    ppl, gen = result.perplexity, result.generation
    checks = [
        Check("perplexity", ppl.value < result.max_perplexity,
              f"perplexity {ppl.value:.3f} on {ppl.rows} rows / {ppl.tokens} completion tokens "
              f"(must be < {result.max_perplexity:g})"),
        Check("generation", gen.passed,
              f"{gen.garbled_rate:.0%} of {len(gen.samples)} samples garbled (allowed {gen.max_garbled_rate:.0%}); "
              + ", ".join(f"{kind} {rate:.0%}" for kind, rate in gen.flag_rates.items())),
    ]
    merge_check = (result.merge_info or {}).get("check")
    if isinstance(merge_check, dict):
        checks.append(Check("merge_logits", bool(merge_check.get("passed")),
                            f"{MERGE_INFO_FILE}: merged vs float32 base + adapter max logit diff "
                            f"{float(merge_check.get('max_abs_diff', math.nan)):.3g} "
                            f"({float(merge_check.get('relative_diff', math.nan)):.3%} of max logit; allowed "
                            f"{float(merge_check.get('allowed', math.nan)):.3g})"))
    return checks


def build_checklist(result: ValidationResult) -> list[ChecklistItem]:
    """The seed README's 'Validation Checklist', with what this run could and could not check."""
    by_name = {check.name: check for check in result.checks}
    ppl, gen, merged = by_name["perplexity"], by_name["generation"], by_name.get("merge_logits")
    merge_note = merged.detail if merged else f"no {MERGE_INFO_FILE}: the merge's logit check was not found"
    return [
        ChecklistItem("MATH Benchmark: 6% wins, 70% ties (vs GPT-4)", "not_checked", JUDGE_NOTE),
        ChecklistItem("CODE Benchmark: 48% wins, 20% ties (vs GPT-4)", "not_checked", JUDGE_NOTE),
        ChecklistItem(f"Perplexity: <{result.max_perplexity:g} on held-out test set", _status(ppl.passed), ppl.detail),
        ChecklistItem("Generation Quality: Coherent, relevant responses", "partial" if gen.passed else "fail",
                      "automatic checks catch garbled output only; coherence and relevance need a human or a judge: "
                      "read the samples below"),
        ChecklistItem("No Merge Corruption: No garbled text or nonsense outputs",
                      corruption_status(ppl, gen, merged), f"{gen.detail}; {ppl.detail}; {merge_note}"),
    ]


def corruption_status(perplexity: Check, generation: Check, merge_logits: Check | None) -> str:
    """fail on garbled output, nonsense (perplexity) or a failed merge check; partial without the merge's proof."""
    if not (perplexity.passed and generation.passed) or (merge_logits and not merge_logits.passed):
        return "fail"
    return "pass" if merge_logits else "partial"


def _status(passed: bool) -> str:
    return "pass" if passed else "fail"


def report_dict(result: ValidationResult) -> dict[str, Any]:
    return {
        "schema": REPORT_SCHEMA,
        "passed": result.passed,
        "model_path": str(result.model_path),
        "test_set": str(result.test_set),
        "perplexity": asdict(result.perplexity),
        "max_perplexity": result.max_perplexity,
        "base_model": result.base_model,
        "base_perplexity": asdict(result.base_perplexity) if result.base_perplexity else None,
        "generation": {**asdict(result.generation), "passed": result.generation.passed},
        "merge_info": result.merge_info,
        "checks": [asdict(check) for check in result.checks],
        "checklist": [asdict(item) for item in result.checklist],
    }


def render_markdown(result: ValidationResult) -> str:
    lines = [f"# Validation report: {result.model_path}", "",
             f"Test set: `{result.test_set}`. Overall: **{'PASS' if result.passed else 'FAIL'}**.", "",
             "## Checks", ""]
    lines += [f"- {'PASS' if check.passed else 'FAIL'} **{check.name}**: {check.detail}" for check in result.checks]
    if result.base_perplexity:
        lines += ["", f"Base {result.base_model}: perplexity {result.base_perplexity.value:.3f} "
                      f"-> {result.perplexity.value:.3f} after fine-tuning (informational)."]
    lines += ["", "## Validation Checklist (seed README)", ""]
    marks = {"pass": "[x]", "fail": "[ ] FAIL", "partial": "[~] partly checked", "not_checked": "[ ] not checked"}
    lines += [f"- {marks[item.status]} **{item.item}**: {item.detail}" for item in result.checklist]
    lines += ["", "## Generation samples", ""]
    for number, sample in enumerate(result.generation.samples, start=1):
        flags = ", ".join(sample.flags) or "ok"
        lines += [f"### Sample {number} ({flags})", "", "Prompt:", "", _fence(sample.prompt), "", "Output:", "",
                  _fence(sample.output), "", "Reference:", "", _fence(sample.reference), ""]
    return "\n".join(lines) + "\n"


def _fence(text: str) -> str:
    return "```text\n" + text.replace("```", "'''") + "\n```"


def write_reports(result: ValidationResult) -> tuple[Path, Path]:
    json_path, md_path = result.model_path / REPORT_JSON, result.model_path / REPORT_MD
    write_atomic(json_path, json.dumps(report_dict(result), indent=2, ensure_ascii=False) + "\n")
    write_atomic(md_path, render_markdown(result))
    return json_path, md_path


# ---- the validate command ----


def run_validation(config: ValidateConfig, log: Log = lambda message: None) -> ValidationResult:
    """`python -m trainer validate`: validate_model with the command's settings. Raises ValidationInputError or
    trainer.data.DataError (both bad input)."""
    return validate_model(config.model_path, config.test_set, max_perplexity=config.max_perplexity,
                          base_model=config.base_model, num_samples=config.num_samples,
                          max_new_tokens=config.max_new_tokens, max_garbled_rate=config.max_garbled_rate,
                          max_seq_length=config.max_seq_length, batch_size=config.batch_size, dtype=config.dtype,
                          device=config.device, dataset_format=config.dataset_format, log=log)


def render_summary(result: ValidationResult) -> str:
    lines = [f"{'PASS' if check.passed else 'FAIL'} {check.name}: {check.detail}" for check in result.checks]
    if result.base_perplexity:
        lines.append(f"base perplexity {result.base_perplexity.value:.3f} -> {result.perplexity.value:.3f}")
    for sample in result.generation.samples[:3]:
        lines.append(f"sample [{', '.join(sample.flags) or 'ok'}]: {sample.output[:200]!r}")
    lines += [f"checklist: {item.status:<11} {item.item}" for item in result.checklist]
    lines += [f"report: {path}" for path in result.report_paths]
    return "\n".join(lines)
