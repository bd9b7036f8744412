"""Compiled extensions and companions against the installed torch.

torchvision/torchaudio/xformers pin one torch release exactly. When they agree on a torch other than the
installed one, torch was replaced after they (and any other compiled extension) were installed.
"""

from __future__ import annotations

import re

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import (
    companion_install,
    flash_attn_install,
    installed_wheel_target,
    plan_command,
    requirement_install,
    with_note,
)
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import ReleaseFacts, release_facts, releases
from envdoctor.rules import INSTALLED, fact, matches_specifier, parse_version, torch_variant

COMPANIONS = ("torchvision", "torchaudio")
# What each companion's load failure looks like (anchors-envdoctor.md (d) 2 and 11).
LOAD_ERROR = {
    "torchvision": "its compiled ops fail to load (e.g. 'operator torchvision::nms does not exist')",
    "torchaudio": "its compiled extension fails to load ('libtorchaudio.so: undefined symbol ...' at import)",
    "xformers": "its compiled ops fail to load (xformers warns 'xFormers can't load C++/CUDA extensions', "
    "then memory_efficient_attention raises)",
}
FALLBACK_LOAD_ERROR = "it fails at import with 'undefined symbol'"
WHEEL_TAG = re.compile(r"torch(\d+\.\d+)cxx11abi(TRUE|FALSE)", re.IGNORECASE)


def _public(version: str) -> str:
    parsed = parse_version(version)
    return parsed.public if parsed else version


def _minor(version: str) -> str:
    parsed = parse_version(version)
    return ".".join(str(p) for p in parsed.release[:2]) if parsed else version


def companion_torch(ctx: CheckContext) -> dict[str, str]:
    """Companion package -> the exact torch release it was built for (only those the facts know)."""
    out = {}
    for name in COMPANIONS:
        version = fact(ctx.snapshot, f"packages.{name}")
        expected = ctx.facts.companion_torch(name, _public(version)) if isinstance(version, str) else None
        if expected:
            out[name] = expected
    xformers = fact(ctx.snapshot, "packages.xformers")
    spec = ctx.facts.xformers_torch(xformers) if isinstance(xformers, str) else None
    if spec and spec.startswith("=="):
        out["xformers"] = spec[2:]
    return out


def check_companions(ctx: CheckContext) -> list[Finding]:
    torch = fact(ctx.snapshot, "packages.torch")
    if not isinstance(torch, str):
        return []
    findings = []
    for name, expected in companion_torch(ctx).items():
        if _public(torch) != expected:
            findings.append(_companion_mismatch(ctx, name, expected, torch))
    xformers = fact(ctx.snapshot, "packages.xformers")
    spec = ctx.facts.xformers_torch(xformers) if isinstance(xformers, str) else None
    if spec and not spec.startswith("==") and not matches_specifier(torch, spec):
        findings.append(_companion_mismatch(ctx, "xformers", spec, torch))
    return findings + _variant_mismatches(ctx, torch) + _unknown_builds(ctx, torch)


def _unknown_builds(ctx: CheckContext, torch: str) -> list[Finding]:
    """Torch-bound packages installed with an unknown version beside a known torch: their build target (one torch
    release for torchvision, torchaudio and xformers) cannot be checked, and a mismatch breaks them at import."""
    unknown = [name for name in ctx.matrices.policy.torch_extensions
               if fact(ctx.snapshot, f"packages.{name}") is INSTALLED]
    return [Finding(
        rule="extension-build-unknown", category=Category.ABI, severity=Severity.WARN, components=(name, "torch"),
        sources=("anchors-failure-modes",), verified=False,
        message=f"{name} is installed with an unknown version beside torch {torch}: whether it was built for this "
        f"torch could not be checked; built for another, {LOAD_ERROR.get(name, FALLBACK_LOAD_ERROR)}",
        fix=f"pip show {name}   # its version; then envdoctor check again",
    ) for name in unknown]


def _companion_mismatch(ctx: CheckContext, name: str, expected: str, torch: str) -> Finding:
    installed = fact(ctx.snapshot, f"packages.{name}")
    wanted = expected if expected[0].isdigit() else expected.lstrip("=")
    return Finding(
        rule="companion-built-for-other-torch", category=Category.ABI, severity=Severity.FAIL,
        components=(name, "torch"), sources=("torchvision-compat", "xformers-metadata"),
        message=f"{name} {installed} is built for torch {wanted}, but torch {torch} is installed: {LOAD_ERROR[name]}",
        fix=_companion_fix(ctx, name, torch),
    )


def _companion_fix(ctx: CheckContext, name: str, torch: str) -> str:
    if name in COMPANIONS:
        return companion_install(ctx, name, torch)
    return f"{plan_command(ctx)}   # no xformers release pinned to torch {_public(torch)} is recorded"


def _variant_mismatches(ctx: CheckContext, torch: str) -> list[Finding]:
    variant = torch_variant(ctx.snapshot)
    out = []
    for name in COMPANIONS:
        version = fact(ctx.snapshot, f"packages.{name}")
        local = parse_version(version).local if isinstance(version, str) and parse_version(version) else None
        if local and isinstance(variant, str) and variant and local != variant:
            out.append(Finding(
                rule="companion-other-cuda-variant", category=Category.CUDA_BUILD, severity=Severity.WARN,
                components=(name, "torch"), sources=("torchvision-compat",),
                message=f"{name} {version} is a {local} build but torch {torch} is {variant}",
                fix=companion_install(ctx, name, torch),
            ))
    return out


def check_extensions(ctx: CheckContext) -> list[Finding]:
    """Torch-bound extensions whose build target differs from (or cannot be matched to) the installed torch."""
    torch = fact(ctx.snapshot, "packages.torch")
    if not isinstance(torch, str) or ctx.snapshot.packages is None:
        return []
    previous = _previous_torch(ctx, torch)
    findings = []
    for name in ctx.matrices.policy.torch_extensions:
        package = ctx.snapshot.packages.get(name)
        if package is None or name in COMPANIONS or name == "xformers":
            continue
        tag = WHEEL_TAG.search(package.direct_url or "")
        if tag:
            findings.extend(_from_wheel_tag(ctx, name, package.version, tag, torch))
        elif previous and package.version:
            findings.append(_torch_swapped(ctx, name, package.version, torch, previous))
        elif name == "flash-attn" and package.version and ctx.facts.flash_attn(package.version):
            findings.extend(_no_release_wheel(ctx, package.version, torch)
                            or _released_before_torch(ctx, name, package.version, torch, prerelease_wheels=True))
        elif package.version and name not in ctx.matrices.policy.runtime_compiled:
            findings.extend(_released_before_torch(ctx, name, package.version, torch))
    return findings


def _first_release_of_minor(package: str, version: str) -> ReleaseFacts | None:
    minor = _minor(version)
    same = [r for r in releases(package) if _minor(r.version) == minor]
    return min(same, key=lambda r: r.date) if same else None


def _released_before_torch(ctx: CheckContext, name: str, version: str, torch: str,
                           prerelease_wheels: bool = False) -> list[Finding]:
    """An extension released before the installed torch minor existed cannot have been built for it (inferred from
    PyPI upload dates): a prebuilt binary of it targets an older torch, or a pre-release of this one when its build
    matrix already listed the minor (``prerelease_wheels``), unless it was compiled here afterwards."""
    extension, torch_minor = release_facts(name, version), _first_release_of_minor("torch", torch)
    if extension is None or torch_minor is None or extension.date >= torch_minor.date:
        return []
    newer = [r for r in releases(name) if r.date >= torch_minor.date and not r.yanked]
    fix = (f"{requirement_install(ctx, name, '>=' + newer[0].version)}   # released after torch {_minor(torch)}"
           if newer else _rebuild_fix(ctx, name, version))
    return [Finding(
        rule="extension-predates-torch", category=Category.ABI, severity=Severity.WARN,
        components=(name, "torch"), sources=("pypi-release-dates", "anchors-failure-modes"), verified=False,
        message=f"{name} {version} was released on {extension.date}, before torch {_minor(torch)} existed (first "
        f"released {torch_minor.date}), so "
        + (f"its torch {_minor(torch)} wheels were built against a pre-release of it" if prerelease_wheels
           else f"no build of it targets torch {torch}")
        + " (inferred from release dates): unless it was compiled here against this torch, import fails with "
        "'undefined symbol'",
        fix=fix,
    )]


def _previous_torch(ctx: CheckContext, torch: str) -> tuple[str, list[str]] | None:
    """(torch release the companions were built for, their names) when they agree and differ from torch."""
    pinned = companion_torch(ctx)
    others = {v for v in pinned.values() if v != _public(torch)}
    if len(others) != 1:
        return None
    release = others.pop()
    return release, sorted(n for n, v in pinned.items() if v == release)


def _torch_swapped(ctx: CheckContext, name: str, version: str, torch: str, previous: tuple[str, list[str]]) -> Finding:
    release, witnesses = previous
    return Finding(
        rule="extension-torch-replaced", category=Category.ABI, severity=Severity.WARN,
        components=(name, "torch"), sources=("anchors-failure-modes", "torch-cxx11-abi"),
        message=f"{name} {version} was installed before torch was replaced: {', '.join(witnesses)} pair with torch "
        f"{release}, but torch {torch} is installed now. {name}'s build target cannot be confirmed (no wheel "
        f"name recorded) and is most likely torch {release}, so expect 'undefined symbol' at import",
        fix=_rebuild_fix(ctx, name, version),
    )


def _from_wheel_tag(ctx: CheckContext, name: str, version: str, tag: re.Match[str], torch: str) -> list[Finding]:
    built_minor, built_abi = tag.group(1), tag.group(2).upper() == "TRUE"
    installed_minor = ".".join(_public(torch).split(".")[:2])
    abi = _torch_abi(ctx, torch)
    if built_minor == installed_minor and (abi is None or abi == built_abi):
        return []
    what = f"torch {built_minor}" if built_minor != installed_minor else f"cxx11abi={str(built_abi).upper()}"
    return [Finding(
        rule="extension-built-for-other-torch", category=Category.ABI, severity=Severity.FAIL,
        components=(name, "torch"), sources=("flash-attn-publish", "torch-cxx11-abi"),
        message=f"{name} {version} was installed from a wheel built for {what}, but torch {torch} "
        f"(cxx11abi={abi}) is installed: import fails with 'undefined symbol'",
        fix=_rebuild_fix(ctx, name, version),
    )]


def _rebuild_fix(ctx: CheckContext, name: str, version: str) -> str | None:
    """The exact flash-attn wheel for the installed torch; other extensions are reinstalled against it."""
    if name == "flash-attn":
        return flash_attn_install(ctx, version, installed_wheel_target(ctx), force=True)
    return with_note(requirement_install(ctx, name, "==" + version), " --force-reinstall --no-deps --no-cache-dir")


def _torch_abi(ctx: CheckContext, torch: str) -> bool | None:
    if ctx.snapshot.torch and ctx.snapshot.torch.cxx11abi is not None:
        return ctx.snapshot.torch.cxx11abi
    release = ctx.facts.torch(torch)
    variant = torch_variant(ctx.snapshot)
    return release.cxx11abi(variant or release.pypi_default) if release and isinstance(variant, str) else None


def _no_release_wheel(ctx: CheckContext, version: str, torch: str) -> list[Finding]:
    release = ctx.facts.flash_attn(version)
    minor = ".".join(_public(torch).split(".")[:2])
    if release is None or minor in release.torch_minors:
        return []
    return [Finding(
        rule="flash-attn-no-release-wheel", category=Category.ABI, severity=Severity.WARN, verified=False,
        components=("flash-attn", "torch"), sources=("flash-attn-publish", "flash-attn-no-torch29-wheel"),
        message=f"flash-attn {version} has no official wheel for torch {minor} (its wheels cover torch "
        f"{', '.join(release.torch_minors)}): unless it was compiled here against this torch, it is a binary for "
        "another torch and fails with 'undefined symbol'; 'envdoctor check --deep' confirms it imports",
        fix=flash_attn_install(ctx, version, installed_wheel_target(ctx), force=True),
    )]
