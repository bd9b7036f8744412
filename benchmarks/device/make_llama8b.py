"""Build a Llama-3.1-8B-shaped model with random bf16 weights and a small BPE tokenizer with a chat template.

No hub access is needed (the device machine has none). Usage: python make_llama8b.py OUT_DIR [--layers N]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
from dataset_words import WORDS, sentence
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
SPECIALS = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|pad|>"]


def llama31_8b_config(layers: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=layers,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False, bos_token_id=0, eos_token_id=1, pad_token_id=4,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
    )


def build_tokenizer(out: Path) -> PreTrainedTokenizerFast:
    rng = random.Random(0)
    corpus = [sentence(rng, 40) for _ in range(4000)] + list(WORDS)
    backend = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=4000, special_tokens=SPECIALS,
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=SPECIALS[0], eos_token=SPECIALS[1],
                                  pad_token=SPECIALS[4])
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(str(out))
    return tok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=32)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    build_tokenizer(args.out)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = LlamaForCausalLM(llama31_8b_config(args.layers)).to(torch.bfloat16)
    model.save_pretrained(str(args.out), safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())
    print(f"saved {params / 1e9:.2f}B-parameter Llama-3.1-8B-shaped model to {args.out} "
          f"in {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
