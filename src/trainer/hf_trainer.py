"""The transformers glue: TrainingArguments from the flags, and transformers' Trainer with the trainer's additions
(the chunked fused cross-entropy, eval perplexity, the per-step divergence checks of every step's loss and gradient
norm, not only the logged ones)."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from transformers import Trainer, TrainingArguments

from trainer.config import TrainConfig
from trainer.distributed import is_main_process, world_size
from trainer.sharded_checkpoints import FSDPCheckpoints
from trainer.trackers import transformers_report_to

MAX_EXP_ARGUMENT = 700.0  # math.exp overflows a float above ~709


def perplexity(loss: float) -> float:
    """exp(mean token loss); inf for a loss that is not finite or too large to exponentiate."""
    return math.exp(loss) if math.isfinite(loss) and loss < MAX_EXP_ARGUMENT else float("inf")


class LoRATrainer(FSDPCheckpoints, Trainer):
    """`fused_ce`: compute the training loss with `trainer.kernels.fused_ce.causal_lm_loss` (no full logits).
    `guard`: a DivergenceGuard that sees every step's loss and gradient norm. Under --fsdp, saves and resumes are
    trainer.sharded_checkpoints' (a PEFT adapter and a one-process optimizer state, for any world size)."""

    def __init__(self, *args: Any, fused_ce: bool = False, guard: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fused_ce = fused_ce
        self.guard = guard
        self._samples_counted: Any = 0  # an int, or a device tensor once packed rows were counted (no sync per step)
        self._tokens_counted: Any = 0  # tokens not yet in state.num_input_tokens_seen (a device tensor, no sync)

    @property
    def samples_trained(self) -> int:
        """This process's samples since this run started (a packed row holds several); reads the GPU count once."""
        return int(self._samples_counted)

    def tokens_so_far(self) -> Any:
        """Tokens trained in this process's run so far, as transformers counts them: the settled count plus what is
        still summed on the device (a device tensor then; nothing is read back here)."""
        return self._tokens_counted + (self.state.num_input_tokens_seen or 0)

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if not self.fused_ce or return_outputs or not model.training or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        from trainer.kernels.fused_ce import causal_lm_loss

        loss = causal_lm_loss(model, inputs["input_ids"], inputs["labels"], position_ids=inputs.get("position_ids"),
                              attention_mask=inputs.get("attention_mask"), num_items=num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None and \
                (self.model_accepts_loss_kwargs or self.compute_loss_func):
            loss = loss * self.accelerator.num_processes  # as Trainer.compute_loss does: DDP averages gradients
        return loss

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        from trainer.packing import samples_in_batch

        self._samples_counted = self._samples_counted + samples_in_batch(
            inputs, getattr(self.processing_class, "pad_token_id", None))
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.guard is not None:
            self.guard.observe_step_loss(loss, self.state.global_step + 1)  # read without a sync
        return loss

    def _get_grad_norm(self, model: Any, grad_norm: Any = None) -> Any:
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        if self.guard is not None and grad_norm is not None:
            self.guard.observe_grad_norm(grad_norm, self.state.global_step + 1)
        return grad_norm

    def _track_num_input_tokens(self, inputs: dict[str, Any]) -> None:
        """transformers reads each micro-step's token count back to the host (a sync a step). On one process the
        count is summed on the device instead and added to `state.num_input_tokens_seen` at each log and save.
        Several processes keep transformers' gather."""
        if self.args.world_size > 1 or self.args.include_num_input_tokens_seen != "non_padding":
            return super()._track_num_input_tokens(inputs)
        pad_token_id = getattr(self.processing_class, "pad_token_id", None)
        self._tokens_counted = self._tokens_counted + non_padding_tokens(inputs, pad_token_id)
        return None

    def _settle_token_count(self) -> None:
        self.state.num_input_tokens_seen += int(self._tokens_counted)  # one read-back per log or save
        self._tokens_counted = 0

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        self._settle_token_count()
        if "eval_loss" in logs:
            logs["eval_perplexity"] = perplexity(float(logs["eval_loss"]))
        super().log(logs, *args, **kwargs)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        self._settle_token_count()  # trainer_state.json carries the count a resumed run continues from
        super()._save_checkpoint(model, trial)


def non_padding_tokens(inputs: dict[str, Any], pad_token_id: int | None) -> Any:
    """transformers' "non_padding" count: the attention mask's ones, else the tokens that are not the pad token."""
    if "attention_mask" in inputs:
        return inputs["attention_mask"].sum()
    input_ids = inputs["input_ids"]
    return (input_ids != pad_token_id).sum() if pad_token_id is not None else input_ids.numel()


def training_arguments(config: TrainConfig, has_eval: bool) -> TrainingArguments:
    """transformers.TrainingArguments whose every value comes from the flag of the same meaning."""
    import torch

    from trainer.sharding import fsdp_arguments

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
        data_seed=config.seed, torch_compile=False,  # --torch_compile: compiling.compile_decoder_layers (regional)
        **checkpointing_arguments(TrainingArguments, config.gradient_checkpointing),
        report_to=transformers_report_to(config.report_to),  # trainer.trackers checked them before the gate
        include_num_input_tokens_seen="non_padding", remove_unused_columns=False,
        logging_nan_inf_filter=False,  # its check reads every step's loss back (a sync); the guard stops on NaN
        disable_tqdm=not is_main_process(), use_cpu=not on_cuda,  # use_cpu: accelerate's multi-CPU (gloo) DDP
        ddp_backend=None if on_cuda or world_size() == 1 else "gloo",
        ddp_find_unused_parameters=False if world_size() > 1 else None,
        **fsdp_arguments(config),  # --fsdp (trainer.sharding)
    )


def warmup_argument(arguments_class: type, ratio: float) -> dict[str, float]:
    """transformers 4.x has warmup_ratio; 5.x dropped it and reads a warmup_steps below 1 as a fraction."""
    if "warmup_ratio" in {item.name for item in fields(arguments_class)}:
        return {"warmup_ratio": ratio}
    return {"warmup_steps": ratio}  # check_config keeps it in [0, 1), so it is read as a fraction of the steps


def checkpointing_arguments(arguments_class: type, enabled: bool) -> dict[str, Any]:
    """--gradient_checkpointing: transformers 5.x calls it activation_checkpointing (the old name is deprecated)."""
    name = "activation_checkpointing" if "activation_checkpointing" in {f.name for f in fields(arguments_class)} \
        else "gradient_checkpointing"
    return {name: enabled, f"{name}_kwargs": {"use_reentrant": False} if enabled else None}


def keep_one_gpu_per_process(args: Any) -> int:
    """A single process (no torchrun) on a machine with several GPUs trains on one: transformers' Trainer would wrap
    the model in nn.DataParallel, whose replicas the compiled layers cannot run (they fail with "found two
    different devices cuda:0, cuda:1"), and which multiplies the batch. Returns how many GPUs were visible."""
    visible = args.n_gpu
    if world_size() == 1 and visible > 1:
        args._n_gpu = 1  # what transformers itself does for a model spread over GPUs (Trainer.__init__)
    return visible


def build_trainer(args: TrainingArguments, model: Any, tokenizer: Any, datasets: tuple[Any, Any], collator: Any,
                  callbacks: list[Any], fused_ce: bool = False, guard: Any = None) -> LoRATrainer:
    """The LoRATrainer of a run, with the throughput progress bar in place of transformers' own."""
    from transformers.trainer_callback import ProgressCallback

    from trainer.callbacks import ThroughputProgress

    trainer = LoRATrainer(model=model, args=args, train_dataset=datasets[0], eval_dataset=datasets[1],
                          data_collator=collator, processing_class=tokenizer, callbacks=callbacks, fused_ce=fused_ce,
                          guard=guard)
    if not args.disable_tqdm:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(ThroughputProgress())  # after MetricsLogger, which adds tokens/s to the logs
    return trainer
