"""LoRA fine-tuning of a full-precision base, one run of a RunPlan: setup -> train -> cleanup.

Heavy libraries (torch, transformers, peft, datasets) are imported inside the methods, after the gate has passed and
the backend is chosen (trainer.plan).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.collator import PadCollator, pad_multiple
from trainer.compiling import compile_decoder_layers
from trainer.config import TrainConfig
from trainer.distributed import RecordingCollator, debug_enabled, debug_record, is_main_process, world_size
from trainer.errors import DivergedError, GPUOutOfMemoryError, RunInterruptedError, first_line, log
from trainer.loaders import load_data, load_model_for, load_tokenizer
from trainer.plan import RunPlan
from trainer.types import TokenizedExample

ADAPTER_DIR = "adapter"
PADDING_SAMPLE = 4096  # rows whose lengths estimate the padding of unpacked batches
PACKING_HINT_BELOW_FILL = 0.8  # suggest --packing when less than this share of batch tokens is real


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    main_process: bool  # only rank 0 reports, merges and validates


class LoRARecipe:
    """One training run of a RunPlan: setup (load, wrap, compile, build the Trainer), train, cleanup (summary)."""

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        self.config = plan.config
        self.output_dir = Path(plan.config.output_dir).expanduser()
        self.trainer: Any = None
        self.guard: Any = None
        self.interrupt: Any = None
        self.data: Any = None
        self.metrics: Any = None
        self.clock: Any = None
        self.out_of_memory: str | None = None  # the paragraph to exit with after torch.OutOfMemoryError

    # ---- setup ---------------------------------------------------------------------------------------------
    def setup(self) -> None:
        from transformers import set_seed

        from trainer.callbacks import DivergenceGuard, MetricsLogger, SaveOnInterrupt, StepClock
        from trainer.checkpoint import CompleteMarkerCallback
        from trainer.hf_trainer import build_trainer, keep_one_gpu_per_process, training_arguments

        args = training_arguments(self.config, has_eval=bool(self.config.eval_split or self.config.eval_dataset_path))
        visible = keep_one_gpu_per_process(args)
        if visible > 1:
            log(f"{visible} GPUs visible to one process: training on {args.device} only (transformers would spread "
                f"it over all of them with nn.DataParallel, which the compiled layers do not survive); to train on "
                f"all {visible}: torchrun --nproc_per_node {visible} -m trainer ...")
        set_seed(self.config.seed)  # before the LoRA weights are initialised, so runs (and resumes) repeat exactly
        self.output_dir.mkdir(parents=True, exist_ok=True)
        tokenizer = load_tokenizer(self.config)
        with args.main_process_first(desc="tokenized data cache"):  # rank 0 builds it, the others then reuse it
            self.data = load_data(self.config, tokenizer)
        model = load_model_for(self.plan.backend, self.config)
        if self.plan.fused_lora:
            from trainer.kernels.fused_lora import enable_fused_lora

            log(f"--fused_lora {self.config.fused_lora}: {enable_fused_lora(model).describe()}")
        self._use_compile_cache()
        if self.config.torch_compile:
            compiled = compile_decoder_layers(model, self.config.torch_compile_backend, self.plan.compile_mode,
                                              self.config.activation_memory_budget)
            log(f"--torch_compile: {compiled}")
        train_set, eval_set, collator = self._datasets_and_collator(model, tokenizer)
        self.guard = DivergenceGuard(self.config.grad_norm_limit, every_step=world_size() > 1)  # ranks stop together
        self.interrupt = SaveOnInterrupt()
        self.metrics = MetricsLogger(self.output_dir)
        self.clock = StepClock()
        callbacks = [CompleteMarkerCallback(), self.interrupt, self.guard, self.metrics, self.clock]  # guard after
        self.trainer = build_trainer(args, model, tokenizer, (train_set, eval_set), collator, callbacks,
                                     fused_ce=self.plan.fused_ce, guard=self.guard)
        self.clock.counter = self.trainer.tokens_so_far

    def _datasets_and_collator(self, model: Any, tokenizer: Any) -> tuple[Any, Any, Any]:
        """The train and eval sets as the collator takes them: tokenized rows, or packed rows under --packing."""
        if not self.plan.packing.on:
            multiple = pad_multiple(self.config.torch_compile)
            self._hint_packing(multiple)
            collator = PadCollator(tokenizer.pad_token_id, multiple)
            if self.plan.rows_attention:
                from trainer.attention import enable_rows_attention

                log(f"attention {enable_rows_attention(model)}: SDPA, cuDNN's kernel first for batches without "
                    "padding")
            return self.data.train, self.data.eval, RecordingCollator(collator) if debug_enabled() else collator
        from trainer.packing import PackedCollator, enable_packed_attention, pack_examples, packing_efficiency

        def packed(rows: Any) -> list[Any]:
            examples = [TokenizedExample(tuple(r["input_ids"]), tuple(r["labels"])) for r in rows]
            return pack_examples(examples, self.config.max_seq_length)

        rows = packed(self.data.train)
        eval_rows = packed(self.data.eval) if self.data.eval is not None else None  # the same per-sample attention
        backend = enable_packed_attention(model)
        log(f"packing: {len(self.data.train)} samples -> {len(rows)} rows of {self.config.max_seq_length} tokens "
            f"({packing_efficiency(rows, self.config.max_seq_length):.0%} filled), attention {backend}")
        return rows, eval_rows, PackedCollator(self.config.max_seq_length, tokenizer.pad_token_id)

    def _hint_packing(self, multiple: int) -> None:
        """Say how much of the padded batches is padding (from up to PADDING_SAMPLE rows) when --packing would pay."""
        import random

        from trainer.packing import padded_batch_fill

        train = self.data.train
        rows = random.Random(self.config.seed).sample(range(len(train)), min(len(train), PADDING_SAMPLE))
        lengths = [len(ids) for ids in train.select(rows)["input_ids"]] if rows else []
        fill = padded_batch_fill(lengths, self.config.per_device_train_batch_size, multiple, self.config.seed)
        if lengths and fill < PACKING_HINT_BELOW_FILL:
            log(f"padding: batches of {self.config.per_device_train_batch_size} padded to their longest row are "
                f"{1 - fill:.0%} padding on this data; --packing trains without it (benchmarks/README.md)")

    def _use_compile_cache(self) -> None:
        """A persistent Inductor cache whenever something compiles (--torch_compile, the fused loss on a GPU)."""
        import torch

        if not (self.config.torch_compile or torch.cuda.is_available()):
            return
        from trainer.fast_defaults import enable_inductor_caches, use_compile_cache

        cache = use_compile_cache()
        enable_inductor_caches()
        log(cache.describe())

    def _after_out_of_memory(self, error: BaseException) -> str:
        """After torch.OutOfMemoryError: frees the step's tensors, saves a checkpoint of the last finished step when
        one is due, and returns the paragraph to exit with (the measured peak, the flags that should fit)."""
        import gc

        import torch

        from trainer.memory import GIB

        state = self.trainer.state
        peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
        asked = requested_bytes(str(error))
        self.trainer.model.zero_grad(set_to_none=True)  # the unfinished step's gradients
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        saved = self._save_after_out_of_memory(state)
        total = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 0
        where = (f"{peak / GIB:.1f} GiB allocated at the peak" + (f", {asked / GIB:.2f} GiB more asked for" if asked
                 else "") + (f", of {total / GIB:.1f} GiB on {torch.cuda.get_device_name(0)}" if total else ""))
        report = self.plan.memory.report if self.plan.memory else None
        estimate = f"; the estimate before loading was {report.estimated_peak_gib:.1f} GiB" \
            if report and report.estimated_peak_gib else ""
        return (f"out of GPU memory at step {state.global_step + 1} ({where}{estimate}), with "
                f"{memory_flags(self.config)}. {saved} Flags that should fit: {self._flags_that_fit(peak + asked)}; "
                "then continue with --resume_from_checkpoint auto. Memory per setting: README.md (Trainer, "
                "Memory) and benchmarks/README.md.")

    def _save_after_out_of_memory(self, state: Any) -> str:
        from trainer.checkpoint import newest_complete

        last = newest_complete(self.output_dir)
        if state.global_step == 0:
            return "No step finished, so there is nothing to save."
        if last is not None and last.name == f"checkpoint-{state.global_step}":
            return f"Step {state.global_step} is saved in {last}."
        try:
            self.trainer._save_checkpoint(self.trainer.model, trial=None)
            self.trainer.control = self.trainer.callback_handler.on_save(self.trainer.args, state,
                                                                         self.trainer.control)  # COMPLETE marker
        except (RuntimeError, OSError) as error:  # torch.OutOfMemoryError is a RuntimeError
            return (f"Saving step {state.global_step} failed too ({first_line(error)}); the newest checkpoint is "
                    f"{last}.")
        return f"The weights after step {state.global_step} are saved in {newest_complete(self.output_dir)}."

    def _flags_that_fit(self, needed: int) -> str:
        """The plan trainer.memory picks once its estimate is scaled up to what this run measured."""
        import torch

        from trainer.memory import choose_plan, estimate_peak, usable_bytes

        fit = self.plan.memory
        if fit is None or fit.plan is None or not torch.cuda.is_available():
            return ("--gradient_checkpointing, or half the --per_device_train_batch_size with twice the "
                    "--gradient_accumulation_steps")
        shape, plan = fit.shape, fit.plan
        free, total = torch.cuda.mem_get_info()
        estimated = estimate_peak(shape, plan).total
        scale = max(1.0, needed / max(1, estimated)) * 1.05  # the estimate fell short by at least this much
        usable = int(usable_bytes(free + torch.cuda.memory_allocated(), total) / scale)
        choice = choose_plan(shape, plan, min(usable, estimated - 1))  # something leaner than what failed
        return choice.chosen.flags() + ("" if choice.fits else " (the leanest setting; it may still not fit)")

    # ---- train ---------------------------------------------------------------------------------------------
    def train(self) -> tuple[float, Any]:
        from trainer.checkpoint import remove_incomplete, resolve_resume

        resume = resolve_resume(self.config.resume_from_checkpoint, self.output_dir)
        if is_main_process():
            for path in remove_incomplete(self.output_dir):
                log(f"removed incomplete checkpoint {path} (a save was interrupted)")
        log(f"resuming from {resume}" if resume else "starting from step 0")
        started = time.perf_counter()
        import torch

        try:
            self.trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        except torch.OutOfMemoryError as error:
            self.out_of_memory = self._after_out_of_memory(error)
            return time.perf_counter() - started, self.trainer.state
        debug_record("setup", [f"world_size {self.trainer.args.world_size}, model wrapped in "
                               f"{type(self.trainer.model_wrapped).__name__}, resumed from {resume}"])
        if debug_enabled():  # ranks whose gradients were synchronised end with the same LoRA weights
            debug_record("weights", [f"lora sum {trainable_checksum(self.trainer.model):.12e}"])
        return time.perf_counter() - started, self.trainer.state

    # ---- cleanup -------------------------------------------------------------------------------------------
    def cleanup(self, wall: float, state: Any) -> TrainResult:
        """Saves the adapter unless the run stopped early, writes the summary (rank 0). Raises GPUOutOfMemoryError,
        DivergedError or RunInterruptedError (rank 0) after saving what can be saved."""
        from trainer.summary import (
            PlotUnavailable,
            build_summary,
            plot_loss,
            read_metrics,
            steady_state,
            write_summary,
        )

        stopped = self.guard.stop_reason or ("interrupted (Ctrl-C)" if self.interrupt.interrupted else None)
        if self.out_of_memory:
            stopped = f"out of GPU memory at step {state.global_step + 1}"
        if stopped is None:
            self._save_adapter()
        samples = self._samples_trained()  # every rank takes part in the sum
        if not self.trainer.is_world_process_zero():
            return TrainResult(self.output_dir / ADAPTER_DIR, main_process=False)
        metrics = read_metrics(self.output_dir)
        tokens = (state.num_input_tokens_seen or 0) - self.metrics.start_tokens  # this run's, not the resumed ones
        steady = steady_state(self.clock.step_ends, self.clock.tokens_at_end(), tokens / samples if samples else None)
        summary = build_summary(state.global_step, wall, samples, tokens, peak_gpu_memory_gib(), metrics, stopped,
                                steady, self.plan.memory.report if self.plan.memory else None)
        write_summary(self.output_dir, summary)
        try:
            plot_loss(self.output_dir, metrics)
        except PlotUnavailable as error:
            log(f"loss.png not written: matplotlib cannot be imported here ({error}); the metrics are in "
                f"{self.output_dir / 'metrics.jsonl'}; fix: pip install matplotlib built for this NumPy")
        log(summary.describe())
        self._raise_if_stopped()
        return TrainResult(self.output_dir / ADAPTER_DIR, main_process=True)

    def _samples_trained(self) -> int:
        """Samples trained in this run on all ranks (packed rows counted by the samples in them)."""
        import torch

        count = self.trainer.samples_trained
        if self.trainer.args.world_size <= 1:
            return count
        total = self.trainer.accelerator.reduce(torch.tensor([count], device=self.trainer.args.device), "sum")
        return int(total.item())

    def _save_adapter(self) -> None:
        target = self.output_dir / ADAPTER_DIR
        staging = self.output_dir / f".{ADAPTER_DIR}.tmp"
        gathered = self.trainer.adapter_state_dict()  # --fsdp: every rank sends its shards (else None)
        if self.trainer.is_world_process_zero():
            shutil.rmtree(staging, ignore_errors=True)
            self.trainer.model.save_pretrained(str(staging), safe_serialization=True, state_dict=gathered)
            self.trainer.processing_class.save_pretrained(str(staging))
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
            log(f"adapter saved to {target}")

    def _raise_if_stopped(self) -> None:
        from trainer.checkpoint import newest_complete

        last = newest_complete(self.output_dir)
        if self.out_of_memory:
            raise GPUOutOfMemoryError(self.out_of_memory)
        if self.guard.stop_reason:
            raise DivergedError(f"training stopped: {self.guard.stop_reason}. Weights after this point are not saved; "
                                f"the last good checkpoint is {last}. Lower --learning_rate or raise --warmup_ratio, "
                                "then resume with --resume_from_checkpoint PATH")
        if self.interrupt.interrupted:
            raise RunInterruptedError(f"interrupted: checkpoint saved at {last}; continue with "
                                      "--resume_from_checkpoint auto")


def trainable_checksum(model: Any) -> float:
    """Sum of every trainable weight (float64): equal on all ranks when DDP kept them in sync."""
    from trainer.sharded_checkpoints import full_tensor  # --fsdp: the whole weight, not this rank's shard

    return float(sum(full_tensor(p).detach().double().sum().item() for p in model.parameters() if p.requires_grad))


def memory_flags(config: TrainConfig) -> str:
    """The memory-relevant flags of a run, as one would type them."""
    parts = [f"--per_device_train_batch_size {config.per_device_train_batch_size}",
             f"--gradient_accumulation_steps {config.gradient_accumulation_steps}",
             f"--max_seq_length {config.max_seq_length}"]
    if config.torch_compile:
        parts.append("--torch_compile")
    if config.activation_memory_budget < 1:
        parts.append(f"--activation_memory_budget {config.activation_memory_budget:g}")
    if config.gradient_checkpointing:
        parts.append("--gradient_checkpointing")
    return " ".join(parts)


def requested_bytes(message: str) -> int:
    """The allocation torch's out-of-memory message says failed ("Tried to allocate 1.96 GiB"), in bytes; 0 if none."""
    import re

    found = re.search(r"Tried to allocate ([0-9.]+) (GiB|MiB|KiB|B)", message)
    if not found:
        return 0
    return int(float(found.group(1)) * {"GiB": 2**30, "MiB": 2**20, "KiB": 2**10, "B": 1}[found.group(2)])


def peak_gpu_memory_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)
