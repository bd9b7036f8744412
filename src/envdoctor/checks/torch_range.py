"""The torch builds an installed torch of unknown build may be: every release and CUDA variant the table knows.

A snapshot from an issue thread often says only "torch is installed" or gives a version without its local tag. The
checks that need torch's CUDA or archs then judge the whole possible range (every release of the table that has
wheels for this Python, every CUDA variant of each) and speak when a fact holds for most of it, saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

from envdoctor.checks import CheckContext
from envdoctor.facts import cuda_major_minor
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
    builds = tuple(TorchBuild(r.version, v) for r in releases for v in r.variants if v.startswith("cu"))
    if not builds:
        return None
    where = f"every release with wheels for Python {python}" if python else "every release in the table"
    return TorchRange(builds, f"torch {releases[0].version}-{releases[-1].version} ({where})")


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
