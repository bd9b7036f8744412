"""The Triton an environment runs: the snapshot's ``triton`` or ``pytorch-triton`` (a nightly's local label dropped),
else, on Linux x86_64, the one torch's Requires-Dist pins (inferred: pip installs that one beside torch)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.pypi_facts import release_facts
from envdoctor.rules import parse_version, public_of

DISTRIBUTIONS = ("triton", "pytorch-triton")
TORCH_TRITON_PIN = re.compile(r"^(?:pytorch-)?triton\s*\(?\s*==\s*([0-9][^;,\s)]*)")


@dataclass(frozen=True)
class InstalledTriton:
    name: str  # the distribution the snapshot names, or "triton" when inferred from torch's pin
    release: Version
    shown: str
    inferred: bool


def installed_triton(ctx: CheckContext) -> InstalledTriton | None:
    packages = ctx.snapshot.packages or {}
    for name in DISTRIBUTIONS:
        version = packages[name].version if name in packages else None
        parsed = parse_version(version) if version else None
        if parsed is not None:
            return InstalledTriton(name, Version(parsed.base_version), f"{name} {version}", inferred=False)
    if any(name in packages for name in (*DISTRIBUTIONS, "triton-windows")) or ctx.snapshot.host.os not in (
            "linux", None) or ctx.snapshot.host.arch not in ("x86_64", None):
        return None
    torch = packages["torch"].version if "torch" in packages else None
    release = release_facts("torch", public_of(torch)) if torch else None
    pins = (m.group(1) for line in (release.requires or () if release else ())
            if (m := TORCH_TRITON_PIN.match(line.strip())))
    pin = next(pins, None)
    pinned = parse_version(pin) if pin else None
    if pinned is None:
        return None
    return InstalledTriton("triton", Version(pinned.base_version), f"triton {pin} (what torch {torch} pins)",
                           inferred=True)
