"""Build a Llama-3.1-70B-shaped model (width, heads, vocabulary; --layers of them) with random bf16 weights and the
same small BPE tokenizer as make_llama8b.py. No hub access is needed.

Usage: python make_llama70b.py OUT_DIR [--layers N]   (80 layers: 70.6B parameters, 141 GB in bf16)

The weights are drawn on the CPU in bf16 (one layer is 1.7 GB, the whole model more than any one GPU holds).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from make_llama8b import build_tokenizer
from transformers import LlamaConfig, LlamaForCausalLM


def llama31_70b_config(layers: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=128256, hidden_size=8192, intermediate_size=28672, num_hidden_layers=layers,
        num_attention_heads=64, num_key_value_heads=8, max_position_embeddings=131072, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False, bos_token_id=0, eos_token_id=1, pad_token_id=4,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=80)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    build_tokenizer(args.out)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # never a float32 copy: 282 GB at 80 layers
    model = LlamaForCausalLM(llama31_70b_config(args.layers))
    model.save_pretrained(str(args.out), safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())
    print(f"saved {params / 1e9:.2f}B-parameter Llama-3.1-70B-shaped model ({args.layers} layers) to {args.out} "
          f"in {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
