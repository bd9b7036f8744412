"""Renderers: each turns a Report into a ``str``. A renderer is imported only when chosen,
so ``check --json`` never imports rich.

Every string that came from a snapshot is untrusted: the table and the Markdown escape control characters
(``envdoctor.untrusted``), JSON escapes them by its own rules, and a fix that holds one is dropped here, the last
step before any output.
"""

from __future__ import annotations

from dataclasses import replace
from importlib import import_module
from typing import TYPE_CHECKING

from envdoctor.untrusted import safe_fix

if TYPE_CHECKING:
    from envdoctor.findings import Report

FORMATS = {"table": "envdoctor.render.table", "json": "envdoctor.render.json", "markdown": "envdoctor.render.markdown"}


def render(report: Report, fmt: str = "table", color: bool = False, ascii_only: bool = False) -> str:
    """The report in ``fmt`` (table, json or markdown). ``color`` only affects the table; ``ascii_only`` (stdout
    cannot show box-drawing characters) draws the table with ASCII and writes JSON with ``\\u`` escapes."""
    report = with_safe_fixes(report)
    module = import_module(FORMATS[fmt])
    if fmt == "table":
        return module.render_table(report, color=color, ascii_only=ascii_only)
    if fmt == "json":
        return module.render_json(report, ascii_only=ascii_only)
    return module.render_markdown(report)


def with_safe_fixes(report: Report) -> Report:
    """The report with every fix that holds a control character (a newline: a second command) removed."""
    if all(safe_fix(finding.fix) == finding.fix for finding in report.findings):
        return report
    findings = tuple(replace(finding, fix=safe_fix(finding.fix)) for finding in report.findings)
    return replace(report, findings=findings)
