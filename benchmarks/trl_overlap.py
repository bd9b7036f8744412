"""What trl would add to the trainer: its import time on top of the libraries the trainer loads anyway, and whether
transformers' assistant mask (what TRL's assistant_only_loss uses) covers the assistant turn under Meta's Llama 3
template, against trainer.data.tokenize_chat. docs/trainer.md ("trl: not a dependency") quotes its output.

    python benchmarks/trl_overlap.py      # CPU is enough; needs trl installed
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests" / "trainer")]


def main() -> None:
    started = time.perf_counter()
    import datasets  # noqa: F401
    import peft  # noqa: F401
    import transformers  # noqa: F401

    loaded = time.perf_counter()
    from trl import SFTConfig, SFTTrainer  # noqa: F401

    with_trl = time.perf_counter()
    print(f"import transformers, datasets, peft: {loaded - started:.2f} s; "
          f"then trl's SFTConfig and SFTTrainer: +{with_trl - loaded:.2f} s")

    from hf_data import build_base_model_dir
    from transformers import AutoTokenizer

    from trainer.chat_templates import LLAMA3
    from trainer.data import tokenize_chat
    from trainer.types import IGNORE_INDEX

    directory = Path(tempfile.mkdtemp())
    build_base_model_dir(directory)
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    tokenizer.chat_template = LLAMA3
    messages = [{"role": "user", "content": "what is the answer for k1 ?"}, {"role": "assistant", "content": "v4"}]
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
    _, labels = tokenize_chat(messages, tokenizer)
    print(f"Llama 3 template, one user/assistant exchange: transformers' assistant mask covers "
          f"{sum(encoded['assistant_masks'])} tokens; trainer.data.tokenize_chat trains on "
          f"{sum(1 for label in labels if label != IGNORE_INDEX)} (the answer and <|eot_id|>)")


if __name__ == "__main__":
    main()
