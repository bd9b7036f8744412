"""envdoctor.bounded_json: regular files only, size and nesting bounded, one line naming the file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from envdoctor.bounded_json import JsonFileError, load_json_file, nesting_depth


def test_reads_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.json"
    path.write_text('\ufeff{"a": [1, {"b": null}]}', encoding="utf-8")
    assert load_json_file(path) == {"a": [1, {"b": None}]}


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null"])
def test_devices_are_refused_before_reading(special: str) -> None:
    with pytest.raises(JsonFileError, match=f"^{special}: is a character device, not a regular file"):
        load_json_file(special)


def test_a_fifo_without_writer_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "snap.json"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(JsonFileError, match="FIFO"):
        load_json_file(fifo)
    assert time.monotonic() - started < 5


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JsonFileError, match="directory"):
        load_json_file(tmp_path)


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text('["' + "x" * 2000 + '"]')
    with pytest.raises(JsonFileError, match=r"big\.json: larger than"):
        load_json_file(path, max_bytes=1000)
    assert load_json_file(path, max_bytes=4000) == ["x" * 2000]


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deep_nesting_is_refused(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * depth + "]" * depth)
    with pytest.raises(JsonFileError, match="nested deeper than 64 levels"):
        load_json_file(path)


def test_nesting_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 64 + "]" * 64)
    assert nesting_depth(load_json_file(path)) == 64


@pytest.mark.parametrize(("text", "needle"), [("[NaN]", "NaN"), ('{"a": Infinity}', "Infinity"),
                                              ('{"a": 1', "line 1, column 8"), ("[" + "9" * 5000 + "]", "digit")])
def test_invalid_json_is_one_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(JsonFileError) as raised:
        load_json_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and needle in message


def test_bytes_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(JsonFileError, match="not UTF-8"):
        load_json_file(path)


def test_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(JsonFileError, match=r"absent\.json: cannot read \(No such file"):
        load_json_file(tmp_path / "absent.json")
