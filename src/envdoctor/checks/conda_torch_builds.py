"""A conda pytorch beside a CUDA package its release has no build for (``matrices/conda_torch_builds.json``, written
by ``tools/gen_conda_torch_builds.py`` from PyTorch's "Previous PyTorch Versions" page).

On PyTorch's conda channel a CUDA build of pytorch is chosen by the CUDA package installed beside it:
``cudatoolkit=X.Y`` up to 1.12, the ``pytorch-cuda=X.Y`` metapackage from 1.13 on. Each release was built for a few
CUDA versions only; asked for another (pytorch 1.12.1 with cudatoolkit 11.7), the solver does not fail but takes the
CPU-only build (``py3.9_cpu_0``), which needs no CUDA package, or another pytorch release. torch then reports a plain
version (no ``+cuXXX`` tag) and ``torch.cuda.is_available()`` is False.

A snapshot does not say which channel torch came from, so the finding is inferred (``verified: false``): a plain
torch release of the table beside a ``cudatoolkit`` or ``pytorch-cuda`` of a CUDA that release has no build for
warns. A CUDA the page lists only for the release's wheels counts as built too (the page's conda commands are not
a full list of the channel's builds). With torch's version unknown, it warns only when the newest release built
against that CUDA package has no build for the installed CUDA, and names the releases that do.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, Problem, generated_json_table
from envdoctor.rules import parse_version
from envdoctor.snapshot import Package

FILE = "conda_torch_builds.json"
GENERATOR = "tools/gen_conda_torch_builds.py"
SELECTORS = ("cudatoolkit", "pytorch-cuda")  # the packages that pick a CUDA build of pytorch on its channel
TORCH_NAMES = ("torch", "pytorch")
TOP_KEYS = {"generator", "command", "generated", "what", "source", "sources", "errata", "releases"}
RELEASE_KEYS = {"channel", "cpuonly", "conda", "wheel_cuda"}
BUILD_KEYS = {"package", "cuda", "channels", "platform", "command", "from"}
CUDA = re.compile(r"^\d{1,2}\.\d$")
PACKAGE = re.compile(r"^(cudatoolkit|pytorch-cuda|cuda\d{2,3})$")
CHANNEL = re.compile(r"^[a-z][a-z-]{0,40}$")
# What a table command may hold (it goes into a fix): conda install, package tokens with ==/= pins, -c channels.
COMMAND = re.compile(r"^conda install(?: [a-z][a-z0-9-]*(?:==?\d+(?:\.\d+)*)?)+(?: -c [a-z][a-z-]*)+$")
PLATFORMS = (None, "linux", "windows")
VERIFY = 'python -c "import torch; print(torch.__version__, torch.version.cuda)"   # None means a CPU-only build'


@dataclass(frozen=True)
class CondaBuild:
    """A CUDA build of one pytorch release: selected by ``package`` at ``cuda`` ("11.3"), installed with
    ``command`` from ``channels`` (the pytorch channel first); ``platform`` when the page names one."""

    package: str
    cuda: str
    channels: tuple[str, ...]
    platform: str | None
    command: str
    corrected: bool  # the page lists another CUDA; this one is the build the channel has

    def runs_on(self, os: str | None) -> bool:
        return self.platform is None or os is None or self.platform == os


@dataclass(frozen=True)
class CondaRelease:
    version: str
    channel: str
    cpuonly: bool
    builds: tuple[CondaBuild, ...]
    wheel_cuda: tuple[str, ...]

    @property
    def selectors(self) -> frozenset[str]:
        """The CUDA packages its builds are chosen by."""
        return frozenset(build.package for build in self.builds)

    def may_have(self, package: str, cuda: str, os: str | None) -> bool:
        """A build for ``package`` ``cuda`` is listed, or (for cudatoolkit) the release has wheels of that CUDA,
        so the channel may hold a conda build the page does not list."""
        if any(b.package == package and b.cuda == cuda and b.runs_on(os) for b in self.builds):
            return True
        return package == "cudatoolkit" and package in self.selectors and cuda in self.wheel_cuda


@dataclass(frozen=True)
class CondaTorchBuilds:
    generated: str
    page_source: str  # id in matrices/sources*.toml of the page the table was read from
    errata_sources: dict[str, str]  # release -> source of the erratum that corrected one of its builds
    releases: dict[Version, CondaRelease]  # newest first

    def release(self, version: Version) -> CondaRelease | None:
        return self.releases.get(version)

    def sources(self, releases: list[CondaRelease]) -> tuple[str, ...]:
        """The page, and the errata of ``releases`` that have a corrected build."""
        errata = sorted({self.errata_sources[r.version] for r in releases if r.version in self.errata_sources
                         and any(b.corrected for b in r.builds)})
        return (self.page_source, *errata)


def load_conda_torch_builds(matrices: Matrices) -> CondaTorchBuilds | None:
    """The table of the matrices folder (None when absent); a malformed one raises MatrixError naming the key."""
    return _table(matrices.root / FILE, frozenset(matrices.sources))


@functools.lru_cache(maxsize=8)
def _table(path: Path, sources: frozenset[str]) -> CondaTorchBuilds | None:
    return generated_json_table(path, GENERATOR, lambda raw, error: _parse(raw, error, sources))


def _parse(raw: dict[str, Any], error: Problem, sources: frozenset[str]) -> CondaTorchBuilds | None:
    if set(raw) != TOP_KEYS:
        error("top level", f"expected the keys {', '.join(sorted(TOP_KEYS))}")
        return None
    listed = raw["sources"]
    if not isinstance(listed, list) or not listed or not all(isinstance(s, str) and s in sources for s in listed):
        error("sources", "expected a non-empty list of ids in matrices/sources*.toml")
        return None
    errata = _errata(raw["errata"], sources)
    if isinstance(errata, str):
        error("errata", errata)
        return None
    releases: dict[Version, CondaRelease] = {}
    entries = raw["releases"]
    if not isinstance(entries, dict) or not entries:
        error("releases", "expected an object of pytorch releases")
        return None
    for version, entry in entries.items():
        parsed = _release(str(version), entry)
        if isinstance(parsed, str):
            error(f"releases.{version}", parsed)
            continue
        releases[Version(version)] = parsed
    ordered = dict(sorted(releases.items(), reverse=True))
    return CondaTorchBuilds(str(raw["generated"]), listed[0], errata, ordered)


def _errata(raw: Any, sources: frozenset[str]) -> dict[str, str] | str:
    """Release -> source id of each erratum applied, or what is wrong with the list."""
    if not isinstance(raw, list):
        return "expected a list"
    found = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"pytorch", "listed", "built", "source"} \
                or not all(isinstance(v, str) for v in item.values()):
            return f"[{index}]: expected the text keys built, listed, pytorch, source"
        if item["source"] not in sources:
            return f"[{index}].source: {item['source']!r} is not in matrices/sources*.toml"
        found[item["pytorch"]] = item["source"]
    return found


def _release(version: str, entry: Any) -> CondaRelease | str:
    """The release, or what is wrong with it."""
    try:
        parsed = Version(version)
        if parsed.local or str(parsed) != version:
            raise ValueError(f"{version!r} is not a plain release version")
        if not isinstance(entry, dict) or set(entry) != RELEASE_KEYS:
            raise ValueError(f"expected the keys {', '.join(sorted(RELEASE_KEYS))}")
        if not isinstance(entry["channel"], str) or not CHANNEL.match(entry["channel"]):
            raise ValueError(f"channel {entry['channel']!r}: expected a conda channel name")
        if not isinstance(entry["cpuonly"], bool):
            raise ValueError("cpuonly: expected true or false")
        wheel_cuda = entry["wheel_cuda"]
        if not isinstance(wheel_cuda, list) or not all(isinstance(c, str) and CUDA.match(c) for c in wheel_cuda):
            raise ValueError("wheel_cuda: expected a list of CUDA versions like \"11.3\"")
        conda = entry["conda"]
        if not isinstance(conda, list):
            raise ValueError("conda: expected a list of builds")
        builds = []
        for index, item in enumerate(conda):
            build = _build(item)
            if isinstance(build, str):
                raise ValueError(f"conda[{index}]: {build}")
            builds.append(build)
        return CondaRelease(version, entry["channel"], entry["cpuonly"], tuple(builds), tuple(wheel_cuda))
    except (InvalidVersion, ValueError) as problem:
        return f"{problem}"


def _build(item: Any) -> CondaBuild | str:
    if not isinstance(item, dict) or set(item) != BUILD_KEYS:
        return f"expected the keys {', '.join(sorted(BUILD_KEYS))}"
    package, cuda, channels, platform, command = (item[k] for k in ("package", "cuda", "channels", "platform",
                                                                    "command"))
    if not isinstance(package, str) or not PACKAGE.match(package):
        return f"package {package!r}: expected cudatoolkit, pytorch-cuda or cudaNN"
    if not isinstance(cuda, str) or not CUDA.match(cuda):
        return f"cuda {cuda!r}: expected a CUDA version like \"11.3\""
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) and CHANNEL.match(c)
                                                                   for c in channels):
        return "channels: expected a non-empty list of conda channel names"
    if platform not in PLATFORMS:
        return f"platform {platform!r}: expected null, \"linux\" or \"windows\""
    if not isinstance(command, str) or not COMMAND.match(command):
        return "command: expected 'conda install' with package pins and -c channels only"
    if item["from"] not in ("page", "errata"):
        return "from: expected \"page\" or \"errata\""
    return CondaBuild(package, cuda, tuple(channels), platform, command, item["from"] == "errata")


# --- the check ----------------------------------------------------------------------------------------


def check_conda_torch_builds(ctx: CheckContext) -> list[Finding]:
    snapshot = ctx.snapshot
    packages = snapshot.packages or {}
    torch = next((packages[name] for name in TORCH_NAMES if name in packages), None)
    installed = {name: packages[name] for name in SELECTORS if name in packages}
    if torch is None or not installed or snapshot.python.conda is False or _reports_cuda(ctx):
        return []
    table = load_conda_torch_builds(ctx.matrices)
    if table is None:
        return []
    if torch.version is None:
        return _unknown_torch(ctx, table, installed)
    version = parse_version(torch.version)
    if version is None or version.local:
        return []  # not a version (reported elsewhere), or a build tagged with its variant (+cu118, +cpu)
    release = table.release(version)
    if release is None:
        return []
    selector = _selector(release, installed)
    if selector is None:
        return []
    name, cuda = selector
    if release.may_have(name, cuda, snapshot.host.os):
        return []
    return [_no_build(ctx, table, release, name, cuda)]


def _reports_cuda(ctx: CheckContext) -> bool:
    """The snapshot says torch is a CUDA build (its CUDA version or GPU archs)."""
    build = ctx.snapshot.torch
    return build is not None and (bool(build.cuda) or bool(build.archs))


def _minor(package: Package) -> str | None:
    """"11.3" for a package of version 11.3.1; None when unknown or not a version."""
    version = parse_version(package.version) if package.version is not None else None
    if version is None or len(version.release) < 2:
        return None
    return f"{version.release[0]}.{version.release[1]}"


def _selector(release: CondaRelease, installed: dict[str, Package]) -> tuple[str, str] | None:
    """(package, CUDA) that chose this release's build: the installed package of the kind its builds take, else a
    pytorch-cuda (a metapackage only pytorch's CUDA builds use); None when neither is there with a version."""
    for name in sorted(installed, key=lambda n: n not in release.selectors):
        if name in release.selectors or name == "pytorch-cuda":
            cuda = _minor(installed[name])
            return (name, cuda) if cuda else None
    return None


def _listing(builds: tuple[CondaBuild, ...], os: str | None) -> str:
    """"cudatoolkit 10.2, 11.3, 11.6 (with -c conda-forge)"."""
    parts: dict[str, list[str]] = {}
    for build in builds:
        if not build.runs_on(os):
            continue
        extra = [c for c in build.channels[1:] if not (build.package == "pytorch-cuda" and c == "nvidia")]
        label = build.cuda + (f" (with -c {' -c '.join(extra)})" if extra else "")
        if label not in parts.setdefault(build.package, []):
            parts[build.package].append(label)
    return "; ".join(f"{package} {', '.join(labels)}" for package, labels in parts.items()) or "no CUDA build"


def _nearest(builds: list[CondaBuild], cuda: str, driver: str | None) -> CondaBuild | None:
    """The build of the highest CUDA not above ``cuda`` (else the lowest above it), among those the driver runs
    when that is known and leaves any."""
    def key(build: CondaBuild) -> Version:
        return Version(build.cuda)

    runnable = [b for b in builds if driver is None or key(b) <= Version(driver)] or builds
    below = sorted((b for b in runnable if key(b) <= Version(cuda)), key=key)
    above = sorted((b for b in runnable if key(b) > Version(cuda)), key=key)
    return below[-1] if below else above[0] if above else None


def _driver_cuda(ctx: CheckContext) -> str | None:
    """The highest CUDA the driver supports, as major.minor (validated when the snapshot was read)."""
    nvidia = ctx.snapshot.nvidia
    text = nvidia.cuda_driver if nvidia is not None else None
    version = parse_version(text) if text else None
    return f"{version.release[0]}.{version.release[1]}" if version and len(version.release) >= 2 else None


def _fix(build: CondaBuild) -> str:
    """The table's command with each pin quoted (table values only, checked against COMMAND when loaded)."""
    return " ".join(f'"{token}"' if "=" in token else token for token in build.command.split())


def _no_build(ctx: CheckContext, table: CondaTorchBuilds, release: CondaRelease, name: str, cuda: str) -> Finding:
    os = ctx.snapshot.host.os
    usable = [b for b in release.builds if b.runs_on(os)]
    same_kind = [b for b in usable if b.package == name] or usable
    chosen = _nearest(same_kind, cuda, _driver_cuda(ctx))
    return Finding(
        rule="conda-torch-no-cuda-build", category=Category.CUDA_BUILD, severity=Severity.WARN,
        components=("torch", name), sources=table.sources([release]), verified=False,
        message=f"torch {release.version} (a plain version, no +cuXXX tag) is installed beside {name} {cuda}: the "
        f"{release.channel} conda channel has no pytorch {release.version} build for {name} {cuda} (it has: "
        f"{_listing(release.builds, os)}), so conda installs the CPU-only build (py3.x_cpu_0) or another pytorch "
        "release instead: torch.cuda.is_available() is False, 'Torch not compiled with CUDA enabled' (inferred: the "
        "snapshot does not say torch came from conda)",
        fix=f"{_fix(chosen)}   # pytorch {release.version} built for {chosen.package} {chosen.cuda}" if chosen
        else VERIFY,
    )


def _unknown_torch(ctx: CheckContext, table: CondaTorchBuilds, installed: dict[str, Package]) -> list[Finding]:
    """torch of unknown version beside a CUDA package: a warning when the newest release built against that package
    has no build for its CUDA (an older pytorch, or the CPU-only build), naming the releases that have one."""
    os = ctx.snapshot.host.os
    newest_overall = next(iter(table.releases.values()))
    findings = []
    for name, package in installed.items():
        cuda = _minor(package)
        users = [r for r in table.releases.values() if name in r.selectors]  # newest first
        if cuda is None or not users:
            continue
        built = [Version(b.cuda) for r in users for b in r.builds if b.package == name]
        if name in newest_overall.selectors and Version(cuda) > max(built):
            continue  # newer than the newest build of a package still in use: later releases may have it
        newest = users[0]
        if newest.may_have(name, cuda, os):
            continue
        having = [r for r in reversed(users) if r.may_have(name, cuda, os)]
        which = (f"only pytorch {', '.join(r.version for r in having)} have a build for {name} {cuda}" if having
                 else f"none has a build for {name} {cuda}")
        chosen = _nearest([b for b in newest.builds if b.package == name and b.runs_on(os)], cuda, _driver_cuda(ctx))
        findings.append(Finding(
            rule="conda-torch-cuda-build-unknown-version", category=Category.CUDA_BUILD, severity=Severity.WARN,
            components=("torch", name), sources=table.sources(having), verified=False,
            message=f"torch is installed (version unknown) beside {name} {cuda}: of the pytorch releases on PyTorch's "
            f"conda channel whose CUDA builds take {name} ({users[-1].version} to {newest.version}), {which}; "
            f"{'any other' if having else 'every'} release, the newest {newest.version} included (it has: "
            f"{_listing(newest.builds, os)}), installs as the CPU-only build beside {name} {cuda}: 'Torch not "
            "compiled with CUDA enabled' (inferred: the snapshot says neither torch's version nor where it came from)",
            fix=f"{_fix(chosen)}   # pytorch {newest.version} built for {name} {chosen.cuda} (check first: "
            "torch.version.cuda is None in a CPU-only build)" if chosen else VERIFY,
        ))
    return findings
