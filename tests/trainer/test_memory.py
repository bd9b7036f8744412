"""The memory estimate and policy (trainer.memory), --packing auto, the compile cache, warm-up vs steady state, and
the out-of-memory exit (code 5, one paragraph, progress saved)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import REPO, subprocess_env, train_args

from trainer.cli import build_config, build_parser, normalize_argv
from trainer.config import TrainConfig
from trainer.fast_defaults import packing_decision, packing_request, use_compile_cache
from trainer.memory import CALIBRATION, GIB, LLAMA_8B, ModelShape, ShapeUnknown, choose_plan, estimate_peak
from trainer.summary import steady_state, warmup_steps

SEED_PLAN = CALIBRATION[0].plan


@pytest.mark.parametrize("point", CALIBRATION, ids=lambda point: point.name)
def test_estimate_reproduces_each_measured_peak(point) -> None:  # noqa: ANN001
    estimate = estimate_peak(LLAMA_8B, point.plan).total_gib
    assert estimate == pytest.approx(point.measured_gib, rel=0.05), point.source


def test_shape_comes_from_config_json_and_names_what_is_missing() -> None:
    config = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "vocab_size": 128256,
              "num_attention_heads": 32, "num_key_value_heads": 8}
    assert ModelShape.from_config(config) == LLAMA_8B
    assert ModelShape.from_config({"text_config": config}) == LLAMA_8B
    assert LLAMA_8B.parameters() == 8_030_261_248  # Llama-3.1-8B
    with pytest.raises(ShapeUnknown, match="intermediate_size"):
        ModelShape.from_config({k: v for k, v in config.items() if k != "intermediate_size"})


def test_a_plan_that_fits_is_kept() -> None:
    choice = choose_plan(LLAMA_8B, SEED_PLAN, 74 * GIB)
    assert choice.chosen == SEED_PLAN and choice.fits and not choice.changes
    assert "the settings as given fit" in choice.describe()


def test_a_plan_that_does_not_fit_keeps_the_effective_batch() -> None:
    choice = choose_plan(LLAMA_8B, SEED_PLAN, 45 * GIB)
    chosen = choice.chosen
    assert choice.fits and choice.estimate.total <= 45 * GIB < choice.requested_estimate.total
    assert chosen.micro_batch * chosen.accumulation == SEED_PLAN.micro_batch * SEED_PLAN.accumulation
    assert chosen != SEED_PLAN and "same effective batch" in choice.describe()


def test_the_policy_prefers_the_fastest_fitting_change() -> None:
    eager = replace(SEED_PLAN, compile=False)
    halved = choose_plan(LLAMA_8B, eager, 50 * GIB).chosen  # no budget without compile: a smaller micro-batch
    assert (halved.micro_batch, halved.accumulation, halved.checkpointing) == (2, 4, False)
    lean = choose_plan(LLAMA_8B, replace(eager, micro_batch=1, accumulation=8), 22 * GIB).chosen
    assert lean.checkpointing  # one row already: only checkpointing is left
    budget = choose_plan(LLAMA_8B, replace(SEED_PLAN, micro_batch=1, accumulation=8), 26 * GIB).chosen
    assert budget.activation_budget < 1 and not budget.checkpointing  # compiled: a budget beats checkpointing


def test_nothing_fits_gives_the_leanest_plan_marked_so() -> None:
    choice = choose_plan(LLAMA_8B, SEED_PLAN, 10 * GIB)
    assert not choice.fits and choice.chosen.checkpointing and choice.chosen.micro_batch == 1
    assert "may run out of memory" in choice.describe()


def _args(*argv: str) -> TrainConfig:
    return build_config(TrainConfig, build_parser().parse_args(normalize_argv(list(argv))))


def test_packing_flag_forms(tmp_path: Path) -> None:
    assert _args().packing == "auto"
    assert _args("--packing").packing == "on" and _args("--packing", "off").packing == "off"
    assert _args("--no-packing").packing == "off"
    yaml = tmp_path / "c.yaml"
    yaml.write_text("packing: true\n")
    assert _args("--config", str(yaml)).packing == "on"
    yaml.write_text("packing: false\n")
    assert _args("--config", str(yaml)).packing == "off"
    assert packing_request(True) == "on"
    with pytest.raises(ValueError, match="auto, on or off"):
        packing_request("sometimes")


def test_packing_auto_is_on_only_where_isolation_holds() -> None:
    config = SimpleNamespace(packing="auto", backend="hf", trust_remote_code=False)
    assert packing_decision(config, 5).on
    assert not packing_decision(replace_ns(config, backend="unsloth"), 5).on
    assert not packing_decision(config, 4).on and "transformers 4.x" in packing_decision(config, 4).reason
    assert not packing_decision(replace_ns(config, trust_remote_code=True), 5).on
    assert packing_decision(replace_ns(config, packing="off"), 5).describe() == "packing off: --packing off"


def replace_ns(namespace: SimpleNamespace, **changes: object) -> SimpleNamespace:
    return SimpleNamespace(**{**vars(namespace), **changes})


def test_compile_cache_goes_to_the_user_cache_unless_set(tmp_path: Path) -> None:
    environ = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    cache = use_compile_cache(environ)
    assert cache.path == tmp_path / "cache" / "envdoctor-trainer" / "inductor" and not cache.had_entries
    assert environ["TORCHINDUCTOR_CACHE_DIR"] == str(cache.path) and environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] == "1"
    (cache.path / "fxgraph").mkdir()
    assert use_compile_cache(environ).had_entries and "reused" in use_compile_cache(environ).describe()
    mine = {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "mine")}
    assert use_compile_cache(mine).from_environment


def test_warmup_is_split_from_the_steady_state() -> None:
    durations = [60.0, 20.0, 1.0, 1.1, 0.9, 1.0, 2.0, 1.0, 1.0, 1.0]  # compile, tuning, then a log step at 2x
    assert warmup_steps(durations) == 2
    ends = [sum(durations[:i + 1]) for i in range(len(durations))]
    tokens = [1000.0 * (i + 1) for i in range(len(durations))]
    steady = steady_state(ends, tokens, tokens_per_sample=100.0)
    assert steady.warmup_steps == 2 and steady.warmup_seconds == 80.0 and steady.steady_steps == 8
    assert steady.steady_tokens_per_second == pytest.approx(8000 / 9.0, rel=1e-3)
    assert steady.steady_samples_per_hour == pytest.approx(8000 / 9.0 * 36, rel=1e-3)
    short = steady_state(ends[:3], tokens[:3], 100.0)
    assert short.steady_tokens_per_second is None and "not reached" in short.describe()


# A tiny run whose third micro-step runs out of memory (raised from the training step, as torch raises it).
_OUT_OF_MEMORY_BOOT = (
    "import sys, torch, trainer.gate as g, trainer.hf_trainer as h; g.environment_refusal = lambda *a, **k: None\n"
    "step = h.LoRATrainer.training_step; calls = []\n"
    "def failing(self, *a, **k):\n"
    "    calls.append(1)\n"
    "    if len(calls) == 3: raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 1.50 GiB.')\n"
    "    return step(self, *a, **k)\n"
    "h.LoRATrainer.training_step = failing\n"
    "from trainer.cli import main; sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.slow
def test_out_of_memory_saves_and_exits_5_with_one_paragraph(tiny_model: Path, chat_data: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", _OUT_OF_MEMORY_BOOT,
                             *train_args(tiny_model, chat_data, output, "--max_steps", "10", "--save_steps", "50")],
                            env=subprocess_env(), capture_output=True, text=True, timeout=240, cwd=REPO)
    assert result.returncode == 5, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    paragraph = [line for line in result.stderr.splitlines() if line.startswith("out of GPU memory")]
    assert len(paragraph) == 1, result.stderr[-2000:]
    assert "at step 3" in paragraph[0] and "1.50 GiB more asked for" in paragraph[0]
    assert "Flags that should fit: --gradient_checkpointing" in paragraph[0]
    assert "saved in" in paragraph[0] and (output / "checkpoint-2" / "COMPLETE").is_file()
    summary = json.loads((output / "summary.json").read_text())
    assert summary["stopped_because"] == "out of GPU memory at step 3" and summary["steps"] == 2
