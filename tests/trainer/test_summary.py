"""The loss plot: written from the metrics, and a broken matplotlib never costs the run its summary."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trainer.summary import PlotUnavailable, plot_loss

METRICS = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 2, "eval_loss": 1.7}]


def test_plot_is_a_png(tmp_path: Path) -> None:
    path = plot_loss(tmp_path, METRICS)
    assert path == tmp_path / "loss.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_loss(tmp_path / "empty", []) is None


def test_unimportable_matplotlib_is_a_plot_unavailable_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(PlotUnavailable, match="matplotlib"):
        plot_loss(tmp_path, METRICS)
    assert not (tmp_path / "loss.png").exists()
