"""LoRA dropout drawn inside the rank-r product (trainer.kernels.lora_dropout) against torch's dropout, per layer.

Times (CUDA events, bf16, rank 16) for the four input groups of one Llama-3.1-8B decoder layer at --tokens tokens
(q,k,v; o; gate,up; down), each the fused LoRA op's forward + backward with its base GEMMs:
  no dropout      trainer.kernels.fused_lora's op without dropout: the floor
  torch dropout   the same op fed by torch's dropout compiled by Inductor (its mask drawn and kept in forward)
  kernel dropout  the op with the mask drawn inside the rank-r product from a seed, again in backward
then the kernel's forward and backward alone for each tile setting of --configs (the TRAINER_LORA_DROPOUT_* overrides
of trainer.kernels.lora_dropout), against the plain rank-r GEMMs they replace. Prints ms per layer and for 32 layers;
--json-out keeps the figures.

Usage: python benchmarks/lora_dropout_probe.py [--tokens 8192] [--iters 10] [--json-out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from cuda_timing import cuda_ms  # noqa: E402
from lora_gemm_probe import LAYERS, RANK, SCALING, bf16, layer_groups  # noqa: E402

P = 0.05
# forward BM,BKQ,warps,stages / backward BM,BKQ,warps,stages
DEFAULT_CONFIGS = ("32,32,4,3/64,16,4,2", "64,32,8,3/32,32,8,2", "128,16,8,3/64,32,8,2", "32,64,8,3/64,16,4,2",
                   "128,32,8,3/16,32,4,2")


def set_config(text: str) -> None:
    forward, backward = text.split("/")
    for part, values in (("FWD", forward), ("BWD", backward)):
        for name, value in zip(("BM", "BKQ", "WARPS", "STAGES"), values.split(","), strict=True):
            os.environ[f"TRAINER_LORA_DROPOUT_{part}_{name}"] = value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--configs", default=";".join(DEFAULT_CONFIGS),
                        help="';'-separated FWD_BM,BKQ,WARPS,STAGES/BWD_BM,BKQ,WARPS,STAGES settings to time")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--best-env", type=Path, help="write `export TRAINER_LORA_DROPOUT_*=...` lines of the fastest "
                        "forward and backward setting here (a shell sources it before train_speed.py)")
    args = parser.parse_args(argv)
    from trainer.kernels import lora_dropout
    from trainer.kernels.fused_lora import _SharedInputLoRA, _SharedInputLoRAKernelDropout

    tokens = args.tokens
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {tokens} tokens, rank {RANK}, p {P}")
    groups = layer_groups(tokens)
    compiled_dropout = torch.compile(lambda t: torch.nn.functional.dropout(t, P, training=True))

    def whole_op(kind: str) -> Callable[[], None]:
        def run() -> None:
            for x, weights, stacked_a, lora_b, grads in groups:
                nones = [None] * len(weights)
                if kind == "kernel":
                    seed = lora_dropout.new_seed(x.device)
                    outs = _SharedInputLoRAKernelDropout.apply(x, seed, P, stacked_a, SCALING, *weights, *nones,
                                                               *lora_b)
                else:
                    dropped = compiled_dropout(x) if kind == "torch" else None
                    outs = _SharedInputLoRA.apply(x, dropped, stacked_a, SCALING, *weights, *nones, *lora_b)
                torch.autograd.backward(outs, grads)
        return run

    seed = lora_dropout.new_seed(torch.device("cuda"))
    bases = [torch.zeros_like(x) for x, *_ in groups]
    grad_ranks = [bf16(tokens, a.shape[0]) for _, _, a, _, _ in groups]

    def kernel_forward() -> None:
        for x, _, stacked_a, _, _ in groups:
            lora_dropout.dropout_rank(x.detach(), stacked_a.detach(), seed, P)

    def kernel_backward() -> None:
        for (x, _, stacked_a, _, _), base, grad_rank in zip(groups, bases, grad_ranks, strict=True):
            lora_dropout.dropout_rank_backward(grad_rank, x.detach(), stacked_a.detach(), seed, P, base, True)

    def gemm_forward() -> None:
        for x, _, stacked_a, _, _ in groups:
            x.detach() @ stacked_a.detach().t()

    def gemm_backward() -> None:
        for (x, _, stacked_a, _, _), base, grad_rank in zip(groups, bases, grad_ranks, strict=True):
            grad_rank.t() @ x.detach()
            base.addmm(grad_rank, stacked_a.detach())

    results: dict[str, float] = {}

    def time_row(label: str, work: Callable[[], None]) -> None:
        for _ in range(3):
            work()
        ms = cuda_ms(work, args.iters)
        results[label] = ms * LAYERS
        print(f"  {label:44s} {ms:7.3f} ms a layer, {ms * LAYERS:6.1f} ms for {LAYERS} layers", flush=True)

    for kind in ("none", "torch", "kernel"):
        time_row(f"fused op fwd+bwd, dropout {kind}", whole_op(kind))
    time_row("rank GEMM forward x @ A^T (no dropout)", gemm_forward)
    time_row("rank GEMMs backward dA, base + dx (no dropout)", gemm_backward)
    best: dict[str, tuple[float, str]] = {}
    for config in args.configs.split(";"):
        set_config(config)
        for part, work, text in (("FWD", kernel_forward, config.split("/")[0]),
                                 ("BWD", kernel_backward, config.split("/")[1])):
            label = f"kernel {'forward ' if part == 'FWD' else 'backward'} {text}"
            try:
                time_row(label, work)
            except Exception as error:  # a setting that does not compile or fit: say so, time the others
                print(f"  {label}: {type(error).__name__}: {str(error)[:200]}", flush=True)
                continue
            if part not in best or results[label] < best[part][0]:
                best[part] = (results[label], text)
    print("fastest: " + ", ".join(f"{part} {text} ({ms:.1f} ms)" for part, (ms, text) in best.items()), flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps({"tokens": tokens, "p": P, "ms_for_32_layers": results,
                                             "fastest": {part: text for part, (_, text) in best.items()}}, indent=1))
    if args.best_env:
        lines = [f"export TRAINER_LORA_DROPOUT_{part}_{name}={value}" for part, (_, text) in best.items()
                 for name, value in zip(("BM", "BKQ", "WARPS", "STAGES"), text.split(","), strict=True)]
        args.best_env.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
