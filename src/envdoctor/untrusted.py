"""Text from a snapshot is untrusted (users attach snapshots to issues): shown escaped, never obeyed.

``escape_control`` makes control characters visible (``\\x1b``, ``\\n``, ``\\u202e``) so a string cannot move the
cursor, recolour the terminal, forge a line or reorder text; ``markdown_text`` and ``markdown_code`` also keep it
from forging Markdown structure; ``safe_fix`` is the last guard on a finding's fix command.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the invisible format characters that reorder or hide text (bidi overrides and
# isolates, zero-width characters, line and paragraph separators, the byte-order mark, tag characters) and lone
# surrogates (which no UTF-8 output can carry).
_INVISIBLE = ("\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
              "\ud800-\udfff\U000e0000-\U000e007f")
_CONTROL = re.compile(f"[\x00-\x1f{_INVISIBLE}]")
_JSON_INVISIBLE = re.compile(f"[{_INVISIBLE}]")  # json.dumps already escapes \x00-\x1f inside strings
# Markdown punctuation; an underscore inside a word (x86_64) never starts emphasis, so it stays as it is.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|~#!]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_MARKDOWN_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "@": "&#64;"}


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def escape_control(text: object) -> str:
    """``str(text)`` with every control or invisible format character written as a Python escape."""
    return _CONTROL.sub(_escape_one, str(text))


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if code < 0x100:
        return {9: "\\t", 10: "\\n", 13: "\\r"}.get(code, f"\\x{code:02x}")
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def markdown_text(text: object) -> str:
    """Plain text for a Markdown table cell or list item: controls escaped, Markdown punctuation backslashed,
    HTML and @-mentions made inert."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", escape_control(text))
    return "".join(_MARKDOWN_HTML.get(ch, ch) for ch in escaped)


def markdown_code(text: object) -> str:
    """Inline code for a Markdown table cell: a backtick fence longer than any run inside, pipes escaped."""
    body = escape_control(text).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def json_escape_invisible(json_text: str) -> str:
    """JSON text with every control or invisible format character written as a ``\\uXXXX`` escape: the decoded
    values are unchanged, but a terminal showing the JSON shows them escaped. (Outside strings JSON is ASCII, so
    only string contents change.)"""
    return _JSON_INVISIBLE.sub(_json_escape_one, json_text)


def _json_escape_one(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def safe_fix(fix: str | None) -> str | None:
    """The fix command, or None when it holds a control character (a newline would run a second command)."""
    if fix is None or has_control(fix):
        return None
    return fix
