"""How sdist-only torch extensions were built, from ``matrices/extension_builds.toml``, against the installed torch.

- ``isolated_builds``: releases whose ``[build-system] requires`` lists torch. pip (without
  ``--no-build-isolation``) builds them in a fresh environment holding the newest torch of the day, so the
  extension targets that torch. When a newer torch minor than the installed one existed before the extension was
  released, that build certainly targeted another torch; when one appeared later, it did if installed since.
- ``precompiled_ops``: packages whose ops are compiled at install time on some platforms (DeepSpeed on Windows),
  for the torch present then.
- A local version label that is a git hash on a release version (``0.12.6+fed2284``) says the package was built
  from a source checkout, against whatever torch was present at that time (``X.devN+gHASH`` versions, the shape
  of CI nightly wheels that pin their torch in Requires-Dist, are left to the declared-requirement check).

None of these can be confirmed from a snapshot: each finding is ``verified: false`` and names the check that can
(``envdoctor check --deep`` imports it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import valid_name
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.pypi_facts import ReleaseFacts, release_facts, releases
from envdoctor.rules import parse_version

TABLE = "extension_builds"
GIT_HASH_LABEL = re.compile(r"^g?[0-9a-f]{7,40}(\.d\d{8})?$")
SOURCE_BUILD_SOURCES = ("anchors-failure-modes", "torch-cxx11-abi")


@dataclass(frozen=True)
class ExtensionBuilds:
    isolated: dict[str, frozenset[str]]  # package -> releases built against the newest torch in isolation
    isolated_sources: dict[str, tuple[str, ...]]
    precompiled: dict[str, tuple[frozenset[str], tuple[str, ...]]]  # package -> (OS names, sources)


def load_extension_builds(matrices: Matrices) -> ExtensionBuilds:
    """The table, validated; a bad entry raises MatrixError naming the file and key."""
    data = matrices.table(TABLE)
    where = matrices.root / f"{TABLE}.toml"
    isolated, isolated_sources, precompiled = {}, {}, {}
    for name, entry in _tables(data, "isolated_builds", where).items():
        versions = entry.get("isolated_torch_build")
        if not isinstance(versions, list) or not all(isinstance(v, str) and parse_version(v) for v in versions):
            raise MatrixError(f"{where}: isolated_builds.{name}.isolated_torch_build: should be a list of versions")
        isolated[name] = frozenset(str(parse_version(v)) for v in versions)
        isolated_sources[name] = _sources(entry, f"{where}: isolated_builds.{name}")
    for name, entry in _tables(data, "precompiled_ops", where).items():
        platforms = entry.get("platforms")
        if not isinstance(platforms, list) or not all(isinstance(p, str) for p in platforms):
            raise MatrixError(f"{where}: precompiled_ops.{name}.platforms: should be a list of OS names")
        precompiled[name] = (frozenset(platforms), _sources(entry, f"{where}: precompiled_ops.{name}"))
    return ExtensionBuilds(isolated, isolated_sources, precompiled)


def _tables(data: dict[str, object], key: str, where: object) -> dict[str, dict[str, object]]:
    section = data.get(key, {})
    if not isinstance(section, dict) or not all(isinstance(v, dict) and valid_name(k) for k, v in section.items()):
        raise MatrixError(f"{where}: {key}: should hold one table per package name")
    return section  # type: ignore[return-value]


def _sources(entry: dict[str, object], where: str) -> tuple[str, ...]:
    sources = entry.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise MatrixError(f"{where}.sources: should be a non-empty list of source ids")
    return tuple(sources)


def build_findings(ctx: CheckContext, name: str, version: str, torch: str) -> list[Finding]:
    """What the table says about how ``name`` ``version`` was built beside torch ``torch`` (at most one finding)."""
    parsed, installed = parse_version(version), parse_version(torch)
    if parsed is None or installed is None:
        return []
    table = load_extension_builds(ctx.matrices)
    if str(Version(parsed.public)) in table.isolated.get(name, frozenset()):
        return _isolated(ctx, name, parsed, installed, table.isolated_sources[name])
    platforms, sources = table.precompiled.get(name, (frozenset(), ()))
    if ctx.snapshot.host.os in platforms:
        return [_unverified_build(
            name, version, torch, sources,
            f"on {ctx.snapshot.host.os} its ops are compiled when it is installed, for the torch present then")]
    if parsed.local and GIT_HASH_LABEL.fullmatch(parsed.local) and not parsed.is_devrelease and (
            name not in ctx.matrices.policy.runtime_compiled):
        return [_unverified_build(
            name, version, torch, SOURCE_BUILD_SOURCES,
            f"its local version label +{parsed.local} marks a build from a source checkout, compiled against the "
            "torch present then")]
    return []


def _isolated(ctx: CheckContext, name: str, version: Version, torch: Version,
              sources: tuple[str, ...]) -> list[Finding]:
    extension = release_facts(name, version.public)
    minor = (torch.major, torch.minor)
    newer = _first_newer_minors(minor)
    if extension is None or not newer:
        return []
    before = [r for r in newer if r.date <= extension.date]
    if before:
        when = (f"that was another torch minor in any case, since torch {before[-1].version} was already out when "
                f"{name} {version.public} was released ({extension.date})")
    else:
        when = (f"that was another torch minor if it was installed after torch {newer[0].version} came out "
                f"({newer[0].date})")
    return [Finding(
        rule="extension-isolated-build-other-torch", category=Category.ABI, severity=Severity.WARN,
        components=(name, "torch"), sources=sources, verified=False,
        message=f"{name} {version} lists torch in its pyproject.toml build requirements, so 'pip install {name}' "
        f"without --no-build-isolation compiles it (or fetches its prebuilt wheel) against the newest torch of "
        f"the day, not the installed torch {torch}: {when}. Built for another torch, it fails at import with "
        "'undefined symbol' ('envdoctor check --deep' confirms it imports)",
        fix=f'pip install --no-build-isolation --force-reinstall --no-deps --no-cache-dir "{name}=={version}"'
        "   # builds against (or fetches the wheel for) the installed torch",
    )]


def _first_newer_minors(minor: tuple[int, int]) -> list[ReleaseFacts]:
    """The first release of each torch minor newer than ``minor``, oldest first."""
    firsts: dict[tuple[int, int], ReleaseFacts] = {}
    for release in releases("torch"):
        parsed = parse_version(release.version)
        if parsed is None or parsed.is_prerelease or release.yanked:
            continue
        key = (parsed.major, parsed.minor)
        if key > minor and (key not in firsts or release.date < firsts[key].date):
            firsts[key] = release
    return sorted(firsts.values(), key=lambda r: r.date)


def _unverified_build(name: str, version: str, torch: str, sources: tuple[str, ...], how: str) -> Finding:
    public = parse_version(version).public if parse_version(version) else version
    return Finding(
        rule="extension-source-build-unverified", category=Category.ABI, severity=Severity.WARN,
        components=(name, "torch"), sources=sources, verified=False,
        message=f"{name} {version}: {how}; whether that was torch {torch} cannot be read from the snapshot. Built "
        f"for another torch, its compiled ops fail to load ('undefined symbol', or DeepSpeed's 'PyTorch version "
        "mismatch! DeepSpeed ops were compiled and installed with a different version')",
        fix=f'pip install --no-build-isolation --force-reinstall --no-deps --no-cache-dir "{name}=={public}"'
        "   # rebuilds it against the installed torch",
    )
