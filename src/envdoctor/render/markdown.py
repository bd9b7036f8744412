"""``--markdown``: a compact report to paste into a GitHub issue.

Text from the snapshot cannot forge structure: control characters are escaped, Markdown punctuation is
backslashed, HTML (``</details>``) and @-mentions are inert, and fixes are inline code with a safe fence.
"""

from __future__ import annotations

from envdoctor.findings import Finding, Report
from envdoctor.render._summary import environment_lines, headline
from envdoctor.untrusted import markdown_code, markdown_text


def render_markdown(report: Report) -> str:
    """Headline, findings table (warn/fail/info), and a collapsed environment summary."""
    lines = [f"### envdoctor: {markdown_text(headline(report))}", "",
             f"Stack chosen because: {markdown_text(report.stack_reason)}", ""]
    shown = [f for f in report.findings if f.severity.rank > 0]
    if shown:
        lines += ["| severity | rule | components | message | fix |", "| --- | --- | --- | --- | --- |"]
        lines += [_row(f) for f in sorted(shown, key=lambda f: -f.severity.rank)]
    else:
        lines.append("No problems found.")
    lines += ["", f"Score: {markdown_text(report.score.explanation)}" if report.score.explanation else "", ""]
    lines += ["<details><summary>Environment</summary>", ""]
    lines += [f"- **{label}**: {markdown_text(value)}" for label, value in environment_lines(report.snapshot)]
    lines += ["", "</details>", ""]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1])) + "\n"


def _row(finding: Finding) -> str:
    cells = [
        finding.severity.value.upper(),
        markdown_code(finding.rule),
        markdown_text(", ".join(finding.components)),
        markdown_text(finding.message + ("" if finding.verified else " (could not verify)")),
        markdown_code(finding.fix) if finding.fix else "",
    ]
    return "| " + " | ".join(cells) + " |"
