"""Compiled packages whose release pins one torch minor in its Requires-Dist, beside another torch.

A release that declares ``torch==X`` (or a range admitting one torch minor only, ``>=2.4,<2.5``) and ships platform
wheels was built against that torch: its compiled modules link torch's C++ symbols, which change between minors. Beside
a torch of another minor it fails at import with 'undefined symbol'. This reads the PyPI metadata of every installed
package (bundled tables, or facts fetched from PyPI), not a list of names.
"""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.declared import parse_declared
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import ReleaseFacts, release_facts, releases
from envdoctor.rules import parse_version
from envdoctor.snapshot import normalize_name

TORCH_FAMILY = frozenset({"torch", "torchvision", "torchaudio", "xformers", "triton"})


def _minor(version: Version) -> tuple[int, int]:
    return version.major, version.minor


def pinned_torch_minor(release: ReleaseFacts) -> tuple[int, int] | None:
    """The one torch minor the release's unconditional torch requirement admits, over torch's known releases."""
    for line in release.requires or ():
        declared = parse_declared(line)
        if declared is None or normalize_name(declared.name) != "torch" or not declared.specifier or declared.marker:
            continue
        try:
            spec = SpecifierSet(declared.specifier)
        except InvalidSpecifier:
            return None
        admitted = {_minor(v) for r in releases("torch") if (v := parse_version(r.version)) is not None
                    and not v.is_prerelease and spec.contains(v)}
        return admitted.pop() if len(admitted) == 1 else None
    return None


def pins_torch_minor(name: str, version: str | None) -> bool:
    """Whether the installed release ships compiled wheels and pins one torch minor (this check judges it)."""
    parsed = parse_version(version) if version else None
    release = release_facts(name, parsed.public) if parsed is not None else None
    return release is not None and release.binary_wheels and pinned_torch_minor(release) is not None


def check_torch_pinned_builds(ctx: CheckContext, torch: str, skip: set[str]) -> list[Finding]:
    installed = parse_version(torch)
    if installed is None:
        return []
    findings = []
    for name, package in sorted((ctx.snapshot.packages or {}).items()):
        parsed = parse_version(package.version) if package.version else None
        if name in TORCH_FAMILY or name in skip or parsed is None:
            continue
        if name in ctx.matrices.policy.torch_minor_paired:
            if _minor(parsed) != _minor(installed):
                findings.append(_paired_with_other_torch(name, package.version, parsed, torch))
            continue
        release = release_facts(name, parsed.public)
        pinned = pinned_torch_minor(release) if release is not None and release.binary_wheels else None
        if pinned is None or pinned == _minor(installed):
            continue
        built = f"{pinned[0]}.{pinned[1]}"
        fitting = [r.version for r in releases(name) if not r.yanked and r.binary_wheels
                   and (v := parse_version(r.version)) is not None and not v.is_prerelease
                   and pinned_torch_minor(r) == _minor(installed)]
        fix = (requirement_install(ctx, name, "==" + fitting[-1]) if fitting else None) or \
            f"pip install \"torch=={built}.*\"   # the torch minor {name} {package.version} was built against"
        findings.append(Finding(
            rule="extension-pins-other-torch", category=Category.ABI, severity=Severity.FAIL,
            components=(name, "torch"), sources=("pypi-metadata", "torch-cxx11-abi"),
            message=f"{name} {package.version} ships compiled wheels and requires torch {built} (its Requires-Dist), "
            f"so it was built against torch {built}; torch {torch} is installed: its compiled modules fail at import "
            "with 'undefined symbol'",
            fix=fix + (f"   # built for torch {installed.major}.{installed.minor}" if fitting else ""),
        ))
    return findings


def _paired_with_other_torch(name: str, version: str, parsed: Version, torch: str) -> Finding:
    """A package released in step with torch (policy ``torch_minor_paired``) beside another torch minor."""
    built = f"{parsed.major}.{parsed.minor}"
    return Finding(
        rule="extension-pins-other-torch", category=Category.ABI, severity=Severity.FAIL,
        components=(name, "torch"), sources=("torch-xla-install", "torch-cxx11-abi"),
        message=f"{name} {version} is released in step with torch and built against torch {built} (installed as "
        f"torch~={built}.0 beside it); torch {torch} is installed: its compiled extension fails at import with "
        "'undefined symbol'",
        fix=f"pip install \"torch~={built}.0\"   # the torch minor {name} {version} was built against",
    )
