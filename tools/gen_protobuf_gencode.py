"""Regenerate ``matrices/protobuf_gencode.json``: which protoc generation wrote the ``*_pb2.py`` modules each release
of a package ships, and so under which protobuf releases they import.

Usage:
    python tools/gen_protobuf_gencode.py [--only NAME ...] [--threads N] [--out FILE]

The packages and their floors are listed in ``tools/protobuf_gencode_packages.toml``. Each release is the archive
``tools/gen_numpy_aliases.py`` picks (manylinux x86_64 wheel, else pure, else any wheel); only wheels are read, with
HTTP range requests (the zip's central directory and the ``_pb2.py`` members), and each module's text is matched
with regular expressions; nothing is executed. A generated module is of one of four generations:

- ``direct`` (protoc < 3.19): builds descriptors directly (``_descriptor.FileDescriptor(... serialized_pb=...)``,
  ``_descriptor.Descriptor(...)``). protobuf >= 4.21.0 refuses it (``TypeError: Descriptors cannot not be created
  directly``) unless the pure-Python implementation is chosen; with ``create_key=_descriptor._internal_create_key``
  (protoc >= 3.12) it also needs protobuf >= 3.12.0.
- ``pool`` (protoc 3.19): ``DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(...)`` and
  ``_reflection.GeneratedProtocolMessageType``; needs protobuf >= 3.19.0, whose ``AddSerializedFile`` returns the file
  descriptor (3.18's returns None).
- ``builder`` (protoc 3.20 to 26): ``from google.protobuf.internal import builder``; needs protobuf >= 3.20.0.
- ``versioned`` (protoc >= 27, protobuf 5.27): ``_runtime_version.ValidateProtobufRuntimeVersion(Domain.PUBLIC, M,
  m, p, ...)``; needs a protobuf runtime at least the gencode version M.m.p (``google.protobuf.runtime_version``
  appeared in 5.27.0; 5.x runtimes also require the same major, which a runtime at least the gencode version of a
  5.x gencode has; 6.x runtimes accept the previous major with a warning, 6.33 and 7.x any older gencode).

A release's range (``protobuf``) is the intersection of its modules' ranges; its core range (``protobuf_core``) that
of the modules of its most common generations (every generation on a tie): a few modules of an older generation
left beside regenerated ones (tensorflow-serving-api's ``prediction_service_pb2.py``) are ``outliers``. A release
that ships several generations side by side and picks one by the installed protobuf (a ``_pb2.py`` without
generated code that looks at protobuf's version, as wandb's ``wandb/proto/*_pb2.py`` do) gets the union of its
generations' ranges. ``--only NAME`` re-reads those
packages and keeps the others of the existing file.
"""

from __future__ import annotations

import datetime
import re
import sys
import urllib.error
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import gen_numpy_aliases
from gen_numpy_aliases import (
    ROOT,
    Archive,
    Generator,
    archives,
    read_releases,
    regenerate,
    source_entry,
)
from packaging.version import Version

from envdoctor import pypi_release
from envdoctor.numpy_name_scan import (
    shipped_code,
)

OUT = ROOT / "matrices" / "protobuf_gencode.json"
PACKAGES = ROOT / "tools" / "protobuf_gencode_packages.toml"
GENERATOR = "tools/gen_protobuf_gencode.py"
SCAN_SOURCE = "protobuf-gencode-scan"
SPAN_GAP = 256 * 1024  # members closer than this are fetched with one range request
HEADER_SLACK = 1024  # room for a local file header's name and extra field beyond the central directory's sizes
# Only the central directory and the _pb2 members are fetched, so a wheel of any size is read (tensorflow's pass
# the 400 MiB cap the whole-archive readers keep).
gen_numpy_aliases.MAX_ARCHIVE = 4 * 1024 ** 3

# Where each generation's protobuf range comes from: ids in matrices/sources.toml.
ERA_SOURCES = {
    "direct": ["protobuf-4-21-upb-direct-descriptors", "protobuf-3-12-internal-create-key"],
    "pool": ["protobuf-3-19-add-serialized-file"],
    "builder": ["protobuf-3-20-builder"],
    "versioned": ["protobuf-5-27-runtime-version"],
}
ERAS = {
    "direct": {"protoc": "<3.19", "protobuf": "<4.21.0", "protobuf_with_create_key": ">=3.12.0,<4.21.0"},
    "pool": {"protoc": "==3.19.*", "protobuf": ">=3.19.0"},
    "builder": {"protoc": ">=3.20,<27", "protobuf": ">=3.20.0"},
    "versioned": {"protoc": ">=27", "protobuf": ">=<gencode version>"},
}
SOURCES = [
    {"title": "protobuf 4.21.0 manylinux wheel, google/_upb/_message.abi3.so: 'Descriptors cannot not be created "
              "directly ... regenerated with protoc >= 3.19.0'; descriptor.py calls "
              "_message.Message._CheckCalledFromGeneratedFile() when a Descriptor is made",
     "url": "https://pypi.org/project/protobuf/4.21.0/#files"},
    {"title": "protobuf 3.12.0 wheel: descriptor._internal_create_key (absent in 3.11.3)",
     "url": "https://pypi.org/project/protobuf/3.12.0/#files"},
    {"title": "protobuf 3.19.0 wheel: DescriptorPool.AddSerializedFile returns the FileDescriptor (3.18.0 returns "
              "None)",
     "url": "https://pypi.org/project/protobuf/3.19.0/#files"},
    {"title": "protobuf 3.20.0 wheel: google/protobuf/internal/builder.py (absent in 3.19.0)",
     "url": "https://pypi.org/project/protobuf/3.20.0/#files"},
    {"title": "protobuf 5.27.0 wheel: google/protobuf/runtime_version.py (absent in 5.26.1); "
              "ValidateProtobufRuntimeVersion in 5.27.0, 6.30.0, 6.33.0 and 7.34.0",
     "url": "https://pypi.org/project/protobuf/5.27.0/#files"},
    {"title": "PyPI JSON API and each release's wheel (the packages' _pb2.py modules)", "url": "https://pypi.org/pypi/"},
]

GENERATED = re.compile(r"^DESCRIPTOR\s*=", re.M)
VERSIONED = re.compile(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC\s*,\s*(\d+)\s*,\s*(\d+)"
                       r"\s*,\s*(\d+)\s*,\s*(['\"])([^'\"]*)\4")
BUILDER = re.compile(r"^from google\.protobuf\.internal import builder as _builder\b", re.M)
POOL = re.compile(r"^DESCRIPTOR\s*=\s*_descriptor_pool\.Default\(\)\.AddSerializedFile\(", re.M)
DIRECT = re.compile(r"^DESCRIPTOR\s*=\s*_descriptor\.FileDescriptor\(", re.M)
CREATE_KEY = re.compile(r"create_key\s*=\s*_descriptor\._internal_create_key")
# A shim that picks one of several generations by the installed protobuf (no generated code of its own).
PICKS_BY_VERSION = re.compile(r"protobuf\.__version__|version\(\s*['\"]protobuf['\"]\s*\)")


# --- the classification of one module (no network) ----------------------------------------------------


@dataclass(frozen=True)
class Gencode:
    """One generated module: its generation, and the protobuf releases it imports under (``floor`` inclusive,
    ``ceiling`` exclusive, None for no bound)."""

    era: str
    floor: str | None
    ceiling: str | None
    gencode_version: str | None = None


def classify(text: str) -> Gencode | None:
    """The generation of a ``_pb2.py`` text; None when it holds no generated code (a shim) or an unknown form."""
    if not GENERATED.search(text):
        return None
    versioned = VERSIONED.search(text)
    if versioned:
        major, minor, patch, _, suffix = versioned.groups()
        version = f"{major}.{minor}.{patch}{suffix.lstrip('-')}"
        return Gencode("versioned", str(max(Version(version), Version("5.27.0"))), None, version)
    if BUILDER.search(text):
        return Gencode("builder", "3.20.0", None)
    if POOL.search(text):
        return Gencode("pool", "3.19.0", None)
    if DIRECT.search(text):
        return Gencode("direct", "3.12.0" if CREATE_KEY.search(text) else None, "4.21.0")
    return None


def picks_by_version(text: str) -> bool:
    """A ``_pb2.py`` without generated code that imports one of several generations by protobuf's version."""
    return not GENERATED.search(text) and bool(PICKS_BY_VERSION.search(text))


@dataclass(frozen=True)
class ReleaseGencode:
    """The generated modules of one release: counts per generation; the protobuf range all of them import under
    and the range of its core (the modules of its most common generations, every one of them on a tie); whether a
    shim picks a generation by protobuf's version; a core module that bounds the core range; the modules outside the
    core (a few generated by an older protoc and left unregenerated)."""

    eras: dict[str, int]
    floor: str | None
    ceiling: str | None
    core_floor: str | None
    core_ceiling: str | None
    gencode_version: str | None
    picks: bool
    where: str
    outliers: tuple[str, ...]
    unknown: int


def _tightest(found: list[tuple[str, Gencode]]) -> tuple[str | None, str | None]:
    floors = [Version(g.floor) for _, g in found if g.floor]
    ceilings = [Version(g.ceiling) for _, g in found if g.ceiling]
    return (str(max(floors)) if floors else None, str(min(ceilings)) if ceilings else None)


def _union(groups: Iterable[tuple[str | None, str | None]]) -> tuple[str | None, str | None]:
    floors, ceilings = zip(*groups, strict=True)
    floor = None if None in floors else str(min(Version(f) for f in floors if f))
    ceiling = None if None in ceilings else str(max(Version(c) for c in ceilings if c))
    return floor, ceiling


def release_gencode(files: Iterable[tuple[str, str]]) -> ReleaseGencode | None:
    """What a release's ``_pb2.py`` (path, text) pairs say; None when none holds generated code."""
    found: list[tuple[str, Gencode]] = []
    picks = False
    unknown = 0
    for path, text in files:
        gencode = classify(text)
        if gencode is not None:
            found.append((path, gencode))
        elif picks_by_version(text):
            picks = True
        elif GENERATED.search(text):
            unknown += 1
    if not found:
        return None
    found.sort()
    eras: dict[str, int] = {}
    for _, gencode in found:
        eras[gencode.era] = eras.get(gencode.era, 0) + 1
    if picks:
        groups: dict[str, list[tuple[str, Gencode]]] = {}
        for path, gencode in found:
            groups.setdefault(path.rsplit("/", 1)[0], []).append((path, gencode))
        floor, ceiling = _union(_tightest(group) for group in groups.values())
        core, outliers = found, []
        core_floor, core_ceiling = floor, ceiling
    else:
        floor, ceiling = _tightest(found)
        most = max(eras.values())
        core = [(p, g) for p, g in found if eras[g.era] == most]
        outliers = [p for p, g in found if eras[g.era] != most]
        core_floor, core_ceiling = _tightest(core)
    versions = [g.gencode_version for _, g in core if g.gencode_version]
    newest = max(versions, key=Version) if versions else None
    bounding = next((p for p, g in core if (core_floor and g.floor == core_floor)
                     or (core_ceiling and g.ceiling == core_ceiling)), core[0][0])
    return ReleaseGencode(dict(sorted(eras.items())), floor, ceiling, core_floor, core_ceiling, newest, picks,
                          bounding, tuple(outliers[:3]), unknown)


def protobuf_range(floor: str | None, ceiling: str | None) -> str:
    """The specifier over protobuf releases of a floor and a ceiling (``""``: any)."""
    return ",".join(part for part in (f">={floor}" if floor else "", f"<{ceiling}" if ceiling else "") if part)


# --- the releases on PyPI -----------------------------------------------------------------------------


def is_pb2(path: str) -> bool:
    """A shipped ``_pb2.py`` module of the package itself (not a vendored copy of protobuf's own)."""
    return path.endswith("_pb2.py") and shipped_code(path) and not path.startswith("google/protobuf/")


def _spans(infos: list[zipfile.ZipInfo], size: int) -> list[tuple[int, int]]:
    """Byte ranges (start, end exclusive) covering the local headers and data of ``infos``, near ones merged."""
    spans: list[tuple[int, int]] = []
    for info in sorted(infos, key=lambda i: i.header_offset):
        start = info.header_offset
        end = min(size, start + 30 + len(info.orig_filename.encode()) + HEADER_SLACK + info.compress_size)
        if spans and start - spans[-1][1] <= SPAN_GAP:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def pb2_files(archive: Archive, fetch: pypi_release.Fetch = pypi_release.http_get) -> Iterator[tuple[str, str]]:
    """(path, text) of each ``_pb2.py`` of a wheel, read by range; nothing for an sdist."""
    if not archive.filename.endswith(".whl"):
        return
    remote = pypi_release.RangeFile(archive.url, archive.size, fetch)
    with zipfile.ZipFile(remote) as wheel:  # type: ignore[arg-type]
        wanted = [info for info in wheel.infolist() if is_pb2(info.filename)]
        for start, end in _spans(wanted, archive.size):
            remote.chunks.append((start, fetch(archive.url, (start, end - 1))))
        for info in wanted:
            yield info.filename, wheel.read(info).decode("utf-8", errors="replace")


def read_release(archive: Archive) -> ReleaseGencode | None:
    try:
        return release_gencode(pb2_files(archive))
    except (zipfile.BadZipFile, urllib.error.HTTPError) as error:
        print(f"  {archive.filename}: unreadable ({error})", file=sys.stderr, flush=True)
        return None


# --- the table ----------------------------------------------------------------------------------------


def _specifier(first: str, last: str) -> str:
    return f"=={first}" if first == last else f">={first},<={last}"


def package_rows(versions: list[str], scans: dict[str, ReleaseGencode | None]) -> list[dict[str, Any]]:
    """Runs of consecutive releases with the same generations, protobuf ranges and outliers, each with the module
    counts of its last release (releases without generated modules end a run and get no row)."""
    rows: list[dict[str, Any]] = []
    run: list[str] = []

    def key(version: str) -> tuple[Any, ...] | None:
        scan = scans[version]
        return None if scan is None else (tuple(scan.eras), scan.floor, scan.ceiling, scan.core_floor,
                                          scan.core_ceiling, scan.gencode_version, scan.picks, scan.outliers)

    def close() -> None:
        if run:
            scan = scans[run[-1]]
            assert scan is not None
            rows.append({"versions": _specifier(run[0], run[-1]), "eras": scan.eras,
                         "protobuf_core": protobuf_range(scan.core_floor, scan.core_ceiling),
                         "protobuf": protobuf_range(scan.floor, scan.ceiling), "gencode_version": scan.gencode_version,
                         "picks_by_protobuf": scan.picks, "where": scan.where, "outliers": list(scan.outliers)})
            run.clear()

    for version in versions:
        if run and key(version) != key(run[-1]):
            close()
        if key(version) is not None:
            run.append(version)
        else:
            close()
    close()
    return rows


def study(name: str, since: str | None, threads: int) -> dict[str, Any]:
    url, found = archives(name, since)
    found = [archive for archive in found if archive.filename.endswith(".whl")]
    scans = read_releases(found, read_release, threads)
    versions = [a.version for a in found]
    print(f"{name}: {len(versions)} releases, {sum(1 for s in scans.values() if s)} with generated _pb2 modules",
          file=sys.stderr, flush=True)
    return {
        "source": source_entry(url, "each release's wheel (manylinux x86_64, else pure), every shipped _pb2.py",
                               found),
        "releases": versions,
        "without_gencode": [v for v in versions if scans[v] is None],
        "rows": package_rows(versions, scans),
    }


def document(packages: dict[str, dict[str, Any]], command: str, today: str | None = None) -> dict[str, Any]:
    return {
        "generator": GENERATOR,
        "command": command,
        "generated": today or datetime.date.today().isoformat(),
        "what": "per package, runs of releases whose shipped _pb2.py modules are of the same protoc generations "
                "(eras: modules per generation); protobuf: the protobuf releases all of them import under (the union "
                "over generations when the release picks one by protobuf's version); protobuf_core: those the "
                "modules of the most common generations import under (outliers: up to 3 modules outside them); "
                "read from each release's wheel with regular expressions",
        "scan_source": SCAN_SOURCE,
        "sources": SOURCES,
        "eras": {era: {**bounds, "sources": ERA_SOURCES[era]} for era, bounds in ERAS.items()},
        "packages": dict(sorted(packages.items())),
    }


def dump(table: dict[str, Any]) -> str:
    """One release list or row per line: a readable diff when a release is added."""
    return gen_numpy_aliases.dump(table, one_per_line=())


def main(argv: list[str] | None = None) -> int:
    return regenerate(Generator(__doc__.splitlines()[0], GENERATOR, PACKAGES, OUT, study, document, dump), argv)


if __name__ == "__main__":
    sys.exit(main())
