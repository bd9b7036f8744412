"""``--markdown``: a compact report to paste into a GitHub issue."""

from __future__ import annotations

from envdoctor.findings import Finding, Report
from envdoctor.render._summary import environment_lines, headline


def render_markdown(report: Report) -> str:
    """Headline, findings table (warn/fail/info), and a collapsed environment summary."""
    lines = [f"### envdoctor: {headline(report)}", "", f"Stack chosen because: {report.stack_reason}", ""]
    shown = [f for f in report.findings if f.severity.rank > 0]
    if shown:
        lines += ["| severity | rule | components | message | fix |", "| --- | --- | --- | --- | --- |"]
        lines += [_row(f) for f in sorted(shown, key=lambda f: -f.severity.rank)]
    else:
        lines.append("No problems found.")
    lines += ["", f"Score: {report.score.explanation}" if report.score.explanation else "", ""]
    lines += ["<details><summary>Environment</summary>", ""]
    lines += [f"- **{label}**: {_cell(value)}" for label, value in environment_lines(report.snapshot)]
    lines += ["", "</details>", ""]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1])) + "\n"


def _row(finding: Finding) -> str:
    cells = [
        finding.severity.value.upper(),
        f"`{finding.rule}`",
        ", ".join(finding.components),
        finding.message + ("" if finding.verified else " (could not verify)"),
        f"`{finding.fix}`" if finding.fix else "",
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")
