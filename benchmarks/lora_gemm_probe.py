"""What LoRA costs beside the frozen base GEMMs of one Llama-3.1-8B decoder layer, per 4,096-token row, on this GPU.

Times (CUDA events, bf16, rank 16) for the seven projections of one layer (q, k, v, o, gate, up, down):
  base          x @ W^T forward and dy @ W backward (d(x) only: the base is frozen): the floor
  fused         trainer.kernels.fused_lora's op (q,k,v and gate,up grouped) forward + backward
  augmented     the same work with LoRA as extra K columns of the base GEMMs (raw ops, no autograd)
  forward: product added after   addmm(x @ W^T, xA, B^T)   (reads and writes the output once more)
  forward: product added first   addmm(xA @ B^T, x, W^T)   (the base GEMM's epilogue reads the product)
  backward pieces dy @ B and dy^T @ xA per projection (two skinny GEMMs that each read dy), the second also as
                (xA^T @ dy)^T (the same product with the operands' roles swapped for cuBLAS)
Prints ms per layer and for 32 layers. The joined-GEMM variant it suggested was built and measured in the model:
no gain there (docs/2026-12-06-benchmark-history.md, section 7).

Usage: python benchmarks/lora_gemm_probe.py [--tokens 4096] [--iters 20]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from cuda_timing import cuda_ms  # noqa: E402

from trainer.kernels.fused_lora import _SharedInputLoRA  # noqa: E402

HIDDEN, KV_WIDTH, MLP, RANK, SCALING, LAYERS = 4096, 1024, 14336, 16, 2.0, 32
# (input width, output widths of the projections that read that input)
GROUPS = ((HIDDEN, (HIDDEN, KV_WIDTH, KV_WIDTH)), (HIDDEN, (HIDDEN,)), (HIDDEN, (MLP, MLP)), (MLP, (HIDDEN,)))


def bf16(*shape: int, grad: bool = False) -> torch.Tensor:
    return (torch.randn(*shape, device="cuda", dtype=torch.bfloat16) * 0.02).requires_grad_(grad)


def layer_groups(tokens: int) -> list[tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, list[torch.Tensor],
                                              list[torch.Tensor]]]:
    """Per input group of one layer: (x, the base weights, the stacked A, each projection's B, the outputs'
    gradients), random bf16 on the GPU."""
    groups = []
    for width, outs in GROUPS:
        x = bf16(tokens, width, grad=True)
        weights = [bf16(out, width) for out in outs]
        stacked_a = bf16(RANK * len(outs), width, grad=True)
        lora_b = [bf16(out, RANK, grad=True) for out in outs]
        grads = [bf16(tokens, out) for out in outs]
        groups.append((x, weights, stacked_a, lora_b, grads))
    return groups


def rank_blocks(x: torch.Tensor, stacked_a: torch.Tensor) -> list[torch.Tensor]:
    """x @ [A_1; A_2; ..]^T, split into each projection's rank-r block."""
    acts = x @ stacked_a.t()
    return [acts[:, index * RANK:(index + 1) * RANK] for index in range(stacked_a.shape[0] // RANK)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args(argv)
    tokens = args.tokens
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {tokens} tokens, rank {RANK}")
    groups = layer_groups(tokens)

    def base() -> None:
        for x, weights, _, _, grads in groups:
            for weight, grad in zip(weights, grads, strict=True):
                (x.detach() @ weight.t())
                grad @ weight

    def fused() -> None:
        for x, weights, stacked_a, lora_b, grads in groups:
            outs = _SharedInputLoRA.apply(x, None, stacked_a, SCALING, *weights, *([None] * len(weights)), *lora_b)
            torch.autograd.backward(outs, grads)

    def forward(product_first: bool) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                for x, weights, stacked_a, lora_b, _ in groups:
                    for weight, b, block in zip(weights, lora_b, rank_blocks(x, stacked_a), strict=True):
                        if product_first:
                            torch.addmm(torch.mm(block, b.t() * SCALING), x, weight.t())
                        else:
                            torch.addmm(x @ weight.t(), block, b.t(), alpha=SCALING)
        return run

    def backward_pieces(transposed: bool) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                for x, _, stacked_a, lora_b, grads in groups:
                    for b, grad, block in zip(lora_b, grads, rank_blocks(x, stacked_a), strict=True):
                        grad @ b
                        (block.t() @ grad).t() if transposed else grad.t() @ block
        return run

    def augmented(multiple: int) -> Callable[[], None]:
        """LoRA as extra K columns of the base GEMM: [x | xA^T] @ [W | 0..sB..0]^T forward, and d[x | xA^T] from
        one GEMM chain over the same augmented weights in backward (the B columns are refreshed each step); K padded
        with zero columns to a multiple of `multiple`."""
        padded = [-(-(x.shape[1] + a.shape[0]) // multiple) * multiple for x, _, a, _, _ in groups]
        augmented_weights = [[torch.zeros(w.shape[0], k, device="cuda", dtype=w.dtype) for w in weights]
                             for (_, weights, _, _, _), k in zip(groups, padded, strict=True)]

        def run() -> None:
            with torch.no_grad():
                for (x, _, stacked_a, lora_b, grads), aug, k in zip(groups, augmented_weights, padded, strict=True):
                    width = x.shape[1]
                    for index, (weight, b) in enumerate(zip(aug, lora_b, strict=True)):  # the per-step refresh
                        weight[:, width + index * RANK:width + (index + 1) * RANK].copy_(b * SCALING)
                    zeros = k - width - stacked_a.shape[0]
                    pieces = [x, x @ stacked_a.t()] + ([x.new_zeros(x.shape[0], zeros)] if zeros else [])
                    joined = torch.cat(pieces, dim=1)
                    for weight in aug:
                        joined @ weight.t()
                    grad_joined = grads[0] @ aug[0]
                    for grad, weight in zip(grads[1:], aug[1:], strict=True):
                        grad_joined.addmm_(grad, weight)
                    grad_rank = grad_joined[:, width:width + stacked_a.shape[0]].contiguous()
                    for index, grad in enumerate(grads):
                        grad.t() @ joined[:, width + index * RANK:width + (index + 1) * RANK]
                    grad_rank.t() @ x
                    grad_joined[:, :width].addmm_(grad_rank, stacked_a)
        return run

    rows = [("base (fwd + d(x))", base), ("fused LoRA op (fwd + bwd)", fused),
            ("augmented K (fwd + bwd, raw ops)", augmented(1)),
            ("augmented K to a multiple of 64", augmented(64)),
            ("forward: product added after", forward(False)), ("forward: product added first", forward(True)),
            ("backward pieces dy@B, dy^T@xA", backward_pieces(False)),
            ("backward pieces dy@B, (xA^T@dy)^T", backward_pieces(True))]
    for label, work in rows:
        for _ in range(3):  # warm-up
            work()
        ms = cuda_ms(work, args.iters)
        print(f"  {label:32s} {ms:7.3f} ms a layer, {ms * LAYERS:6.1f} ms for {LAYERS} layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
