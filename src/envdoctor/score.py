"""An explained, stable score: 100 minus per-severity penalties (``matrices/policy.toml``), each loss listed."""

from __future__ import annotations

from collections.abc import Iterable

from envdoctor.findings import Finding, Score, ScoreLine
from envdoctor.matrices import Policy


def score_findings(findings: Iterable[Finding], policy: Policy) -> Score:
    """The score of a set of findings; the same findings always give the same score and explanation."""
    lost = []
    for finding in sorted(findings, key=lambda f: (-f.severity.rank, f.rule, f.components)):
        points = policy.penalties.get(finding.severity, 0) if finding.verified else policy.unverified_penalty
        if points:
            lost.append(ScoreLine(rule=finding.rule, severity=finding.severity, points=points))
    percent = max(0, 100 - sum(line.points for line in lost))
    return Score(percent=percent, lost=tuple(lost), explanation=_explain(percent, lost))


def _explain(percent: int, lost: list[ScoreLine]) -> str:
    if not lost:
        return "100: nothing lost"
    parts = " ".join(f"- {line.points} ({line.rule}, {line.severity.value})" for line in lost)
    return f"100 {parts} = {percent}" + (" (floored at 0)" if percent == 0 else "")
