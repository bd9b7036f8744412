"""Where the release facts of the environment's packages came from when the bundled tables lacked them: fetched
from PyPI for this check (``envdoctor.pypi_online``), or asked for in vain (then those packages are judged on
presence only, which the finding says)."""

from __future__ import annotations

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import PYPI_JSON_API, fetched_packages, unfetched_packages


def check_fetched_facts(ctx: CheckContext) -> list[Finding]:
    installed = {name for name in (ctx.snapshot.packages or {})}
    findings = []
    fetched = [name for name in fetched_packages() if name in installed]
    if fetched:
        findings.append(Finding(
            rule="pypi-facts-fetched", category=Category.VERSION, severity=Severity.INFO,
            components=tuple(fetched), sources=("pypi-metadata",),
            message=f"release facts of {', '.join(fetched)} (not in envdoctor's bundled tables, or older than their "
            f"oldest recorded release) were read from PyPI for this check ({PYPI_JSON_API.format(name='NAME')}, the "
            "installed release's wheel METADATA and, for a pure-Python wheel of at most 4 MiB, its code)",
        ))
    failed = {name: why for name, why in unfetched_packages().items() if name in installed}
    if failed:
        findings.append(Finding(
            rule="pypi-facts-unavailable", category=Category.VERSION, severity=Severity.INFO, verified=False,
            components=tuple(failed), sources=("pypi-metadata",),
            message="no release facts for " + "; ".join(f"{name} ({why})" for name, why in failed.items())
            + ": their Requires-Python, wheels and requirements were not checked",
            fix="run envdoctor check again with network access to pypi.org, or without --offline",
        ))
    return findings
