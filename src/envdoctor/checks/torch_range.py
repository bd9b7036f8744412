"""The torch builds an installed torch of unknown build may be: every release and CUDA variant the table knows.

A snapshot from an issue thread often says only "torch is installed" or gives a version without its local tag. The
checks that need torch's CUDA or archs then judge the whole possible range (every release of the table that has
wheels for this Python, every CUDA variant of each) and speak when a fact holds for most of it, saying so. On Linux
(or an unknown OS) the range also holds the releases older than the table, each as its plain PyPI wheel's CUDA build
(``legacy_pypi_default``), where PyPI recorded a Linux x86_64 wheel of it for this Python.
"""

from __future__ import annotations

from dataclasses import dataclass

from envdoctor.checks import CheckContext
from envdoctor.facts import cuda_major_minor
from envdoctor.pypi_facts import releases_where
from envdoctor.rules import INSTALLED, fact, parse_version


@dataclass(frozen=True)
class TorchBuild:
    """One CUDA build of one torch release."""

    version: str
    variant: str  # "cu128"

    @property
    def cuda_major(self) -> int:
        return cuda_major_minor(self.variant)[0]


@dataclass(frozen=True)
class TorchRange:
    """The CUDA builds the installed torch may be, and how the range was chosen (for messages)."""

    builds: tuple[TorchBuild, ...]
    described: str  # "torch 2.1.0-2.15.0 (every release with wheels for Python 3.10)"

    def share(self, holds: list[TorchBuild], among: list[TorchBuild] | None = None) -> str:
        """"3 of the 5 CUDA builds of torch 2.8.0": ``among`` the builds whose fact is known (default: all)."""
        total = len(self.builds if among is None else among)
        known = "" if among is None or len(among) == len(self.builds) else " whose arch lists are known"
        return f"{len(holds)} of the {total} CUDA builds{known} of {self.described}"


def _python_minor(ctx: CheckContext) -> str | None:
    version = ctx.snapshot.python.version
    return ".".join(version.split(".")[:2]) if version else None


def unknown_version_range(ctx: CheckContext) -> TorchRange | None:
    """torch installed with an unknown version: every CUDA build of every release the table knows (narrowed to the
    releases with wheels for the snapshot's Python when that is known); None when torch's version is known."""
    if fact(ctx.snapshot, "packages.torch") is not INSTALLED:
        return None
    python = _python_minor(ctx)
    releases = [r for r in map(ctx.facts.torch, ctx.facts.torch_versions()) if r is not None
                and (python is None or python in r.python)]
    legacy = _legacy_builds(ctx, python, releases[0].version if releases else None)
    builds = legacy + tuple(TorchBuild(r.version, v) for r in releases for v in r.variants if v.startswith("cu"))
    if not builds:
        return None
    where = f"every release with wheels for Python {python}" if python else "every release in the table"
    if legacy and releases:
        where += f"; those before {releases[0].version} as their plain PyPI wheel"
    elif legacy:
        where += ", each as its plain PyPI wheel"
    return TorchRange(builds, f"torch {builds[0].version}-{builds[-1].version} ({where})")


def _legacy_builds(ctx: CheckContext, python: str | None, first: str | None) -> tuple[TorchBuild, ...]:
    """The releases older than the table's first (all of them when no table release fits this Python), each as its
    plain PyPI Linux wheel's CUDA build, where PyPI recorded a Linux x86_64 wheel for this Python."""
    if ctx.snapshot.host.os not in (None, "linux") or ctx.snapshot.host.arch not in (None, "x86_64"):
        return ()
    before = parse_version(first) if first else None
    tag = f"cp{python.replace('.', '')}-linux_x86_64" if python else "-linux_x86_64"
    builds = []
    for release in releases_where("torch", lambda v: not v.is_prerelease and (before is None or v < before),
                                  ctx.matrices.root):
        variant = ctx.facts.torch_pypi_default(release.version)
        if release.yanked or not variant or not variant.startswith("cu") or not any(
                wheel == tag or (not python and wheel.endswith(tag)) for wheel in release.wheels or ()):
            continue
        builds.append(TorchBuild(release.version, variant))
    return tuple(builds)


def plain_version_range(ctx: CheckContext) -> TorchRange | None:
    """torch with a version but no local tag, of a release the table knows: its CUDA builds on the PyTorch index."""
    version = fact(ctx.snapshot, "packages.torch")
    parsed = parse_version(version) if isinstance(version, str) else None
    if parsed is None or parsed.local:
        return None
    release = ctx.facts.torch(parsed.public)
    if release is None:
        return None
    builds = tuple(TorchBuild(release.version, v) for v in release.variants if v.startswith("cu"))
    return TorchRange(builds, f"torch {release.version}") if builds else None
