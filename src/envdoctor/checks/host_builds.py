"""Builds that do not exist for this host, where the general wheel check cannot see it.

- torch with a local tag (``+cpu``, ``+cu121``) comes from the PyTorch index, which the PyPI tables do not list; on
  macOS that index holds only the builds PyPI has (no tagged macOS wheel exists), so a release without a wheel for
  this Mac on PyPI (torch after 2.2 on Intel Macs) has none anywhere.
- A CUDA build of torch compiles ``torch.compile`` graphs with Triton; Triton publishes wheels for a few platforms
  only (``matrices/pypi/triton.json``: Linux), so on any other host torch.compile fails with "Cannot find a working
  triton installation".
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.declared import marker_applies, parse_declared
from envdoctor.checks.driver import torch_cuda
from envdoctor.checks.requirements import marker_environment
from envdoctor.checks.triton_gpu import NOT_JUDGED, requires_triton
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import MatrixError
from envdoctor.pypi_facts import ReleaseFacts, release_facts, releases
from envdoctor.rules import fact, gpu_ccs, parse_version
from envdoctor.snapshot import normalize_name

HOST_PLATFORM = {
    ("darwin", "x86_64"): "macosx_x86_64", ("darwin", "arm64"): "macosx_arm64", ("darwin", "aarch64"): "macosx_arm64",
    ("windows", "x86_64"): "win_amd64", ("windows", "amd64"): "win_amd64",
    ("linux", "x86_64"): "linux_x86_64", ("linux", "aarch64"): "linux_aarch64", ("linux", "arm64"): "linux_aarch64",
}
OS_PREFIX = {"darwin": "macosx_", "windows": "win_", "linux": "linux_"}
TRITON_DISTRIBUTIONS = ("triton", "triton-windows", "pytorch-triton")
UNBUILT_HERE = ("triton", "pytorch-triton")  # the distributions whose missing wheels triton.json shows
DESCRIBE = {"macosx_x86_64": "macOS Intel", "macosx_arm64": "macOS Apple silicon", "win_amd64": "Windows x86_64",
            "linux_x86_64": "Linux x86_64", "linux_aarch64": "Linux aarch64", "macosx_": "macOS", "win_": "Windows",
            "linux_": "Linux"}


def _host_platform(ctx: CheckContext, exact: bool) -> str | None:
    host = ctx.snapshot.host
    found = HOST_PLATFORM.get((host.os or "", (host.arch or "").lower()))
    return found if found or exact else OS_PREFIX.get(host.os or "")


def _has_wheel(wheels: tuple[str, ...] | None, platform: str) -> bool:
    return any(platform in tag or tag.endswith("-any") for tag in wheels or ())


def check_host_builds(ctx: CheckContext) -> list[Finding]:
    return _tagged_torch_on_mac(ctx) + _triton_kernels(ctx) + _triton_for_compile(ctx) + _sbsa_wheels_on_tegra(ctx)


def _tegra_table(ctx: CheckContext) -> tuple[frozenset[Version], tuple[str, ...], tuple[str, ...]]:
    """(Jetson compute capabilities, packages whose PyPI aarch64 wheels are SBSA CUDA builds, sources)."""
    table = ctx.matrices.table("platforms").get("tegra", {})
    where = f"{ctx.matrices.root / 'platforms.toml'}: tegra"
    ccs, names, sources = (table.get(key, []) for key in ("compute_capabilities", "sbsa_wheels", "sources"))
    for key, value in (("compute_capabilities", ccs), ("sbsa_wheels", names), ("sources", sources)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise MatrixError(f"{where}.{key}: should be a list of strings")
    try:
        return frozenset(Version(cc) for cc in ccs), tuple(names), tuple(sources)
    except InvalidVersion as error:
        raise MatrixError(f"{where}.compute_capabilities: {error}; write them like \"8.7\"") from None


def _sbsa_wheels_on_tegra(ctx: CheckContext) -> list[Finding]:
    """A Jetson GPU (Linux aarch64, a Tegra compute capability) beside a package whose PyPI aarch64 wheels are CUDA
    builds for SBSA servers: unless it came from a Jetson build (source, or the Jetson AI Lab index), its kernels
    fail on L4T's CUDA. Which index it came from is not in the snapshot, so the finding is unverified."""
    host = ctx.snapshot.host
    if host.os != "linux" or (host.arch or "").lower() not in ("aarch64", "arm64"):
        return []
    tegra, names, sources = _tegra_table(ctx)
    jetson = sorted({str(cc) for cc in gpu_ccs(ctx.snapshot) if cc in tegra})
    packages = ctx.snapshot.packages or {}
    if not jetson:
        return []
    out = []
    for name in names:
        package = packages.get(name)
        if package is None:
            continue
        parsed = parse_version(package.version) if package.version else None
        release = release_facts(name, parsed.public) if parsed else None
        if release is not None and not _has_wheel(release.wheels, "linux_aarch64"):
            continue  # no PyPI aarch64 wheel of this release: it was built elsewhere
        label = f"{name} {package.version}" if package.version else f"{name} (version unknown)"
        out.append(Finding(
            rule="sbsa-wheel-on-jetson", category=Category.PLATFORM, severity=Severity.WARN,
            components=(name,), sources=sources, verified=False,
            message=f"this is a Jetson (Linux aarch64, GPU compute capability {', '.join(jetson)}), whose GPU runs "
            f"L4T's CUDA; {label}'s linux_aarch64 wheels on PyPI are built for SBSA servers with the standard CUDA "
            "toolkit: installed from PyPI it imports, then its first kernel fails ('named symbol not found'); "
            "whether it came from a Jetson build could not be checked",
            fix=f"pip uninstall -y {name} && pip install {name} --index-url https://pypi.jetson-ai-lab.io/jp6/cu126"
            f"   # a Jetson build (JetPack 6); or build {name} from source on the device",
        ))
    return out


def _triton_missing_here(ctx: CheckContext) -> tuple[str, tuple[ReleaseFacts, ...]] | None:
    """(this host's wheel platform, triton's releases) when no Triton release has a wheel for this host and no
    Triton distribution is installed; None otherwise."""
    packages = ctx.snapshot.packages or {}
    platform = _host_platform(ctx, exact=False)
    known = releases("triton")
    if platform is None or not known or any(name in packages for name in TRITON_DISTRIBUTIONS):
        return None
    if any(_has_wheel(r.wheels, platform) for r in known):
        return None
    return platform, known


def _provides_triton_here(ctx: CheckContext, release: ReleaseFacts) -> bool:
    """The release's Requires-Dist, with this host's markers, pulls in a Triton build other than PyPI's ``triton``
    (``triton-windows`` on Windows), so installing it brings Triton along."""
    environment = marker_environment(ctx.snapshot)
    for line in release.requires or ():
        declared = parse_declared(line)
        if declared is None or not marker_applies(declared.marker, environment):
            continue
        name = normalize_name(declared.name)
        if name in TRITON_DISTRIBUTIONS and name not in UNBUILT_HERE:
            return True
    return False


def _triton_kernels(ctx: CheckContext) -> list[Finding]:
    """Packages that run their own Triton kernels (every release, or the installed one, lists a Triton
    distribution in Requires-Dist, for any platform) on a host Triton has no wheel for."""
    missing = _triton_missing_here(ctx)
    if missing is None:
        return []
    platform, known = missing
    findings = []
    for name, package in sorted((ctx.snapshot.packages or {}).items()):
        if name in NOT_JUDGED:
            continue
        parsed = parse_version(package.version) if package.version else None
        exact = release_facts(name, parsed.public) if parsed else None
        candidates = (exact,) if exact else () if parsed else releases(name)
        using = [release for release in candidates
                 if requires_triton(release) and not _provides_triton_here(ctx, release)]
        if not candidates or 2 * len(using) <= len(candidates):
            continue
        shown = (f"{name} {package.version}" if exact else
                 f"{name} (version unknown; {len(using)} of its {len(candidates)} releases, so inferred)")
        findings.append(Finding(
            rule="no-build-for-host", category=Category.PLATFORM, severity=Severity.WARN, components=(name, "triton"),
            sources=("pypi-metadata",),
            message=f"{shown} runs Triton kernels (its Requires-Dist lists Triton), and Triton has no wheel for "
            f"{DESCRIBE[platform]} in any of its {len(known)} releases on PyPI, and no Triton build is installed: "
            f"{name} fails at import or at its first kernel",
            fix="run it on Linux (or WSL2); on Windows the third-party triton-windows package provides a build "
            "(pip install triton-windows) where the package supports it",
        ))
    return findings


def _tagged_torch_on_mac(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    platform = _host_platform(ctx, exact=True)
    if ctx.snapshot.host.os != "darwin" or platform is None:
        return []
    findings = []
    for name in ("torch", "torchvision", "torchaudio"):
        package = packages.get(name)
        parsed = parse_version(package.version) if package and package.version else None
        release = release_facts(name, parsed.public) if parsed and parsed.local else None
        if release is None or release.wheels is None or _has_wheel(release.wheels, platform):
            continue
        last = [r.version for r in releases(name) if _has_wheel(r.wheels, platform)]
        findings.append(Finding(
            rule="no-build-for-host", category=Category.PLATFORM, severity=Severity.WARN, components=(name,),
            sources=("pypi-metadata",),
            message=f"{name} {package.version} is a PyTorch-index build, and {name} {parsed.public} has no wheel for "
            f"{DESCRIBE[platform]} on PyPI or on the PyTorch index (whose macOS wheels are PyPI's)"
            + (f"; the last release with one is {last[-1]}" if last else "")
            + ": it cannot be installed here ('no wheels with a matching platform tag'); an x86_64 Python on an Apple "
            "silicon Mac (Rosetta) looks like this too",
            fix=(f'pip install "{name}=={last[-1]}"   # the last {DESCRIBE[platform]} build; or use a native arm64 '
                 "Python on Apple silicon" if last else "use a native arm64 Python on Apple silicon"),
        ))
    return findings


def _triton_for_compile(ctx: CheckContext) -> list[Finding]:
    missing = _triton_missing_here(ctx)
    if missing is None or "torch" not in (ctx.snapshot.packages or {}) or torch_cuda(ctx) is None:
        return []
    version = parse_version(fact(ctx.snapshot, "packages.torch"))
    if version is not None and version.release[:1] < (2,):
        return []  # torch.compile came with torch 2.0
    platform, known = missing
    return [Finding(
        rule="no-build-for-host", category=Category.PLATFORM, severity=Severity.WARN, components=("triton", "torch"),
        sources=("pypi-metadata",),
        message=f"torch is a CUDA build, and its torch.compile (the inductor backend) generates GPU kernels with "
        f"Triton, which has no wheel for {DESCRIBE[platform]} in any of its {len(known)} releases on PyPI "
        f"({known[0].version} to {known[-1].version}): torch.compile fails with 'Cannot find a working triton "
        "installation' (eager mode still works)",
        fix="run torch.compile on Linux (or WSL2), or compile with backend=\"eager\"/\"aot_eager\"; on Windows the "
        "third-party triton-windows package provides a build",
    )]
