"""The default view: a rich table per area (hardware, CUDA, packages, compiled extensions, model)."""

from __future__ import annotations

import io

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from envdoctor.findings import Area, Finding, Report, Severity
from envdoctor.render._summary import environment_lines, findings_by_area, headline
from envdoctor.untrusted import escape_control as shown

STYLE = {Severity.OK: "green", Severity.INFO: "cyan", Severity.WARN: "yellow", Severity.FAIL: "bold red"}
WIDTH = 110


def render_table(report: Report, color: bool = False, width: int = WIDTH, ascii_only: bool = False) -> str:
    """The report as text tables; ANSI colors only when ``color`` (the CLI decides from the terminal and the
    environment). Text from the snapshot is shown with control characters escaped; ``ascii_only`` draws the
    tables with ASCII characters."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, highlight=False, emoji=False)
    console.print(Text(f"envdoctor check: {shown(headline(report))}", style=STYLE[report.status]))
    console.print(f"stack: {shown(report.stack or 'none')} ({shown(report.stack_reason)})", markup=False)
    if report.score.explanation:
        console.print(f"score: {shown(report.score.explanation)}", markup=False)
    for label, value in environment_lines(report.snapshot)[:-1]:
        console.print(f"{label.lower()}: {shown(value)}", markup=False, soft_wrap=True)
    for area, findings in findings_by_area(report):
        console.print(_area_table(area, findings, ascii_only))
        for finding in findings:  # whole lines, never wrapped, so a command copies and pastes as one
            if finding.fix:
                component = finding.components[0] if finding.components else finding.rule
                console.print(f"  fix {shown(component)} ({shown(finding.rule)}): {shown(finding.fix)}",
                              markup=False, soft_wrap=True)
    if not report.findings:
        console.print("No findings.")
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())  # rich pads titles


def _area_table(area: Area, findings: list[Finding], ascii_only: bool) -> Table:
    table = Table(title=area.value, title_justify="left", show_lines=False, expand=False,
                  box=box.ASCII if ascii_only else box.HEAVY_HEAD)
    for column in ("severity", "rule", "components", "message"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        message = finding.message + ("" if finding.verified else " (could not verify)")
        table.add_row(
            Text(finding.severity.value.upper(), style=STYLE[finding.severity]),
            Text(shown(finding.rule)),
            Text(shown(", ".join(finding.components))),
            Text(shown(message)),
        )
    return table
