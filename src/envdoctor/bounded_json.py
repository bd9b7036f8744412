"""Read a JSON file whose size and nesting are bounded, so a hostile or broken file cannot exhaust memory or stack.

Limits (``load_json_file``'s defaults): at most 32 MiB (``MAX_JSON_BYTES``; a real snapshot of a large environment
is well under 2 MiB) and at most 64 levels of nesting (``MAX_JSON_DEPTH``; a snapshot needs 4). Only regular files
are read: a FIFO, a device (``/dev/zero``), a socket or a directory is refused before any byte is read, so nothing
blocks or streams without end. ``NaN`` and ``Infinity`` are refused: they are not JSON (RFC 8259).
Every refusal is a ``JsonFileError`` (a ValueError) with one line that names the file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from envdoctor.errors import EnvdoctorError
from envdoctor.file_kind import special_kind

MAX_JSON_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 64

class JsonFileError(EnvdoctorError, ValueError):
    """A JSON file that cannot be read within the bounds; the message is one line naming the file."""


def load_json_file(path: str | Path, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The parsed content of ``path``. Raises JsonFileError for a non-regular file, an unreadable or oversized
    file, text that is not UTF-8, invalid JSON, or nesting deeper than ``max_depth``."""
    path = Path(path)
    raw = _read_bounded(path, max_bytes)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JsonFileError(f"{path}: not UTF-8 text (byte {exc.start}); pass a UTF-8 JSON file") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise JsonFileError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise JsonFileError(f"{path}: JSON nested deeper than {max_depth} levels; this is not a valid file") from None
    except ValueError as exc:  # NaN/Infinity, or an integer longer than Python's digit limit
        raise JsonFileError(f"{path}: invalid JSON: {_one_line(exc)}") from None
    depth = nesting_depth(data, stop_after=max_depth)
    if depth > max_depth:
        raise JsonFileError(f"{path}: JSON nested deeper than {max_depth} levels; this is not a valid file")
    return data


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    try:
        # O_NONBLOCK: opening a FIFO without a writer must not hang; it is refused just below.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise JsonFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        kind = special_kind(mode)
        if kind is not None:
            raise JsonFileError(f"{path}: is {kind}, not a regular file; pass a JSON file")
        if not stat.S_ISREG(mode):
            raise JsonFileError(f"{path}: not a regular file; pass a JSON file")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise JsonFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise JsonFileError(f"{path}: larger than {_mib(max_bytes)}; this is not a file envdoctor reads")
    return b"".join(chunks)


def nesting_depth(data: Any, stop_after: int = MAX_JSON_DEPTH) -> int:
    """How deep lists and objects nest in ``data`` (a scalar is 0, ``[]`` is 1); iterative, so any depth is safe.
    Stops counting once ``stop_after`` is exceeded (the result is then ``stop_after + 1``)."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(data, 1)] if isinstance(data, (dict, list)) else []
    while todo:
        value, depth = todo.pop()
        deepest = max(deepest, depth)
        if deepest > stop_after:
            return stop_after + 1
        children = value.values() if isinstance(value, dict) else value
        todo.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"
