"""Tiny local Llama + tokenizer + a synthetic task a LoRA can learn, built inside the tests (no hub access).

    tok = build_tiny_tokenizer(model_dir)
    build_tiny_llama(model_dir, vocab=len(tok))
    write_jsonl(data_path, synthetic_chat_rows(64))
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
NUM_KEYS = 8
KEY_WORDS = tuple(f"k{i}" for i in range(NUM_KEYS))
VALUE_WORDS = tuple(f"v{i}" for i in range(NUM_KEYS))
# A fixed, non-trivial mapping prompt word -> answer word: the thing the LoRA must learn.
ANSWER_OF = {key: VALUE_WORDS[(i * 3 + 1) % NUM_KEYS] for i, key in enumerate(KEY_WORDS)}
FILLER_WORDS = ("what", "is", "the", "answer", "for", "question", "input", "response", "hello", "world", ":", "?")
WORDS = KEY_WORDS + VALUE_WORDS + FILLER_WORDS
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK) + ROLE_TOKENS
TINY_VOCAB_SIZE = len(SPECIAL_TOKENS) + len(WORDS)

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{{ '<|' + m['role'] + '|> ' + m['content'] + ' ' }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token + ' ' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}"
)


def build_tiny_tokenizer(directory: Path | str) -> Any:
    """A word-level PreTrainedTokenizerFast over the synthetic vocabulary, with a chat template; saved to directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=list(ROLE_TOKENS),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(directory))
    return tokenizer


def build_tiny_llama(
    directory: Path | str,
    vocab: int = TINY_VOCAB_SIZE,
    layers: int = 2,
    hidden: int = 64,
    dtype: str = "float32",
    seed: int = 0,
    initializer_range: float = 0.15,
) -> Path:
    """Save a random-init LlamaForCausalLM (safetensors) into directory and return the directory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
        # Larger than Llama's 0.02 so that a 64-wide model can reach confident logits through a LoRA alone.
        initializer_range=initializer_range,
    )
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(str(directory), safe_serialization=True)
    return Path(directory)


def tiny_llama_in_memory(vocab: int, hidden: int = 32, seed: int = 0, **config: Any) -> Any:
    """A random-init 2-layer LlamaForCausalLM kept in memory (4 heads, 2 KV heads, MLP 64, untied head, 128
    positions); `config` overrides LlamaConfig fields."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = {"vocab_size": vocab, "hidden_size": hidden, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
                "tie_word_embeddings": False, **config}
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**settings))


def build_tiny_model_dir(directory: Path | str, **llama_kwargs: Any) -> Path:
    """Tokenizer + model in one directory, ready for `--model_name directory`."""
    tokenizer = build_tiny_tokenizer(directory)
    return build_tiny_llama(directory, vocab=len(tokenizer), **llama_kwargs)


def write_jsonl(path: Path | str, rows: Iterable[dict[str, Any] | str]) -> Path:
    """One JSON object per line; a str row is written verbatim (to make bad rows)."""
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def _keys(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(KEY_WORDS) for _ in range(count)]


def question_for(key: str) -> str:
    return f"what is the answer for {key} ?"


def synthetic_chat_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Chat rows: user asks about a key word, assistant answers with ANSWER_OF[key]."""
    return [
        {"messages": [{"role": "user", "content": question_for(k)}, {"role": "assistant", "content": ANSWER_OF[k]}]}
        for k in _keys(count, seed)
    ]


def synthetic_alpaca_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    return [{"instruction": "what is the answer for", "input": k, "output": ANSWER_OF[k]} for k in _keys(count, seed)]


def synthetic_prompt_completion_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    return [{"prompt": question_for(k), "completion": ANSWER_OF[k]} for k in _keys(count, seed)]


def synthetic_text_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    return [{"text": f"{question_for(k)} {ANSWER_OF[k]}"} for k in _keys(count, seed)]


def expected_answers(keys: Sequence[str] = KEY_WORDS) -> dict[str, str]:
    return {key: ANSWER_OF[key] for key in keys}
