"""Write a text file so that readers see the old file or the whole new one, never a part (temp file + rename).

Only a regular file or a new path is written. A directory, FIFO, device node or socket at the path is refused
(``UnsafeTargetError``), never replaced. A symlink is written through: its final target is replaced atomically
and the link itself stays (a dangling link creates its target). A new file gets the usual mode for the umask
(0644 under umask 022); an existing file keeps its mode.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from envdoctor.errors import EnvdoctorError
from envdoctor.file_kind import special_kind


class UnsafeTargetError(EnvdoctorError, OSError):
    """The path names something other than a regular file; writing there would replace it."""


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder and a rename; raises OSError
    (UnsafeTargetError when the path is not a regular file or a new path).

    The folder must exist: a mistyped path is an error, not a new directory tree.
    """
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    mode = _mode_for(target)
    folder = target.parent if str(target.parent) else Path(".")
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _mode_for(target: Path) -> int:
    """The existing regular file's permission bits, or 0666 less the umask for a new file."""
    try:
        existing = os.stat(target).st_mode
    except FileNotFoundError:
        return 0o666 & ~_umask()
    kind = special_kind(existing)
    if kind is not None:
        raise UnsafeTargetError(0, f"is {kind}, not a regular file; pass a regular file or a new path", str(target))
    if not stat.S_ISREG(existing):
        raise UnsafeTargetError(0, "not a regular file; pass a regular file or a new path", str(target))
    return stat.S_IMODE(existing) & 0o777  # the permission bits; never set-id bits on a file envdoctor wrote


def _umask() -> int:
    current = os.umask(0o022)  # the only portable way to read it: set, then restore at once
    os.umask(current)
    return current
