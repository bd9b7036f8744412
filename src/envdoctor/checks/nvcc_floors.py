"""Torch CUDA extensions built from source against a CUDA toolkit (nvcc) older than their build scripts accept
(``matrices/nvcc_floors.json``, written by ``tools/gen_nvcc_floors.py`` from each release tag's build scripts).

mamba-ssm, causal-conv1d, SageAttention and TransformerEngine check the toolkit's version before compiling and stop
below a floor (``if bare_metal_version < Version("11.6"): raise RuntimeError(...)``, CMake's ``FATAL_ERROR``); some
floors hold only for one GPU architecture (SageAttention: compute capability 8.9 needs CUDA 12.4), which the build
targets when it finds that GPU. A package of unknown version, or of a release the table did not read, is held to the
floor of the newest release read at or below it (else the newest), and the finding says it is inferred.
flash-attn's floor is judged by ``flash_attn_build``, which also knows when a release wheel spares the build.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import public
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, Problem, generated_json_table
from envdoctor.rules import parse_version
from envdoctor.snapshot import normalize_name

FILE = "nvcc_floors.json"
GENERATOR = "tools/gen_nvcc_floors.py"
RULE = "extension-nvcc-below-build-floor"
JUDGED_ELSEWHERE = frozenset({"flash-attn"})  # flash_attn_build.check_flash_attn_build
PACKAGE_KEYS = {"repository", "commit", "files", "releases_read", "releases"}
RELEASE_KEYS = {"tag", "min_nvcc", "from", "error", "arch_min", "arch_from", "arch_error"}


@dataclass(frozen=True)
class Floor:
    """The build stops when nvcc is older than ``version``: at ``where`` ("setup.py:NN") with ``error``."""

    version: Version
    where: str
    error: str


@dataclass(frozen=True)
class ReleaseFloors:
    """A release's build floor (None when only architecture floors are stated) and its floors per architecture
    ("sm_89"), each above the plain floor."""

    release: Version
    tag: str
    floor: Floor | None
    by_arch: dict[str, Floor]


@dataclass(frozen=True)
class PackageFloors:
    package: str
    repository: str
    releases_read: tuple[Version, ...]  # oldest first
    releases: dict[Version, ReleaseFloors]


@dataclass(frozen=True)
class NvccFloorsTable:
    generated: str
    source: str
    packages: dict[str, PackageFloors]  # normalized name


def load_nvcc_floors(matrices: Matrices) -> NvccFloorsTable | None:
    """The table of the matrices folder (None when absent); a malformed one raises MatrixError naming the key."""
    return _table(matrices.root / FILE, frozenset(matrices.sources))


@functools.lru_cache(maxsize=8)
def _table(path: Path, sources: frozenset[str]) -> NvccFloorsTable | None:
    return generated_json_table(path, GENERATOR, lambda raw, error: _parse(raw, error, sources))


def _parse(raw: dict[str, Any], error: Problem, sources: frozenset[str]) -> NvccFloorsTable | None:
    source = raw.get("source")
    if source not in sources:
        error("source", f"{source!r} is not in matrices/sources*.toml")
    if not isinstance(raw.get("generated"), str):
        error("generated", "expected a date string")
    packages = raw.get("packages")
    if not isinstance(packages, dict):
        error("packages", "expected an object")
        packages = {}
    parsed = {}
    for name, entry in packages.items():
        found = _package(str(name), entry)
        if isinstance(found, tuple):
            error(f"packages.{name}{found[0]}", found[1])
        else:
            parsed[normalize_name(str(name))] = found
    return NvccFloorsTable(str(raw.get("generated")), str(source), parsed)


def _package(name: str, entry: Any) -> PackageFloors | tuple[str, str]:
    """The package's floors, or (key suffix, problem)."""
    if not isinstance(entry, dict) or set(entry) != PACKAGE_KEYS:
        return "", f"expected an object with the keys {', '.join(sorted(PACKAGE_KEYS))}"
    listed = entry["releases_read"]
    read = [parse_version(v) if isinstance(v, str) else None for v in listed] if isinstance(listed, list) else [None]
    if not read or None in read:
        return ".releases_read", "expected a non-empty list of version strings"
    if not isinstance(entry["releases"], dict):
        return ".releases", "expected an object of release -> floors"
    releases = {}
    for text, item in entry["releases"].items():
        version = parse_version(text)
        if version is None or version not in read:
            return f".releases.{text}", "not a release listed in releases_read"
        found = _release(version, item)
        if isinstance(found, str):
            return f".releases.{text}", found
        releases[version] = found
    return PackageFloors(normalize_name(name), str(entry["repository"]), tuple(sorted(read)), releases)  # type: ignore[arg-type]


def _release(version: Version, item: Any) -> ReleaseFloors | str:
    """The release's floors, or what is wrong with them."""
    if not isinstance(item, dict) or not set(item) <= RELEASE_KEYS or not ({"min_nvcc", "arch_min"} & set(item)) \
            or not isinstance(item.get("tag"), str):
        return ("expected tag with min_nvcc, from and error, and/or arch_min, arch_from and arch_error "
                f"(not {str(item)[:80]})")
    try:
        floor = None
        if "min_nvcc" in item or "from" in item or "error" in item:
            floor = _floor(item.get("min_nvcc"), item.get("from"), item.get("error"))
        arch_keys = [item.get(k, {}) for k in ("arch_min", "arch_from", "arch_error")]
        if not all(isinstance(k, dict) for k in arch_keys) or not set(arch_keys[0]) == set(arch_keys[1]) \
                == set(arch_keys[2]):
            raise ValueError("arch_min, arch_from and arch_error need the same architectures")
        by_arch = {arch: _floor(arch_keys[0][arch], arch_keys[1][arch], arch_keys[2][arch]) for arch in arch_keys[0]}
        if not all(arch.startswith("sm_") and arch[3:].isdigit() for arch in by_arch):
            raise ValueError(f"architectures like sm_89, not {sorted(by_arch)}")
    except (ValueError, InvalidVersion) as problem:
        return str(problem)
    return ReleaseFloors(version, item["tag"], floor, by_arch)


def _floor(version: Any, where: Any, error: Any) -> Floor:
    if not isinstance(version, str) or not isinstance(where, str) or ":" not in where or not isinstance(error, str):
        raise ValueError(f"expected a version X.Y, a FILE:LINE and the error text (got {version!r}, {where!r})")
    return Floor(Version(version), where, error)


# --- the check ----------------------------------------------------------------------------------------


def check_nvcc_floors(ctx: CheckContext) -> list[Finding]:
    toolkit = ctx.snapshot.cuda_toolkit
    nvcc = _nvcc(toolkit.nvcc) if toolkit is not None and toolkit.nvcc else None
    if nvcc is None:
        return []
    table = load_nvcc_floors(ctx.matrices)
    if table is None:
        return []
    packages = ctx.snapshot.packages or {}
    archs = _gpu_archs(ctx)
    findings = []
    for name in sorted(set(table.packages) & set(packages) - JUDGED_ELSEWHERE):
        finding = _finding(table, table.packages[name], packages[name].version, nvcc, toolkit.nvcc or "", archs)
        if finding is not None:
            findings.append(finding)
    return findings


def _nvcc(text: str) -> Version | None:
    """The toolkit's major.minor ("12.4" of "12.4.131")."""
    parsed = parse_version(text)
    return Version(f"{parsed.major}.{parsed.minor}") if parsed is not None else None


def _gpu_archs(ctx: CheckContext) -> tuple[str, ...]:
    """"sm_89" of each GPU of known compute capability."""
    gpus = ctx.snapshot.nvidia.gpus if ctx.snapshot.nvidia is not None else None
    return tuple(sorted({"sm_" + gpu.compute_capability.replace(".", "") for gpu in gpus or ()
                         if gpu.compute_capability}))


def _held_to(floors: PackageFloors, installed: Version | None) -> tuple[ReleaseFloors | None, bool]:
    """The release whose floors judge the installed one, and whether it is that release (not inferred): a release
    read judges itself (None when it states no floor); another is held to the newest release read at or below it,
    else the newest read."""
    if installed is not None and installed in floors.releases_read:
        return floors.releases.get(installed), True
    candidates = [v for v in floors.releases_read if installed is None or v <= installed] or list(floors.releases_read)
    return floors.releases.get(candidates[-1]), False


def _finding(table: NvccFloorsTable, floors: PackageFloors, version: str | None, nvcc: Version, shown_nvcc: str,
             archs: tuple[str, ...]) -> Finding | None:
    installed = _version(version)
    release, exact = _held_to(floors, installed)
    if release is None:
        return None
    failing: list[tuple[Floor, str | None]] = []
    if release.floor is not None and nvcc < release.floor.version:
        failing.append((release.floor, None))
    failing += [(floor, arch) for arch, floor in sorted(release.by_arch.items()) if arch in archs
                and nvcc < floor.version]
    if not failing:
        return None
    floor, arch = max(failing, key=lambda item: item[0].version)
    name = floors.package
    if installed is None:
        who = (f"{name} (version unknown; held to {name} {release.release}, the newest release whose build scripts "
               "were read)")
    elif not exact:
        who = (f"{name} {installed.public} (not among the releases read; held to {name} {release.release}, the "
               "nearest read)")
    else:
        who = f"{name} {public(version or '')}"
    gpu = f" for this GPU (compute capability {arch[3:-1]}.{arch[-1]}, {arch})" if arch else ""
    return Finding(
        rule=RULE, category=Category.CUDA_BUILD, severity=Severity.WARN, components=("cuda-toolkit", name),
        sources=(table.source,), verified=exact and installed is not None,
        message=f"building {who}{gpu} needs CUDA >= {_short(floor.version)}; nvcc is {shown_nvcc}: its "
        f"{floor.where} ({_line_url(floors.repository, release.tag, floor.where)}) stops with '{floor.error}', so "
        "installing or reinstalling it from source here fails",
        fix=f"install a CUDA toolkit >= {_short(floor.version)} (conda install -c nvidia "
        f"cuda-toolkit={_short(floor.version)}) and export CUDA_HOME=/usr/local/cuda-{_short(floor.version)} before "
        f"building {name}",
    )


def _line_url(repository: str, tag: str, where: str) -> str:
    """The GitHub address of a script's line at a release tag."""
    path, _, line = where.rpartition(":")
    return f"{repository}/blob/{tag}/{path}#L{line}"


def _version(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version(public(text))
    except InvalidVersion:
        return None


def _short(version: Version) -> str:
    return f"{version.major}.{version.minor}"
