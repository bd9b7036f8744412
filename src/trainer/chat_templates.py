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
