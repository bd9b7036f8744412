"""Release facts fetched from PyPI for the packages of an environment that the bundled tables lack.

The bundled ``matrices/pypi`` tables cover the packages fine-tuning stacks are built from; environments pasted from
issue threads hold many more (an app's own package, its audio or vision libraries). For those, ``envdoctor check``
reads the same facts from PyPI when it runs (``--online``; the default with ``--snapshot``): one request for the
release list (every release's date, Requires-Python, wheels, yanked flag), the installed release's Requires-Dist
from its wheel's METADATA and, when that release has a pure-Python wheel of at most 4 MiB, the lowest Python its
code imports on (``envdoctor.python_floor``). The documents are written in the bundled format to a cache folder
(``$XDG_CACHE_HOME/envdoctor/pypi``, reused for a week) that ``envdoctor.pypi_facts`` then reads after the bundled
one. A package PyPI does not know, a network failure or the time limit leave that package without facts, which the
checks report as unverified, as before.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time
import urllib.error
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from envdoctor.atomic import write_atomic
from envdoctor.numpy_name_scan import scan_files, shipped_code
from envdoctor.pypi_facts import NUMPY_NAMES_KEY, STDLIB_NAMES_KEY
from envdoctor.pypi_facts import PYPI_JSON_API as INDEX
from envdoctor.pypi_release import (
    http_get,
    kept_versions,
    release_entry,
    release_files,
    requires_dist,
    wheel_metadata,
)
from envdoctor.python_floor import modules_code_floor, wheel_modules
from envdoctor.snapshot import Snapshot, normalize_name
from envdoctor.stdlib_scan import scan_if_it_may_import

GENERATOR = "envdoctor check --online"
# What a cached document holds: a document written with another format (before the code scans recorded
# stdlib_names, say) is fetched again rather than read as if it knew what this format records.
FACTS_FORMAT = 2
PYPI_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,98}[a-z0-9])?$")  # normalized; nothing else reaches a URL
MAX_PACKAGES = 40
REQUEST_TIMEOUT_S = 5.0
TOTAL_TIMEOUT_S = 20.0
FRESH_FOR = datetime.timedelta(days=7)
CODE_FLOOR_MAX_BYTES = 4 * 1024 * 1024  # the installed release's pure wheel is read whole for its code's floor
# Names that are not PyPI distributions of the environment (the interpreter, tools that come with every venv).
NOT_FETCHED = frozenset({"python", "pip", "setuptools", "wheel"})


@dataclass(frozen=True)
class OnlineFacts:
    """What one fetch did: the cache folder, the packages it has facts for, the ones it could not get and why."""

    folder: Path
    fetched: tuple[str, ...]
    failed: dict[str, str]


def default_cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "envdoctor" / "pypi"


def fetch_missing_facts(snapshot: Snapshot, answered: Callable[[str, str | None], bool],
                        folder: Path | None = None, total_timeout_s: float = TOTAL_TIMEOUT_S,
                        index: str = INDEX, tabled: frozenset[str] = frozenset()) -> OnlineFacts:
    """Fetch (or reuse from the cache) the facts of the snapshot's packages for which ``answered(name, version)``
    is False (the bundled tables lack the package, or the installed release lies below a table's floor);
    ``index``: the JSON API's URL with ``{name}`` (PyPI's, or a mirror's); ``tabled``: packages whose extra-only
    requirements are kept (what a release needs of them when they are installed), as the bundled tables do."""
    folder = folder or default_cache_folder()
    wanted = {}
    for name, package in sorted((snapshot.packages or {}).items()):
        normalized = normalize_name(name)
        if normalized in NOT_FETCHED or not PYPI_NAME.match(normalized) or answered(normalized, package.version):
            continue
        wanted[normalized] = package.version
    names = sorted(wanted)[:MAX_PACKAGES]
    fetched, failed = [], {}
    pending = [name for name in names if not _fresh(folder / f"{name}.json", wanted[name])]
    fetched.extend(name for name in names if name not in pending)
    if pending:
        deadline = time.monotonic() + total_timeout_s
        pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="envdoctor-pypi")
        futures = {pool.submit(_fetch_one, name, wanted[name], folder, deadline, index, tabled): name
                   for name in pending}
        done, not_done = wait(futures, timeout=total_timeout_s)
        pool.shutdown(wait=False, cancel_futures=True)
        for future in done:
            name, error = futures[future], future.exception()
            if error is None:
                fetched.append(name)
            else:
                failed[name] = _why(error)
        failed.update({futures[future]: f"no answer within {total_timeout_s:g} s" for future in not_done})
    return OnlineFacts(folder, tuple(sorted(fetched)), dict(sorted(failed.items())))


def _fetch_one(name: str, installed: str | None, folder: Path, deadline: float, index_url: str,
               tabled: frozenset[str]) -> None:
    def get(url: str, byte_range: tuple[int, int] | None = None) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("time limit reached")
        return http_get(url, byte_range, tries=2, timeout=min(REQUEST_TIMEOUT_S, left))

    url = index_url.format(name=name)
    index = json.loads(get(url))
    for files in (index.get("releases") or {}).values():
        for file in files or ():
            if isinstance(file, dict) and isinstance(file.get("url"), str):
                file["url"] = urljoin(url, file["url"])  # a mirror may answer with relative file URLs
    document = facts_document(name, index, installed, get, tabled)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / f"{name}.json", json.dumps(document, indent=1, sort_keys=True) + "\n")


def facts_document(name: str, index: dict[str, Any], installed: str | None, get: Any = http_get,
                   tabled: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The ``matrices/pypi`` document of one package from its PyPI JSON: every final release's files; the
    Requires-Dist of the installed release (read from its wheel) and of the newest one (from the index's info)."""
    releases = index.get("releases") or {}
    versions = kept_versions(releases, None)
    # the installed release is read even when it is a pre-release (which the release list otherwise leaves out)
    versions += [v for v in releases if installed is not None and releases[v] and v not in versions
                 and _same(v, installed)]
    newest = (index.get("info") or {}).get("version")
    entries = {}
    for version in versions:
        files = release_files(version, releases[version])
        metadata = None
        this = installed is not None and _same(version, installed)
        if this and files.metadata_wheel is not None:
            wheel = files.metadata_wheel
            metadata = wheel_metadata(wheel["url"], int(wheel["size"]), get)
        entry = release_entry(files, metadata, requires_only=False, tabled=set(tabled))
        if this or (installed is None and version == newest):
            entry.update(_code_facts(releases[version], entry["requires_python"], get, floor=this))
        if metadata is None and version == newest and (index.get("info") or {}).get("requires_dist") is not None:
            entry["requires"] = requires_dist("".join(f"Requires-Dist: {line}\n"
                                                      for line in index["info"]["requires_dist"]))
            entry.pop("requires_from", None)
        entries[version] = entry
    today = datetime.date.today().isoformat()
    return {"package": name, "generator": f"{GENERATOR} (facts format {FACTS_FORMAT})", "generated": today,
            "source": {"releases": INDEX.format(name=name), "requires": "Requires-Dist of the installed release's "
                       "wheel METADATA and of the newest release (the index's info)"},
            "floor": None, "requires_only": False, "releases": entries}


def _code_facts(files: list[dict[str, Any]], requires_python: str | None, get: Any, floor: bool) -> dict[str, Any]:
    """What the release's pure-Python wheel, of at most CODE_FLOOR_MAX_BYTES, says from its code: with ``floor``,
    ``python_floor`` and ``python_floor_from`` when it holds syntax a newer Python needs than its Requires-Python
    admits; ``numpy_names``, the NumPy names NumPy removed that its shipped modules use (``envdoctor.numpy_name_scan``:
    per name, whether a use runs at import, and where one is); ``stdlib_names``, the same for the standard-library
    modules and names CPython removed (``envdoctor.stdlib_scan``)."""
    pure = [f for f in files if f.get("filename", "").endswith("-none-any.whl")]
    if not pure or not isinstance(pure[0].get("size"), int) or pure[0]["size"] > CODE_FLOOR_MAX_BYTES:
        return {}
    modules = wheel_modules(pure[0]["url"], pure[0]["size"], get)
    out: dict[str, Any] = (modules_code_floor(modules, requires_python) or {}) if floor else {}
    shipped = [(path, text) for path, text in modules if shipped_code(path)]
    for key, used in ((NUMPY_NAMES_KEY, scan_files(shipped).uses),
                      (STDLIB_NAMES_KEY, scan_files(shipped, scan_if_it_may_import).uses)):
        if used:
            out[key] = {name: {"at_import": at_import, "where": where} for name, (at_import, where) in used.items()}
    return out


def _fresh(path: Path, installed: str | None) -> bool:
    """A cached document younger than FRESH_FOR that records the installed release's Requires-Dist (or the version
    is unknown, or PyPI has no such release)."""
    try:
        age = datetime.datetime.now() - datetime.datetime.fromtimestamp(path.stat().st_mtime)
        if age > FRESH_FOR:
            return False
        document = json.loads(path.read_text(encoding="utf-8"))
        releases = document["releases"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if document.get("generator") != f"{GENERATOR} (facts format {FACTS_FORMAT})":
        return False
    if installed is None:
        return True
    entry = next((e for v, e in releases.items() if _same(v, installed)), None)
    return entry is None or entry.get("requires") is not None or not entry.get("wheels")


def _same(recorded: str, installed: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(recorded) == Version(installed.split("+", 1)[0].strip())
    except InvalidVersion:
        return False


def _why(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, urllib.error.URLError) and error.filename:
        return f"cannot write the cache ({error.strerror or error}: {error.filename})"
    if isinstance(error, urllib.error.HTTPError):
        return "not on PyPI" if error.code == 404 else f"PyPI answered HTTP {error.code}"
    if isinstance(error, (urllib.error.URLError, TimeoutError, ConnectionError, OSError)):
        return f"PyPI not reachable ({getattr(error, 'reason', None) or error})"
    return f"{type(error).__name__}: {error}"
