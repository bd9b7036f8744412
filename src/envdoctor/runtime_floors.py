"""Run-time version checks of libraries (``matrices/runtime_floors.json``, written by
``tools/gen_runtime_floors.py`` from each release's own source).

Libraries check some of their dependencies' versions themselves, beyond their declared Requires-Dist:
``import transformers`` runs ``require_version_core`` on tokenizers, huggingface-hub, safetensors, accelerate...;
its PEFT integration refuses a peft older than ``MIN_PEFT_VERSION``; accelerate refuses an old DeepSpeed when
DeepSpeed is used. For each release of each library the file lists those requirements (PEP 508), the file the
check is in, when it runs (``import``, ``first use``, or ``feature`` with the condition) and the error it raises.

The file is read the first time a question needs it, once, and a release's checks the first time that release
is asked for. A malformed file or release raises :class:`envdoctor.matrices.MatrixError` naming the file and the
key (``stacks --validate`` reads every release).

Example::

    floors_of("transformers", "4.39.3")[0].requires   # 'accelerate>=0.21.0'
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envdoctor.matrices import MatrixError, default_root, parsed_or_raise, read_json_object
from envdoctor.snapshot import normalize_name

FILE = "runtime_floors.json"
TOP_KEYS = {"generator", "generated", "what", "packages"}
PACKAGE_KEYS = {"source", "floor", "unparsed", "releases"}
FLOOR_KEYS = {"requires", "file", "when", "error", "function", "condition"}
WHEN = ("import", "first use", "feature")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class RuntimeFloor:
    """One requirement that a release of ``package`` checks itself, and how it tells the user."""

    package: str  # the library that runs the check (normalized name)
    version: str  # its release
    requires: str  # PEP 508: "tokenizers>=0.14,<0.19"
    file: str  # "transformers/dependency_versions_check.py"
    when: str  # "import", "first use" or "feature"
    error: str  # the error text; "{installed}" stands for the installed version
    function: str = ""
    condition: str = ""


class _Table:
    """The file's packages, each release's checks kept as read and parsed the first time that release is asked
    for (a run asks for a few of its thousands)."""

    def __init__(self, path: Path, generated: str, sources: dict[str, str],
                 releases: dict[str, tuple[str, dict[str, Any]]]) -> None:
        self.path = path
        self.generated = generated
        self.sources = sources  # package -> "url at commit (generated)"
        self.releases = releases  # package -> (its name in the file, version -> its checks as read)
        self._parsed: dict[tuple[str, str], tuple[RuntimeFloor, ...]] = {}

    def floors(self, package: str, version: str) -> tuple[RuntimeFloor, ...]:
        """The checks of a release the file lists for ``package``; MatrixError naming each malformed one."""
        if (package, version) not in self._parsed:
            name, releases = self.releases[package]
            errors: list[str] = []
            floors = _release_floors(self.path, name, version, releases[version], errors)
            if errors:
                raise MatrixError("\n".join(errors))
            self._parsed[package, version] = floors
        return self._parsed[package, version]


def runtime_floors_path(root: Path | str | None = None) -> Path:
    return Path(root if root is not None else default_root()) / FILE


def floors_of(package: str, version: str, root: Path | str | None = None) -> tuple[RuntimeFloor, ...] | None:
    """The run-time checks of release ``version`` of ``package`` (a local tag is ignored); None when the table
    does not cover the package or that release (unknown, which is not the same as no checks: ``()``)."""
    table = _table(runtime_floors_path(root))
    if table is None or not version:
        return None
    name = normalize_name(package)
    if name not in table.releases:
        return None
    releases = table.releases[name][1]
    public = version.split("+", 1)[0].strip()
    key = public if public in releases else _trimmed_key(releases, public)
    return table.floors(name, key) if key is not None else None


def releases_of(package: str, root: Path | str | None = None) -> tuple[str, ...]:
    """Every release of ``package`` the table covers, as written in the file (oldest first)."""
    table = _table(runtime_floors_path(root))
    return tuple(table.releases.get(normalize_name(package), ("", {}))[1]) if table else ()


def covered_packages(root: Path | str | None = None) -> tuple[str, ...]:
    table = _table(runtime_floors_path(root))
    return tuple(sorted(table.releases)) if table else ()


def table_source(package: str, root: Path | str | None = None) -> str | None:
    """``https://github.com/huggingface/accelerate at beb0672 (2026-12-06)`` for a covered package."""
    table = _table(runtime_floors_path(root))
    return table.sources.get(normalize_name(package)) if table else None


def validate_runtime_floors(root: Path | str | None = None) -> list[str]:
    """Every problem in ``runtime_floors.json`` of the matrices folder ``root`` ([] when absent or sound)."""
    path = runtime_floors_path(root)
    if not path.exists():
        return []
    errors: list[str] = []
    _parse(path, errors, strict=True)
    return errors


# --- reading ----------------------------------------------------------------------------------------


def _trimmed_key(releases: dict[str, Any], version: str) -> str | None:
    """``4.30`` finds ``4.30.0`` (and the reverse): equal versions written with or without trailing zeros."""

    def trimmed(text: str) -> str:
        while text.endswith(".0") and text.count(".") > 0:
            text = text[:-2]
        return text

    wanted = trimmed(version)
    return next((key for key in releases if trimmed(key) == wanted), None)


@functools.lru_cache(maxsize=8)
def _table(path: Path) -> _Table | None:
    return parsed_or_raise(path, _parse)


def _parse(path: Path, errors: list[str], strict: bool = False) -> _Table | None:
    """The table, each release's checks left as read; ``strict`` (``stacks --validate``) also parses every release's
    checks and their requirements with packaging, which ``check`` leaves to the validator and to the releases it
    asks for: the whole file costs most of a second."""
    raw = read_json_object(path, errors, "tools/gen_runtime_floors.py")
    if raw is None:
        return None
    for key in sorted(set(raw) - TOP_KEYS):
        errors.append(f"{path}: {key}: unknown key (expected {', '.join(sorted(TOP_KEYS))})")
    generated = raw.get("generated")
    if not isinstance(generated, str) or not DATE.match(generated):
        errors.append(f"{path}: generated: expected a date YYYY-MM-DD, got {generated!r}")
    packages = raw.get("packages")
    if not isinstance(packages, dict):
        errors.append(f"{path}: packages: expected an object of package -> releases")
        return None
    sources: dict[str, str] = {}
    releases: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, entry in packages.items():
        where = f"{path}: packages.{name}"
        if not isinstance(entry, dict) or not isinstance(entry.get("releases"), dict):
            errors.append(f"{where}: expected an object with 'releases'")
            continue
        for key in sorted(set(entry) - PACKAGE_KEYS):
            errors.append(f"{where}.{key}: unknown key")
        source = entry.get("source")
        if not isinstance(source, dict) or not isinstance(source.get("url"), str):
            errors.append(f"{where}.source: expected an object with 'url'")
            source = {"url": "?"}
        reference = source.get("commit") or source.get("newest_release") or ""
        read_on = source.get("read_on") or generated  # the day this package was read, where the file says
        sources[normalize_name(name)] = f"{source['url']} at {reference[:12]} ({read_on})".replace(" at  ", " ")
        releases[normalize_name(name)] = (name, entry["releases"])
        if strict:
            for version, floors in entry["releases"].items():
                _release_floors(path, name, version, floors, errors, strict=True)
    return _Table(path, str(generated), sources, releases)


def _release_floors(path: Path, name: str, version: str, floors: Any, errors: list[str],
                    strict: bool = False) -> tuple[RuntimeFloor, ...]:
    """The checks of release ``version`` of package ``name`` (as the file writes it); a problem is appended to
    ``errors``. ``strict`` also parses each requirement."""
    where = f"{path}: packages.{name}.releases.{version}"
    if not isinstance(floors, list):
        errors.append(f"{where}: expected a list of checks")
        return ()
    parsed = []
    for i, floor in enumerate(floors):
        key = f"{where}[{i}]"
        if not isinstance(floor, dict) or not all(isinstance(floor.get(k), str) for k in
                                                  ("requires", "file", "when", "error")):
            errors.append(f"{key}: expected an object with string requires, file, when, error")
            continue
        for extra in sorted(set(floor) - FLOOR_KEYS):
            errors.append(f"{key}.{extra}: unknown key")
        if floor["when"] not in WHEN:
            errors.append(f"{key}.when: expected one of {', '.join(WHEN)}, got {floor['when']!r}")
        if strict and not _is_requirement(floor["requires"], f"{key}.requires", errors):
            continue
        parsed.append(RuntimeFloor(
            package=normalize_name(name), version=version, requires=floor["requires"], file=floor["file"],
            when=floor["when"], error=floor["error"], function=str(floor.get("function", "")),
            condition=str(floor.get("condition", ""))))
    return tuple(parsed)


def _is_requirement(text: str, key: str, errors: list[str]) -> bool:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(text)
    except InvalidRequirement as exc:
        errors.append(f"{key}: not a PEP 508 requirement: {exc}")
        return False
    return True
