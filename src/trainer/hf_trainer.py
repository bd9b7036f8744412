"""transformers' Trainer with the trainer's additions: the chunked fused cross-entropy, eval perplexity, and the
per-step divergence checks (loss and gradient norm of every step, not only the logged ones)."""

from __future__ import annotations

import math
from typing import Any

from transformers import Trainer

MAX_EXP_ARGUMENT = 700.0  # math.exp overflows a float above ~709


def perplexity(loss: float) -> float:
    """exp(mean token loss); inf for a loss that is not finite or too large to exponentiate."""
    return math.exp(loss) if math.isfinite(loss) and loss < MAX_EXP_ARGUMENT else float("inf")


class LoRATrainer(Trainer):
    """`fused_ce`: compute the training loss with `trainer.kernels.fused_ce.causal_lm_loss` (no full logits).
    `guard`: a DivergenceGuard that sees every step's loss and gradient norm."""

    def __init__(self, *args: Any, fused_ce: bool = False, guard: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fused_ce = fused_ce
        self.guard = guard
        self._samples_counted: Any = 0  # an int, or a device tensor once packed rows were counted (no sync per step)

    @property
    def samples_trained(self) -> int:
        """This process's samples since this run started (a packed row holds several); reads the GPU count once."""
        return int(self._samples_counted)

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
            self.guard.observe_step_loss(float(loss), self.state.global_step + 1)
        return loss

    def _get_grad_norm(self, model: Any, grad_norm: Any = None) -> Any:
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        if self.guard is not None and grad_norm is not None:
            self.guard.observe_grad_norm(float(grad_norm), self.state.global_step + 1)
        return grad_norm

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "eval_loss" in logs:
            logs["eval_perplexity"] = perplexity(float(logs["eval_loss"]))
        super().log(logs, *args, **kwargs)
