"""Release facts generated from PyPI (``matrices/pypi/<name>.json``, written by ``tools/gen_pypi_facts.py``).

For each release of a package: its first upload date, Requires-Python, whether it is yanked, the Requires-Dist
lines that apply without extras (markers kept; ``None`` when only an sdist exists, so they are unknown), the
compact tags of its wheels (``cp311-linux_x86_64``, ``cp38-abi3-linux_x86_64``, ``py3-any``; ``None`` when the
file records requirements only), whether an sdist exists, and the lines that apply only to an extra and name a
package of the tables (``extras``: what the release needs of an optional package it uses when that is installed),
and, where its code's syntax needs a newer Python than Requires-Python admits, that Python (``python_floor``).

Each package file is read the first time a question needs it, once. A malformed file raises
:class:`envdoctor.matrices.MatrixError` naming the file and the key.

Example::

    release_facts("torchvision", "0.18.1+cu121").requires   # ("numpy", "torch (==2.3.1)", ...)
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from envdoctor.matrices import MatrixError, default_root
from envdoctor.snapshot import Package, normalize_name

FOLDER = "pypi"
PYPI_JSON_API = "https://pypi.org/pypi/{name}/json"  # where the facts come from (tools/gen_pypi_facts.py, --online)
TOP_KEYS = {"package", "generator", "generated", "source", "floor", "requires_only", "releases"}
RELEASE_KEYS = {"date", "requires_python", "yanked", "requires", "requires_from", "wheels", "sdist", "extras",
                "python_floor", "python_floor_from", "glibc", "numpy_names", "stdlib_names"}
NUMPY_NAMES_KEY = "numpy_names"  # fetched facts only: removed NumPy names the release's code uses
# fetched facts only: removed standard-library modules (and names of modules that remain) the release's code uses
STDLIB_NAMES_KEY = "stdlib_names"
GLIBC = re.compile(r"^\d+\.\d+$")
PYTHON_MINOR = re.compile(r"^3\.\d+$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SERIES_START = re.compile(r"(\d+)\.(\d+)")  # a version key's major.minor, when it starts with them
WHEEL_TAG = re.compile(r"^(cp3\d+|py3\d*)(-abi3)?-[a-z0-9_]+$")
STRING_TYPE = {str}


@dataclass(frozen=True)
class ReleaseFacts:
    """What PyPI says about one release of one package."""

    package: str  # normalized name
    version: str
    date: str  # first upload, YYYY-MM-DD
    requires_python: str | None
    requires: tuple[str, ...] | None  # Requires-Dist without extra-only lines; None = unknown (sdist only)
    wheels: tuple[str, ...] | None  # compact wheel tags; None = not recorded for this package
    sdist: bool | None
    yanked: bool
    # Requires-Dist lines that apply only to an extra and name a package of the tables (markers kept): what the
    # release needs of an optional package it uses when that is installed. () when none or not recorded.
    extras: tuple[str, ...] = ()
    # The lowest Python its code can import on ("3.10"), read from its syntax, where that is above what
    # Requires-Python admits; and the file:line that decides it. None when not above (or not read).
    python_floor: str | None = None
    python_floor_from: str | None = None
    # Linux architecture -> the lowest glibc its manylinux wheels need ("x86_64": "2.28"); {} when not recorded
    # or when a pure-Python wheel installs anywhere.
    glibc: tuple[tuple[str, str], ...] = ()
    # NumPy names NumPy removed that the release's shipped code uses: (name, used at import, "file:line"); read by
    # ``check --online`` from a package's installed (or, version unknown, newest) release; () when not read.
    numpy_names: tuple[tuple[str, bool, str], ...] = ()
    # The same for standard-library modules CPython removed (``imp``) and names removed from modules that remain
    # (``collections.Mapping``): ``envdoctor.stdlib_scan``.
    stdlib_names: tuple[tuple[str, bool, str], ...] = ()

    def glibc_for(self, arch: str) -> str | None:
        """The lowest glibc this release's manylinux wheels for ``arch`` need; None when not recorded."""
        return dict(self.glibc).get(arch)

    @property
    def pure_wheel(self) -> bool:
        """Some wheel installs on any platform (``py3-none-any``)."""
        return any(tag.endswith("-any") for tag in self.wheels or ())

    @property
    def binary_wheels(self) -> bool:
        """Some wheel is platform-specific (not ``-any``): the release ships compiled code."""
        return any(not tag.endswith("-any") for tag in self.wheels or ())

    @property
    def cpython_wheels(self) -> bool:
        """Some wheel is a CPython extension build (a ``cpXY`` tag), not ``py3`` code or a library loaded with
        ctypes."""
        return any(tag.startswith("cp") for tag in self.wheels or ())


@functools.lru_cache(maxsize=64)
def pypi_root(root: Path | str | None = None) -> Path:
    """``<matrices>/pypi`` for the matrices folder ``root`` (default: the bundled one)."""
    return Path(root if root is not None else default_root()) / FOLDER


def release_facts(package: str, version: str, root: Path | str | None = None) -> ReleaseFacts | None:
    """The release ``version`` of ``package`` (a local tag is ignored: ``2.3.1+cu121`` finds 2.3.1); None when
    the package or the release is not in the tables. Only that release's entry is parsed."""
    if not version:
        return None
    public = version.split("+", 1)[0].strip()
    for path in (_path(package, root), _fetched_path(package, root)):
        if path is not None:
            keys = _version_keys(path)
            key = keys.get(public) or keys.get(_trimmed(public))
            if key is None and (canonical := _canonical(public)) is not None:
                key = keys.get(canonical) or keys.get(_trimmed(canonical))
            if key is not None:
                return _release_at(path, key)
    return None  # below a bundled table's floor, and not fetched: unknown


def _canonical(version: str) -> str | None:
    """PEP 440's normal form of a version as pip writes it (``0.0.0dev`` -> ``0.0.0.dev0``, ``1.0-RC1`` ->
    ``1.0rc1``); None when it is not a PEP 440 version or already in that form."""
    try:
        canonical = str(Version(version))
    except InvalidVersion:
        return None
    return canonical if canonical != version else None


def nearest_recorded_release(package: str, version: str, root: Path | str | None = None,
                             beyond_newest: bool = True) -> ReleaseFacts | None:
    """The recorded release that stands for a version PyPI does not have (``0.9.4.dev0`` built from git, ``1.0.0``
    of a branch ahead of the newest upload): the newest recorded release at or below it. None when the package is
    not in the tables, the version is recorded itself, is not PEP 440, lies below the oldest recorded release (the
    tables' floor: nothing recorded stands for it), or, with ``beyond_newest=False``, above the newest one (a
    branch ahead of every upload shares only what keeps rising, such as the lowest Python it supports)."""
    wanted = _unrecorded(package, version, root)
    if wanted is None:
        return None
    recorded = releases(package, root)
    below = [r for r in recorded if Version(r.version) <= wanted]
    if not below or (not beyond_newest and below[-1] is recorded[-1]):
        return None
    return below[-1]


def _unrecorded(package: str, version: str, root: Path | str | None) -> Version | None:
    """The public version of a release the tables do not record; None when recorded or not PEP 440."""
    if release_facts(package, version, root) is not None:
        return None
    try:
        return Version(version.split("+", 1)[0].strip())
    except InvalidVersion:
        return None


def upcoming_final_release(package: str, version: str, root: Path | str | None = None) -> ReleaseFacts | None:
    """For a pre-release or development build PyPI lacks (``0.12.0.dev0`` from git, ``2.5.0rc1``), the recorded
    final release it leads to: its code, and so its requirements, are that release's in the making."""
    parsed = _unrecorded(package, version, root)
    return release_facts(package, parsed.base_version, root) if parsed is not None and parsed.is_prerelease else None


def release_standing_for(package: str, version: str, root: Path | str | None = None
                         ) -> tuple[ReleaseFacts, str] | None:
    """For a version PyPI lacks, the recorded release whose facts stand for it and how it was chosen: a pre-release
    or development build (``0.25.0.dev20251025``, ``2.5.0rc1``) is the code of the final release it leads to; any
    other version takes the nearest release before it (see ``nearest_recorded_release``). None when the version is
    recorded itself or nothing recorded stands for it."""
    upcoming = upcoming_final_release(package, version, root)
    if upcoming is not None:
        return upcoming, "the release it leads to"
    nearest = nearest_recorded_release(package, version, root, beyond_newest=False)
    return (nearest, "the nearest release before it") if nearest is not None else None


def recorded_from_first_upload(package: str, root: Path | str | None = None) -> bool:
    """Whether the recorded releases of ``package`` start at its first upload to PyPI: a table generated without a
    floor, or facts fetched from PyPI (every release the index lists)."""
    paths = (_path(package, root), _fetched_path(package, root))
    return any(_document(path).floor is None for path in paths if path is not None)


def releases(package: str, root: Path | str | None = None) -> tuple[ReleaseFacts, ...]:
    """Every recorded release of ``package``, oldest first; () when the package is not in the tables. Releases
    fetched from PyPI for this run that the bundled table lacks (below its floor) are merged in."""
    path, fetched = _path(package, root), _fetched_path(package, root)
    if path is None or fetched is None or fetched == path:
        return _all_releases(path) if path is not None else ()
    return _merged_releases(path, fetched)


def releases_where(package: str, keep: Callable[[Version], bool], root: Path | str | None = None,
                   series: tuple[int, int] | None = None) -> tuple[ReleaseFacts, ...]:
    """The releases ``releases(package, root)`` gives whose version ``keep`` accepts, in the same order; only their
    entries are read (a check that needs a few releases of a long history skips parsing the rest). ``series``
    (major, minor): ``keep`` accepts no release whose first two parts are two other numbers, so versions written
    that way are passed over without being parsed. A release whose version is not PEP 440 is left out (``releases``
    refuses the file; ``stacks --validate`` names it)."""
    path, fetched = _path(package, root), _fetched_path(package, root)
    if path is None:
        return ()
    chosen = [(version, path, key) for version, key in _versions(path, series) if keep(version)]
    if fetched is not None and fetched != path:
        own = {version for version, _ in _versions(path)}
        chosen += [(version, fetched, key) for version, key in _versions(fetched, series)
                   if version not in own and keep(version)]
    return tuple(_release_at(where, key) for _, where, key in sorted(chosen, key=lambda item: item[0]))


@functools.cache
def _versions(path: Path, series: tuple[int, int] | None = None) -> tuple[tuple[Version, str], ...]:
    """(version, key) of each release of a file whose key is a PEP 440 version, in the file's order; with
    ``series`` (major, minor), a key beginning with another ``major.minor`` (digits, which PEP 440 reads as the
    first two parts of the release) is left out unparsed: its release has two parts or more, none in that series."""
    out = []
    for key in _document(path).releases:
        start = SERIES_START.match(key) if series is not None else None
        if start is not None and (int(start[1]), int(start[2])) != series:
            continue
        try:
            out.append((Version(key), key))
        except InvalidVersion:
            continue
    return tuple(out)


@functools.cache
def _merged_releases(bundled: Path, fetched: Path) -> tuple[ReleaseFacts, ...]:
    own = _all_releases(bundled)
    versions = {Version(release.version) for release in own}
    extra = [release for release in _all_releases(fetched) if Version(release.version) not in versions]
    return tuple(sorted((*own, *extra), key=lambda release: Version(release.version)))


def newest_release(package: str, root: Path | str | None = None) -> ReleaseFacts | None:
    """The newest recorded release that is not yanked (what pip installs today, Python and platform aside); None
    when the tables record none."""
    current = [release for release in releases(package, root) if not release.yanked]
    return current[-1] if current else None


def newest_known_release(packages: Mapping[str, Package], root: Path | str | None = None) -> str | None:
    """The latest upload date among a snapshot's packages of known version that the tables record: the environment
    was made on or after it. None when none is recorded."""
    known = set(known_packages(root))
    dates = [facts.date for name, package in packages.items() if name in known and package.version
             and (facts := release_facts(name, package.version, root)) is not None]
    return max(dates, default=None)


def known_packages(root: Path | str | None = None) -> tuple[str, ...]:
    """Normalized names of the packages that have a file (for the bundled tables, also those fetched from PyPI for
    this run: envdoctor.pypi_online)."""
    bundled = _known(pypi_root(root))
    return tuple(sorted({*bundled, *_FETCHED})) if _FETCHED and _is_bundled(root) else bundled


def _is_bundled(root: Path | str | None) -> bool:
    return root is None or _resolved(str(root)) == _resolved(str(default_root()))


@functools.lru_cache(maxsize=16)
def _resolved(path: str) -> Path:
    return Path(path).resolve()


def table_source(package: str, root: Path | str | None = None) -> str | None:
    """Where the facts of ``package`` came from and when: ``https://pypi.org/pypi/torch/json (2026-12-06)``."""
    path = _path(package, root)
    if path is None:
        return None
    document = _document(path)
    return f"{document.source.get('releases', 'PyPI')} ({document.generated})"


def validate_pypi_facts(root: Path | str | None = None) -> list[str]:
    """Every problem in every ``pypi/*.json`` file of the matrices folder ``root``, as 'path: key: problem'."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    errors: list[str] = []
    for path in sorted(pypi_root(root).glob("*.json")):
        raw = _read(path, errors)
        document = _parse_document(path, raw, errors) if raw is not None else None
        if document is None:
            continue
        found = [_release(document.package, v, e, f"releases.{v}", _collector(path, errors))
                 for v, e in document.releases.items()]
        _sorted([r for r in found if r is not None], _collector(path, errors))
        for release in found:
            if release is None:
                continue
            where = f"{path}: releases.{release.version}"
            for key, lines in (("requires", release.requires or ()), ("extras", release.extras)):
                for i, line in enumerate(lines):
                    try:
                        Requirement(line)
                    except InvalidRequirement as exc:
                        errors.append(f"{where}.{key}[{i}]: not a PEP 508 requirement: {exc}")
            if release.requires_python:
                try:
                    SpecifierSet(release.requires_python)
                except InvalidSpecifier:
                    errors.append(f"{where}.requires_python: bad specifier {release.requires_python!r}")
    return errors


# --- reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Document:
    """One package file, its releases still raw JSON (each is parsed and checked when first asked for)."""

    package: str
    source: dict[str, str]
    generated: str
    releases: dict[str, Any]
    floor: str | None = None  # the oldest release recorded, when older ones were left out


_FETCHED_FOLDERS: list[Path] = []  # folders of facts fetched from PyPI for this run (envdoctor.pypi_online)


_FETCHED: set[str] = set()
_NOT_FETCHED: dict[str, str] = {}  # package -> why PyPI gave no facts


def read_fetched_facts(folder: Path, packages: tuple[str, ...], failed: dict[str, str] | None = None) -> None:
    """Read the facts of ``packages`` from ``folder`` (written by envdoctor.pypi_online) after the bundled tables,
    for the rest of this process; ``failed``: the packages asked for in vain, and why. A package the bundled
    tables hold is still read from them."""
    _FETCHED_FOLDERS.append(folder)
    _FETCHED.update(normalize_name(name) for name in packages)
    _NOT_FETCHED.update(failed or {})
    _clear_read_caches()


def forget_fetched_facts() -> None:
    """Back to the bundled tables alone."""
    _FETCHED_FOLDERS.clear()
    _FETCHED.clear()
    _NOT_FETCHED.clear()
    _clear_read_caches()


def _clear_read_caches() -> None:
    """Forget every file read: a fetch may have rewritten a fetched file this process read before (one process
    scoring many snapshots, each fetching its own releases into the same cache)."""
    for cached in (_path, _fetched_path, _merged_releases, _document, _version_keys, _versions, _release_at,
                   _all_releases):
        cached.cache_clear()


def bundled_release_known(package: str, version: str | None) -> bool:
    """Whether the bundled tables answer for ``package`` at ``version`` (any release, when it is unknown): False for
    a package they lack and for a release below a table's floor."""
    path = _path(package, None)
    if path is None or path.parent != pypi_root(None):
        return False
    if not version:
        return True
    public = version.split("+", 1)[0].strip()
    keys = _version_keys(path)
    return public in keys or _trimmed(public) in keys


def fetched_packages() -> tuple[str, ...]:
    """The packages whose facts this process reads from PyPI fetches rather than the bundled tables."""
    return tuple(sorted(_FETCHED))


def unfetched_packages() -> dict[str, str]:
    """The packages whose facts were asked of PyPI in vain, with why."""
    return dict(_NOT_FETCHED)


@functools.cache  # asked for every installed package by several checks; one entry a name
def _path(package: str, root: Path | str | None) -> Path | None:
    name = normalize_name(package)
    folder = pypi_root(root)
    if name in _known(folder):
        return folder / f"{name}.json"
    return _fetched_path(name, root)


@functools.cache
def _fetched_path(package: str, root: Path | str | None) -> Path | None:
    """The fetched document of ``package`` for this run (for the bundled tables only), or None."""
    name = normalize_name(package)
    if name not in _FETCHED or not _is_bundled(root):
        return None
    fetched = [f / f"{name}.json" for f in _FETCHED_FOLDERS if (f / f"{name}.json").is_file()]
    return fetched[-1] if fetched else None


@functools.lru_cache(maxsize=8)
def _known(folder: Path) -> tuple[str, ...]:
    return tuple(sorted(path.stem for path in folder.glob("*.json")))


@functools.cache
def _document(path: Path) -> _Document:
    errors: list[str] = []
    raw = _read(path, errors)
    document = _parse_document(path, raw, errors) if raw is not None else None
    if errors or document is None:
        raise MatrixError("\n".join(errors))
    return document


@functools.cache
def _version_keys(path: Path) -> dict[str, str]:
    """Version text -> key in the file, also under the trimmed text (``2.3.0`` as ``2.3``)."""
    keys = _document(path).releases
    out = {key: key for key in keys}
    for key in keys:
        if key.endswith(".0"):  # the only keys _trimmed changes
            out.setdefault(_trimmed(key), key)
    return out


@functools.cache
def _release_at(path: Path, key: str) -> ReleaseFacts:
    document = _document(path)
    errors: list[str] = []
    release = _release(document.package, key, document.releases[key], f"releases.{key}", _collector(path, errors))
    if errors or release is None:
        raise MatrixError("\n".join(errors))
    return release


@functools.cache
def _all_releases(path: Path) -> tuple[ReleaseFacts, ...]:
    found = [_release_at(path, key) for key in _document(path).releases]
    versions = {key: version for version, key in _versions(path)}
    errors = [f"{path}: releases.{release.version}: not a PEP 440 version" for release in found
              if release.version not in versions]
    if errors:
        raise MatrixError("\n".join(errors))
    return tuple(sorted(found, key=lambda release: versions[release.version]))


def _collector(path: Path, errors: list[str]) -> Callable[[str, str], None]:
    def error(key: str, problem: str) -> None:
        errors.append(f"{path}: {key}: {problem}")

    return error


def _trimmed(version: str) -> str:
    """``2.3.0`` -> ``2.3`` (trailing zero release parts dropped) so equal versions share one key."""
    while version.endswith(".0") and version.count(".") > 0:
        version = version[:-2]
    return version


def _read(path: Path, errors: list[str]) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        errors.append(f"{path}: cannot read ({exc.strerror or exc})")
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: invalid JSON: {exc} (regenerate it with python tools/gen_pypi_facts.py)")
        return None
    if not isinstance(document, dict):
        errors.append(f"{path}: should be a JSON object")
        return None
    return document


def _parse_document(path: Path, document: dict[str, Any], errors: list[str]) -> _Document | None:
    error = _collector(path, errors)
    for key in sorted(set(document) - TOP_KEYS):
        error(key, f"unknown key (allowed: {', '.join(sorted(TOP_KEYS))})")
    package = document.get("package")
    if package != path.stem:
        error("package", f"{package!r} differs from the file name {path.stem!r}")
    source = document.get("source")
    if not (isinstance(source, dict) and all(isinstance(v, str) for v in source.values())):
        error("source", "should be an object of strings (the URLs the facts came from)")
        source = {}
    generated = document.get("generated")
    if not (isinstance(generated, str) and DATE.match(generated)):
        error("generated", "should be a date YYYY-MM-DD")
    releases = document.get("releases")
    if not isinstance(releases, dict):
        error("releases", "should be an object of version -> release")
        return None
    floor = document.get("floor")
    return _Document(str(package), source, str(generated), releases, floor if isinstance(floor, str) else None)


def _sorted(found: list[ReleaseFacts], error: Callable[[str, str], None]) -> tuple[ReleaseFacts, ...]:
    keyed = []
    for release in found:
        try:
            keyed.append((Version(release.version), release))
        except InvalidVersion:
            error(f"releases.{release.version}", "not a PEP 440 version")
    return tuple(release for _, release in sorted(keyed, key=lambda pair: pair[0]))


def _release(package: str, version: str, entry: Any, where: str,
             error: Callable[[str, str], None]) -> ReleaseFacts | None:
    if not isinstance(entry, dict):
        error(where, "should be an object")
        return None
    for key in sorted(entry.keys() - RELEASE_KEYS):
        error(f"{where}.{key}", f"unknown key (allowed: {', '.join(sorted(RELEASE_KEYS))})")
    date = entry.get("date")
    if not (isinstance(date, str) and DATE.match(date)):
        error(f"{where}.date", "should be a date YYYY-MM-DD")
    requires_python = entry.get("requires_python")
    if requires_python is not None and not isinstance(requires_python, str):
        error(f"{where}.requires_python", "should be a specifier string or null")
    yanked, sdist = entry.get("yanked"), entry.get("sdist")
    if not isinstance(yanked, bool):
        error(f"{where}.yanked", "should be true or false")
    if sdist is not None and not isinstance(sdist, bool):
        error(f"{where}.sdist", "should be true, false or absent")
    requires = _strings(entry, "requires", where, error)
    wheels = _strings(entry, "wheels", where, error)
    extras = _strings(entry, "extras", where, error) or ()
    floor, floor_from = entry.get("python_floor"), entry.get("python_floor_from")
    if floor is not None and not (isinstance(floor, str) and PYTHON_MINOR.match(floor)):
        error(f"{where}.python_floor", "should be a Python version like '3.10'")
        floor = None
    if (floor is None) != (floor_from is None) or (floor_from is not None and not isinstance(floor_from, str)):
        error(f"{where}.python_floor_from", "goes with python_floor: the file and line that decide it")
        floor = floor_from = None
    if wheels and not all(map(WHEEL_TAG.match, wheels)):
        tag = next(tag for tag in wheels if not WHEEL_TAG.match(tag))
        error(f"{where}.wheels", f"{tag!r} is not a tag like 'cp311-linux_x86_64' or 'py3-any'")
    glibc = entry.get("glibc") or {}
    if not (isinstance(glibc, dict) and all(isinstance(a, str) and isinstance(g, str) and GLIBC.match(g)
                                            for a, g in glibc.items())):
        error(f"{where}.glibc", "should be an object of Linux architecture -> glibc version like '2.28'")
        glibc = {}
    return ReleaseFacts(package, version, str(date), requires_python, requires, wheels, sdist, yanked is True,
                        extras, floor, floor_from, tuple(sorted(glibc.items())),
                        _name_uses(entry, NUMPY_NAMES_KEY, where, error),
                        _name_uses(entry, STDLIB_NAMES_KEY, where, error))


def _name_uses(entry: dict[str, Any], key: str, where: str,
               error: Callable[[str, str], None]) -> tuple[tuple[str, bool, str], ...]:
    """An object of name -> {at_import, where} as (name, at_import, where) triples, sorted by name."""
    names = entry.get(key) or {}
    if not (isinstance(names, dict) and all(isinstance(n, str) and isinstance(u, dict)
                                            and isinstance(u.get("at_import"), bool) and isinstance(u.get("where"), str)
                                            for n, u in names.items())):
        error(f"{where}.{key}", "should be an object of name -> {at_import: true|false, where: 'file:line'}")
        return ()
    return tuple((n, u["at_import"], u["where"]) for n, u in sorted(names.items()))


def _strings(entry: dict[str, Any], key: str, where: str,
             error: Callable[[str, str], None]) -> tuple[str, ...] | None:
    value = entry.get(key)
    if value is None:
        return None
    if type(value) is not list or not set(map(type, value)) <= STRING_TYPE:  # JSON gives exact types
        error(f"{where}.{key}", "should be a list of strings or null")
        return None
    return tuple(value)
