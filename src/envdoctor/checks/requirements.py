"""Declared requirements (Requires-Dist) of installed packages, as ``pip check`` reads them."""

from __future__ import annotations

import re

from packaging.markers import InvalidMarker, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import matches_specifier
from envdoctor.snapshot import Snapshot, normalize_name

EXTRA_MARKER = re.compile(r";.*\bextra\s*==")


def marker_environment(snapshot: Snapshot) -> dict[str, str]:
    """The PEP 508 marker environment as far as the snapshot knows it (Linux x86_64 by default)."""
    version = snapshot.python.version or "3.11.0"
    system = (snapshot.host.os or "linux").lower()
    return {
        "python_version": ".".join(version.split(".")[:2]),
        "python_full_version": version,
        "sys_platform": {"windows": "win32", "macos": "darwin"}.get(system, system),
        "platform_system": {"windows": "Windows", "macos": "Darwin"}.get(system, system.capitalize()),
        "platform_machine": snapshot.host.arch or "x86_64",
        "implementation_name": snapshot.python.implementation or "cpython",
        "os_name": "nt" if system == "windows" else "posix",
        "extra": "",
    }


def _applies(requirement: Requirement, environment: dict[str, str]) -> bool:
    if requirement.marker is None:
        return True
    try:
        return requirement.marker.evaluate(environment)
    except (UndefinedEnvironmentName, InvalidMarker):
        return False


def check_declared(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    environment = marker_environment(ctx.snapshot)
    findings = []
    for owner, package in sorted(packages.items()):
        for line in package.requires or ():
            if EXTRA_MARKER.search(line):  # optional extras are not installed requirements; skip parsing them
                continue
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if _applies(requirement, environment):
                findings.extend(_judge(ctx, owner, package.version, requirement))
    return findings


def _judge(ctx: CheckContext, owner: str, owner_version: str, requirement: Requirement) -> list[Finding]:
    name = normalize_name(requirement.name)
    installed = (ctx.snapshot.packages or {}).get(name)
    spec = str(requirement.specifier)
    if installed is None:
        return [Finding(
            rule="declared-requirement-missing", category=Category.MISSING, severity=Severity.WARN,
            components=(name, owner), sources=("pip-check",),
            message=f"{owner} {owner_version} requires {requirement.name}{spec}, which is not installed",
            fix=f"pip install \"{requirement.name}{spec}\"",
        )]
    if not spec or matches_specifier(installed.version, spec):
        return []
    category = ctx.matrices.policy.requirement_category.get(name, Category.VERSION)
    return [Finding(
        rule="declared-requirement-conflict", category=category, severity=Severity.FAIL,
        components=(name, owner), sources=("pip-check",),
        message=f"{owner} {owner_version} requires {requirement.name}{spec}, but {installed.version} is installed",
        fix=f"pip install \"{requirement.name}{spec}\"",
    )]
