"""Packages that pin one torch release (vllm, sglang, xformers, torchaudio ...) against the driver.

Such a package brings its torch with it: ``pip install vllm`` installs the torch its release declares with ``==``,
and that torch is PyPI's default CUDA build of the release (Linux x86_64). When the snapshot does not give torch's
own build, the pin tells which CUDA the driver must run: for a known release exactly, for an unknown release over
every release of the package that pins torch (``matrices/pypi/<package>.json``, Requires-Dist).
"""

from __future__ import annotations

from dataclasses import dataclass

from envdoctor.checks import CheckContext
from envdoctor.checks.declared import exact_torch_pin
from envdoctor.checks.driver import SOURCES, driver_max_major
from envdoctor.facts import cuda_major_minor, cuda_of_variant
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import release_facts, releases
from envdoctor.rules import INSTALLED, fact


@dataclass(frozen=True)
class PinnedTorch:
    """One release of a package and the torch release (and that torch's PyPI CUDA major) it pins."""

    version: str
    torch: str
    cuda_major: int | None  # None: the pinned torch's default variant is not known


def _pinned(ctx: CheckContext, version: str, requires: tuple[str, ...] | None) -> PinnedTorch | None:
    torch = exact_torch_pin(requires)
    if torch is None:
        return None
    variant = ctx.facts.torch_pypi_default(torch)
    try:
        major = cuda_major_minor(cuda_of_variant(variant))[0] if variant and variant.startswith("cu") else None
    except ValueError:
        major = None
    return PinnedTorch(version, torch, major)


def pinned_torch_releases(ctx: CheckContext, name: str) -> list[PinnedTorch]:
    """Every release of ``name`` in the PyPI tables that pins torch, oldest first."""
    found = (_pinned(ctx, r.version, r.requires) for r in releases(name))
    return [pin for pin in found if pin is not None]


def check_pinned_torch_driver(ctx: CheckContext) -> list[Finding]:
    """torch absent or of unknown build: each installed package that pins torch, against the driver."""
    limit = driver_max_major(ctx)
    torch = fact(ctx.snapshot, "packages.torch")
    if limit is None or (torch is not INSTALLED and isinstance(torch, str)) or ctx.snapshot.host.os == "darwin":
        return []
    findings = []
    for name, package in sorted((ctx.snapshot.packages or {}).items()):
        if name == "torch":
            continue
        finding = (_known_release(ctx, name, package.version, limit) if package.version
                   else _unknown_release(ctx, name, limit))
        if finding is not None:
            findings.append(finding)
    return findings


def _known_release(ctx: CheckContext, name: str, version: str, limit: int) -> Finding | None:
    release = release_facts(name, version)
    pin = _pinned(ctx, version, release.requires) if release else None
    if pin is None or pin.cuda_major is None or pin.cuda_major <= limit:
        return None
    return _too_old(name, _fix(ctx, name, limit, pin.cuda_major),
                    f"{name} {version} pins torch=={pin.torch}, whose PyPI build is for CUDA {pin.cuda_major}, and "
                    f"this driver runs CUDA {limit}.x at most: 'The NVIDIA driver on your system is too old' (torch's "
                    "own build is not in the snapshot; PyPI's is assumed)")


def _unknown_release(ctx: CheckContext, name: str, limit: int) -> Finding | None:
    pins = [pin for pin in pinned_torch_releases(ctx, name) if pin.cuda_major is not None]
    too_new = [pin for pin in pins if pin.cuda_major > limit]
    if not pins or 2 * len(too_new) <= len(pins):
        return None
    runs = [pin for pin in pins if pin.cuda_major <= limit]
    newest = f" (the newest that runs here is {name} {runs[-1].version}, torch {runs[-1].torch})" if runs else ""
    return _too_old(name, _fix(ctx, name, limit, min(pin.cuda_major for pin in too_new)),
                    f"{name} is installed with an unknown version; {len(too_new)} of its {len(pins)} releases that "
                    f"pin torch pin one whose PyPI build needs a newer CUDA than this driver's {limit}.x{newest}: "
                    f"unless {name} is one of the others, 'The NVIDIA driver on your system is too old' (inferred over "
                    "its releases)")


def _too_old(name: str, fix: str, message: str) -> Finding:
    return Finding(
        rule="driver-too-old-for-pinned-torch", category=Category.DRIVER, severity=Severity.WARN,
        components=(name, "torch", "nvidia-driver"), sources=("pypi-metadata", *SOURCES), message=message, fix=fix,
    )


def _fix(ctx: CheckContext, name: str, limit: int, needed: int) -> str:
    floor = ctx.facts.cuda_family_min_driver(needed)
    return (f"upgrade the NVIDIA driver to >= {floor} (CUDA {needed})" if floor
            else f"upgrade the NVIDIA driver to one for CUDA {needed}") + f"; or pin {name} to a release whose torch " \
        f"is built for CUDA {limit}.x"
