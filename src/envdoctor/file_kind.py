"""What a path that is not a regular file is, in words, for one-line errors on reads and writes."""

from __future__ import annotations

import stat

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_kind(mode: int) -> str | None:
    """``"a directory"``, ``"a FIFO (named pipe)"``... for a file mode that is not a regular file's; None for a
    regular file or a kind without a name here."""
    return next((kind for test, kind in _KINDS if test(mode)), None)
