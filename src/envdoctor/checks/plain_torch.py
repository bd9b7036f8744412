"""Whether PyPI's plain torch wheel (no local tag) for this platform is a CUDA build, from its release's metadata.

Since torch 1.13 the PyPI wheels take their CUDA libraries from ``nvidia-*`` wheels listed in Requires-Dist. A
release whose ``nvidia-*`` requirements carry a marker that holds on Linux x86_64 and not on this platform (for
example ``platform_machine == "x86_64"`` on Linux aarch64) ships a CPU-only wheel here. A release without such a
marker, or one whose metadata is unknown, gives no answer (None).
"""

from __future__ import annotations

from envdoctor.checks.declared import marker_applies, parse_declared
from envdoctor.checks.requirements import marker_environment
from envdoctor.pypi_facts import release_facts
from envdoctor.rules import parse_version
from envdoctor.snapshot import Snapshot

CUDA_LIBRARY_PREFIX = "nvidia-"
REFERENCE_PLATFORM = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                      "os_name": "posix"}


def plain_wheel_is_cpu_only(snapshot: Snapshot, version: str) -> bool | None:
    """True: the plain PyPI wheel of torch ``version`` on this Linux machine is CPU-only; None: not known."""
    parsed = parse_version(version)
    if parsed is None or parsed.local or snapshot.host.os != "linux" or not snapshot.host.arch:
        return None
    release = release_facts("torch", parsed.public)
    if release is None or not release.requires:
        return None
    here = marker_environment(snapshot)
    reference = {**here, **REFERENCE_PLATFORM}
    libraries = [d for d in map(parse_declared, release.requires)
                 if d is not None and d.name.startswith(CUDA_LIBRARY_PREFIX)]
    if not libraries:
        return None
    on_reference = [d for d in libraries if marker_applies(d.marker, reference)]
    if not on_reference:
        return None
    return not any(marker_applies(d.marker, here) for d in on_reference)
