"""A driver older than the CUDA the ecosystem builds for now, judged where the snapshot names GPU software of
unknown build and no torch to judge it by (an issue thread that gives the app and nvidia-smi's header), or names no
package at all (the header alone): current
releases of torch (the newest release's PyPI default variant) and the apps and container images built on them need
a driver of that CUDA major; an older driver runs them only if they were built for its CUDA (inferred, unverified).
"""

from __future__ import annotations

from envdoctor.checks import CheckContext
from envdoctor.checks.driver import SOURCES, driver_max_major
from envdoctor.facts import cuda_major_minor
from envdoctor.findings import Category, Finding, Severity

RULE = "driver-older-than-current-builds"
SHOWN = 4  # package names in the message


def check_driver_current_builds(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    if "torch" in packages:  # a torch (of known or unknown build) is judged by the driver check itself
        return []
    tabled = {build.package for build in ctx.facts.cuda_builds()}  # judged on their own rows (driver.py)
    unknown = sorted(name for name, package in packages.items() if not package.version and name not in tabled)
    limit = driver_max_major(ctx)
    newest = _newest_cuda_default(ctx)
    if (not unknown and packages) or limit is None or newest is None or limit >= cuda_major_minor(newest[1])[0]:
        return []
    torch, cuda = newest
    major = cuda_major_minor(cuda)[0]
    floor = ctx.facts.cuda_family_min_driver(major)
    names = ", ".join(unknown[:SHOWN]) + (f" and {len(unknown) - SHOWN} more" if len(unknown) > SHOWN else "")
    # a snapshot of the driver alone (nvidia-smi's header): what it will run is current GPU software
    what = (f"{names} {'is' if len(unknown) == 1 else 'are'} of unknown build" if unknown
            else "the snapshot names no package, so what runs on it is current GPU software")
    return [Finding(
        rule=RULE, category=Category.DRIVER, severity=Severity.WARN, verified=False,
        components=("nvidia-driver", *unknown), sources=SOURCES,
        message=f"this driver runs CUDA {limit}.x at most, and {what}: current builds are CUDA {major} builds "
        f"(PyPI's torch {torch} is a CUDA {cuda} build, and "
        f"apps and container images built on it need CUDA {major}), so unless they were built for CUDA {limit}, "
        "they fail with 'CUDA driver version is insufficient for CUDA runtime version' or a container's "
        "'unsatisfied condition: cuda>=...' (inferred from the driver and the current builds)",
        fix=f"upgrade the NVIDIA driver to {floor} or newer" if floor else "upgrade the NVIDIA driver",
    )]


def _newest_cuda_default(ctx: CheckContext) -> tuple[str, str] | None:
    """(torch release, its CUDA) of the newest torch release whose PyPI default wheel is a CUDA build."""
    for version in reversed(ctx.facts.torch_versions()):
        release = ctx.facts.torch(version)
        variant = ctx.facts.torch_variant(release.pypi_default) if release else None
        if variant is not None and release.pypi_default.startswith("cu"):
            return version, variant.cuda
    return None
