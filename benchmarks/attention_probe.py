"""Document-masked attention kernels for packed rows on this GPU: fwd+bwd time and agreement with FlexAttention.

Llama-3.1-8B attention shape (32 query heads, 8 KV heads, head dim 128, bf16), rows of --row-tokens built by the
trainer's packing from train_speed.py's two data shapes (var: seeded log-normal lengths; fixed: 2,048-token
samples), the tail padding a segment of its own, as the trainer lays rows out. Kernels:

  flex         FlexAttention with the block-sparse document mask (what `--packing` uses on CUDA today); flex-*
               the same with other kernel_options (larger tiles)
  flash-varlen torch's FlashAttention-2 varlen kernel (aten._flash_attention_forward with cu_seqlens), native GQA
  cudnn-varlen cuDNN's ragged attention (aten._cudnn_attention_forward with cu_seqlens), native GQA

Rows whose segments all have one length (the fixed shape: two 2,048-token samples) can instead be laid out as a
batch of plain causal rows, one sample each, which needs no document mask. Those kernels (fixed shape only) take
(samples, heads, 2048, 128) inputs, as transformers hands over a batch of unpacked rows:

  dense-flex   FlexAttention with a causal block mask
  dense-flash / dense-cudnn / dense-efficient
               scaled_dot_product_attention(is_causal=True, enable_gqa=True) held to that SDPA backend

Inputs come as transformers hands them to an attention function, (1, heads, tokens, 128) after RoPE, so the
varlen kernels pay for their (tokens, heads, 128) layout. Prints ms per row for one layer and for 32 layers, and
the largest difference of the output and of d(q), d(k), d(v) from flex's.

Usage: python benchmarks/attention_probe.py [--row-tokens 4096] [--rows 6] [--iters 10] [--kernels a,b]
       [--dense-kernels a,b]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from cuda_timing import cuda_ms  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: E402
from train_speed import make_examples, sample_lengths, scale_for  # noqa: E402

from trainer.packing import pack_examples  # noqa: E402

HEADS, KV_HEADS, HEAD_DIM, LAYERS = 32, 8, 128, 32
Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], torch.Tensor]


def row_segments(shape: str, row_tokens: int, rows: int) -> list[list[int]]:
    """Segment lengths of `rows` packed rows spread over the whole set, the padding tail included."""
    lengths = sample_lengths(4000, scale_for(tiny=False), shape)
    packed = pack_examples(make_examples(lengths, 1000), row_tokens)
    segments = []
    for row in packed[::max(1, len(packed) // rows)][:rows]:
        tail = row_tokens - len(row)
        segments.append(list(row.seq_lens) + ([tail] if tail else []))
    return segments


_compiled_flex = torch.compile(flex_attention)


def flex_plan(segments: list[int]) -> Any:
    """The block mask; the trainer builds it once a step and all 32 layers share it."""
    tokens = sum(segments)
    doc = torch.repeat_interleave(torch.arange(len(segments), device="cuda"), torch.tensor(segments, device="cuda"))
    return create_block_mask(lambda b, h, qi, ki: (doc[qi] == doc[ki]) & (qi >= ki), 1, 1, tokens, tokens,
                             device="cuda")


def varlen_plan(segments: list[int]) -> Any:
    offsets = [0]
    for length in segments:
        offsets.append(offsets[-1] + length)
    return torch.tensor(offsets, dtype=torch.int32, device="cuda"), max(segments)


def flex_with(options: dict[str, int | bool] | None) -> Kernel:
    def flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any) -> torch.Tensor:
        return _compiled_flex(q, k, v, block_mask=mask, enable_gqa=True, kernel_options=options)
    return flex


def tokens_first(tensor: torch.Tensor) -> torch.Tensor:
    """(1, heads, tokens, 128), as transformers hands it over -> (tokens, heads, 128), the varlen kernels' layout."""
    return tensor[0].transpose(0, 1)


def flash_varlen(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: Any) -> torch.Tensor:
    cu, longest = plan
    out = torch.ops.aten._flash_attention_forward(
        tokens_first(q), tokens_first(k), tokens_first(v), cu, cu, longest, longest, 0.0, True, False)[0]
    return out.transpose(0, 1).unsqueeze(0)  # back to (1, heads, tokens, 128)


def cudnn_varlen(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: Any) -> torch.Tensor:
    cu, longest = plan
    q, k, v = (tokens_first(tensor).contiguous() for tensor in (q, k, v))
    out = torch.ops.aten._cudnn_attention_forward(q, k, v, None, cu, cu, longest, longest, True, 0.0, True)[0]
    return out.transpose(0, 1).unsqueeze(0)  # back to (1, heads, tokens, 128)


flex = flex_with(None)
KERNELS: dict[str, tuple[Kernel, Callable[[list[int]], Any]]] = {
    "flex": (flex, flex_plan),
    "flex-fwd128": (flex_with({"BLOCK_M": 128, "BLOCK_N": 128, "num_warps": 8, "num_stages": 2}), flex_plan),
    "flex-bwd64x128": (flex_with({"BLOCK_M1": 64, "BLOCK_N1": 128, "BLOCK_M2": 128, "BLOCK_N2": 64,
                                  "num_warps": 8, "num_stages": 2}), flex_plan),
    "flash-varlen": (flash_varlen, varlen_plan),
    "cudnn-varlen": (cudnn_varlen, varlen_plan),  # last: a failure here may take the CUDA context with it
}


def dense_plan(segments: list[int]) -> Any:
    """Causal block mask of one sample's length; the batch of samples shares it."""
    length = segments[0]
    return create_block_mask(lambda b, h, qi, ki: qi >= ki, 1, 1, length, length, device="cuda")


def dense_sdpa(backend: SDPBackend) -> Kernel:
    def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: Any) -> torch.Tensor:
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    return sdpa


DENSE_KERNELS: dict[str, Kernel] = {
    "dense-flex": flex,
    "dense-flash": dense_sdpa(SDPBackend.FLASH_ATTENTION),
    "dense-efficient": dense_sdpa(SDPBackend.EFFICIENT_ATTENTION),
    "dense-cudnn": dense_sdpa(SDPBackend.CUDNN_ATTENTION),  # last: a failure may take the CUDA context with it
}


def inputs(tokens: int, seed: int, samples: int = 1) -> tuple[torch.Tensor, ...]:
    """q, k, v, d(out) of `samples` rows of `tokens` each, laid out as transformers hands them over."""
    generator = torch.Generator(device="cuda").manual_seed(seed)

    def make(heads: int) -> torch.Tensor:  # (samples, tokens, heads, 128) projected, then viewed as HF does
        return torch.randn(samples, tokens, heads, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=generator)

    q = make(HEADS).transpose(1, 2).contiguous().requires_grad_()  # RoPE writes a fresh (samples, heads, tokens, 128)
    k = make(KV_HEADS).transpose(1, 2).contiguous().requires_grad_()
    v = make(KV_HEADS).transpose(1, 2).requires_grad_()  # v is not rotated: a transposed view
    grad = torch.randn(samples, HEADS, tokens, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=generator)
    return q, k, v, grad


def run(kernel: Kernel, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad: torch.Tensor,
        plan: Any) -> tuple[torch.Tensor, ...]:
    q.grad = k.grad = v.grad = None
    out = kernel(q, k, v, plan)
    out.backward(grad)
    return out.detach(), q.grad, k.grad, v.grad


def time_ms(kernel: Kernel, tensors: tuple[torch.Tensor, ...], plans: list[Any], iters: int) -> float:
    """Kernel time per row; the plans (mask, offsets) are built before, as the trainer builds them once a step."""
    for plan in plans[:2]:
        run(kernel, *tensors, plan)

    def every_row() -> None:
        for plan in plans:
            run(kernel, *tensors, plan)

    return cuda_ms(every_row, iters) / len(plans)


def largest_difference(reference: tuple[torch.Tensor, ...], other: tuple[torch.Tensor, ...]) -> float:
    return max(float((a.float() - b.float()).abs().max()) for a, b in zip(reference, other, strict=True))


def measure(name: str, kernel: Kernel, tensors: tuple[torch.Tensor, ...], make_plan: Callable[[list[int]], Any],
            rows: list[list[int]], reference: tuple[torch.Tensor, ...], iters: int) -> tuple[float, float] | None:
    """(ms per row, largest difference from the reference), or None after printing why the kernel failed."""
    try:
        plans = [make_plan(segments) for segments in rows]
        difference = largest_difference(reference, run(kernel, *tensors, plans[0]))
        return time_ms(kernel, tensors, plans, iters), difference
    except Exception as error:  # a kernel this torch/GPU lacks is a finding, not a crash
        print(f"  {name:15s} failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        return None


def time_dense(names: list[str], rows: list[list[int]], iters: int) -> None:
    """The fixed shape's rows as batches of plain causal samples; ms per packed row's worth of tokens."""
    if any(len(set(segments)) != 1 for segments in rows):
        print("  dense kernels skipped: the rows' segments differ in length")
        return
    samples, length = len(rows[0]), rows[0][0]
    tensors = inputs(length, seed=0, samples=samples)
    reference = run(flex, *tensors, dense_plan(rows[0]))
    for name in names:  # every fixed row holds samples of one length: one plan serves them all
        timed = measure(name, DENSE_KERNELS[name], tensors, dense_plan, rows[:1], reference, iters)
        if timed:
            print(f"  {name:15s} {timed[0]:7.3f} ms a row, {timed[0] * LAYERS:6.1f} ms for {LAYERS} layers "
                  f"({samples} x {length} causal), max |diff| vs dense-flex {timed[1]:.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row-tokens", type=int, default=4096)
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--kernels", default="flex,flex-fwd128,flex-bwd64x128,flash-varlen",
                        help=f"comma-separated, of {', '.join(KERNELS)}")
    parser.add_argument("--dense-kernels", default=",".join(DENSE_KERNELS),
                        help=f"comma-separated, of {', '.join(DENSE_KERNELS)}; '' for none")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, {torch.cuda.get_device_name()}")
    for shape in ("fixed", "var"):
        rows = row_segments(shape, args.row_tokens, args.rows)
        tensors = inputs(args.row_tokens, seed=0)
        print(f"{shape}: {args.rows} rows of {args.row_tokens} tokens, {sum(map(len, rows)) / len(rows):.1f} "
              f"segments a row, longest {max(max(r) for r in rows)}")
        reference = run(flex, *tensors, flex_plan(rows[0]))
        for name in args.kernels.split(","):
            kernel, make_plan = KERNELS[name]
            timed = measure(name, kernel, tensors, make_plan, rows, reference, args.iters)
            if timed:
                print(f"  {name:15s} {timed[0]:7.3f} ms a layer, {timed[0] * LAYERS:6.1f} ms for {LAYERS} layers, "
                      f"max |diff| vs flex {timed[1]:.4f}")
        if shape == "fixed" and args.dense_kernels:
            time_dense(args.dense_kernels.split(","), rows, args.iters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
