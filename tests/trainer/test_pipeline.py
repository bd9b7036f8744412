"""Flags mean what they say, train -> merge -> validate in one command, packing with the fused loss, the guard."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import greedy_answers, logged, run_trainer, train_args
from tiny import ANSWER_OF, synthetic_chat_rows, write_jsonl

from trainer.cli import build_config, build_parser, normalize_argv
from trainer.config import TrainConfig
from trainer.errors import BadInputError, TrainerError
from trainer.fast_defaults import packing_decision
from trainer.hf_trainer import training_arguments
from trainer.pipeline import merge_and_validate
from trainer.plan import build_run_plan, compile_mode, use_fused_ce, use_fused_lora
from trainer.preflight import check_config

torch = pytest.importorskip("torch")

SEED_COMMAND = (
    "--model_name meta-llama/Meta-Llama-3.1-8B-Instruct --dataset_path /tmp/dataset.jsonl "
    "--output_dir ./checkpoints/phase1a_v2 --num_train_epochs 3 --per_device_train_batch_size 4 "
    "--gradient_accumulation_steps 2 --dataloader_num_workers 4 --save_steps 2000 --torch_compile"
).split()


def parse(argv: list[str]) -> TrainConfig:
    return build_config(TrainConfig, build_parser().parse_args(normalize_argv(argv)))


def fused_ce_for(argv: list[str]) -> bool:
    config = parse(argv)
    return use_fused_ce(config, packing_decision(config).on)


def compile_mode_for(argv: list[str], on_gpu: bool | None = None) -> str | None:
    config = parse(argv)
    return compile_mode(config, packing_decision(config).on, torch.cuda.is_available() if on_gpu is None else on_gpu)


def exit_code_of(config: TrainConfig, adapter: Path, test_set: Path | None) -> int:
    """merge_and_validate's exit code, as the CLI would return it."""
    try:
        merge_and_validate(config, adapter, test_set)
    except TrainerError as error:
        return error.exit_code
    return 0


# ---- every seed flag reaches TrainingArguments with its meaning ----------------------------------------------

def test_seed_command_line_sets_the_training_arguments_it_names() -> None:
    config = parse(SEED_COMMAND)
    args = training_arguments(config, has_eval=False)
    assert args.num_train_epochs == 3 and args.max_steps == -1
    assert args.per_device_train_batch_size == 4 and args.gradient_accumulation_steps == 2
    assert args.dataloader_num_workers == 4
    assert args.save_strategy == "steps" and args.save_steps == 2000
    # --torch_compile compiles each decoder layer (compiling.compile_decoder_layers), not transformers' whole model
    assert config.torch_compile is True and args.torch_compile is False
    assert args.output_dir.endswith("checkpoints/phase1a_v2")
    assert args.learning_rate == 2e-4 and args.lr_scheduler_type == "cosine" and args.seed == 42
    assert args.get_warmup_steps(1000) == 30  # the default --warmup_ratio 0.03 is 3% of the steps, not 0.03 steps
    assert not args.gradient_checkpointing
    with_checkpointing = training_arguments(parse([*SEED_COMMAND, "--gradient_checkpointing"]), has_eval=False)
    assert with_checkpointing.gradient_checkpointing


@pytest.mark.parametrize(("ratio", "steps"), [(0.0, 0), (0.1, 100), (0.5, 500)])
def test_warmup_ratio_is_a_fraction_of_the_steps(ratio: float, steps: int) -> None:
    args = training_arguments(parse([*SEED_COMMAND, "--warmup_ratio", str(ratio)]), has_eval=False)
    assert args.get_warmup_steps(1000) == steps


def test_warmup_ratio_outside_zero_one_is_refused(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_chat_rows(4))
    with pytest.raises(BadInputError, match=r"--warmup_ratio 2.0: must be a fraction"):
        check_config(parse(["--model_name", "m", "--dataset_path", str(data), "--warmup_ratio", "2"]))


def tiny_trainer(model_dir: Path, tmp_path: Path, fused_ce: bool = False, **arguments: Any) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, TrainingArguments

    from trainer.hf_trainer import LoRATrainer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    model.config.use_cache = False
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"],
                      init_lora_weights=False, task_type="CAUSAL_LM")  # random B too: the adapter changes the loss
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", **arguments)
    return LoRATrainer(model=get_peft_model(model, lora), args=args, fused_ce=fused_ce)


def test_torch_compile_flag_compiles_every_decoder_layer_and_trains(tiny_model: Path, chat_data: Path,
                                                                    tmp_path: Path) -> None:
    from trainer.recipe import LoRARecipe

    # aot_eager: Dynamo traces and AOTAutograd splits forward/backward as with inductor, minus the C++ build
    recipe = LoRARecipe(plan_for(tiny_model, chat_data, tmp_path / "out", torch_compile=True, max_steps=2,
                                   torch_compile_backend="aot_eager"))
    recipe.setup()
    layers = [m for m in recipe.trainer.model.modules() if type(m).__name__.endswith("DecoderLayer")]
    assert layers and all(layer._compiled_call_impl is not None for layer in layers)
    assert not recipe.trainer.args.torch_compile  # regional, not transformers' whole-model compile
    batch = recipe.trainer.data_collator([recipe.trainer.train_dataset[i] for i in range(3)])
    assert batch["input_ids"].shape[1] % 256 == 0  # few shapes, few recompiles
    state = recipe.trainer.train()  # the compiled layers run forward and backward
    assert state.global_step == 2 and math.isfinite(state.training_loss)


# ---- fused chunked cross-entropy -----------------------------------------------------------------------------

def packed_batch(vocab: int) -> dict[str, Any]:
    from trainer.packing import PackedCollator, pack_examples
    from trainer.types import TokenizedExample

    generator = torch.Generator().manual_seed(3)
    examples = []
    for length in (9, 5, 12, 7, 3, 11):
        ids = tuple(torch.randint(3, vocab, (length,), generator=generator).tolist())
        examples.append(TokenizedExample(ids, (-100, -100, *ids[2:])))
    return PackedCollator(24, 0)(pack_examples(examples, 24))


@pytest.mark.parametrize("num_items", [None, 37])
def test_fused_loss_equals_the_plain_loss_on_the_same_batch(tiny_model: Path, tmp_path: Path,
                                                            num_items: int | None) -> None:
    from trainer.packing import enable_packed_attention

    trainer = tiny_trainer(tiny_model, tmp_path)
    enable_packed_attention(trainer.model, "sdpa")
    trainer.model.train()
    batch = packed_batch(trainer.model.config.vocab_size)
    trainer.fused_ce = False
    plain = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=num_items)
    plain_grads = torch.autograd.grad(plain, [p for p in trainer.model.parameters() if p.requires_grad])
    trainer.fused_ce = True
    fused = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=num_items)
    fused_grads = torch.autograd.grad(fused, [p for p in trainer.model.parameters() if p.requires_grad])
    assert plain.item() > 1.0
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
    for got, want in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_fused_ce_auto_follows_packing_also_with_compile(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_chat_rows(4))
    base = ["--model_name", "m", "--dataset_path", str(data)]
    assert fused_ce_for([*base, "--packing"]) and not fused_ce_for([*base, "--no-packing"])
    assert fused_ce_for([*base, "--packing", "--torch_compile"])  # the layers are compiled in place
    assert not fused_ce_for([*base, "--packing", "--fused_ce", "off"])
    check_config(parse([*base, "--fused_ce", "on", "--torch_compile"]))  # accepted


@pytest.mark.slow
def test_fused_loss_runs_the_compiled_layers(tiny_model: Path, chat_data: Path, tmp_path: Path) -> None:
    from torch._dynamo.utils import counters

    from trainer.recipe import LoRARecipe

    recipe = LoRARecipe(plan_for(tiny_model, chat_data, tmp_path / "out", torch_compile=True, packing=True,
                                   max_seq_length=64, max_steps=1, torch_compile_backend="aot_eager"))
    recipe.setup()
    trainer = recipe.trainer
    assert trainer.fused_ce
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    trainer.model.train()
    counters.clear()
    fused = trainer.compute_loss(trainer.model, dict(batch))
    assert counters["stats"]["calls_captured"] > 0  # Dynamo ran: the fused loss went through the compiled layers
    trainer.fused_ce = False
    plain = trainer.compute_loss(trainer.model, dict(batch))
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("packing", [False, True])  # packed: the fused loss enters through get_decoder()
def test_fused_lora_on_trains_the_same_steps_as_peft(tiny_model: Path, chat_data: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str], packing: bool) -> None:
    from trainer.recipe import LoRARecipe

    losses = {}
    for choice in ("off", "on"):
        recipe = LoRARecipe(plan_for(tiny_model, chat_data, tmp_path / choice, fused_lora=choice, lora_dropout=0.0,
                                       max_steps=3, logging_steps=1, packing=packing))
        recipe.setup()
        recipe.trainer.train()
        losses[choice] = [row["loss"] for row in recipe.trainer.state.log_history if "loss" in row]
    assert "--fused_lora on: fused LoRA on 14 projections in 8 groups" in capsys.readouterr().err
    assert len(losses["on"]) == 3 and losses["on"] == pytest.approx(losses["off"], rel=1e-4)


def test_fused_lora_flag_is_checked(tmp_path: Path) -> None:

    data = write_jsonl(tmp_path / "d.jsonl", synthetic_chat_rows(4))
    base = ["--model_name", "m", "--dataset_path", str(data)]
    with pytest.raises(BadInputError, match="--fused_lora must be one of auto, on, off"):
        check_config(parse([*base, "--fused_lora", "yes"]))
    with pytest.raises(BadInputError, match="--fused_ce must be one of auto, on, off"):
        check_config(parse([*base, "--fused_ce", "yes"]))
    with pytest.raises(BadInputError, match="does not apply to --backend unsloth"):
        check_config(parse([*base, "--fused_lora", "on", "--backend", "unsloth"]))
    assert use_fused_lora(parse(base), None, on_gpu=True) and not use_fused_lora(parse(base), None, on_gpu=False)
    assert use_fused_lora(parse([*base, "--fused_lora", "on"]), None, on_gpu=False)
    assert not use_fused_lora(parse([*base, "--fused_lora", "off"]), None, on_gpu=True)


def test_compile_mode_flag_is_checked_and_auto_tunes_only_packed_rows(tmp_path: Path) -> None:

    data = write_jsonl(tmp_path / "d.jsonl", synthetic_chat_rows(4))
    base = ["--model_name", "m", "--dataset_path", str(data), "--torch_compile"]
    with pytest.raises(BadInputError, match="--torch_compile_mode must be one of auto, default, "
                                                "max-autotune-no-cudagraphs, max-autotune, reduce-overhead"):
        check_config(parse([*base, "--torch_compile_mode", "fast"]))
    with pytest.raises(BadInputError, match="--torch_compile_mode max-autotune needs --torch_compile_backend "
                                                "inductor \\(it is aot_eager\\); drop one of them"):
        check_config(parse([*base, "--torch_compile_mode", "max-autotune", "--torch_compile_backend", "aot_eager"]))
    assert compile_mode_for([*base, "--packing"], on_gpu=True) == "max-autotune-no-cudagraphs"
    assert compile_mode_for([*base, "--packing"], on_gpu=False) is None  # the gain was measured on GPUs only
    assert compile_mode_for([*base, "--no-packing"], on_gpu=True) is None  # unpacked batches come in several shapes
    assert compile_mode_for([*base, "--packing", "--torch_compile_backend", "aot_eager"], on_gpu=True) is None
    assert compile_mode_for([*base, "--packing", "--torch_compile_mode", "default"], on_gpu=True) is None
    assert compile_mode_for([*base, "--torch_compile_mode", "reduce-overhead"]) == "reduce-overhead"
    assert compile_mode_for([*base, "--packing"]) == ("max-autotune-no-cudagraphs" if torch.cuda.is_available()
                                                         else None)


def test_activation_memory_budget_is_a_share_that_needs_the_compiler(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_chat_rows(4))
    base = ["--model_name", "m", "--dataset_path", str(data)]
    for bad in ("0", "1.5", "-0.2"):
        with pytest.raises(BadInputError, match=f"--activation_memory_budget {float(bad)}: must be a share in "
                                                    "\\(0, 1\\], e.g. 0.6"):
            check_config(parse([*base, "--torch_compile", "--activation_memory_budget", bad]))
    with pytest.raises(BadInputError, match="--activation_memory_budget 0.6 needs --torch_compile with the "
                                                "inductor backend .* use --gradient_checkpointing"):
        check_config(parse([*base, "--activation_memory_budget", "0.6"]))
    with pytest.raises(BadInputError, match="needs --torch_compile with the inductor backend"):
        check_config(parse([*base, "--activation_memory_budget", "0.6", "--torch_compile",
                            "--torch_compile_backend", "aot_eager"]))
    check_config(parse([*base, "--activation_memory_budget", "0.6", "--torch_compile"]))
    check_config(parse([*base, "--activation_memory_budget", "1"]))  # the default needs nothing


# ---- train --merge --validate --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pipeline_run(tiny_model: Path, chat_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    output = tmp_path_factory.mktemp("pipeline") / "run"
    result = run_trainer(train_args(tiny_model, chat_data, output, "--max_steps", "40", "--save_steps", "40",
                                    "--eval_split", "0.1", "--merge", "--validate"))
    return output, result


@pytest.mark.slow
def test_train_merge_validate_in_one_command(pipeline_run: tuple[Path, Any], tiny_model: Path,
                                             chat_data: Path) -> None:
    output, result = pipeline_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend hf:" in result.stderr and "validation passed" in result.stdout
    merged = output / "merged"
    assert greedy_answers(merged) == ANSWER_OF  # transformers loads the merged dir directly, and it learned
    report = json.loads((merged / "validation_report.json").read_text())
    assert report["passed"] is True
    held_out = (output / "validation_set.jsonl").read_text().splitlines()
    training_rows = set(chat_data.read_text().splitlines())
    assert len(held_out) == 16 and set(held_out) <= training_rows  # the 10% eval split, verbatim
    assert "Traceback" not in result.stderr


def config_for(tiny_model: Path, chat_data: Path, output: Path, **overrides: Any) -> TrainConfig:
    return TrainConfig(model_name=str(tiny_model), dataset_path=str(chat_data), output_dir=str(output),
                       merge=True, **{"packing": False, **overrides})  # padded batches unless a test packs


def plan_for(tiny_model: Path, chat_data: Path, output: Path, **overrides: Any) -> Any:
    return build_run_plan(config_for(tiny_model, chat_data, output, **overrides))


@pytest.mark.slow
def test_merge_and_validate_exit_codes(pipeline_run: tuple[Path, Any], tiny_model: Path, chat_data: Path,
                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer import merge

    run_dir, _result = pipeline_run
    adapter = shutil.copytree(run_dir / "adapter", tmp_path / "adapter")
    config = config_for(tiny_model, chat_data, tmp_path / "out")
    assert exit_code_of(config, tmp_path / "no-adapter", None) == 2  # MergeInputError
    bad_rows = write_jsonl(tmp_path / "bad.jsonl", ['{"messages": "not a list"}'])
    assert exit_code_of(config, adapter, bad_rows) == 2  # validation input error
    assert exit_code_of(config_for(tiny_model, chat_data, tmp_path / "o2", max_perplexity=1.0), adapter,
                        run_dir / "validation_set.jsonl") == 1  # perplexity ~1.01 >= 1.0
    monkeypatch.setattr(merge, "EXACT_TOLERANCE", -1.0)  # nothing allowed: MergeCheckError
    assert exit_code_of(config_for(tiny_model, chat_data, tmp_path / "o3"), adapter, None) == 1
    assert not (tmp_path / "o3" / "merged").exists()
    settings = json.loads((adapter / "adapter_config.json").read_text())
    settings["quantization_config"] = {"load_in_4bit": True, "quant_method": "bitsandbytes"}
    (adapter / "adapter_config.json").write_text(json.dumps(settings))
    assert exit_code_of(config, adapter, None) == 3  # MergeRefused


def test_validate_without_a_test_set_is_refused_early(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_chat_rows(4))
    with pytest.raises(BadInputError, match="--validate needs a test set"):
        check_config(parse(["--model_name", "m", "--dataset_path", str(data), "--merge", "--validate"]))


# ---- packing, the guard, the backend flag (end to end) -------------------------------------------------------

@pytest.mark.slow
def test_packing_trains_with_the_fused_loss_and_learns(tiny_model: Path, chat_data: Path, tmp_path: Path) -> None:
    output = tmp_path / "packed"
    result = run_trainer(train_args(tiny_model, chat_data, output, "--packing", "--max_steps", "40",
                                    "--per_device_train_batch_size", "4", "--save_steps", "40"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "packing: 160 samples ->" in result.stderr and "chunked fused cross-entropy" in result.stderr
    assert "padding: batches of" not in result.stderr  # the --packing hint is for unpacked runs only
    losses = [loss for _step, loss in logged(output, "loss")]
    assert losses[0] > 1.0 and losses[-1] < 0.2 * losses[0], losses
    assert greedy_answers(tiny_model, output / "adapter") == ANSWER_OF
    summary = json.loads((output / "summary.json").read_text())
    assert summary["samples"] > 40 * 4  # the samples in the 160 packed rows trained, not the rows


@pytest.mark.slow
def test_exploding_gradients_stop_with_exit_4_and_keep_the_last_good_checkpoint(
        tiny_model: Path, chat_data: Path, tmp_path: Path) -> None:
    output = tmp_path / "diverged"
    result = run_trainer(train_args(tiny_model, chat_data, output, "--learning_rate", "1e4", "--max_grad_norm", "0",
                                    "--grad_norm_limit", "100", "--logging_steps", "1", "--save_steps", "1",
                                    "--max_steps", "30"))
    assert result.returncode == 4, result.stderr[-3000:]
    assert "training stopped: gradient norm" in result.stderr and "exceeded --grad_norm_limit 100" in result.stderr
    assert "the last good checkpoint is" in result.stderr and "Traceback" not in result.stderr
    assert (output / "checkpoint-1" / "COMPLETE").is_file()
    assert not (output / "checkpoint-2").exists() and not (output / "adapter").exists()


def test_nan_loss_on_any_step_stops_and_skips_that_save() -> None:
    from transformers import TrainerControl

    from trainer.callbacks import DivergenceGuard

    guard = DivergenceGuard(grad_norm_limit=1e4)
    control = TrainerControl(should_save=True)
    guard.observe_step_loss(2.0, step=4)
    assert not guard.on_step_end(None, None, control).should_training_stop
    guard.observe_step_loss(float("nan"), step=5)
    control = guard.on_step_end(None, None, control)
    assert guard.stop_reason == "loss became nan at step 5"
    assert control.should_training_stop and not control.should_save


class StandInEvent:
    """What the guard needs of a torch.cuda.Event (none can be made without a GPU): the copy lands when the test
    says so, or when the guard waits for it."""

    def __init__(self) -> None:
        self.landed = False

    def query(self) -> bool:
        return self.landed

    def synchronize(self) -> None:
        self.landed = True


def test_guard_checks_a_late_value_before_any_save_and_at_the_end() -> None:
    from transformers import TrainerControl

    from trainer.callbacks import DivergenceGuard
    from trainer.deferred import DeferredScalar

    guard = DivergenceGuard(grad_norm_limit=1e4)
    in_flight = StandInEvent()
    guard.observe(DeferredScalar("loss", 5, float("nan"), in_flight))
    assert guard.on_step_end(None, None, TrainerControl()).should_training_stop is False  # not landed: not waited for
    guard.observe(DeferredScalar("grad_norm", 6, 1.0, None))  # queued behind step 5's loss
    assert guard.stop_reason is None
    in_flight.landed = True
    guard.on_step_end(None, None, TrainerControl())
    assert guard.stop_reason == "loss became nan at step 5"

    saving = DivergenceGuard(grad_norm_limit=1e4)
    saving.observe(DeferredScalar("grad_norm", 9, 3e4, StandInEvent()))
    control = saving.on_step_end(None, None, TrainerControl(should_save=True))  # a save waits for every value
    assert saving.stop_reason == "gradient norm 3e+04 exceeded --grad_norm_limit 10000 at step 9"
    assert control.should_training_stop and not control.should_save

    ending = DivergenceGuard(grad_norm_limit=1e4)
    ending.observe(DeferredScalar("loss", 12, float("inf"), StandInEvent()))
    ending.on_train_end(None, None, TrainerControl())
    assert ending.stop_reason == "loss became inf at step 12"

    one_of_two_ranks = DivergenceGuard(grad_norm_limit=1e4, every_step=True)  # every rank decides at the same step
    one_of_two_ranks.observe(DeferredScalar("grad_norm", 3, float("nan"), StandInEvent()))
    assert one_of_two_ranks.on_step_end(None, None, TrainerControl()).should_training_stop
    assert one_of_two_ranks.stop_reason == "gradient norm became nan at step 3"


def test_deferred_cuda_scalar_lands_without_a_sync() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from trainer.deferred import defer

    big = torch.randn(4096, 4096, device="cuda")
    loss = (big @ big).sum() * float("nan")
    scalar = defer("loss", loss, step=1)
    assert scalar.event is not None and scalar.host.is_pinned()
    assert math.isnan(scalar.value()) and scalar.ready()
    assert defer("loss", torch.tensor(2.5), step=2).event is None  # a CPU value is read at once


@pytest.mark.slow
def test_token_count_reaches_checkpoints_between_logs(tiny_model: Path, chat_data: Path, tmp_path: Path) -> None:
    output = tmp_path / "tokens"
    result = run_trainer(train_args(tiny_model, chat_data, output, "--max_steps", "7", "--save_steps", "3",
                                    "--logging_steps", "5"))
    assert result.returncode == 0, result.stderr[-3000:]

    def saved_count(step: int) -> int:
        return json.loads((output / f"checkpoint-{step}" / "trainer_state.json").read_text())["num_input_tokens_seen"]

    logged_at_5 = dict(logged(output, "tokens_seen"))[5]
    assert 3 * 8 < saved_count(3) < logged_at_5 < saved_count(6)  # no log before step 3: the save counted them
    assert json.loads((output / "summary.json").read_text())["tokens"] >= saved_count(6)


@pytest.mark.slow
def test_backend_unsloth_without_unsloth_is_one_line_exit_2(tiny_model: Path, chat_data: Path,
                                                            tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("unsloth") is not None:
        pytest.skip("unsloth is installed here")
    result = run_trainer(train_args(tiny_model, chat_data, tmp_path / "u", "--backend", "unsloth"))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pip install" in errors[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "u").exists()  # refused before anything was written


def test_unknown_compile_backend_is_one_line_naming_the_choices() -> None:
    from trainer.compiling import compile_decoder_layers

    with pytest.raises(BadInputError, match="'nope': not a torch.compile backend.*inductor"):
        compile_decoder_layers(torch.nn.Linear(2, 2), "nope")


def test_one_process_on_several_gpus_trains_on_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from trainer.hf_trainer import keep_one_gpu_per_process

    two_gpus = SimpleNamespace(n_gpu=2, _n_gpu=2)  # what TrainingArguments reports on a 2-GPU machine
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert keep_one_gpu_per_process(two_gpus) == 2 and two_gpus._n_gpu == 1  # no nn.DataParallel
    under_torchrun = SimpleNamespace(n_gpu=1, _n_gpu=1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert keep_one_gpu_per_process(under_torchrun) == 1 and under_torchrun._n_gpu == 1
