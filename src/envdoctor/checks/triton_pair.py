"""Triton against the torch release that pins it.

Each torch release pins one Triton release in its Requires-Dist (for Linux x86_64, where PyPI has Triton's wheels);
torch.compile's code generation imports that release's internals. triton-windows builds the same Triton releases
for Windows, so the pairing holds there too, where the pin's marker does not apply and pip checks nothing.
"""

from __future__ import annotations

import re

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install, torch_install, torch_target
from envdoctor.checks.declared import Declared, marker_applies, parse_declared
from envdoctor.checks.requirements import marker_environment
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import release_facts, releases
from envdoctor.rules import fact, minor_of, parse_version, public_of

# Distributions of Triton: PyPI's (Linux) and triton-windows, which builds the same Triton releases for Windows.
TRITON_NAMES = ("triton", "triton-windows")


def triton_pairs(ctx: CheckContext, torch: str) -> list[Finding]:
    """Each torch release pins one Triton release in its Requires-Dist (for Linux); torch.compile's code generation
    imports that release's internals, so any Triton of another minor breaks it on every platform. Where the pin's
    marker applies here, the declared-requirement check judges it; elsewhere (Windows, macOS, other Python
    versions) the same pairing is checked here."""
    release = release_facts("torch", public_of(torch))
    pins = [d for d in map(parse_declared, release.requires or ()) if d and d.name == "triton" and d.specifier] \
        if release else []
    if not pins:
        return []
    environment = marker_environment(ctx.snapshot)
    pin = pins[0]
    wanted = _pinned_minor(pin)
    findings = []
    for name in TRITON_NAMES:
        installed = fact(ctx.snapshot, f"packages.{name}")
        if not isinstance(installed, str) or wanted is None or minor_of(installed) == wanted:
            continue
        if name == "triton" and marker_applies(pin.marker, environment):
            continue
        findings.append(Finding(
            rule="triton-other-torch-release", category=Category.VERSION, severity=Severity.WARN,
            components=(name, "torch"), sources=("pypi-metadata",),
            message=f"{name} {installed} is installed beside torch {torch}, whose release pins triton "
            f"{pin.specifier} (its Requires-Dist, for Linux): torch {minor_of(torch)} works with Triton {wanted} only, "
            "so torch.compile and Triton kernels fail ('No module named triton...', 'cannot import name ...' from "
            "triton)",
            fix=_triton_fix(ctx, name, wanted, minor_of(installed)),
        ))
    return findings


def _pinned_minor(pin: Declared) -> str | None:
    match = re.search(r"(\d+\.\d+)", pin.specifier)
    return match.group(1) if match else None


def _triton_fix(ctx: CheckContext, name: str, wanted: str, installed: str) -> str | None:
    """The newest torch release that pins the installed Triton's minor (same CUDA variant), else a Triton of the
    minor the installed torch pins."""
    major, _, low = wanted.partition(".")
    triton = requirement_install(ctx, name, f">={wanted},<{major}.{int(low) + 1}")
    for release in reversed(releases("torch")):
        pins = [d for d in map(parse_declared, release.requires or ()) if d and d.name == "triton" and d.specifier]
        parsed = parse_version(release.version)
        if pins and parsed and not parsed.is_prerelease and _pinned_minor(pins[0]) == installed:
            target = torch_target(ctx, release.version)
            if target is not None:
                return f"{torch_install(ctx, target)}   # pins triton {installed}; or: {triton}"
    return triton
