"""Renderers: each turns a Report into a ``str``. A renderer is imported only when chosen,
so ``check --json`` never imports rich."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envdoctor.findings import Report

FORMATS = {"table": "envdoctor.render.table", "json": "envdoctor.render.json", "markdown": "envdoctor.render.markdown"}


def render(report: Report, fmt: str = "table", color: bool = False) -> str:
    """The report in ``fmt`` (table, json or markdown). ``color`` only affects the table."""
    module = import_module(FORMATS[fmt])
    if fmt == "table":
        return module.render_table(report, color=color)
    return getattr(module, f"render_{fmt}")(report)
