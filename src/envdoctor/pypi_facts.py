"""Release facts generated from PyPI (``matrices/pypi/<name>.json``, written by ``tools/gen_pypi_facts.py``).

For each release of a package: its first upload date, Requires-Python, whether it is yanked, the Requires-Dist
lines that apply without extras (markers kept; ``None`` when only an sdist exists, so they are unknown), the
compact tags of its wheels (``cp311-linux_x86_64``, ``cp38-abi3-linux_x86_64``, ``py3-any``; ``None`` when the
file records requirements only) and whether an sdist exists.

Each package file is read the first time a question needs it, once. A malformed file raises
:class:`envdoctor.matrices.MatrixError` naming the file and the key.

Example::

    release_facts("torchvision", "0.18.1+cu121").requires   # ("numpy", "torch (==2.3.1)", ...)
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envdoctor.matrices import MatrixError, default_root
from envdoctor.snapshot import normalize_name

FOLDER = "pypi"
TOP_KEYS = {"package", "generator", "generated", "source", "floor", "requires_only", "releases"}
RELEASE_KEYS = {"date", "requires_python", "yanked", "requires", "requires_from", "wheels", "sdist"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
WHEEL_TAG = re.compile(r"^(cp3\d+|py3\d*)(-abi3)?-[a-z0-9_]+$")


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


def pypi_root(root: Path | str | None = None) -> Path:
    """``<matrices>/pypi`` for the matrices folder ``root`` (default: the bundled one)."""
    return Path(root if root is not None else default_root()) / FOLDER


def release_facts(package: str, version: str, root: Path | str | None = None) -> ReleaseFacts | None:
    """The release ``version`` of ``package`` (a local tag is ignored: ``2.3.1+cu121`` finds 2.3.1); None when
    the package or the release is not in the tables. Only that release's entry is parsed."""
    path = _path(package, root)
    if path is None or not version:
        return None
    keys = _version_keys(path)
    public = version.split("+", 1)[0].strip()
    key = keys.get(public) or keys.get(_trimmed(public))
    return _release_at(path, key) if key is not None else None


def releases(package: str, root: Path | str | None = None) -> tuple[ReleaseFacts, ...]:
    """Every recorded release of ``package``, oldest first; () when the package is not in the tables."""
    path = _path(package, root)
    return _all_releases(path) if path is not None else ()


def known_packages(root: Path | str | None = None) -> tuple[str, ...]:
    """Normalized names of the packages that have a file."""
    return _known(pypi_root(root))


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
            for i, line in enumerate(release.requires or ()):
                try:
                    Requirement(line)
                except InvalidRequirement as exc:
                    errors.append(f"{where}.requires[{i}]: not a PEP 508 requirement: {exc}")
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


def _path(package: str, root: Path | str | None) -> Path | None:
    name = normalize_name(package)
    folder = pypi_root(root)
    return folder / f"{name}.json" if name in _known(folder) else None


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
    out: dict[str, str] = {}
    for key in _document(path).releases:
        out[key] = key
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
    errors: list[str] = []
    found = [_release_at(path, key) for key in _document(path).releases]
    ordered = _sorted(found, _collector(path, errors))
    if errors:
        raise MatrixError("\n".join(errors))
    return ordered


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
    return _Document(str(package), source, str(generated), releases)


def _sorted(found: list[ReleaseFacts], error: Callable[[str, str], None]) -> tuple[ReleaseFacts, ...]:
    from packaging.version import InvalidVersion, Version

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
    for key in sorted(set(entry) - RELEASE_KEYS):
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
    for tag in wheels or ():
        if not WHEEL_TAG.match(tag):
            error(f"{where}.wheels", f"{tag!r} is not a tag like 'cp311-linux_x86_64' or 'py3-any'")
            break
    return ReleaseFacts(package, version, str(date), requires_python, requires, wheels, sdist, yanked is True)


def _strings(entry: dict[str, Any], key: str, where: str,
             error: Callable[[str, str], None]) -> tuple[str, ...] | None:
    value = entry.get(key)
    if value is None:
        return None
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        error(f"{where}.{key}", "should be a list of strings or null")
        return None
    return tuple(value)
