"""envdoctor.write_atomic: readers see the old file or the whole new one, and a failure leaves no temp file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envdoctor import write_atomic


def test_writes_the_whole_text_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_atomic(target, "new\n")
    write_atomic(target, "newer\n")
    assert target.read_text() == "newer\n"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_a_failed_rename_keeps_the_old_file_and_removes_the_temp(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.json"
    target.write_text("old\n")

    def failing_replace(source: str, destination: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_missing_folder_is_an_error_not_created(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "no" / "such" / "report.json", "x")
    assert not (tmp_path / "no").exists()
