"""--chat_template: the Jinja template chat rows are rendered with, by bundled name or from a file.

It replaces the tokenizer's own template (a base model usually has none), is saved with the adapter and the merged
model, and the loss mask stays assistant-only: trainer.data renders each conversation prefix with the same template,
so the trained tokens are each assistant turn and its end-of-turn marker, whatever the template.

Tokens a template writes that the tokenizer lacks as special tokens (ChatML's <|im_start|> on a Llama base) are split
into ordinary pieces; the mask is still exact, but a model served with that template must be given the same text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from trainer.errors import BadInputError

# Meta's Llama 3 / 3.1 Instruct format (the template of Meta-Llama-3-8B-Instruct, without the tool-calling parts).
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# ChatML (OpenAI's format, used by Qwen and many fine-tunes).
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
    " + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
BUNDLED = {"llama3": LLAMA3, "chatml": CHATML}
# What ends an assistant turn in each bundled template (trained on with the turn).
END_OF_TURN = {"llama3": "<|eot_id|>", "chatml": "<|im_end|>"}
MAX_TEMPLATE_BYTES = 1 << 20
GENERATION_TAG = re.compile(r"\{%-?\s*(end)?generation\s*-?%\}")


class ChatTemplateError(BadInputError):
    """A --chat_template that is neither a bundled name nor a readable Jinja file."""


def resolve_chat_template(value: str) -> str:
    """The template text for a bundled name or a Jinja file; raises ChatTemplateError."""
    if value in BUNDLED:
        return BUNDLED[value]
    path = Path(value).expanduser()
    if not path.is_file():
        raise ChatTemplateError(f"--chat_template {value}: neither a bundled template ({', '.join(BUNDLED)}) nor a "
                                "file; pass one of those names or a Jinja file")
    try:
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise ChatTemplateError(f"--chat_template {value}: larger than 1 MiB; pass a Jinja chat template")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ChatTemplateError(f"--chat_template {value}: cannot be read as UTF-8 text ({error}); pass a Jinja "
                                "file") from None
    if not text.strip():
        raise ChatTemplateError(f"--chat_template {value}: the file is empty; pass a Jinja chat template")
    syntax = jinja_syntax_problem(text)
    if syntax:
        raise ChatTemplateError(f"--chat_template {value}: {syntax}; fix the template")
    return text


def jinja_syntax_problem(text: str) -> str | None:
    """Why text does not compile as a Jinja template (with the line), or None."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols"])
    plain = GENERATION_TAG.sub("", text)  # transformers' own {% generation %} tag, unknown to plain Jinja
    try:
        environment.parse(plain)
    except TemplateSyntaxError as error:
        return f"not valid Jinja at line {error.lineno} ({error.message})"
    return None


def chat_template_problem(value: str | None) -> str | None:
    """The preflight phrase for --chat_template (before anything heavy loads), or None."""
    if not value:
        return None
    try:
        resolve_chat_template(value)
    except ChatTemplateError as error:
        return str(error)
    return None


def use_chat_template(tokenizer: Any, value: str | None) -> str | None:
    """Set tokenizer.chat_template from --chat_template (it is saved with the tokenizer); returns what was used."""
    if not value:
        return None
    tokenizer.chat_template = resolve_chat_template(value)
    return value if value in BUNDLED else f"the template in {value}"


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The special token the tokenizer's template closes an assistant turn with (<|eot_id|>, <|im_end|>), when it is
    one special token other than EOS; None otherwise (then EOS already stops generation, or nothing can)."""
    probe = "END_OF_TURN_PROBE"
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant",
                                                                               "content": probe}], tokenize=False)
    if probe not in rendered:
        return None
    suffix = rendered.split(probe, 1)[1]
    ids = tokenizer(suffix, add_special_tokens=False)["input_ids"] if suffix.strip() else []
    if not ids or ids[0] == tokenizer.eos_token_id:
        return None
    added = getattr(tokenizer, "added_tokens_decoder", {}).get(ids[0])
    return ids[0] if added is not None and getattr(added, "special", False) else None


def stop_generation_at_end_of_turn(model_dir: Path) -> str | None:
    """Add the template's end-of-turn token to model_dir's generation_config.json eos_token_id (as Llama 3 Instruct
    ships it), so that generation stops where a trained assistant turn ends. Returns what was done, or None."""
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    token = end_of_turn_id(tokenizer)
    if token is None:
        return None
    if (model_dir / "generation_config.json").is_file():
        generation = GenerationConfig.from_pretrained(str(model_dir))
    else:
        generation = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    current = generation.eos_token_id
    stops = [current] if isinstance(current, int) else list(current or [])
    if token in stops:
        return None
    generation.eos_token_id = [*stops, token]
    generation.save_pretrained(str(model_dir))
    return f"generation stops at {tokenizer.convert_ids_to_tokens(token)} too (generation_config.json eos_token_id)"
