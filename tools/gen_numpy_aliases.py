"""Regenerate ``matrices/numpy_aliases.json``: which releases of libraries that import numpy use NumPy names that
NumPy removed (``np.float``, ``np.bool8``, ``np.NaN`` ...), and whether a use runs at import or only when a
function is called.

Usage:
    python tools/gen_numpy_aliases.py [--only NAME ...] [--threads N] [--out FILE]

The packages and their floors are listed in ``tools/numpy_alias_packages.toml``. Each release is read from PyPI:
its manylinux x86_64 wheel (else a pure wheel, else any wheel; ``envdoctor.pypi_release.metadata_wheel``), or its
sdist when it has no wheel. Every ``.py`` file outside test folders is parsed with ``ast``; nothing is executed.

A use is ``X.<name>`` where ``X`` is a name the file binds to the numpy module (``import numpy as np``,
``import numpy``) and to nothing else, or ``from numpy import <name>``, with ``<name>`` in ``REMOVED``. A use
runs at import when it is reached without calling a function: module and class bodies, decorators, default values
and (without ``from __future__ import annotations``) annotations. Guarded uses are left out: in a ``try`` whose
handlers catch ``AttributeError``/``ImportError``/``Exception`` (or everything), and under an ``if``/``else``
whose test looks at a version, ``hasattr`` or ``TYPE_CHECKING``, or runs a module as a script
(``if __name__ == "__main__"``). ``--only NAME`` re-reads those packages and keeps
the others of the existing file.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import tomllib
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "matrices" / "numpy_aliases.json"
PACKAGES = ROOT / "tools" / "numpy_alias_packages.toml"
GENERATOR = "tools/gen_numpy_aliases.py"
SINCE = "2019-01-01"  # releases first uploaded before this day are not read unless a package's `since` says so
MAX_ARCHIVE = 400 * 1024 * 1024
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))

from gen_import_floors import final_version, ranges  # noqa: E402

from envdoctor import pypi_release  # noqa: E402 - after the path is set for a checkout without an install
from envdoctor.atomic import write_atomic  # noqa: E402
from envdoctor.numpy_name_scan import (  # noqa: E402 - the scan of one file, shared with check --online
    REMOVED,
    ReleaseScan,
    scan_files,
    shipped_code,
)

SCAN_SOURCE = "numpy-aliases-scan"  # the id of this generator's reading of the packages' code
SOURCES = [
    {"title": "NumPy 1.20.0 release notes: the aliases of builtin types (np.int, np.float, np.bool, np.object, "
              "np.complex, np.str, np.long, np.unicode) are deprecated",
     "url": "https://numpy.org/doc/stable/release/1.20.0-notes.html"},
    {"title": "NumPy 1.24.0 release notes: the np.object/bool/float/complex/str/int deprecation expired; np.bool8, "
              "np.int0 and the other 0-suffixed aliases deprecated",
     "url": "https://numpy.org/doc/stable/release/1.24.0-notes.html"},
    {"title": "numpy/__init__.py at v1.24.0 (__former_attrs__, __future_scalars__, long and unicode deleted)",
     "url": "https://github.com/numpy/numpy/blob/v1.24.0/numpy/__init__.py",
     "commit": "8cec82012694571156e8d7696307c848a7603b4e"},
    {"title": "NumPy 2.0 migration guide: main namespace members removed",
     "url": "https://numpy.org/doc/stable/numpy_2_0_migration_guide.html"},
    {"title": "NumPy 2.0.0 release notes: expired deprecations (np.product, cumproduct, sometrue, alltrue, msort, "
              "bool8 and the 0-suffixed aliases; NEP 52 removals)",
     "url": "https://numpy.org/doc/stable/release/2.0.0-notes.html"},
    {"title": "numpy/_expired_attrs_2_0.py at v2.0.0", "commit": "1d49c7f7ff527c696fc26ab2278ad51632a66660",
     "url": "https://github.com/numpy/numpy/blob/v2.0.0/numpy/_expired_attrs_2_0.py"},
    {"title": "NEP 52: Python API cleanup for NumPy 2.0", "url": "https://numpy.org/neps/nep-0052-python-api-cleanup.html"},
    {"title": "NumPy 2.4.0 release notes: numpy.in1d and numpy.trapz removed",
     "url": "https://numpy.org/doc/stable/release/2.4.0-notes.html"},
    {"title": "PyPI JSON API and each release's wheel or sdist (the packages' code)", "url": "https://pypi.org/pypi/"},
]


# --- the releases on PyPI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    version: str
    url: str
    filename: str
    size: int


def archives(name: str, since: str | None, first_day: str = SINCE) -> tuple[str, list[Archive]]:
    """The index URL and one archive per final release read (oldest first): the wheel metadata_wheel picks, else
    the sdist; releases uploaded before ``first_day`` are left out unless ``since`` names an older floor."""
    url = f"https://pypi.org/pypi/{name}/json"
    index = json.loads(pypi_release.http_get(url))
    found = []
    for version in pypi_release.kept_versions(index["releases"], since):
        files = index["releases"][version]
        if final_version(version, since or "0") is None or all(f.get("yanked") for f in files):
            continue
        uploaded = min(f.get("upload_time_iso_8601") or f["upload_time"] for f in files)[:10]
        if since is None and uploaded < first_day:
            continue
        chosen = pypi_release.metadata_wheel(files) or next(
            (f for f in files if f["filename"].endswith((".tar.gz", ".zip", ".tar.bz2")) and not f.get("yanked")),
            None)
        if chosen is not None and chosen["size"] <= MAX_ARCHIVE:
            found.append(Archive(version, urljoin(url, chosen["url"]), chosen["filename"], chosen["size"]))
    return url, found


def archive_files(filename: str, data: bytes,
                  keep: Callable[[str], bool] = shipped_code) -> Iterator[tuple[str, str]]:
    """(path, text) of each file of a wheel or sdist that ``keep`` keeps (shipped ``.py`` files by default); an
    sdist's top folder is dropped."""
    if filename.endswith((".whl", ".zip")):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                path = member if filename.endswith(".whl") else member.partition("/")[2]
                if keep(path):
                    yield path, archive.read(member).decode("utf-8", errors="replace")
        return
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            path = member.name.partition("/")[2]
            if member.isfile() and keep(path):
                handle = archive.extractfile(member)
                if handle is not None:
                    yield path, handle.read().decode("utf-8", errors="replace")


Read = TypeVar("Read")


def read_releases(found: list[Archive], read: Callable[[Archive], Read], threads: int) -> dict[str, Read]:
    """What ``read`` finds in each archive of ``found``, ``threads`` at once, by version."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip([a.version for a in found], pool.map(read, found), strict=True))


def source_entry(url: str, read: str, found: list[Archive]) -> dict[str, str]:
    """A package's ``source`` in a table: its index ``url``, what was ``read`` of each release and its newest
    archive."""
    newest = found[-1] if found else None
    return {"url": url, "read": read, "newest_release": newest.version if newest else "",
            "newest_file": newest.filename if newest else ""}


def read_release(archive: Archive) -> ReleaseScan:
    return scan_files(archive_files(archive.filename, pypi_release.http_get(archive.url)))


# --- the table ----------------------------------------------------------------------------------------


def _specifier(first: str, last: str) -> str:
    return f"=={first}" if first == last else f">={first},<={last}"


def _signature(scan: ReleaseScan, removed_in: str,
               removals: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names of one removal a release uses, and those of them used at import."""
    uses = {name: at for name, (at, _) in scan.uses.items() if removals[name] == removed_in}
    return tuple(sorted(uses)), tuple(sorted(name for name, at in uses.items() if at))


def package_rows(versions: list[str], scans: dict[str, ReleaseScan], removals: dict[str, str] | None = None,
                 field: str = "names", release_key: str = "removed_in") -> list[dict[str, Any]]:
    """Runs of consecutive releases with the same removed names of one removal (``removals``: name -> the release
    that removed it; NumPy's by default) and the same names used at import, each with the first later release that
    uses none of its names; ``field`` is the rows' key for the names, ``release_key`` that for the removal's
    release."""
    removals = removals or {name: r.removed_in for name, r in REMOVED.items()}
    rows = []
    for removed_in in sorted(set(removals.values()), key=Version):
        signatures = {version: _signature(scans[version], removed_in, removals) for version in versions}
        for key in dict.fromkeys(s for s in signatures.values() if s[0]):
            members = {v for v, s in signatures.items() if s == key}
            for first, last in ranges(versions, members):
                later = versions[versions.index(last) + 1:]
                free = next((v for v in later if not set(key[0]) & set(signatures[v][0])), None)
                where = sorted({w for n, (at, w) in scans[last].uses.items() if n in key[0] and at == bool(key[1])})
                rows.append((Version(first), Version(removed_in), {
                    "versions": _specifier(first, last), release_key: removed_in, field: list(key[0]),
                    "at_import": list(key[1]), "first_free": free, "where": where[:3]}))
    return [row for _, _, row in sorted(rows, key=lambda item: item[:2])]


def study(name: str, since: str | None, threads: int) -> dict[str, Any]:
    url, found = archives(name, since)
    scans = read_releases(found, read_release, threads)
    versions = [a.version for a in found]
    unparsed = {v: s.unparsed for v, s in scans.items() if s.unparsed}
    print(f"{name}: {len(versions)} releases, {sum(1 for s in scans.values() if s.uses)} using removed names",
          file=sys.stderr, flush=True)
    return {
        "source": source_entry(url, "each release's wheel (else sdist), every shipped .py file", found),
        "releases": versions,
        "unparsed_files": unparsed,
        "rows": package_rows(versions, scans),
    }


def load_packages(path: Path = PACKAGES) -> dict[str, str | None]:
    with path.open("rb") as handle:
        listed = tomllib.load(handle)["packages"]
    return {name: entry.get("since") for name, entry in listed.items()}


def document(packages: dict[str, dict[str, Any]], command: str, today: str | None = None) -> dict[str, Any]:
    return {
        "generator": GENERATOR,
        "command": command,
        "generated": today or datetime.date.today().isoformat(),
        "what": "releases of libraries that use NumPy names NumPy removed (X.<name> with X bound to numpy, or "
                "from numpy import <name>), per removal; at_import: the names of those whose use runs when a "
                "module of the package is imported (the others only inside functions); where: file:line of uses "
                "in the run's last release; read from each release's code with ast",
        "scan_source": SCAN_SOURCE,
        "sources": SOURCES,
        "removed": {name: {"removed_in": r.removed_in, "missing_in": r.missing_in, "source": r.source}
                    for name, r in REMOVED.items()},
        "packages": dict(sorted(packages.items())),
    }


ONE_PER_LINE = ("sources", "removed", "added", "numpy_read")  # keys whose items ``dump`` writes one a line


def dump(table: dict[str, Any], one_per_line: tuple[str, ...] = ONE_PER_LINE) -> str:
    """One release list or row per line (and one item a line of the keys ``one_per_line``): a readable diff when a
    release is added."""
    lines = ["{"]
    listed = [key for key in one_per_line if key in table]
    for key, value in table.items():
        if key not in ("packages", *listed):
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    for key in listed:
        items = table[key].items() if isinstance(table[key], dict) else enumerate(table[key])
        body = ",\n".join(f"    {json.dumps(v)}" if isinstance(table[key], list) else f"    {json.dumps(k)}: "
                          f"{json.dumps(v)}" for k, v in items)
        opening, closing = ("[", "]") if isinstance(table[key], list) else ("{", "}")
        lines += [f"  {json.dumps(key)}: {opening}", body, f"  {closing},"]
    lines.append('  "packages": {')
    packages = list(table["packages"].items())
    for i, (name, entry) in enumerate(packages):
        fields = [f"      {json.dumps(k)}: {json.dumps(v)}" for k, v in entry.items() if k != "rows"]
        rows = ",\n".join(f"        {json.dumps(row)}" for row in entry["rows"])
        fields.append('      "rows": [\n' + rows + "\n      ]" if rows else '      "rows": []')
        lines.append(f"    {json.dumps(name)}: {{\n" + ",\n".join(fields) + "\n    }" + ("," if i < len(packages) - 1
                                                                                        else ""))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Generator:
    """What a generator of per-package tables of this kind reads and writes: ``study(name, since, threads)`` reads
    one package, ``document(packages, command)`` makes the table and ``dump(table)`` writes it."""

    description: str
    script: str
    packages: Path
    out: Path
    study: Callable[[str, str | None, int], dict[str, Any]]
    document: Callable[[dict[str, dict[str, Any]], str], dict[str, Any]]
    dump: Callable[[dict[str, Any]], str] = dump


def regenerate(generator: Generator, argv: list[str] | None) -> int:
    """The command line: read every listed package (or those of ``--only``, keeping the others) and write the
    table."""
    parser = argparse.ArgumentParser(description=generator.description)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="re-read these packages, keep the others")
    parser.add_argument("--threads", type=int, default=8, help="downloads at once per package (default 8)")
    parser.add_argument("--out", type=Path, default=generator.out)
    args = parser.parse_args(argv)
    listed = load_packages(generator.packages)
    wanted = args.only or list(listed)
    unknown = sorted(set(wanted) - set(listed))
    if unknown:
        parser.error(f"--only {' '.join(unknown)}: not listed in {generator.packages.relative_to(ROOT)}")
    kept: dict[str, Any] = {}
    if args.only and args.out.exists():
        kept = json.loads(args.out.read_text(encoding="utf-8")).get("packages", {})
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        read = dict(zip(wanted, pool.map(lambda name: generator.study(name, listed[name], args.threads), wanted),
                        strict=True))
    packages = {name: entry for name, entry in {**kept, **read}.items() if name in listed}
    write_atomic(args.out, generator.dump(generator.document(packages, f"python {generator.script}")))
    print(f"wrote {args.out} ({len(read)} packages read in {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return regenerate(Generator(__doc__.splitlines()[0], GENERATOR, PACKAGES, OUT, study, document), argv)


if __name__ == "__main__":
    sys.exit(main())
