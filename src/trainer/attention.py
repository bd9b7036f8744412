"""The attention the trainer trains with on a GPU: one transformers implementation, two kernels by row kind.

- Packed rows (position_ids restart, no attention mask: transformers sets `allow_is_causal_skip=False`) get
  FlexAttention with its block-sparse document mask, as `flex_attention` does.
- Plain causal rows (one sample a row, or padded batches) get scaled_dot_product_attention. Without a mask tensor
  (no padding in the batch) SDPA takes `is_causal=True` and tries cuDNN's fused kernel first: on an H200 it did a
  causal batch of 2 x 2,048 tokens (forward + backward, 32 layers) in 20.5 ms, against 37.6 for FlashAttention-2
  and 41.2 for FlexAttention's causal mask (benchmarks/attention_probe.py; benchmarks/README.md, section 7).
- With a mask tensor (padding) SDPA never takes cuDNN: torch 2.11's cuDNN backward returns NaN in d(q) for an
  explicit mask when the length is 64 past a multiple of 128 (pytorch/pytorch#196678; the trainer pads batches to
  multiples of 8). Memory-efficient attention takes masks, then math.

`enable_rows_attention(model)` registers the implementation with transformers and switches `model` to it.
`packed_rows_mask(model, position_ids)` builds the packed rows' document mask on the GPU without reading anything
back: transformers' own packing detection reads a flag back to the host at each forward, which lets the GPU run dry
while the host builds the mask and launches the first layer.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from trainer.peft_model import base_model

ROWS_ATTENTION = "flex_attention+sdpa"  # the name has "flex_attention" in it: transformers then checks flex support
CAUSAL_SDPA_ORDER = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                     SDPBackend.MATH]
MASKED_SDPA_BACKENDS = [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]  # FlashAttention takes no mask
FLEX_IMPLEMENTATIONS = (ROWS_ATTENTION, "flex_attention")


def rows_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attention_mask: Any, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    """transformers' attention-function signature: FlexAttention for a BlockMask, SDPA otherwise."""
    from torch.nn.attention.flex_attention import BlockMask
    from transformers.integrations.flex_attention import flex_attention_forward
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if isinstance(attention_mask, BlockMask):
        return flex_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if attention_mask is None:
        with sdpa_kernel(CAUSAL_SDPA_ORDER, set_priority=True):
            return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    with sdpa_kernel(MASKED_SDPA_BACKENDS):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def rows_mask(*, allow_is_causal_skip: bool = True, **kwargs: Any) -> Any:
    """transformers' mask-function signature: a BlockMask where transformers cannot use a plain causal mask (packed
    rows), else SDPA's mask (None when no token is padding)."""
    from transformers.masking_utils import flex_attention_mask, sdpa_mask

    if allow_is_causal_skip:
        return sdpa_mask(allow_is_causal_skip=True, **kwargs)
    return flex_attention_mask(**kwargs)


def register_rows_attention() -> str:
    """Make ROWS_ATTENTION known to transformers (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ROWS_ATTENTION, rows_attention)
    AttentionMaskInterface.register(ROWS_ATTENTION, rows_mask)
    return ROWS_ATTENTION


def enable_rows_attention(model: Any) -> str:
    """Switch `model` (a transformers model or a PEFT wrapper of one) to ROWS_ATTENTION; returns its name."""
    base_model(model).set_attn_implementation(register_rows_attention())
    return ROWS_ATTENTION


def packed_rows_mask(model: Any, position_ids: torch.Tensor) -> Any:
    """The document mask of packed rows for `model` (a transformers model or a wrapper of one) when it attends with
    FlexAttention (ROWS_ATTENTION or flex_attention), else None (transformers then builds its own mask)."""
    if getattr(base_model(model).config, "_attn_implementation", None) not in FLEX_IMPLEMENTATIONS:
        return None
    return document_mask(position_ids)


def document_mask(position_ids: torch.Tensor) -> Any:
    """FlexAttention's block-sparse mask for rows of samples laid end to end: causal within each sample; a sample
    starts wherever position_ids do not go up by one (as transformers detects packing). (rows, 1, tokens, tokens),
    the 4-D form transformers passes through unchanged."""
    first = position_ids[:, :1] - 1
    sample = (torch.diff(position_ids, prepend=first, dim=-1) != 1).cumsum(-1)

    def same_sample_causal(batch: torch.Tensor, head: torch.Tensor, query: torch.Tensor,
                           key: torch.Tensor) -> torch.Tensor:
        return (sample[batch, query] == sample[batch, key]) & (query >= key)

    rows, tokens = position_ids.shape
    return _compiled_create_block_mask()(same_sample_causal, rows, None, tokens, tokens, device=position_ids.device)


@functools.cache
def _compiled_create_block_mask() -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    return torch.compile(create_block_mask)
