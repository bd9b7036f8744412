"""The registry of finding ids (``finding_ids.toml``) and the severity and category words findings are written in.

Every Finding passes ``require_registered`` when it is made, so an id that is not registered, or a category or
severity the registry does not list for it, fails at once with the id named.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from envdoctor import table_cache
from envdoctor.errors import EnvdoctorError

REGISTRY_FILE = Path(__file__).with_name("finding_ids.toml")
REGISTRY_NAME = "envdoctor/finding_ids.toml"
FINDING_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
ENTRY_KEYS = frozenset({"categories", "severities", "summary", "sources", "supersedes"})


class Severity(str, Enum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.OK: 0, Severity.INFO: 1, Severity.WARN: 2, Severity.FAIL: 3}


class Category(str, Enum):
    DRIVER = "driver"
    GPU_ARCH = "gpu-arch"
    CUDA_BUILD = "cuda-build"
    ABI = "abi"
    NUMPY = "numpy"
    VERSION = "version"
    PIN = "pin"
    MISSING = "missing"
    PYTHON = "python"
    PLATFORM = "platform"
    MODEL = "model"
    RESOURCES = "resources"


class FindingIdError(EnvdoctorError, ValueError):
    """A finding id that is not registered, a category or severity not registered for it, or a broken registry:
    envdoctor's own knowledge disagrees with itself (like a broken matrix file, one line and exit 2)."""


@dataclass(frozen=True)
class FindingId:
    """One registered id: where it may be reported, what it means and the facts behind it."""

    id: str
    categories: tuple[Category, ...]
    severities: tuple[Severity, ...]
    summary: str
    sources: tuple[str, ...] = ()
    supersedes: tuple[str, ...] = ()  # ids a verified finding of this one makes redundant on the same components


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, FindingId]:
    """The bundled registry, read once. Raises FindingIdError listing every problem in the file."""
    return load_registry(REGISTRY_FILE)


def load_registry(path: Path) -> dict[str, FindingId]:
    """The registry at ``path``. Raises FindingIdError with one 'path: [id].key: problem' line per problem."""
    try:
        data = table_cache.load_toml(path)
    except (OSError, table_cache.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FindingIdError(f"{path}: cannot read the finding id registry ({exc})") from None
    errors: list[str] = []
    entries = {key: _entry(key, value, f"{path}: [{key}]", errors) for key, value in data.items()}
    for entry in entries.values():
        for other in entry.supersedes:
            if other not in entries:
                errors.append(f"{path}: [{entry.id}].supersedes: {other!r} is not a registered id")
    if errors:
        raise FindingIdError("\n".join(errors))
    return entries


def _entry(key: str, raw: Any, where: str, errors: list[str]) -> FindingId:
    if not FINDING_ID.match(key):
        errors.append(f"{where}: the id is not kebab-case (a-z, 0-9, '-')")
    if not isinstance(raw, dict):
        errors.append(f"{where}: should be a table")
        return FindingId(key, (), (), "")
    for extra in sorted(set(raw) - ENTRY_KEYS):
        errors.append(f"{where}.{extra}: unknown key (allowed: {', '.join(sorted(ENTRY_KEYS))})")
    summary = raw.get("summary")
    if not isinstance(summary, str) or not summary.strip() or "\n" in summary:
        errors.append(f"{where}.summary: should be one non-empty line saying what the finding means")
        summary = ""
    return FindingId(
        id=key,
        categories=_words(raw, "categories", Category, where, errors),
        severities=_words(raw, "severities", Severity, where, errors),
        summary=summary,
        sources=_strings(raw, "sources", where, errors),
        supersedes=_strings(raw, "supersedes", where, errors),
    )


def _strings(raw: dict[str, Any], key: str, where: str, errors: list[str]) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        errors.append(f"{where}.{key}: should be a list of strings")
        return ()
    return tuple(value)


def _words(raw: dict[str, Any], key: str, kind: type[Enum], where: str, errors: list[str]) -> tuple[Any, ...]:
    words = _strings(raw, key, where, errors)
    allowed = {member.value: member for member in kind}
    if not words:
        errors.append(f"{where}.{key}: should list at least one of: {', '.join(allowed)}")
    for word in words:
        if word not in allowed:
            errors.append(f"{where}.{key}: {word!r} is not one of: {', '.join(allowed)}")
    return tuple(allowed[word] for word in words if word in allowed)


def registration_problem(finding_id: str, category: Category, severity: Severity, verified: bool = True) -> str | None:
    """Why a finding of this id, category and severity may not be made; None when the registry allows it.

    Any id may also be reported at info when it could not be verified (a fact was unknown)."""
    entries = registry()
    entry = entries.get(finding_id)
    if entry is None:
        near = difflib.get_close_matches(str(finding_id), list(entries), n=3)
        hint = f"; nearest: {', '.join(near)}" if near else ""
        return f"finding id {finding_id!r} is not registered in {REGISTRY_NAME} (add a [{finding_id}] table){hint}"
    if category not in entry.categories:
        return (f"finding id {finding_id!r} has category {_word(category)!r}, but {REGISTRY_NAME} registers it for "
                f"{', '.join(c.value for c in entry.categories)}")
    if severity not in entry.severities and not (severity is Severity.INFO and not verified):
        return (f"finding id {finding_id!r} has severity {_word(severity)!r}, but {REGISTRY_NAME} registers it at "
                f"{', '.join(s.value for s in entry.severities)}")
    return None


def require_registered(finding_id: str, category: Category, severity: Severity, verified: bool = True) -> None:
    """Raise FindingIdError, naming the id, unless the registry allows this finding."""
    problem = registration_problem(finding_id, category, severity, verified)
    if problem is not None:
        raise FindingIdError(problem)


def supersedes() -> dict[str, tuple[str, ...]]:
    """Finding id -> the ids a verified finding of it makes redundant on the same components."""
    return {entry.id: entry.supersedes for entry in registry().values() if entry.supersedes}


def _word(value: Any) -> str:
    return value.value if isinstance(value, Enum) else str(value)
