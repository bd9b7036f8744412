"""Writing the CLI's output: a closed or full stdout or a broken pipe is an ``OutputError`` (exit 74), never a
traceback; characters a non-UTF-8 stdout cannot show are written as backslash escapes.

Only the command line (``envdoctor.cli``) uses this.
"""

from __future__ import annotations

import codecs
import os
import sys

from envdoctor.errors import EXIT_IO, EnvdoctorError

BOX_SAMPLE = "─│┏━┃┡┗└├"  # characters rich draws tables with


class OutputError(EnvdoctorError):
    """stdout could not take the output (closed, full, a broken pipe); printed as one line, exit 74."""

    exit_code = EXIT_IO


def stdout_is_open() -> bool:
    return sys.stdout is not None


def stdout_encoding() -> str:
    return (getattr(sys.stdout, "encoding", None) or "utf-8").lower()


def can_show(text: str, encoding: str | None = None) -> bool:
    """True when ``text`` encodes in ``encoding`` (default: stdout's)."""
    try:
        codecs.lookup(encoding or stdout_encoding())
        text.encode(encoding or stdout_encoding())
    except (LookupError, UnicodeEncodeError):
        return False
    return True


def write_stdout(text: str) -> None:
    """Write and flush ``text``; characters stdout's encoding cannot show are written as backslash escapes.
    Raises OutputError when stdout is closed or the write fails."""
    stream = sys.stdout
    if stream is None:
        raise OutputError("stdout is closed; run again with stdout open, or write to a file (probe -o FILE)")
    encoding = stdout_encoding() if can_show("") else "ascii"
    if not can_show(text, encoding):
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError) as exc:  # ValueError: "I/O operation on closed file"
        _discard_pending(stream)
        raise OutputError(f"cannot write to stdout ({_reason(exc)})") from None


def write_stderr(text: str) -> None:
    """Best effort: a closed or failing stderr loses the line, it does not raise."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        if not can_show(text, getattr(stream, "encoding", None) or "utf-8"):
            text = text.encode("ascii", "backslashreplace").decode("ascii")
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass


def _reason(exc: Exception) -> str:
    if isinstance(exc, BrokenPipeError):
        return "the reader closed the pipe"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _discard_pending(stream: object) -> None:
    """Point the real stdout at /dev/null so the interpreter's final flush does not print a second error."""
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing is flushed at exit
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass
