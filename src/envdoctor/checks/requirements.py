"""Declared requirements (Requires-Dist) of installed packages, as ``pip check`` reads them."""

from __future__ import annotations

import re

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.declared import Declared, marker_applies, parse_declared
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


def check_declared(ctx: CheckContext) -> list[Finding]:
    """Requires-Dist conflicts, as pip check finds them. A conflict that breaks a package the stack uses (its
    dependency closure) fails; conflicts of packages outside it are one warning per required package, since
    they break only those packages (e.g. jax wanting NumPy 2 beside a NumPy-1 training stack)."""
    packages = ctx.snapshot.packages or {}
    environment = marker_environment(ctx.snapshot)
    used = stack_closure(ctx, environment)
    findings, outside = [], {}
    for owner, package in sorted(packages.items()):
        for requirement in applicable_requirements(package.requires or (), environment):
            for finding in _judge(ctx, owner, package.version, requirement):
                if used is None or owner in used or finding.rule != "declared-requirement-conflict":
                    findings.append(finding)
                else:
                    outside.setdefault(finding.components[0], []).append(f"{owner} {package.version}")
    return findings + [_outside_conflicts(ctx, name, owners) for name, owners in sorted(outside.items())]


def applicable_requirements(lines: tuple[str, ...], environment: dict[str, str]) -> list[Declared]:
    """The Requires-Dist lines that apply here: no optional extras, markers evaluated."""
    found = []
    for line in lines:
        if EXTRA_MARKER.search(line):  # optional extras are not installed requirements; skip parsing them
            continue
        requirement = parse_declared(line)
        if requirement is not None and marker_applies(requirement.marker, environment):
            found.append(requirement)
    return found


def stack_closure(ctx: CheckContext, environment: dict[str, str]) -> set[str] | None:
    """Installed packages the stack uses: its pins, requires and variant packages plus everything they need.
    None when there is no stack (then every conflict counts)."""
    if ctx.stack is None:
        return None
    stack = ctx.stack
    names = set(stack.pins) | set(stack.requires) | set(stack.vcs) | {"torch"}
    for variant in stack.variants:
        names |= set(variant.pins())
    packages = ctx.snapshot.packages or {}
    todo, seen = [normalize_name(n) for n in names], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in packages:
            continue
        seen.add(name)
        todo.extend(normalize_name(r.name) for r in applicable_requirements(packages[name].requires or (),
                                                                             environment))
    return seen


def _outside_conflicts(ctx: CheckContext, name: str, owners: list[str]) -> Finding:
    installed = (ctx.snapshot.packages or {})[name].version
    stack = ctx.stack.name if ctx.stack else "the stack"
    return Finding(
        rule="declared-requirement-conflict-outside-stack", category=Category.VERSION, severity=Severity.WARN,
        components=(name,), sources=("pip-check",),
        message=f"{len(owners)} installed package(s) outside {stack} declare a {name} other than {installed}: "
        f"{', '.join(owners)}. They will fail to import here; {stack} itself does not use them",
        fix=f"pip uninstall -y {' '.join(o.split()[0] for o in owners)}   # if unused; or keep them in a separate "
        "venv",
    )


def check_recorded(ctx: CheckContext) -> list[Finding]:
    """Installed releases whose requirements the matrices record (``declared/*.toml``), when the snapshot
    does not carry their Requires-Dist itself: every requirement on an installed package must hold. As for
    declared conflicts, a package outside the stack's dependency closure only warns."""
    environment = marker_environment(ctx.snapshot)
    used = stack_closure(ctx, environment)
    findings = []
    for owner, package in sorted((ctx.snapshot.packages or {}).items()):
        release = ctx.matrices.declared.get((owner, _public(package.version))) if package.requires is None else None
        severity = Severity.FAIL if used is None or owner in used else Severity.WARN
        for requirement in applicable_requirements(release.requires if release else (), environment):
            findings.extend(_recorded_conflict(ctx, owner, package.version, requirement, release.source, severity))
    return findings


def _public(version: str) -> str:
    return version.split("+")[0]


def _recorded_conflict(ctx: CheckContext, owner: str, owner_version: str, requirement: Declared,
                       source: str, severity: Severity) -> list[Finding]:
    name = normalize_name(requirement.name)
    installed = (ctx.snapshot.packages or {}).get(name)
    spec = requirement.specifier
    if installed is None or not spec or matches_specifier(installed.version, spec):
        return []
    return [Finding(
        rule="recorded-requirement-conflict", category=ctx.matrices.policy.requirement_category.get(
            name, Category.VERSION), severity=severity, components=(name, owner),
        sources=("unsloth-wheel-metadata",) if owner.startswith("unsloth") else (),
        message=f"{owner} {owner_version} requires {requirement.name}{spec} ({source}), but {name} "
        f"{installed.version} is installed: {owner} refuses or breaks with it",
        fix=f"{requirement_install(ctx, name, spec)}   # or install the {owner} release made for {name} "
        f"{installed.version}",
    )]


def _judge(ctx: CheckContext, owner: str, owner_version: str, requirement: Declared) -> list[Finding]:
    name = normalize_name(requirement.name)
    installed = (ctx.snapshot.packages or {}).get(name)
    spec = requirement.specifier
    if installed is None:
        return [Finding(
            rule="declared-requirement-missing", category=Category.MISSING, severity=Severity.WARN,
            components=(name, owner), sources=("pip-check",),
            message=f"{owner} {owner_version} requires {requirement.name}{spec}, which is not installed",
            fix=requirement_install(ctx, name, spec),
        )]
    if not spec or matches_specifier(installed.version, spec):
        return []
    category = ctx.matrices.policy.requirement_category.get(name, Category.VERSION)
    return [Finding(
        rule="declared-requirement-conflict", category=category, severity=Severity.FAIL,
        components=(name, owner), sources=("pip-check",),
        message=f"{owner} {owner_version} requires {requirement.name}{spec}, but {installed.version} is installed",
        fix=requirement_install(ctx, name, spec),
    )]
