"""Regenerate ``matrices/module_owners.json``: the top-level import modules each listed distribution installs.

Usage:
    python tools/gen_module_owners.py [--only NAME ...] [--out FILE]

The distributions, and the hand-kept facts about them (a CPU or CUDA build, a fork of another project, an unrelated
namesake), are listed in ``tools/module_owner_packages.toml``. For each major release series of a distribution (the
first number of the version) the newest final release with a file is read: its wheel (``*.dist-info/top_level.txt``,
else the top-level names in its ``RECORD``) by HTTP range requests (the zip's directory and those members only,
``envdoctor.pypi_release``), else, for a release with no wheel, its sdist (``*.egg-info/top_level.txt``). Series
that install the same modules are merged into one version range.

A top-level name counts as a module when the distribution puts its code there: a package with ``__init__.py``, a
``.py`` file or a compiled extension. Folders without ``__init__.py`` are namespace packages (``nvidia``,
``google``), which several distributions share by design, and are left out; so are ``tests``-like folders.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import re
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from packaging.version import InvalidVersion, Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "matrices" / "module_owners.json"
PACKAGES = ROOT / "tools" / "module_owner_packages.toml"
GENERATOR = "tools/gen_module_owners.py"
SOURCE = "module-owners-scan"
sys.path.insert(0, str(ROOT / "src"))

from envdoctor import pypi_release  # noqa: E402 - after the path is set for a checkout without an install
from envdoctor.atomic import write_atomic  # noqa: E402

INDEX = "https://pypi.org/pypi/{name}/json"
# Top-level folders that hold a project's own tests or docs, not code anything imports.
NOT_MODULES = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks", "scripts"}
EXTENSION = re.compile(r"^(?P<module>[A-Za-z_][A-Za-z0-9_]*)(?:\.[^.]+)?\.(?:so|pyd)$")
SOURCE_FILE = re.compile(r"^(?P<module>[A-Za-z_][A-Za-z0-9_]*)\.py$")
DATA_CODE = re.compile(r"^[^/]+\.data/(?:purelib|platlib)/")
SDIST_TOP_LEVEL = re.compile(r"^[^/]+/(?:src/)?[^/]+\.egg-info/top_level\.txt$")
SDIST_LIMIT = 40 * 1024 * 1024  # bytes: a larger sdist is not downloaded


@dataclass(frozen=True)
class Listed:
    """One distribution of tools/module_owner_packages.toml."""

    name: str
    hand: dict[str, Any]  # build, cuda, fork_of, namesake_of as written


@dataclass(frozen=True)
class SeriesRead:
    """What the newest release of one major series installs."""

    major: int
    first: str  # the series' first final release
    last: str  # the release read
    modules: tuple[str, ...]
    read: str  # the file read
    module_versions: dict[str, str]  # module -> the __version__ its __init__.py sets (forks only)


@dataclass(frozen=True)
class ReleaseRead:
    modules: tuple[str, ...]
    read: str
    module_versions: dict[str, str]


# --- parsing (no network) ---------------------------------------------------------------------------


def top_level_names(text: str) -> set[str]:
    """The names in a ``top_level.txt`` (one a line; a nested path counts by its first part)."""
    names = set()
    for line in text.splitlines():
        first = line.strip().replace("\\", "/").split("/", 1)[0]
        if first.isidentifier():
            names.add(first)
    return names


def record_paths(text: str) -> list[str]:
    """The paths of a wheel's ``RECORD`` (CSV: path, hash, size)."""
    return [row[0] for row in csv.reader(io.StringIO(text)) if row and row[0]]


def installed_paths(paths: Iterable[str]) -> list[str]:
    """The paths as installed into site-packages: ``.dist-info`` left out, ``X.data/purelib/`` prefixes removed,
    other ``.data`` parts (scripts, headers) left out."""
    out = []
    for path in paths:
        path = path.replace("\\", "/").lstrip("/")
        first = path.split("/", 1)[0]
        if first.endswith(".dist-info"):
            continue
        if first.endswith(".data"):
            if not DATA_CODE.match(path):
                continue
            path = DATA_CODE.sub("", path)
        out.append(path)
    return out


def modules_of(paths: Iterable[str], claimed: set[str] | None = None) -> tuple[str, ...]:
    """The top-level modules the installed ``paths`` provide: packages with ``__init__.py``, ``.py`` files and
    compiled extensions at the top; namespace folders and test or docs folders left out. ``claimed`` (a
    ``top_level.txt``) limits them to the names it lists."""
    packages, folders = set(), set()
    for path in installed_paths(paths):
        parts = path.split("/")
        if len(parts) == 1:
            match = SOURCE_FILE.match(parts[0]) or EXTENSION.match(parts[0])
            if match:
                packages.add(match.group("module"))
            continue
        if not parts[0].isidentifier():
            continue
        folders.add(parts[0])
        if len(parts) == 2 and (SOURCE_FILE.match(parts[1]) or EXTENSION.match(parts[1])) \
                and parts[1].split(".", 1)[0] == "__init__":
            packages.add(parts[0])
    found = {name for name in packages if name not in NOT_MODULES}
    if claimed is not None:
        found &= claimed
    return tuple(sorted(found))


VERSION_ASSIGNMENT = re.compile(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", re.M)


def module_version(init_text: str) -> str | None:
    """The ``__version__ = "..."`` a package's ``__init__.py`` sets at the top level; None when it sets none."""
    match = VERSION_ASSIGNMENT.search(init_text)
    return match.group(1) if match else None


def sdist_modules(names: list[str], read: Any) -> tuple[str, ...] | None:
    """The modules an sdist's ``*.egg-info/top_level.txt`` lists (``read(name)`` gives a member's text); None when
    it has none."""
    listed = sorted(n for n in names if SDIST_TOP_LEVEL.match(n))
    if not listed:
        return None
    return tuple(sorted(name for name in top_level_names(read(listed[0])) if name not in NOT_MODULES))


def merged(reads: list[SeriesRead]) -> list[dict[str, Any]]:
    """Consecutive series (oldest first) with the same modules as one entry; ``versions`` a specifier over the
    releases from the first series' first release; the newest entry stays open above."""
    entries: list[dict[str, Any]] = []
    for series in reads:
        if entries and tuple(entries[-1]["modules"]) == series.modules:
            entries[-1].update(read=series.read, _last=series.last, module_versions=series.module_versions)
            continue
        if entries:
            entries[-1]["versions"] += f",<{series.first}"
        entries.append({"versions": f">={series.first}", "modules": list(series.modules), "read": series.read,
                        "_last": series.last, "module_versions": series.module_versions})
    for entry in entries:
        entry["release_read"] = entry.pop("_last")
        if not entry["module_versions"]:
            del entry["module_versions"]
    return entries


# --- reading PyPI -----------------------------------------------------------------------------------


def kept_releases(index: dict[str, Any]) -> list[tuple[Version, str]]:
    """(version, key in the index) of the final releases with a file not all yanked, oldest first; every such
    release, pre-releases included, for a distribution that has no final one (``tf-nightly``)."""
    found = []
    for text, files in index.get("releases", {}).items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if files and not all(f.get("yanked") for f in files):
            found.append((version, text))
    final = [item for item in found if not item[0].is_prerelease]
    return sorted(final or found)


def has_wheel(files: list[dict[str, Any]]) -> bool:
    return pypi_release.metadata_wheel(files) is not None


def read_release(url: str, files: list[dict[str, Any]], versions: bool = False) -> ReleaseRead | None:
    """What one release installs, from its wheel, else its sdist; None when neither can be read. ``versions``: also
    the ``__version__`` each module's ``__init__.py`` sets (read from a wheel only)."""
    wheel = pypi_release.metadata_wheel(files)
    if wheel is not None:
        remote = pypi_release.RangeFile(urljoin(url, wheel["url"]), wheel["size"], pypi_release.http_get)
        with zipfile.ZipFile(remote) as archive:  # type: ignore[arg-type]
            names = archive.namelist()
            tops = [n for n in names if re.fullmatch(r"[^/]+\.dist-info/top_level\.txt", n)]
            claimed = top_level_names(archive.read(tops[0]).decode("utf-8", "replace")) if tops else None
            records = [n for n in names if re.fullmatch(r"[^/]+\.dist-info/RECORD", n)]
            paths = record_paths(archive.read(records[0]).decode("utf-8", "replace")) if records else names
            modules = modules_of(paths, claimed)
            found = {module: text for module in modules if versions and f"{module}/__init__.py" in names
                     and (text := module_version(archive.read(f"{module}/__init__.py").decode("utf-8", "replace")))}
        return ReleaseRead(modules, wheel["filename"], found)
    sdists = [f for f in files if f.get("packagetype") == "sdist" and f.get("size", 0) <= SDIST_LIMIT]
    if not sdists:
        return None
    sdist = sdists[0]
    body = pypi_release.http_get(urljoin(url, sdist["url"]))
    if sdist["filename"].endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            found = sdist_modules(archive.namelist(), lambda n: archive.read(n).decode("utf-8", "replace"))
    else:
        with tarfile.open(fileobj=io.BytesIO(body)) as archive:
            def member(name: str) -> str:
                handle = archive.extractfile(name)
                return handle.read().decode("utf-8", "replace") if handle else ""
            found = sdist_modules(archive.getnames(), member)
    return ReleaseRead(found, sdist["filename"], {}) if found is not None else None


def study(listed: Listed) -> dict[str, Any] | None:
    """The row of one distribution, or None when no release could be read."""
    url = INDEX.format(name=listed.name)
    index = json.loads(pypi_release.http_get(url))
    by_major: dict[int, list[tuple[Version, str]]] = {}
    for version, text in kept_releases(index):
        by_major.setdefault(version.release[0], []).append((version, text))
    reads = []
    for major, versions in sorted(by_major.items()):
        reads += _read_series(url, index, major, [text for _, text in versions], "fork_of" in listed.hand)
    if not reads:
        return None
    row: dict[str, Any] = {"modules": list(reads[-1].modules), "read": reads[-1].read, "source": SOURCE,
                           **{k: listed.hand[k] for k in ("build", "cuda", "fork_of", "namesake_of")
                              if k in listed.hand}}
    row["releases"] = merged(reads)
    return row


def _read_series(url: str, index: dict[str, Any], major: int, versions: list[str],
                 module_versions: bool) -> list[SeriesRead]:
    """The newest release of a major series that can be read; when that one has no wheel (a last release published
    as an sdist only, often an empty placeholder) also the newest release with a wheel, the series split after it."""
    files = index["releases"]
    newest = next(((i, found) for i in reversed(range(len(versions)))
                   if (found := read_release(url, files[versions[i]], module_versions)) is not None), None)
    if newest is None:
        return []
    at, last = newest
    wheeled = next((i for i in reversed(range(at)) if has_wheel(files[versions[i]])), None)
    earlier = read_release(url, files[versions[wheeled]], module_versions) \
        if wheeled is not None and not has_wheel(files[versions[at]]) else None
    if earlier is None or wheeled is None:
        return [SeriesRead(major, versions[0], versions[at], last.modules, last.read, last.module_versions)]
    return [SeriesRead(major, versions[0], versions[wheeled], earlier.modules, earlier.read, earlier.module_versions),
            SeriesRead(major, versions[wheeled + 1], versions[at], last.modules, last.read, last.module_versions)]


def load_listed(path: Path = PACKAGES) -> dict[str, Listed]:
    with path.open("rb") as handle:
        entries = tomllib.load(handle)["distribution"]
    return {entry["name"]: Listed(entry["name"], {k: v for k, v in entry.items() if k != "name"})
            for entry in entries}


WHAT = ("the top-level import modules each distribution installs (packages with __init__.py, .py files, compiled "
        "extensions; namespace folders left out), per release range: the newest release of each major series read "
        "from its wheel's top_level.txt and RECORD (else its sdist's egg-info); build, cuda, fork_of and namesake_of "
        "are hand-kept in tools/module_owner_packages.toml")


def document(rows: dict[str, dict[str, Any]], command: str, today: str | None = None) -> dict[str, Any]:
    header = {"generator": GENERATOR, "command": command, "generated": today or datetime.date.today().isoformat()}
    return {**header, "what": WHAT, "source": SOURCE, "distributions": dict(sorted(rows.items()))}


def dump(table: dict[str, Any]) -> str:
    """One distribution per line: a readable diff when a release changes its modules."""
    lines = ["{"]
    lines += [f"  {json.dumps(key)}: {json.dumps(value)}," for key, value in table.items() if key != "distributions"]
    rows = [f"    {json.dumps(name)}: {json.dumps(row)}" for name, row in table["distributions"].items()]
    lines += ['  "distributions": {', ",\n".join(rows), "  }", "}"]
    return "\n".join(lines) + "\n"


def read_all(listed: dict[str, Listed], wanted: list[str], threads: int) -> dict[str, dict[str, Any]]:
    """The rows of ``wanted``, read ``threads`` at a time; a distribution with nothing readable is said and left
    out."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        read = dict(zip(wanted, pool.map(lambda name: study(listed[name]), wanted), strict=True))
    for name in sorted(n for n, row in read.items() if row is None):
        print(f"{name}: no wheel or sdist with top_level.txt could be read; left out", file=sys.stderr)
    return {name: row for name, row in read.items() if row is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"the table to write (default {OUT.relative_to(ROOT)})")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="re-read these distributions, keep the others")
    parser.add_argument("--threads", type=int, default=8, help="distributions read at once (default 8)")
    args, listed = parser.parse_args(argv), load_listed()
    if unknown := sorted(set(args.only or ()) - set(listed)):
        parser.error(f"--only {' '.join(unknown)}: not listed in {PACKAGES.relative_to(ROOT)}")
    started = time.monotonic()
    rows = read_all(listed, args.only or list(listed), args.threads)
    if args.only and args.out.exists():
        rows = {**json.loads(args.out.read_text(encoding="utf-8")).get("distributions", {}), **rows}
    write_atomic(args.out, dump(document({n: r for n, r in rows.items() if n in listed}, f"python {GENERATOR}")))
    print(f"wrote {args.out} ({len(rows)} distributions in {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
