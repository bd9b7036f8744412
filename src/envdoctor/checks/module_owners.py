"""Top-level modules that two installed distributions both put on disk, and modules that come from a fork or an
unrelated namesake of the project usually imported under that name (``matrices/module_owners.json``, written by
``tools/gen_module_owners.py`` from each release series' wheel).

Two owners of one module (``opencv-python`` and ``opencv-python-headless``: ``cv2``; ``onnxruntime`` and
``onnxruntime-gpu``: ``onnxruntime``; ``pynvml`` 11 and ``nvidia-ml-py``: ``pynvml``): the one installed last
overwrote the other's files, so the module is a mix or the other build, and uninstalling either deletes the module
the other needs. A warning, verified when the installed releases of both are known to install it (the installed
version's range in the table), inferred when a version is unknown and only some releases install it. Where the
owners are a CPU and a CUDA build of one project (or CUDA builds for different CUDA majors) it is a CUDA build
problem: the module may hold the CPU build. The fix removes every owner and installs the one wanted: the CUDA build
when the machine has an NVIDIA GPU (the one for the driver's CUDA major where several are), the CPU build when it
has none.

A module whose only installed owner is a fork (``adapter-transformers``: ``transformers``, based on an old
transformers release) or an unrelated namesake (Graphite's ``whisper``) of a project that is not installed: code
written for that project imports the fork's or namesake's module and misses what it lacks (the table's hand-kept
``fork_of`` / ``namesake_of``, with sources).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import pip_install, pip_uninstall, public, valid_name
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, parsed_or_raise, read_json_object
from envdoctor.rules import has_no_gpu, parse_version
from envdoctor.snapshot import Snapshot, normalize_name

FILE = "module_owners.json"
GENERATOR = "tools/gen_module_owners.py"
BUILDS = ("cpu", "cuda")
RELATIONS = {"fork_of": "a fork of", "namesake_of": "an unrelated project named like"}


@dataclass(frozen=True)
class ReleaseRange:
    """Releases ``versions`` of a distribution install ``modules`` (read from the file ``read``)."""

    versions: str
    modules: frozenset[str]
    read: str
    module_versions: Mapping[str, str]  # module -> the __version__ it sets (forks)


@dataclass(frozen=True)
class StandIn:
    """A distribution that installs the module another project is imported by: a fork of it or a namesake."""

    project: str
    relation: str  # "fork_of" or "namesake_of"
    lacks: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Owner:
    name: str  # normalized distribution name
    releases: tuple[ReleaseRange, ...]
    build: str | None  # "cpu" or "cuda" for one build of a project that has both
    cuda: str | None  # the CUDA major of a CUDA build made for one
    stands_in: StandIn | None

    def modules(self, version: str | None) -> tuple[frozenset[str], frozenset[str], ReleaseRange | None]:
        """(certain, possible, range): the modules the installed release installs for sure and may install; for a
        version in no range (unknown, not PEP 440, older than every release read), certain are those every range
        installs and possible those any does."""
        parsed = parse_version(version) if version else None
        if parsed is not None:
            release = Version(parsed.public)
            for entry in self.releases:
                if SpecifierSet(entry.versions).contains(release, prereleases=True):
                    return entry.modules, entry.modules, entry
        certain = frozenset.intersection(*(e.modules for e in self.releases)) if self.releases else frozenset()
        possible = frozenset().union(*(e.modules for e in self.releases))
        return certain, possible, None


@dataclass(frozen=True)
class ModuleOwners:
    generated: str
    source: str
    owners: dict[str, Owner]


def load_module_owners(matrices: Matrices) -> ModuleOwners | None:
    """The table of the matrices folder (None when absent); a malformed one raises MatrixError naming the key."""
    path = matrices.root / FILE
    return _cached(path, path.stat().st_mtime_ns if path.exists() else 0, frozenset(matrices.sources))


@functools.lru_cache(maxsize=8)  # keyed by the file's mtime too: a regenerated table is read again
def _cached(path: Path, _mtime: int, sources: frozenset[str]) -> ModuleOwners | None:
    return parsed_or_raise(path, functools.partial(_parse, sources=sources))


def _parse(path: Path, errors: list[str], sources: frozenset[str]) -> ModuleOwners | None:
    raw = read_json_object(path, errors, GENERATOR) or {}
    source, rows = raw.get("source"), raw.get("distributions")
    problems = []
    if source not in sources:
        problems.append(f"source: {source!r} is not in matrices/sources*.toml")
    if not isinstance(rows, dict) or not rows:
        problems.append("distributions: expected an object of rows")
        rows = {}
    owners = {}
    for name, row in rows.items():
        owner = _owner(str(name), row, sources)
        if isinstance(owner, str):
            problems.append(f"distributions.{name}: {owner}")
        else:
            owners[owner.name] = owner
    errors += [f"{path}: {problem}; regenerate it with {GENERATOR}" for problem in problems if raw]
    return ModuleOwners(str(raw.get("generated")), str(source), owners) if raw else None


def _owner(name: str, row: Any, sources: frozenset[str]) -> Owner | str:
    """The row, or what is wrong with it."""
    if not isinstance(row, dict) or not _strings(row.get("modules")) or row.get("source") not in sources:
        return "expected modules (a list of names) and source (an id in matrices/sources*.toml)"
    entries = row.get("releases") or []
    if not isinstance(entries, list):
        return "releases: expected a list of version ranges"
    releases = []
    for i, entry in enumerate(entries):
        try:
            SpecifierSet(entry["versions"])
            if not _strings(entry["modules"]) or not isinstance(entry["read"], str):
                raise TypeError("modules: a list of names; read: a file name")
            versions = entry.get("module_versions") or {}
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
                raise TypeError("module_versions: module -> version text")
            releases.append(ReleaseRange(entry["versions"], frozenset(entry["modules"]), entry["read"], versions))
        except (KeyError, TypeError, AttributeError, InvalidSpecifier) as problem:
            return f"releases[{i}]: expected versions (a specifier), modules, read ({problem})"
    if not releases:
        return "releases: expected a list of release ranges"
    build, cuda = row.get("build"), row.get("cuda")
    if build is not None and build not in BUILDS or cuda is not None and not isinstance(cuda, str):
        return f"build: one of {', '.join(BUILDS)}; cuda: a CUDA major as text"
    stands_in = None
    for relation in RELATIONS:
        if relation not in row:
            continue
        hand = row[relation]
        if not isinstance(hand, dict) or not valid_name(hand.get("project")) or not isinstance(hand.get("lacks"), str) \
                or not _strings(hand.get("sources")) or not set(hand["sources"]) <= sources:
            return f"{relation}: expected project (a distribution), lacks (text), sources (ids in sources*.toml)"
        stands_in = StandIn(normalize_name(hand["project"]), relation, hand["lacks"], tuple(hand["sources"]))
    return Owner(normalize_name(name), tuple(releases), build, cuda, stands_in)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# --- the check ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """An installed distribution's claim on a module: for sure (its installed release installs it) or maybe."""

    owner: Owner
    version: str | None
    certain: bool
    release: ReleaseRange | None


def check_module_owners(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    table = load_module_owners(ctx.matrices)
    if table is None:
        return []
    claims: dict[str, dict[str, Claim]] = {}
    for name in sorted(set(packages) & set(table.owners)):
        owner, version = table.owners[name], packages[name].version
        certain, possible, release = owner.modules(version)
        for module in possible:
            claims.setdefault(module, {})[name] = Claim(owner, version, module in certain, release)
    shared: dict[tuple[str, ...], list[str]] = {}
    for module, by_owner in claims.items():
        if len(by_owner) > 1:
            shared.setdefault(tuple(sorted(by_owner)), []).append(module)
    findings = [_shared(ctx, table, sorted(modules), [claims[_surest(claims, modules, names)][n] for n in names])
                for names, modules in sorted(shared.items())]
    stand_ins: dict[str, list[str]] = {}
    for module, by_owner in claims.items():
        if len(by_owner) != 1:
            continue
        name, claim = next(iter(by_owner.items()))
        stands_in = claim.owner.stands_in
        if stands_in is not None and claim.certain and stands_in.project not in packages:
            stand_ins.setdefault(name, []).append(module)
    for name, modules in sorted(stand_ins.items()):
        findings.append(_stand_in(table, claims[modules[0]][name], sorted(modules)))
    return findings


def _surest(claims: dict[str, dict[str, Claim]], modules: list[str], names: tuple[str, ...]) -> str:
    """The module whose claims stand for the group: the first (by name) that every owner certainly installs, else
    the first by name."""
    ordered = sorted(modules)
    return next((m for m in ordered if all(claims[m][n].certain for n in names)), ordered[0])


def _label(claim: Claim) -> str:
    return f"{claim.owner.name} {public(claim.version)}" if claim.version else f"{claim.owner.name} (version unknown)"


def _modules(modules: list[str]) -> str:
    return ", ".join(modules)


def _build(owner: Owner) -> str:
    if owner.build == "cuda":
        return f"CUDA {owner.cuda}" if owner.cuda else "CUDA"
    return "CPU"


def _mixed_builds(owners: list[Owner]) -> bool:
    """A CPU and a CUDA build of one project, or CUDA builds for different CUDA majors."""
    builds = {owner.build for owner in owners if owner.build}
    majors = {owner.cuda for owner in owners if owner.build == "cuda" and owner.cuda}
    return builds == set(BUILDS) or len(majors) > 1


def _shared(ctx: CheckContext, table: ModuleOwners, modules: list[str], claims: list[Claim]) -> Finding:
    owners = [claim.owner for claim in claims]
    mixed = _mixed_builds(owners)
    verified = all(claim.certain for claim in claims)
    names = " and ".join(_label(claim) for claim in claims)
    kinds = sorted({_build(o) for o in owners if o.build})
    builds = f"; they are {' and '.join(kinds)} builds of one project, so the module may hold the files of the " \
        f"build not wanted{' (with the CPU build files the GPU goes unused)' if 'CPU' in kinds else ''}" \
        if mixed else ""
    unsure = "" if verified else "; a version is unknown and only some releases in the table install it, so this " \
        "is inferred"
    return Finding(
        rule="module-installed-twice", category=Category.CUDA_BUILD if mixed else Category.VERSION,
        severity=Severity.WARN, components=tuple(o.name for o in owners), sources=(table.source,), verified=verified,
        message=f"{names} {'both' if len(claims) == 2 else 'all'} install the module{'s' if len(modules) > 1 else ''} "
        f"{_modules(modules)}: the one installed last overwrote the "
        f"other's files, and uninstalling either deletes the module the other needs{builds}{unsure}",
        fix=_reinstall(ctx.snapshot, claims, mixed),
    )


def _reinstall(snapshot: Snapshot, claims: list[Claim], mixed: bool) -> str | None:
    """Uninstall every owner, then install the one wanted (alternatives after ``# or:`` when it is not known)."""
    remove = pip_uninstall([claim.owner.name for claim in claims])
    if remove is None:
        return None
    wanted = (_wanted(snapshot, [c for c in claims if valid_name(c.owner.name)]) if mixed
              else sorted(claims, key=lambda c: c.owner.stands_in is not None))  # the real project before a fork
    installs = [pip_install(c.owner.name, _same_release(c.version)) for c in wanted if valid_name(c.owner.name)]
    if not installs:
        return remove
    return f"{remove} && {installs[0]}" + "".join(f"   # or: {install}" for install in installs[1:])


def _same_release(version: str | None) -> str:
    """``==1.17.1`` for an installed release of known PEP 440 version, else any version."""
    parsed = parse_version(version) if version else None
    return f"=={parsed.public}" if parsed is not None else ""


def _wanted(snapshot: Snapshot, claims: list[Claim]) -> list[Claim]:
    """The owners to keep: CUDA builds on a machine with an NVIDIA GPU (those for the driver's CUDA major or below,
    the newest first), CPU builds on one without; every owner when the snapshot does not say."""
    cuda = [c for c in claims if c.owner.build == "cuda"]
    cpu = [c for c in claims if c.owner.build == "cpu"]
    if has_no_gpu(snapshot):
        return cpu or claims
    if not _gpu_seen(snapshot) or not cuda:
        return claims
    driver = parse_version(snapshot.nvidia.cuda_driver) if snapshot.nvidia and snapshot.nvidia.cuda_driver else None
    majors = [c for c in cuda if c.owner.cuda and c.owner.cuda.isdigit()]
    if driver is not None and majors:
        fitting = sorted((c for c in majors if int(c.owner.cuda or 0) <= driver.major),
                         key=lambda c: -int(c.owner.cuda or 0))
        return fitting + [c for c in cuda if c not in majors] or cuda
    return cuda


def _gpu_seen(snapshot: Snapshot) -> bool:
    nvidia = snapshot.nvidia
    return nvidia is not None and not nvidia.error and bool(nvidia.gpus or nvidia.driver)


def _stand_in(table: ModuleOwners, claim: Claim, modules: list[str]) -> Finding:
    owner, stand_in = claim.owner, claim.owner.stands_in
    assert stand_in is not None
    based = {m: v for m, v in (claim.release.module_versions if claim.release else {}).items() if m in modules}
    based_on = "".join(f"; its module {m} is {stand_in.project} {v} (the {owner.name} release read: "
                       f"{claim.release.read if claim.release else '?'})" for m, v in sorted(based.items()))
    fixes = [pip_uninstall([owner.name]), pip_install(stand_in.project) if valid_name(stand_in.project) else None]
    return Finding(
        rule="module-from-fork", category=Category.VERSION, severity=Severity.WARN, components=(owner.name,),
        sources=(table.source, *stand_in.sources), verified=True,
        message=f"the module {_modules(modules)} comes from {_label(claim)}, {RELATIONS[stand_in.relation]} "
        f"{stand_in.project}, and {stand_in.project} is not installed: code written for {stand_in.project} gets "
        f"{owner.name}'s module, which lacks {stand_in.lacks}{based_on}",
        fix=" && ".join(fix for fix in fixes if fix) or None,
    )
