"""Optional speed-ups for the trainer's hot path, pure PyTorch (no flash-attn, Liger or Unsloth needed)."""

from trainer.kernels.fused_ce import causal_lm_loss, chunked_linear_cross_entropy

__all__ = ["causal_lm_loss", "chunked_linear_cross_entropy"]
