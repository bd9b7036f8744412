"""Synthetic instruction data with the length distribution of the speed benchmarks (seeded log-normal)."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

WORDS = tuple(f"w{i}" for i in range(600)) + ("the", "of", "and", "to", "a", "in", "is", "for", "answer", "code")


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def chat_rows(count: int, seed: int = 0) -> list[dict]:
    """Chat rows whose token lengths follow a log-normal (mean ~344 tokens, cap ~2000), as in perf-reference.md."""
    rng = random.Random(seed)
    sigma = 0.8
    mu = math.log(350) - sigma**2 / 2
    rows = []
    for _ in range(count):
        words = max(8, min(850, int(rng.lognormvariate(mu, sigma) * 0.43)))  # ~2.3 tokens per word
        prompt_words = max(4, words // 3)
        rows.append({"messages": [{"role": "user", "content": sentence(rng, prompt_words)},
                                  {"role": "assistant", "content": sentence(rng, words - prompt_words)}]})
    return rows


if __name__ == "__main__":
    out, count = Path(sys.argv[1]), int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    out.write_text("".join(json.dumps(row) + "\n" for row in chat_rows(count, seed)))
    print(f"wrote {count} rows to {out}")
