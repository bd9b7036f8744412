"""envdoctor.table_cache: parsed TOML kept as JSON on disk, used only while the table is unchanged and the entry
intact, written atomically over regular files only, under $XDG_CACHE_HOME; everything parses as before without it."""

from __future__ import annotations

import datetime
import json
import os
import sys
import zlib
from pathlib import Path

import pytest

from envdoctor import table_cache
from envdoctor.checker import run_check
from envdoctor.matrices import default_root, load_matrices
from envdoctor.render import render
from envdoctor.snapshot import load_snapshot

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TABLE = 'name = "x"\ncount = 3\nratio = 0.5\nflags = [true, false]\n[part]\nitems = ["a", "b"]\n'
EXAMPLES = Path(__file__).resolve().parent / "data" / "snapshots"


@pytest.fixture()
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache under XDG_CACHE_HOME; files count as settled at once (the real wait is tested on its own)."""
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.setattr(table_cache, "SETTLE_NS", -10**18)
    return home / "envdoctor" / "tables"


def _table(folder: Path, text: str = TABLE, name: str = "table.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_a_table_is_cached_and_read_back_the_same(tmp_path: Path, cache_home: Path) -> None:
    path = _table(tmp_path / "m")
    first = table_cache.load_toml(path)
    assert first == tomllib.loads(TABLE)
    [entry] = _entries(cache_home)
    header = json.loads(entry.read_bytes().partition(b"\n")[0])
    assert header["key"]["path"] == str(path) and header["key"]["size"] == path.stat().st_size
    assert header["key"]["mtime_ns"] == path.stat().st_mtime_ns
    again = table_cache.load_toml(path)
    assert again == first and again is not first
    assert [type(v) for v in again.values()] == [str, int, float, list, dict]


def test_a_cached_read_does_not_parse(tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _table(tmp_path / "m")
    table_cache.load_toml(path)

    def no_parse(path: Path) -> dict:
        raise AssertionError("parsed although the entry is current")

    monkeypatch.setattr(table_cache, "_parse", no_parse)
    assert table_cache.load_toml(path) == tomllib.loads(TABLE)


def test_a_changed_table_is_parsed_again_even_at_the_same_size(tmp_path: Path, cache_home: Path) -> None:
    path = _table(tmp_path / "m")
    table_cache.load_toml(path)
    changed = TABLE.replace("count = 3", "count = 4")
    assert len(changed) == len(TABLE)
    path.write_text(changed, encoding="utf-8")
    assert table_cache.load_toml(path)["count"] == 4
    before = path.stat()
    path.write_text(TABLE, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # size and mtime as cached: only the ctime moved
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert table_cache.load_toml(path)["count"] == 3


def test_a_table_changed_just_now_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = _table(tmp_path / "m")
    assert table_cache.load_toml(path) == tomllib.loads(TABLE)
    assert _entries(tmp_path / "cache" / "envdoctor" / "tables") == []  # the next write may keep this timestamp


def test_every_corrupt_entry_is_ignored_and_rebuilt(tmp_path: Path, cache_home: Path) -> None:
    path = _table(tmp_path / "m")
    table_cache.load_toml(path)
    [entry] = _entries(cache_home)
    good = entry.read_bytes()
    header, _, payload = good.partition(b"\n")
    other = json.dumps({**tomllib.loads(TABLE), "count": 99}, separators=(",", ":")).encode()
    wrong_key = json.loads(header)
    wrong_key["key"]["size"] += 1
    not_a_table = b"[1, 2]"
    not_a_table_header = json.loads(header)
    not_a_table_header["crc32"] = zlib.crc32(not_a_table)
    corrupt = [
        b"", good[: len(good) // 2], header, b"not json\n" + payload, header + b"\n" + other,
        header + b"\n" + payload.replace(b"3", b"9"), json.dumps(wrong_key).encode() + b"\n" + payload,
        json.dumps(not_a_table_header).encode() + b"\n" + not_a_table, b"\xff\xfe" + good,
    ]
    for bad in corrupt:
        entry.write_bytes(bad)
        assert table_cache.load_toml(path) == tomllib.loads(TABLE), bad[:60]
        assert entry.read_bytes() == good, bad[:60]  # rebuilt


def test_entries_are_replaced_atomically(tmp_path: Path, cache_home: Path) -> None:
    path = _table(tmp_path / "m")
    table_cache.load_toml(path)
    [entry] = _entries(cache_home)
    entry.write_text("stale")
    inode = entry.stat().st_ino
    table_cache.load_toml(path)
    assert entry.stat().st_ino != inode  # a new file renamed over the old one, never rewritten in place
    assert [p.name for p in _entries(cache_home)] == [entry.name]  # no temp file left behind


def test_only_regular_files_are_cached_or_written(tmp_path: Path, cache_home: Path) -> None:
    assert table_cache.load_toml(Path(os.devnull)) == {}  # a character device: parsed, never cached
    assert _entries(cache_home) == []
    path = _table(tmp_path / "m")
    entry = cache_home / table_cache._entry_path(path).name
    cache_home.mkdir(parents=True)
    victim = _table(tmp_path / "elsewhere", "keep me", "victim.txt")
    entry.symlink_to(victim)
    assert table_cache.load_toml(path) == tomllib.loads(TABLE)
    assert victim.read_text() == "keep me" and entry.is_symlink()  # neither read through nor written through
    entry.unlink()
    entry.mkdir()
    assert table_cache.load_toml(path) == tomllib.loads(TABLE)
    assert entry.is_dir()


def test_tables_with_dates_are_not_cached(tmp_path: Path, cache_home: Path) -> None:
    path = _table(tmp_path / "m", "released = 2026-12-06\n")
    for _ in range(2):
        assert table_cache.load_toml(path) == {"released": datetime.date(2026, 12, 6)}
    assert _entries(cache_home) == []


def test_errors_are_tomllibs(tmp_path: Path, cache_home: Path) -> None:
    with pytest.raises(table_cache.TOMLDecodeError):
        table_cache.load_toml(_table(tmp_path / "m", "a = ", "bad.toml"))
    assert table_cache.TOMLDecodeError is tomllib.TOMLDecodeError
    broken = tmp_path / "m" / "latin1.toml"
    broken.write_bytes(b'a = "\xe9"\n')
    with pytest.raises(UnicodeDecodeError):
        table_cache.load_toml(broken)
    with pytest.raises(FileNotFoundError):
        table_cache.load_toml(tmp_path / "m" / "missing.toml")
    assert _entries(cache_home) == []


def test_cache_folder_follows_xdg_and_falls_back_to_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert table_cache.cache_folder() == tmp_path / "xdg" / "envdoctor" / "tables"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for value in ("", "relative/cache"):  # unset or relative: the XDG default
        monkeypatch.setenv("XDG_CACHE_HOME", value)
        assert table_cache.cache_folder() == tmp_path / "home" / ".cache" / "envdoctor" / "tables"


def test_an_unwritable_cache_folder_leaves_tables_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "below"))  # its parent is a file: mkdir fails
    monkeypatch.setattr(table_cache, "SETTLE_NS", -10**18)
    path = _table(tmp_path / "m")
    assert table_cache.load_toml(path) == tomllib.loads(TABLE)
    assert table_cache.load_toml(path) == tomllib.loads(TABLE)


def test_every_bundled_table_reads_back_exactly(cache_home: Path) -> None:
    tables = sorted(default_root().rglob("*.toml"))
    assert len(tables) > 10
    for path in tables:
        parsed = tomllib.loads(path.read_text(encoding="utf-8"))
        assert table_cache.load_toml(path) == parsed, path
        assert table_cache.load_toml(path) == parsed, path  # from the entry when one was written


def test_check_reports_the_same_from_the_cache(cache_home: Path) -> None:
    snapshot = load_snapshot(EXAMPLES / "seed-install-followed.json")
    reports = [render(run_check(snapshot, matrices=load_matrices()), "json") for _ in range(2)]
    assert _entries(cache_home)  # the second run read its tables from the cache
    assert reports[0] == reports[1]



def test_an_entry_in_a_folder_others_can_write_is_not_trusted(tmp_path: Path, cache_home: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache folder group or others can write (a shared cache) could hold planted entries: the table is parsed
    from its file instead, with the same answer."""
    import stat as stat_module

    path = _table(tmp_path / "m")
    table_cache.load_toml(path)
    cache_home.chmod(cache_home.stat().st_mode | stat_module.S_IWOTH)
    parsed = []
    real_parse = table_cache._parse
    monkeypatch.setattr(table_cache, "_parse", lambda p: parsed.append(p) or real_parse(p))
    assert table_cache.load_toml(path) == tomllib.loads(TABLE)
    assert parsed == [path]
