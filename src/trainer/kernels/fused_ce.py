"""Chunked linear + cross-entropy: the causal-LM loss without the full (tokens x vocab) logits in memory.

For Llama-3.1-8B a 4,096-token row has 4,096 x 128,256 logits: 1 GiB in bf16 and 2 GiB more for the fp32 copy
the usual loss makes, plus their gradients. Here the lm_head matmul, log-softmax and loss run on `chunk_tokens`
rows at a time; backward recomputes each chunk's logits instead of keeping them (one extra lm_head matmul,
about 3% of an 8B model's FLOPs per token, for several GiB of activation memory).

On a GPU the per-chunk softmax arithmetic runs as two compiled kernels (torch.compile, static shapes: one compile
for the chunk and one for the last, shorter chunk): eagerly each chunk's fp32 logits were written and read by five
separate passes, about 20 GB of memory traffic for a 4,096-token row of a 128k vocabulary.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from trainer.attention import packed_rows_mask
from trainer.peft_model import base_model

IGNORE_INDEX = -100
DEFAULT_CHUNK_TOKENS = 1024
# Config fields that change logits after lm_head; the fused loss would silently skip them.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Sum over tokens of cross_entropy(hidden @ weight.T, targets), computed chunk by chunk."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                chunk_tokens: int, ignore_index: int, compiled: bool) -> torch.Tensor:
        loss_sum = _kernels(compiled)[0]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_tokens):
            chunk = slice(start, start + chunk_tokens)
            total += loss_sum(hidden[chunk] @ weight.t(), targets[chunk], ignore_index)
        ctx.save_for_backward(hidden, weight, targets)
        ctx.chunk_tokens, ctx.ignore_index, ctx.compiled = chunk_tokens, ignore_index, compiled
        return total

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, targets = ctx.saved_tensors
        want_hidden, want_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if want_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_weight else None
        logits_grad = _kernels(ctx.compiled)[1]
        for start in range(0, hidden.shape[0], ctx.chunk_tokens):
            chunk = slice(start, start + ctx.chunk_tokens)
            grad_logits = logits_grad(hidden[chunk] @ weight.t(), targets[chunk], ctx.ignore_index, grad_total)
            if grad_hidden is not None:
                grad_hidden[chunk] = grad_logits @ weight
            if grad_weight is not None:
                grad_weight += (grad_logits.t() @ hidden[chunk]).float()
        grad_weight = grad_weight.to(weight.dtype) if grad_weight is not None else None
        return grad_hidden, grad_weight, None, None, None, None


def _loss_sum(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Sum over one chunk's counted tokens of logsumexp(logits) - logits[target], in fp32."""
    logits = logits.float()
    valid = targets != ignore_index
    picked = logits.gather(1, targets.clamp(min=0).unsqueeze(1)).squeeze(1)
    return ((torch.logsumexp(logits, dim=-1) - picked) * valid).sum()


def _logits_grad(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int,
                 grad_total: torch.Tensor) -> torch.Tensor:
    """d(sum of losses)/d(logits) for one chunk: softmax - one_hot(target), zero on ignored tokens."""
    probs = torch.softmax(logits.float(), dim=-1)
    valid = targets != ignore_index
    rows = torch.arange(targets.shape[0], device=targets.device)
    probs[rows, targets.clamp(min=0)] -= 1.0
    probs *= (valid.unsqueeze(1) * grad_total).to(probs.dtype)
    return probs.to(logits.dtype)


def _kernels(compiled: bool) -> tuple[Any, Any]:
    """(loss sum, logits gradient) per chunk: eager, or compiled (once per process and chunk shape)."""
    return _compiled_kernels() if compiled else (_loss_sum, _logits_grad)


@functools.cache
def _compiled_kernels() -> tuple[Any, Any]:
    return torch.compile(_loss_sum, dynamic=False), torch.compile(_logits_grad, dynamic=False)


def chunked_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                                 chunk_tokens: int = DEFAULT_CHUNK_TOKENS, ignore_index: int = IGNORE_INDEX,
                                 reduction: str = "mean", compiled: bool | None = None) -> torch.Tensor:
    """Cross-entropy of `hidden @ weight.T` against `targets` without materialising all logits.

    hidden: (tokens, d); weight: (vocab, d); targets: (tokens,) with `ignore_index` where no loss is taken.
    reduction "sum" returns the fp32 sum; "mean" divides by the number of counted tokens (0 when there are none).
    `compiled`: run the per-chunk softmax arithmetic compiled; None means on a GPU.
    Raises ValueError on mismatched shapes or an unknown reduction.
    """
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1] or weight.shape[1] != hidden.shape[1]:
        raise ValueError(f"shapes do not fit: hidden {tuple(hidden.shape)}, weight {tuple(weight.shape)}, "
                         f"targets {tuple(targets.shape)} (want (N, d), (V, d), (N,))")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    compiled = hidden.is_cuda if compiled is None else compiled
    total = _ChunkedLinearCrossEntropy.apply(hidden, weight, targets, max(1, chunk_tokens), ignore_index, compiled)
    if reduction == "sum":
        return total
    return total / (targets != ignore_index).sum().clamp(min=1)


def causal_lm_loss(model: Any, input_ids: torch.Tensor, labels: torch.Tensor,
                   position_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                   chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                   num_items: int | torch.Tensor | None = None, document_mask: bool = True,
                   compiled: bool | None = None) -> torch.Tensor:
    """The loss `model(..., labels=labels).loss` would give, computed with the chunked fused head.

    `model` is a transformers causal LM or a PEFT wrapper of one. Labels are shifted inside, as transformers does.
    `num_items` (tokens counted over a whole accumulated batch) replaces the per-call token count in the mean.
    `document_mask`: packed rows (position_ids, no attention mask) of a FlexAttention model get their mask from
    trainer.attention.packed_rows_mask (no host sync) instead of transformers. `compiled`: as in
    chunked_linear_cross_entropy. Both switches exist so benchmarks/train_speed.py can measure what each buys.
    Raises ValueError for models that transform logits after lm_head (soft-capping, logit scaling) or whose
    lm_head has a bias.
    """
    inner = _unwrapped(model)
    base = base_model(inner)
    head = _plain_head(base)
    if document_mask and attention_mask is None and position_ids is not None:  # packed rows, no host sync
        attention_mask = packed_rows_mask(base, position_ids)
    if inner is model:
        states = base.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                    use_cache=False).last_hidden_state
    else:  # DistributedDataParallel: its forward must run (it prepares the gradient sync), minus the vocab matmul
        with _head_replaced_by_identity(base, head):
            states = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           use_cache=False).logits
        states = states.to(head.weight.dtype)  # accelerate's mixed precision hands the wrapper's outputs over in fp32
    hidden = states[:, :-1].reshape(-1, states.shape[-1])
    targets = labels[:, 1:].reshape(-1).to(hidden.device)
    if num_items is None:
        return chunked_linear_cross_entropy(hidden, head.weight, targets, chunk_tokens, compiled=compiled)
    return chunked_linear_cross_entropy(hidden, head.weight, targets, chunk_tokens, reduction="sum",
                                        compiled=compiled) / num_items


def _unwrapped(model: Any) -> Any:
    """The module inside a DistributedDataParallel (or similar `.module`) wrapper; the model itself otherwise."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, torch.nn.Module) and not hasattr(model, "get_base_model") else model


@contextmanager
def _head_replaced_by_identity(model: Any, head: torch.nn.Module) -> Iterator[None]:
    """Within the block the model's lm_head returns its input, so `.logits` are the final hidden states."""
    name = next(name for name, child in model.named_children() if child is head)
    setattr(model, name, torch.nn.Identity())
    try:
        yield
    finally:
        setattr(model, name, head)


def _plain_head(model: Any) -> torch.nn.Module:
    config = model.config
    for name in _LOGIT_TRANSFORMS:
        value = getattr(config, name, None)
        if value not in (None, 1, 1.0):
            raise ValueError(f"{type(model).__name__} sets config.{name}={value}: the fused loss does not apply it; "
                             "train without the fused loss")
    head = model.get_output_embeddings()
    if head is None or getattr(head, "bias", None) is not None:
        raise ValueError(f"{type(model).__name__} has no bias-free linear lm_head; train without the fused loss")
    return head
