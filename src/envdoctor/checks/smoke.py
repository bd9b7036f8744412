"""``--deep``: classify the error text of failed smoke imports with ``matrices/smoke.toml``."""

from __future__ import annotations

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import import_command
from envdoctor.findings import Category, Finding, Severity


def check_smoke(ctx: CheckContext) -> list[Finding]:
    findings = []
    for name, result in sorted((ctx.snapshot.smoke or {}).items()):
        if not result.ok:
            findings.append(classify(ctx, name, result.error or ""))
    return findings


def classify(ctx: CheckContext, name: str, error: str) -> Finding:
    """The finding for one failed smoke test: the first matching pattern's cause and fix."""
    detail = _last_line(error)
    for pattern in ctx.matrices.smoke:
        if pattern.pattern.search(error):
            return Finding(
                rule=pattern.id, category=pattern.category, severity=Severity.FAIL, components=(name,),
                message=f"{name} failed its smoke test: {pattern.cause} ({detail})",
                fix=pattern.fix, sources=pattern.sources,
            )
    return Finding(
        rule="smoke-failed", category=Category.VERSION, severity=Severity.FAIL, components=(name,),
        message=f"{name} failed its smoke test: {detail or 'no error text'}",
        fix=import_command(name),
    )


def _last_line(error: str) -> str:
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    return lines[-1][:240] if lines else ""
