"""LoRA fine-tuning of a full-precision base: init (early checks) -> setup -> train -> cleanup.

Heavy libraries (torch, transformers, peft, datasets) are imported here, after the gate has passed.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from trainer.config import AUTO_ON_OFF, AUTO_ON_OFF_FLAGS, BACKENDS, COMPILE_MODES, TrainConfig
from trainer.distributed import RecordingCollator, debug_enabled, debug_record, is_main_process, world_size
from trainer.fast_defaults import packing_decision, packing_request
from trainer.types import IGNORE_INDEX, TokenizedExample

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_REFUSED, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_OUT_OF_MEMORY = 5
MEMORY_FIT_CHOICES = ("auto", "off")
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
VALIDATION_SET_FILE = "validation_set.jsonl"


class TrainerInputError(ValueError):
    """Bad flags or inputs, found before training; the message says what to change."""


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    message: str


def log(message: str) -> None:
    if is_main_process():
        print(f"[trainer] {message}", file=sys.stderr, flush=True)


PAD_MULTIPLE = 8  # padded batch lengths: a multiple of 8 suits tensor cores
COMPILE_PAD_MULTIPLE = 256  # under --torch_compile: at most max_seq_length/256 batch shapes, so few recompiles
PADDING_SAMPLE = 4096  # rows whose lengths estimate the padding of unpacked batches
PACKING_HINT_BELOW_FILL = 0.8  # suggest --packing when less than this share of batch tokens is real


class PadCollator:
    """Pads input_ids/labels to the longest sample in the batch (rounded up to a multiple) and adds the mask."""

    def __init__(self, pad_token_id: int, multiple: int = PAD_MULTIPLE) -> None:
        self.pad_token_id = pad_token_id
        self.multiple = multiple

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = -(-max(len(row["input_ids"]) for row in rows) // self.multiple) * self.multiple
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "attention_mask": []}
        for row in rows:
            missing = longest - len(row["input_ids"])
            batch["input_ids"].append(list(row["input_ids"]) + [self.pad_token_id] * missing)
            batch["labels"].append(list(row["labels"]) + [IGNORE_INDEX] * missing)
            batch["attention_mask"].append([1] * len(row["input_ids"]) + [0] * missing)
        return {name: torch.tensor(values, dtype=torch.long) for name, values in batch.items()}


class LoRARecipe:
    def __init__(self, config: TrainConfig, backend: Any = None) -> None:
        check_config(config)
        self.config = config
        self.packing = packing_decision(config)
        self.backend = backend  # trainer.backends.BackendChoice; None = the plain transformers + peft path
        self.output_dir = Path(config.output_dir).expanduser()
        self.trainer: Any = None
        self.guard: Any = None
        self.interrupt: Any = None
        self.data: Any = None
        self.metrics: Any = None
        self.clock: Any = None
        self.memory: Any = None  # trainer.summary.MemoryReport, on a GPU
        self.memory_plan: Any = None  # (ModelShape, MemoryPlan) the run trains with, when the shape is known
        self.out_of_memory: str | None = None  # the paragraph to exit with after torch.OutOfMemoryError

    # ---- setup ---------------------------------------------------------------------------------------------
    def setup(self) -> None:
        from transformers import set_seed

        from trainer.callbacks import DivergenceGuard, MetricsLogger, SaveOnInterrupt, StepClock
        from trainer.checkpoint import CompleteMarkerCallback

        log(self.packing.describe())
        self._fit_memory()  # before the arguments: it may change the micro-batch and accumulation
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
        model = load_model_for(self.backend, self.config)
        if use_fused_lora(self.config, self.backend):
            from trainer.kernels.fused_lora import enable_fused_lora

            log(f"--fused_lora {self.config.fused_lora}: {enable_fused_lora(model).describe()}")
        self._use_compile_cache()
        if self.config.torch_compile:
            compiled = compile_decoder_layers(model, self.config.torch_compile_backend, compile_mode(self.config),
                                              self.config.activation_memory_budget)
            log(f"--torch_compile: {compiled}")
        train_set, collator = self._train_set_and_collator(model, tokenizer)
        self.guard = DivergenceGuard(self.config.grad_norm_limit, every_step=world_size() > 1)  # ranks stop together
        self.interrupt = SaveOnInterrupt()
        self.metrics = MetricsLogger(self.output_dir)
        self.clock = StepClock()
        callbacks = [CompleteMarkerCallback(), self.interrupt, self.guard, self.metrics, self.clock]  # guard after
        fused = use_fused_ce(self.config)
        log(f"loss: {'chunked fused cross-entropy' if fused else 'transformers cross-entropy'} (--fused_ce "
            f"{self.config.fused_ce})")
        self.trainer = build_trainer(args, model, tokenizer, (train_set, self.data.eval), collator, callbacks,
                                     fused_ce=fused, guard=self.guard)
        self.clock.counter = self.trainer.tokens_so_far

    def _train_set_and_collator(self, model: Any, tokenizer: Any) -> tuple[Any, Any]:
        if not self.packing.on:
            multiple = COMPILE_PAD_MULTIPLE if self.config.torch_compile else PAD_MULTIPLE
            self._hint_packing(multiple)
            collator = PadCollator(tokenizer.pad_token_id, multiple)
            if use_rows_attention(self.backend):
                from trainer.attention import enable_rows_attention

                log(f"attention {enable_rows_attention(model)}: SDPA, cuDNN's kernel first for batches without "
                    "padding")
            return self.data.train, RecordingCollator(collator) if debug_enabled() else collator
        from trainer.packing import PackedCollator, enable_packed_attention, pack_examples, packing_efficiency

        examples = [TokenizedExample(tuple(r["input_ids"]), tuple(r["labels"])) for r in self.data.train]
        rows = pack_examples(examples, self.config.max_seq_length)
        backend = enable_packed_attention(model)
        log(f"packing: {len(examples)} samples -> {len(rows)} rows of {self.config.max_seq_length} tokens "
            f"({packing_efficiency(rows, self.config.max_seq_length):.0%} filled), attention {backend}")
        return rows, PackedCollator(self.config.max_seq_length, tokenizer.pad_token_id)

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

    def _fit_memory(self) -> None:
        """Estimates the peak GPU memory from config.json before any weight loads and, with --memory_fit auto, trains
        with the fastest settings that fit (trainer.memory). Logs the estimate and the choice."""
        import torch

        from trainer.memory import GIB, ShapeUnknown, choose_plan, estimate_peak, usable_bytes
        from trainer.summary import MemoryReport

        if not torch.cuda.is_available():
            return
        free, total = torch.cuda.mem_get_info(int(os.environ.get("LOCAL_RANK", "0")))
        usable = usable_bytes(free, total)
        try:
            shape = model_shape(self.config)
        except (ShapeUnknown, OSError, ValueError) as error:
            line = (f"memory: no estimate ({_first_line(error)}); training with the settings as given, "
                    f"{free / GIB:.1f} GiB free")
            log(line)
            self.memory = MemoryReport(None, round(total / GIB, 2), round(usable / GIB, 2), line, None)
            return
        plan = memory_plan(self.config, self.packing.on)
        if self.config.memory_fit == "off" or not _hf_backend(self.backend):
            why = "--memory_fit off" if self.config.memory_fit == "off" else \
                f"the estimate is calibrated on the hf backend, not {self.backend.name}"
            estimate = estimate_peak(shape, plan)
            line = (f"memory: estimated peak {estimate.describe()} against {usable / GIB:.1f} GiB usable; "
                    f"settings kept as given ({why})")
            chosen = plan
        else:
            choice = choose_plan(shape, plan, usable)
            estimate, chosen, line = choice.estimate, choice.chosen, choice.describe()
            self.config = replace(self.config, per_device_train_batch_size=chosen.micro_batch,
                                  gradient_accumulation_steps=chosen.accumulation,
                                  activation_memory_budget=chosen.activation_budget,
                                  gradient_checkpointing=chosen.checkpointing)
        log(line)
        self.memory_plan = (shape, chosen)
        self.memory = MemoryReport(round(estimate.total_gib, 2), round(total / GIB, 2), round(usable / GIB, 2), line,
                                   chosen.flags())

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
        asked = _requested_bytes(str(error))
        self.trainer.model.zero_grad(set_to_none=True)  # the unfinished step's gradients
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        saved = self._save_after_out_of_memory(state)
        total = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 0
        where = (f"{peak / GIB:.1f} GiB allocated at the peak" + (f", {asked / GIB:.2f} GiB more asked for" if asked
                 else "") + (f", of {total / GIB:.1f} GiB on {torch.cuda.get_device_name(0)}" if total else ""))
        estimate = f"; the estimate before loading was {self.memory.estimated_peak_gib:.1f} GiB" \
            if self.memory and self.memory.estimated_peak_gib else ""
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
            return (f"Saving step {state.global_step} failed too ({_first_line(error)}); the newest checkpoint is "
                    f"{last}.")
        return f"The weights after step {state.global_step} are saved in {newest_complete(self.output_dir)}."

    def _flags_that_fit(self, needed: int) -> str:
        """The plan trainer.memory picks once its estimate is scaled up to what this run measured."""
        import torch

        from trainer.memory import choose_plan, estimate_peak, usable_bytes

        if self.memory_plan is None or not torch.cuda.is_available():
            return ("--gradient_checkpointing, or half the --per_device_train_batch_size with twice the "
                    "--gradient_accumulation_steps")
        shape, plan = self.memory_plan
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
    def cleanup(self, wall: float, state: Any) -> Outcome:
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
            return Outcome(EXIT_OK, "")
        metrics = read_metrics(self.output_dir)
        tokens = (state.num_input_tokens_seen or 0) - self.metrics.start_tokens  # this run's, not the resumed ones
        steady = steady_state(self.clock.step_ends, self.clock.tokens_at_end(), tokens / samples if samples else None)
        summary = build_summary(state.global_step, wall, samples, tokens, peak_gpu_memory_gib(), metrics, stopped,
                                steady, self.memory)
        write_summary(self.output_dir, summary)
        try:
            plot_loss(self.output_dir, metrics)
        except PlotUnavailable as error:
            log(f"loss.png not written: matplotlib cannot be imported here ({error}); the metrics are in "
                f"{self.output_dir / 'metrics.jsonl'}; fix: pip install matplotlib built for this NumPy")
        log(summary.describe())
        return self._outcome()

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
        if self.trainer.is_world_process_zero():
            shutil.rmtree(staging, ignore_errors=True)
            self.trainer.model.save_pretrained(str(staging), safe_serialization=True)
            self.trainer.processing_class.save_pretrained(str(staging))
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
            log(f"adapter saved to {target}")

    def _outcome(self) -> Outcome:
        from trainer.checkpoint import newest_complete

        last = newest_complete(self.output_dir)
        if self.out_of_memory:
            return Outcome(EXIT_OUT_OF_MEMORY, self.out_of_memory)
        if self.guard.stop_reason:
            return Outcome(EXIT_DIVERGED, f"training stopped: {self.guard.stop_reason}. Weights after this point are "
                           f"not saved; the last good checkpoint is {last}. Lower --learning_rate or raise "
                           "--warmup_ratio, then resume with --resume_from_checkpoint PATH")
        if self.interrupt.interrupted:
            return Outcome(EXIT_INTERRUPTED, f"interrupted: checkpoint saved at {last}; continue with "
                           "--resume_from_checkpoint auto")
        return Outcome(EXIT_OK, f"done: adapter in {self.output_dir / ADAPTER_DIR}")


def trainable_checksum(model: Any) -> float:
    """Sum of every trainable weight (float64): equal on all ranks when DDP kept them in sync."""
    return float(sum(p.detach().double().sum().item() for p in model.parameters() if p.requires_grad))


def check_config(config: TrainConfig) -> None:
    """Early checks on flag values, before anything heavy loads. Raises TrainerInputError."""
    from trainer.config import DATASET_FORMATS

    problems = []
    if not config.model_name:
        problems.append("--model_name is required (a local model directory or a hub id)")
    if not config.dataset_path or not Path(config.dataset_path).is_file():
        problems.append(f"--dataset_path {config.dataset_path!r}: no such file; pass a JSONL file")
    if config.dataset_format not in DATASET_FORMATS:
        problems.append(f"--dataset_format must be one of {', '.join(DATASET_FORMATS)}")
    try:
        packing_request(config.packing)
    except ValueError as error:
        problems.append(str(error))
    if config.memory_fit not in MEMORY_FIT_CHOICES:
        problems.append(f"--memory_fit must be one of {', '.join(MEMORY_FIT_CHOICES)}")
    if config.on_bad_row not in ("fail", "skip"):
        problems.append("--on_bad_row must be fail or skip")
    if not 0 <= config.eval_split < 1:
        problems.append("--eval_split must be in [0, 1)")
    problems += _training_flag_problems(config)
    if problems:
        raise TrainerInputError("; ".join(problems))


def _training_flag_problems(config: TrainConfig) -> list[str]:
    problems = []
    if not 0 <= config.warmup_ratio < 1:
        problems.append(f"--warmup_ratio {config.warmup_ratio}: must be a fraction of the steps in [0, 1)")
    if config.backend not in BACKENDS:
        problems.append(f"--backend must be one of {', '.join(BACKENDS)}")
    for flag in AUTO_ON_OFF_FLAGS:
        if getattr(config, flag) not in AUTO_ON_OFF:
            problems.append(f"--{flag} must be one of {', '.join(AUTO_ON_OFF)}")
    if config.torch_compile_mode not in COMPILE_MODES:
        problems.append(f"--torch_compile_mode must be one of {', '.join(COMPILE_MODES)}")
    elif config.torch_compile_mode not in ("auto", "default") and config.torch_compile_backend != "inductor":
        problems.append(f"--torch_compile_mode {config.torch_compile_mode} needs --torch_compile_backend inductor "
                        f"(it is {config.torch_compile_backend}); drop one of them")
    budget = config.activation_memory_budget
    if not 0 < budget <= 1:
        problems.append(f"--activation_memory_budget {budget}: must be a share in (0, 1], e.g. 0.6")
    elif budget < 1 and not (config.torch_compile and config.torch_compile_backend == "inductor"):
        problems.append(f"--activation_memory_budget {budget} needs --torch_compile with the inductor backend (the "
                        "compiler chooses what to recompute); without it use --gradient_checkpointing")
    if config.fused_lora == "on" and config.backend == "unsloth":
        problems.append("--fused_lora on does not apply to --backend unsloth (Unsloth fuses its own LoRA); drop it")
    if config.validate and not config.merge:
        problems.append("--validate needs --merge (it validates the merged model)")
    if config.validate and not (config.validate_test_set or config.eval_dataset_path or config.eval_split > 0):
        problems.append("--validate needs a test set: pass --validate_test_set PATH, --eval_dataset_path PATH or "
                        "--eval_split 0.01")
    if config.validate_test_set and not Path(config.validate_test_set).is_file():
        problems.append(f"--validate_test_set {config.validate_test_set!r}: no such file; pass a JSONL file")
    return problems


def model_shape(config: TrainConfig) -> Any:
    """trainer.memory.ModelShape from the model's config.json (local directory, or the hub cache), no weights."""
    from transformers import AutoConfig

    from trainer.memory import ModelShape

    loaded = AutoConfig.from_pretrained(config.model_name, revision=config.revision,
                                        trust_remote_code=config.trust_remote_code)
    return ModelShape.from_config(loaded.to_dict())


def memory_plan(config: TrainConfig, packing: bool) -> Any:
    """trainer.memory.MemoryPlan of these settings (compiled layers count as such with the inductor backend only)."""
    from trainer.memory import MemoryPlan

    return MemoryPlan(micro_batch=config.per_device_train_batch_size, accumulation=config.gradient_accumulation_steps,
                      seq_len=config.max_seq_length, packing=packing,
                      compile=config.torch_compile and config.torch_compile_backend == "inductor",
                      checkpointing=config.gradient_checkpointing, activation_budget=config.activation_memory_budget,
                      fused_ce=use_fused_ce(config), lora_r=config.lora_r, lora_targets=tuple(config.target_modules),
                      lora_dropout=config.lora_dropout > 0)


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


def _requested_bytes(message: str) -> int:
    """The allocation torch's out-of-memory message says failed ("Tried to allocate 1.96 GiB"), in bytes; 0 if none."""
    import re

    found = re.search(r"Tried to allocate ([0-9.]+) (GiB|MiB|KiB|B)", message)
    if not found:
        return 0
    return int(float(found.group(1)) * {"GiB": 2**30, "MiB": 2**20, "KiB": 2**10, "B": 1}[found.group(2)])


def use_fused_ce(config: TrainConfig) -> bool:
    """--fused_ce auto: on with --packing (fixed long rows, where the full logits cost the most memory). Under DDP the
    loss runs the wrapper's forward (gradient sync) with lm_head as identity; --torch_compile compiles the decoder
    layers in place, so the fused loss runs them compiled too (benchmarks/train_speed.py `trainer+compile`)."""
    if config.fused_ce != "auto":
        return config.fused_ce == "on"
    return packing_decision(config).on


def compile_mode(config: TrainConfig, on_gpu: bool | None = None) -> str | None:
    """--torch_compile_mode auto: max-autotune-no-cudagraphs with --packing and inductor on a GPU (rows of one shape,
    so Inductor tunes each GEMM and kernel once; +4% measured in benchmarks/README.md section 1b), else
    torch.compile's default: unpacked batches come in several shapes, each of which would be tuned again, and the
    gain was measured on a GPU only. None means the default."""
    mode = config.torch_compile_mode
    if mode == "auto":
        if on_gpu is None:
            import torch

            on_gpu = torch.cuda.is_available()
        tuned = packing_decision(config).on and config.torch_compile_backend == "inductor" and on_gpu
        mode = "max-autotune-no-cudagraphs" if tuned else None
    return None if mode == "default" else mode


def use_fused_lora(config: TrainConfig, backend: Any = None) -> bool:
    """--fused_lora auto: on when training runs on a GPU with the hf backend (benchmarks/README.md: fused LoRA);
    Unsloth's backend brings its own LoRA kernels."""
    if not _hf_backend(backend):
        return False
    if config.fused_lora != "auto":
        return config.fused_lora == "on"
    import torch

    return torch.cuda.is_available()


def use_rows_attention(backend: Any = None) -> bool:
    """Unpacked batches train with trainer.attention (SDPA, cuDNN first without padding) on a GPU with the hf
    backend; Unsloth brings its own attention. With --packing, enable_packed_attention chooses."""
    import torch

    return _hf_backend(backend) and torch.cuda.is_available()


def _hf_backend(backend: Any) -> bool:
    """The default transformers + PEFT path (None: no backend chosen, which means hf)."""
    return backend is None or backend.name == "hf"


def load_tokenizer(config: Any) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model_name, revision=config.revision,
                                                  trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as error:
        raise TrainerInputError(f"cannot load the tokenizer of {config.model_name}: {_first_line(error)}. Pass a "
                                "local model directory, or a hub id that is cached or reachable") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def load_data(config: Any, tokenizer: Any) -> Any:
    from trainer.data import DataSettings, prepare_data

    settings = DataSettings(config.dataset_format, config.on_bad_row, config.max_seq_length,
                            config.truncate_long_rows, config.eval_split, config.seed)
    cache_root = Path(config.cache_dir) if config.cache_dir else Path(config.output_dir) / "tokenized"
    eval_path = Path(config.eval_dataset_path) if config.eval_dataset_path else None
    data = prepare_data(Path(config.dataset_path), tokenizer, settings, cache_root, config.dataloader_num_workers,
                        eval_path, config.model_name)
    log(f"data cache {'reused' if data.reused else 'built'}: {data.cache_path}")
    log(data.train_stats.describe("train"))
    if data.eval_stats:
        log(data.eval_stats.describe("eval"))
    for bad in data.train_stats.bad_rows[:5]:
        log(f"skipped line {bad.line}: {bad.reason}")
    return data  # the 'line' column stays: collators ignore it, the debug trace and --validate use it


def load_model_for(backend: Any, config: TrainConfig) -> Any:
    """The LoRA-wrapped base from the chosen backend (trainer.backends); None means the default hf path."""
    from trainer.backends import BackendChoice, load_lora_model_for

    return load_lora_model_for(backend or BackendChoice("hf", "default"), config)


def compile_decoder_layers(model: Any, backend: str = "inductor", mode: str | None = None,
                           memory_budget: float = 1.0, dynamic: bool | None = None) -> str:
    """torch.compile each decoder layer in place (regional compilation); says what was compiled. `memory_budget`
    below 1 lets the compiler's partitioner recompute activations in backward instead of keeping them (torch's
    activation_memory_budget, a process-wide setting read when the layers compile at their first call). `dynamic`
    is torch.compile's (None: static first, dynamic once a second shape comes).

    All layers run the same code, so Dynamo compiles one graph and reuses it 32 times: minutes faster than compiling
    the whole model (transformers' torch_compile=True), which on an 8B Llama ran past 150 s without finishing its
    first step on the device. Batch shapes are kept few by padding to COMPILE_PAD_MULTIPLE (or packing).
    """
    import torch

    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known:
        raise TrainerInputError(f"--torch_compile_backend {backend!r}: not a torch.compile backend; use one of "
                                f"{', '.join(sorted(known))}")
    torch._functorch.config.activation_memory_budget = memory_budget
    layers = [module for module in model.modules() if type(module).__name__.endswith("DecoderLayer")]
    options = {"backend": backend, "dynamic": dynamic} | ({"mode": mode} if mode else {})
    how = backend + (f", mode {mode}" if mode else "") + (f", activation memory budget {memory_budget}"
                                                          if memory_budget < 1 else "")
    if not layers:
        model.compile(**options)
        return f"no decoder layers found, so the whole model was compiled ({how})"
    for layer in layers:
        layer.compile(**options)
    tuning = "; the first step tunes each GEMM and kernel (minutes on an 8B model)" if "autotune" in str(mode) else ""
    return f"{len(layers)} {type(layers[0]).__name__} modules compiled with {how} (one graph, reused by each){tuning}"


def keep_one_gpu_per_process(args: Any) -> int:
    """A single process (no torchrun) on a machine with several GPUs trains on one: transformers' Trainer would wrap
    the model in nn.DataParallel, whose replicas the compiled layers cannot run (they fail with "found two
    different devices cuda:0, cuda:1"), and which multiplies the batch. Returns how many GPUs were visible."""
    visible = args.n_gpu
    if world_size() == 1 and visible > 1:
        args._n_gpu = 1  # what transformers itself does for a model spread over GPUs (Trainer.__init__)
    return visible


def training_arguments(config: TrainConfig, has_eval: bool) -> Any:
    """transformers.TrainingArguments whose every value comes from the flag of the same meaning."""
    import torch
    from transformers import TrainingArguments

    on_cuda = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(config.output_dir), num_train_epochs=config.num_train_epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, learning_rate=config.learning_rate,
        **warmup_argument(TrainingArguments, config.warmup_ratio), lr_scheduler_type=config.lr_scheduler_type,
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, logging_steps=config.logging_steps,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        eval_strategy="steps" if has_eval else "no", eval_steps=config.eval_steps or config.save_steps,
        bf16=on_cuda, dataloader_num_workers=config.dataloader_num_workers, seed=config.seed,
        data_seed=config.seed, torch_compile=False,  # --torch_compile: compile_decoder_layers (regional)
        **checkpointing_arguments(TrainingArguments, config.gradient_checkpointing),
        report_to=["tensorboard"] if config.report_to == "tensorboard" else "none",
        include_num_input_tokens_seen="non_padding", remove_unused_columns=False,
        logging_nan_inf_filter=False,  # its check reads every step's loss back (a sync); the guard stops on NaN
        disable_tqdm=not is_main_process(), use_cpu=not on_cuda,  # use_cpu: accelerate's multi-CPU (gloo) DDP
        ddp_backend=None if on_cuda or world_size() == 1 else "gloo",
        ddp_find_unused_parameters=False if world_size() > 1 else None,
    )


def warmup_argument(arguments_class: type, ratio: float) -> dict[str, float]:
    """transformers 4.x has warmup_ratio; 5.x dropped it and reads a warmup_steps below 1 as a fraction."""
    from dataclasses import fields

    if "warmup_ratio" in {item.name for item in fields(arguments_class)}:
        return {"warmup_ratio": ratio}
    return {"warmup_steps": ratio}  # check_config keeps it in [0, 1), so it is read as a fraction of the steps


def checkpointing_arguments(arguments_class: type, enabled: bool) -> dict[str, Any]:
    """--gradient_checkpointing: transformers 5.x calls it activation_checkpointing (the old name is deprecated)."""
    from dataclasses import fields

    name = "activation_checkpointing" if "activation_checkpointing" in {f.name for f in fields(arguments_class)} \
        else "gradient_checkpointing"
    return {name: enabled, f"{name}_kwargs": {"use_reentrant": False} if enabled else None}


def build_trainer(args: Any, model: Any, tokenizer: Any, datasets: tuple[Any, Any], collator: Any,
                  callbacks: list[Any], fused_ce: bool = False, guard: Any = None) -> Any:
    from transformers.trainer_callback import ProgressCallback

    from trainer.callbacks import ThroughputProgress
    from trainer.hf_trainer import LoRATrainer

    trainer = LoRATrainer(model=model, args=args, train_dataset=datasets[0], eval_dataset=datasets[1],
                          data_collator=collator, processing_class=tokenizer, callbacks=callbacks, fused_ce=fused_ce,
                          guard=guard)
    if not args.disable_tqdm:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(ThroughputProgress())  # after MetricsLogger, which adds tokens/s to the logs
    return trainer


def run_training(config: TrainConfig, backend: Any = None) -> Outcome:
    """init -> setup -> train -> cleanup, then --merge/--validate. Raises TrainerInputError, DataError."""
    recipe = LoRARecipe(config, backend)
    log("settings: " + ", ".join(f"{k}={v}" for k, v in asdict(config).items() if v not in (None, False, "")))
    recipe.setup()
    wall, state = recipe.train()
    outcome = recipe.cleanup(wall, state)
    if outcome.exit_code == EXIT_OK and config.merge and is_main_process():
        test_set = validation_test_set(config, recipe.data) if config.validate else None
        return merge_and_validate(config, recipe.output_dir / ADAPTER_DIR, test_set)
    return outcome


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


def merge_and_validate(config: TrainConfig, adapter: Path, test_set: Path | None) -> Outcome:
    """Merge the adapter into OUTPUT_DIR/merged (replacing an older merge of this run), then validate it."""
    from trainer import merge

    merged_dir = Path(config.output_dir) / MERGED_DIR
    try:
        result = merge.merge_adapter(config.model_name, adapter, merged_dir, overwrite=True, revision=config.revision,
                                     log=log)
    except merge.MergeInputError as error:
        return Outcome(EXIT_BAD_INPUT, f"merge: {error}")
    except merge.MergeRefused as error:
        return Outcome(EXIT_REFUSED, f"merge refused: {error}")
    except merge.MergeCheckError as error:
        return Outcome(EXIT_FAILED, f"merge failed: {error}")
    log(merge.render_result(result))
    if test_set is None:
        return Outcome(EXIT_OK, f"done: adapter in {adapter}, merged model in {merged_dir}")
    return validate_merged(config, merged_dir, test_set)


def validate_merged(config: TrainConfig, merged_dir: Path, test_set: Path) -> Outcome:
    from trainer import validate
    from trainer.data import DataError

    try:
        result = validate.validate_model(merged_dir, test_set, max_perplexity=config.max_perplexity,
                                         max_seq_length=config.max_seq_length,
                                         dataset_format=config.dataset_format, log=log)
    except (validate.ValidationInputError, DataError) as error:
        return Outcome(EXIT_BAD_INPUT, f"validate: {error}")
    summary = validate.render_summary(result)
    verdict = "passed" if result.passed else "FAILED"
    return Outcome(result.exit_code, f"{summary}\nvalidation {verdict}: merged model in {merged_dir}")


def peak_gpu_memory_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)
