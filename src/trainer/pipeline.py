"""The train command's pipeline: plan -> train -> merge (--merge) -> validate (--validate), returning one result.

Run after the gate. A merge or validation failure is raised as StageFailedError, whose message names the stage and
whose exit code is the stage's own (bad input 2, refused 3, check failed 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer.config import TrainConfig
from trainer.distributed import is_main_process, wait_for_every_rank
from trainer.errors import BadInputError, CheckFailedError, RefusedError, TrainerError, log

MERGED_DIR = "merged"
VALIDATION_SET_FILE = "validation_set.jsonl"


class StageFailedError(TrainerError):
    """--merge or --validate failed after training; the exit code is the failed stage's."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class PipelineResult:
    """What the run produced; `message` is the closing line (empty on ranks other than 0)."""

    message: str
    adapter_dir: Path | None = None
    merged_dir: Path | None = None
    validation: Any = None  # trainer.validate.ValidationResult with --validate


def run_pipeline(config: TrainConfig) -> PipelineResult:
    """Plan, train and, with --merge/--validate, merge and validate on rank 0. Raises TrainerError subclasses."""
    from trainer.plan import build_run_plan
    from trainer.recipe import LoRARecipe

    log("settings: " + ", ".join(f"{k}={v}" for k, v in asdict(config).items() if v not in (None, False, "")))
    recipe = LoRARecipe(build_run_plan(config))
    recipe.setup()
    wall, state = recipe.train()
    trained = recipe.cleanup(wall, state)
    wait_for_every_rank()  # every rank has trained and saved; rank 0 alone merges and validates from here
    if not trained.main_process:
        return PipelineResult("")
    if not (config.merge and is_main_process()):
        return PipelineResult(f"done: adapter in {trained.adapter_dir}", trained.adapter_dir)
    test_set = validation_test_set(config, recipe.data) if config.validate else None
    return merge_and_validate(config, trained.adapter_dir, test_set)


def validation_test_set(config: TrainConfig, data: Any) -> Path:
    """--validate_test_set, else --eval_dataset_path, else the held-out rows copied (verbatim) into a JSONL file."""
    if config.validate_test_set:
        return Path(config.validate_test_set)
    if config.eval_dataset_path:
        return Path(config.eval_dataset_path)
    held_out = set(data.eval["line"])
    lines = Path(config.dataset_path).read_text(encoding="utf-8").splitlines()
    target = Path(config.output_dir) / VALIDATION_SET_FILE
    from envdoctor import write_atomic

    write_atomic(target, "".join(f"{lines[n - 1]}\n" for n in sorted(held_out)))
    log(f"validation set: the {len(held_out)} held-out rows, written to {target}")
    return target


def merge_and_validate(config: TrainConfig, adapter: Path, test_set: Path | None) -> PipelineResult:
    """Merge the adapter into OUTPUT_DIR/merged (replacing an older merge of this run), then validate it on test_set
    (None: no validation). Raises StageFailedError."""
    from trainer import merge

    merged_dir = Path(config.output_dir) / MERGED_DIR
    try:
        result = merge.merge_adapter(config.model_name, adapter, merged_dir, overwrite=True, revision=config.revision,
                                     log=log)
    except BadInputError as error:
        raise StageFailedError(f"merge: {error}", error.exit_code) from None
    except RefusedError as error:
        raise StageFailedError(f"merge refused: {error}", error.exit_code) from None
    except CheckFailedError as error:
        raise StageFailedError(f"merge failed: {error}", error.exit_code) from None
    log(merge.render_result(result))
    if config.chat_template:  # a template the base did not have: stop generating where its assistant turns end
        from trainer.chat_templates import stop_generation_at_end_of_turn

        stops = stop_generation_at_end_of_turn(merged_dir)
        if stops:
            log(f"--chat_template: {stops}")
    if test_set is None:
        return PipelineResult(f"done: adapter in {adapter}, merged model in {merged_dir}", adapter, merged_dir)
    return validate_merged(config, adapter, merged_dir, test_set)


def validate_merged(config: TrainConfig, adapter: Path, merged_dir: Path, test_set: Path) -> PipelineResult:
    """Validate the merged model; a failed check raises StageFailedError (exit 1) with the summary."""
    from trainer import validate

    try:
        result = validate.validate_model(merged_dir, test_set, max_perplexity=config.max_perplexity,
                                         max_seq_length=config.max_seq_length,
                                         dataset_format=config.dataset_format, log=log)
    except BadInputError as error:  # ValidationInputError, DataError
        raise StageFailedError(f"validate: {error}", error.exit_code) from None
    summary = validate.render_summary(result)
    if not result.passed:
        raise StageFailedError(f"{summary}\nvalidation FAILED: merged model in {merged_dir}", result.exit_code)
    return PipelineResult(f"{summary}\nvalidation passed: merged model in {merged_dir}", adapter, merged_dir, result)
