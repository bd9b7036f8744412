"""Parsed TOML tables cached on disk, so a run reads the knowledge as JSON instead of parsing TOML again.

``load_toml(path)`` answers what ``tomllib.load`` answers for ``path`` (and raises what it raises). A regular file
whose parse holds only JSON types is kept as JSON in ``$XDG_CACHE_HOME/envdoctor/tables`` (``~/.cache/...`` when
unset), one file per table, keyed on the table's path, size, mtime_ns and ctime_ns. An entry is used only when
that key matches the file as it is now and the checksum of its data matches; anything else (a changed table, a
truncated or corrupt entry, another format) is ignored and the entry rebuilt. A table changed within the last
``SETTLE_NS`` is not cached (its next change could keep the same timestamp), nor is a path that is not a regular
file. Entries are written atomically (``envdoctor.atomic``); a cache folder that cannot be made or written leaves
every table parsed as before.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
import zlib
from pathlib import Path
from typing import Any

FORMAT = "envdoctor.table-cache/1"
FOLDER = ("envdoctor", "tables")
SETTLE_NS = 2_000_000_000  # FAT stores mtime in 2 s steps; younger files may change without a new timestamp
MAX_ENTRY_BYTES = 64 * 1024 * 1024

Key = dict[str, Any]


def load_toml(path: Path) -> dict[str, Any]:
    """``tomllib.load`` of ``path``, from the cache when its entry is current. Raises OSError, UnicodeDecodeError
    or ``tomllib.TOMLDecodeError`` exactly as ``tomllib.load`` of the file does."""
    key = _key(path)
    entry = _entry_path(path) if key is not None else None
    if entry is not None:
        cached = _read_entry(entry, key)
        if cached is not None:
            return cached
    data = _parse(path)
    if entry is not None and _key(path) == key and _settled(key) and _json_native(data):
        _write_entry(entry, key, data)
    return data


def cache_folder() -> Path | None:
    """``$XDG_CACHE_HOME/envdoctor/tables`` (an absolute XDG_CACHE_HOME only, as the XDG spec says), else
    ``~/.cache/envdoctor/tables``; None when there is no home to put it in."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError):  # no HOME and no passwd entry
            return None
    return Path(base, *FOLDER)


def loads(text: str) -> dict[str, Any]:
    """``tomllib.loads``, for TOML that is not a table file (``envdoctor.toml``)."""
    return _tomllib().loads(text)


def __getattr__(name: str) -> Any:
    """``TOMLDecodeError``: the parser's error class, imported when first asked for (an ``except`` clause asks only
    when something was raised), so a run whose tables all come from the cache never imports the parser."""
    if name == "TOMLDecodeError":
        return _tomllib().TOMLDecodeError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _tomllib() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib


def _parse(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return _tomllib().load(handle)


def _key(path: Path) -> Key | None:
    """What identifies this version of the file; None when it is not a regular file (or cannot be stat'ed)."""
    try:
        absolute = os.path.abspath(path)
        info = os.stat(absolute)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return {"path": absolute, "size": info.st_size, "mtime_ns": info.st_mtime_ns, "ctime_ns": info.st_ctime_ns}


def _settled(key: Key) -> bool:
    return time.time_ns() - max(key["mtime_ns"], key["ctime_ns"]) > SETTLE_NS


def _entry_path(path: Path) -> Path | None:
    folder = cache_folder()
    if folder is None:
        return None
    absolute = os.path.abspath(path)
    return folder / f"{Path(absolute).name}.{zlib.crc32(absolute.encode('utf-8', 'surrogateescape')):08x}.json"


def _read_entry(entry: Path, key: Key) -> dict[str, Any] | None:
    """The cached table when the entry is a regular file holding this key and an intact payload; else None."""
    try:
        handle = os.open(entry, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_ENTRY_BYTES or not _own(info) \
                or not _private_folder(os.stat(entry.parent)):
            return None
        with os.fdopen(handle, "rb", closefd=False) as file:
            raw = file.read(MAX_ENTRY_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(handle)
    head, newline, payload = raw.partition(b"\n")
    try:
        header = json.loads(head)
        if not newline or not isinstance(header, dict) or header.get("format") != FORMAT \
                or header.get("key") != key or header.get("crc32") != zlib.crc32(payload):
            return None
        data = json.loads(payload)
    except ValueError:  # not JSON, not UTF-8
        return None
    return data if isinstance(data, dict) else None


def _own(info: os.stat_result) -> bool:
    """Owned by this user: another user's entry (a shared cache folder) could carry other tables under a matching
    key."""
    getuid = getattr(os, "getuid", None)
    return getuid is None or info.st_uid == getuid()


def _private_folder(info: os.stat_result) -> bool:
    """The entries' folder (made 0700) is this user's and no one else can add or replace entries in it."""
    return _own(info) and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _write_entry(entry: Path, key: Key, data: dict[str, Any]) -> None:
    """Write the entry atomically over a regular file or a new path (never through a link or over anything else);
    a folder or file that cannot be written leaves the cache as it was."""
    try:
        entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.access(entry.parent, os.W_OK) or entry.is_symlink() \
                or (entry.exists() and not entry.is_file()):
            return
        from envdoctor.atomic import write_atomic  # only here: its imports cost more than a cached read

        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        encoded = payload.encode("utf-8")
        if len(encoded) > MAX_ENTRY_BYTES:
            return
        header = json.dumps({"format": FORMAT, "key": key, "crc32": zlib.crc32(encoded)})
        write_atomic(entry, f"{header}\n{payload}")
    except (OSError, ValueError):  # unwritable, or text that UTF-8 cannot hold
        return


def _json_native(value: Any) -> bool:
    """Whether JSON gives ``value`` back as it is: tables, arrays, strings, numbers, booleans (not TOML's dates)."""
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and _json_native(v) for k, v in value.items())
    if kind is list:
        return all(_json_native(v) for v in value)
    return kind in (str, int, float, bool)
