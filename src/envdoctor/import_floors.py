"""Names libraries import from their partner packages at import (``matrices/import_floors.json``, written by
``tools/gen_import_floors.py`` from each release's own source).

For each release of an importer (peft, trl, diffusers, accelerate, vllm, unsloth...) the file lists what the
modules that ``import <importer>`` loads take from transformers, huggingface_hub, accelerate, peft or torch at
module level (``from transformers.pytorch_utils import id_tensor_storage``; ``access: "attribute"`` for an attribute
read off a partner module, ``torch.xpu.empty_cache`` giving ``torch:xpu`` and ``torch.xpu:empty_cache``), as runs
of releases; for each partner and
each such name, the runs of partner releases that have it, and those where that could not be told. A partner
release the file lists that is in neither lacks the name.

The file is read the first time a question needs it, once; ``import_table(root, installed)`` reads only the entries
of the installed packages (and Triton's, which torch pins), which is all a check asks about. A malformed entry that
is read raises :class:`envdoctor.matrices.MatrixError` naming the file and the key; ``validate_import_floors`` reads
every entry.

Example::

    table = import_table()
    [n.key for n in table.needs_of("peft", "0.6.1") if table.status(n, "4.28.1") == "absent"]
    # ['transformers.pytorch_utils:id_tensor_storage']
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from envdoctor.matrices import default_root, parsed_or_raise, read_json_object
from envdoctor.snapshot import normalize_name

FILE = "import_floors.json"
TOP_KEYS = {"generator", "command", "generated", "what", "importers", "providers"}
IMPORTER_KEYS = {"source", "floor", "releases", "unparsed", "needs"}
PROVIDER_KEYS = {"source", "floor", "releases", "names"}
NEED_KEYS = {"partner", "module", "name", "file", "releases", "access", "via", "when"}
OPTIONAL_NEED_KEYS = {"releases", "access", "via", "when"}
ACCESSES = ("import", "attribute")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class ImportNeed:
    """``importer`` releases ``releases`` import ``name`` from ``module`` of ``partner`` (the module itself when
    ``name`` is empty) in ``file``, whenever the importer (or the ``via`` module of a namespace package) is
    imported, where the ``when`` partner is installed if one is named."""

    importer: str  # normalized package name
    partner: str  # normalized package name
    module: str
    name: str
    file: str
    releases: frozenset[str]
    access: str = "import"  # or "attribute": ``module.name`` is read as an attribute
    via: str = ""  # a namespace package's module whose import reaches it ("" when ``import <importer>`` does)
    when: str = ""  # a partner that must be installed for the import to run (``if is_torch_available():``)

    @property
    def key(self) -> str:
        return f"{self.module}:{self.name}" if self.name else self.module

    def runs_beside(self, installed: Collection[str]) -> bool:
        """Whether the import runs in an environment of these (normalized) packages: always, unless it needs a
        ``when`` partner that is not among them."""
        return not self.when or self.when in installed

    @property
    def what(self) -> str:
        """``id_tensor_storage from transformers.pytorch_utils``, the module alone, or ``torch.xpu`` read as an
        attribute."""
        if self.access == "attribute":
            return f"{self.module}.{self.name}"
        return f"{self.name} from {self.module}" if self.name else self.module

    @property
    def error(self) -> str:
        if self.access == "attribute":
            return f"AttributeError: module '{self.module}' has no attribute '{self.name}'"
        if self.name:
            return f"ImportError: cannot import name '{self.name}' from '{self.module}'"
        return f"ModuleNotFoundError: No module named '{self.module}'"


@dataclass(frozen=True)
class PartnerName:
    """The releases of ``partner`` that have ``key`` (``module:name``), and those where that is unknown."""

    partner: str
    key: str
    present: frozenset[str]
    unknown: frozenset[str]


@dataclass(frozen=True)
class ImportTable:
    path: Path
    generated: str
    importer_releases: dict[str, tuple[str, ...]]  # importer -> releases read, oldest first
    needs: dict[str, tuple[ImportNeed, ...]]  # importer -> needs
    partner_releases: dict[str, tuple[str, ...]]  # partner -> releases read, oldest first
    names: dict[str, dict[str, PartnerName]]  # partner -> key -> releases having it
    sources: dict[str, str]  # package -> "url at commit (generated)"

    def release(self, package: str, version: str | None, partner: bool = False) -> str | None:
        """The release as the table writes it (``4.30`` finds ``4.30.0``; a local tag is ignored); None when the
        table does not cover that package or release."""
        wanted = public_release(version)
        if wanted is None:
            return None
        return self._release_index[partner].get(normalize_name(package), {}).get(wanted)

    @functools.cached_property
    def _release_index(self) -> dict[bool, dict[str, dict[Version, str]]]:
        """For importers (False) and partners (True): package -> public version -> the first release the table
        writes for it."""
        def index(listed: tuple[str, ...]) -> dict[Version, str]:
            found: dict[Version, str] = {}
            for release in listed:
                public = public_release(release)
                if public is not None:
                    found.setdefault(public, release)
            return found

        return {partner: {package: index(listed) for package, listed in releases.items()}
                for partner, releases in ((False, self.importer_releases), (True, self.partner_releases))}

    def needs_of(self, importer: str, release: str) -> tuple[ImportNeed, ...]:
        return tuple(n for n in self.needs.get(normalize_name(importer), ()) if release in n.releases)

    def status(self, need: ImportNeed, partner_release: str) -> str | None:
        """"present", "absent" or "unknown" for the need in that partner release; None when the table did not read
        that release, or the name, for the partner."""
        if partner_release not in self.partner_releases.get(need.partner, ()):
            return None
        facts = self.names.get(need.partner, {}).get(need.key)
        if facts is None:
            return None
        if partner_release in facts.present:
            return "present"
        return "unknown" if partner_release in facts.unknown else "absent"

    def having(self, need: ImportNeed) -> tuple[str, ...]:
        """The partner releases that have the need, oldest first."""
        facts = self.names.get(need.partner, {}).get(need.key)
        return tuple(r for r in self.partner_releases.get(need.partner, ()) if facts and r in facts.present)


def import_floors_path(root: Path | str | None = None) -> Path:
    return Path(root if root is not None else default_root()) / FILE


def import_table(root: Path | str | None = None, installed: Iterable[str] | None = None) -> ImportTable | None:
    """The table of the matrices folder ``root`` (default: the bundled one), with the entries of the ``installed``
    packages only (and Triton's, which torch pins) when they are given; None when the file is absent."""
    wanted = None if installed is None else frozenset({*map(normalize_name, installed), "triton"})
    return _table(import_floors_path(root), wanted)


def validate_import_floors(root: Path | str | None = None) -> list[str]:
    """Every problem in ``import_floors.json`` of the matrices folder ``root`` ([] when absent or sound)."""
    path = import_floors_path(root)
    if not path.exists():
        return []
    errors: list[str] = []
    _parse(path, errors)
    return errors


@functools.lru_cache(maxsize=4096)  # the same release strings recur across the file's packages and lookups
def public_release(version: str | None) -> Version | None:
    if not version:
        return None
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    return parsed if parsed.local is None else Version(parsed.public)


@functools.lru_cache(maxsize=8)
def _table(path: Path, wanted: frozenset[str] | None) -> ImportTable | None:
    return parsed_or_raise(path, functools.partial(_parse, wanted=wanted))


@dataclass(frozen=True)
class PartnerEntry:
    """One importer's or provider's entry of such a table: where it is, its normalized name, its raw object, its
    releases and each release's index among them."""

    where: str
    name: str
    entry: dict[str, Any]
    releases: tuple[str, ...]
    position: dict[str, int]


class TableReader:
    def __init__(self, path: Path, errors: list[str]) -> None:
        self.path, self.errors = path, errors

    def error(self, key: str, problem: str) -> None:
        self.errors.append(f"{self.path}: {key}: {problem}")

    def keys(self, raw: dict[str, Any], allowed: set[str], key: str) -> None:
        for extra in sorted(set(raw) - allowed):
            self.error(f"{key}.{extra}" if key else extra, f"unknown key (expected {', '.join(sorted(allowed))})")

    def entry_releases(self, entry: Any, where: str, allowed: set[str], member: str,
                       kind: type[dict] | type[list], expected: str) -> tuple[str, ...] | None:
        """An importer's or provider's entry: its releases, after its keys are checked; None (and the ``expected``
        error) when it is not an object holding ``member`` as a ``kind``."""
        if not isinstance(entry, dict) or not isinstance(entry.get(member), kind):
            self.error(where, expected)
            return None
        self.keys(entry, allowed, where)
        return self.releases(entry.get("releases"), f"{where}.releases")

    def entries(self, section: str, raw: dict[str, Any], allowed: set[str], member: str,
                kind: type[dict] | type[list], expected: str,
                wanted: Container[str] | None = None) -> Iterator[PartnerEntry]:
        """The usable entries of ``importers`` or ``providers`` (``section``), each checked by ``entry_releases``;
        with ``wanted``, only those of the packages it holds (normalized names), the others neither read nor
        checked."""
        for key, entry in raw.items():
            if wanted is not None and normalize_name(key) not in wanted:
                continue
            where = f"{section}.{key}"
            releases = self.entry_releases(entry, where, allowed, member, kind, expected)
            if releases is not None:
                yield PartnerEntry(where, normalize_name(key), entry, releases,
                                   {version: i for i, version in enumerate(releases)})

    def releases(self, raw: Any, key: str) -> tuple[str, ...]:
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            self.error(key, "expected a list of version strings")
            return ()
        for version in raw:
            if public_release(version) is None:
                self.error(key, f"bad version {version!r}")
        return tuple(raw)

    def runs(self, raw: Any, releases: tuple[str, ...], position: dict[str, int], key: str) -> frozenset[str]:
        """``[[first, last], ...]`` over ``releases`` (``position``: release -> its index) -> the releases in those
        runs."""
        if not isinstance(raw, list):
            self.error(key, "expected a list of [first, last] release pairs")
            return frozenset()
        members: set[str] = set()
        for i, run in enumerate(raw):
            if not (isinstance(run, list) and len(run) == 2 and all(v in position for v in run)
                    and position[run[0]] <= position[run[1]]):
                self.error(f"{key}[{i}]", f"expected [first, last], both releases listed for the package, got {run!r}")
                continue
            members.update(releases[position[run[0]]:position[run[1]] + 1])
        return frozenset(members)


def table_source(raw: Any, generated: str) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
        return "?"
    reference = str(raw.get("commit") or raw.get("newest_release") or "")
    return f"{raw['url']} at {reference[:12]} ({generated})".replace(" at  ", " ")


@dataclass(frozen=True)
class PartnerDocument:
    """The top of a table laid out as import_floors.json is (importers, providers, the day it was generated)."""

    read: TableReader
    importers: dict[str, Any]
    providers: dict[str, Any]
    generated: str


def read_partner_document(path: Path, errors: list[str], generator: str,
                          top_keys: frozenset[str] | set[str] | tuple[str, ...]) -> PartnerDocument | None:
    """Read and check the top level of such a table; None (with the problems in ``errors``) when it is unusable."""
    read = TableReader(path, errors)
    raw = read_json_object(path, errors, generator)
    if raw is None:
        return None
    read.keys(raw, top_keys, "")
    generated = raw.get("generated")
    if not isinstance(generated, str) or not DATE.match(generated):
        read.error("generated", f"expected a date YYYY-MM-DD, got {generated!r}")
        generated = "?"
    importers, providers = raw.get("importers"), raw.get("providers")
    if not isinstance(importers, dict) or not isinstance(providers, dict):
        read.error("importers" if not isinstance(importers, dict) else "providers", "expected an object")
        return None
    return PartnerDocument(read, importers, providers, generated)


def _parse(path: Path, errors: list[str], wanted: frozenset[str] | None = None) -> ImportTable | None:
    document = read_partner_document(path, errors, "tools/gen_import_floors.py", TOP_KEYS)
    if document is None:
        return None
    read, importers, providers, generated = (document.read, document.importers, document.providers,
                                             document.generated)
    sources: dict[str, str] = {}
    partner_releases: dict[str, tuple[str, ...]] = {}
    names: dict[str, dict[str, PartnerName]] = {}
    for part in read.entries("providers", providers, PROVIDER_KEYS, "names", dict, "expected an object with 'names'",
                             wanted):
        name, entry, releases, position, where = part.name, part.entry, part.releases, part.position, part.where
        partner_releases[name], sources[name] = releases, table_source(entry.get("source"), generated)
        names[name] = {}
        for key, facts in entry["names"].items():
            at = f"{where}.names.{key}"
            if not isinstance(facts, dict) or set(facts) - {"present", "unknown"}:
                read.error(at, "expected an object with 'present' (and 'unknown') runs")
                continue
            names[name][key] = PartnerName(
                name, key, read.runs(facts.get("present", []), releases, position, f"{at}.present"),
                read.runs(facts.get("unknown", []), releases, position, f"{at}.unknown"))
    importer_releases: dict[str, tuple[str, ...]] = {}
    needs: dict[str, tuple[ImportNeed, ...]] = {}
    for part in read.entries("importers", importers, IMPORTER_KEYS, "needs", list,
                             "expected an object with a 'needs' list", wanted):
        name, entry, releases, position, where = part.name, part.entry, part.releases, part.position, part.where
        importer_releases[name] = releases
        sources.setdefault(name, table_source(entry.get("source"), generated))
        found = []
        for i, need in enumerate(entry["needs"]):
            at = f"{where}.needs[{i}]"
            if not isinstance(need, dict) or not all(isinstance(need.get(k), str)
                                                     for k in NEED_KEYS - OPTIONAL_NEED_KEYS):
                read.error(at, "expected an object with string partner, module, name, file and a releases list")
                continue
            access = need.get("access", "import")
            if access not in ACCESSES:
                read.error(f"{at}.access", f"expected one of {', '.join(ACCESSES)}, got {access!r}")
                access = "import"
            read.keys(need, NEED_KEYS, at)
            partner = normalize_name(need["partner"])
            condition = need.get("when", "")
            if wanted is not None and (partner not in wanted or (
                    isinstance(condition, str) and condition and normalize_name(condition) not in wanted)):
                continue  # its partner is not installed: the need does not apply, and its entry was not read
            if partner not in partner_releases:
                read.error(f"{at}.partner", f"{need['partner']!r} has no entry under providers")
            if not MODULE.match(need["module"]) or (need["name"] and not need["name"].isidentifier()):
                read.error(f"{at}.module", f"not a module and name: {need['module']!r}, {need['name']!r}")
            if partner in names and _key(need) not in names[partner]:
                read.error(f"{at}.name", f"{_key(need)!r} is not listed under providers.{need['partner']}.names")
            via, when = need.get("via", ""), need.get("when", "")
            if not isinstance(via, str) or (via and not MODULE.match(via)):
                read.error(f"{at}.via", f"expected the module whose import reaches the need, got {via!r}")
                via = ""
            if not isinstance(when, str) or (when and normalize_name(when) not in partner_releases):
                read.error(f"{at}.when", f"expected a partner listed under providers, got {when!r}")
                when = ""
            found.append(ImportNeed(name, partner, need["module"], need["name"], need["file"],
                                    read.runs(need["releases"], releases, position, f"{at}.releases"), access,
                                    via, normalize_name(when) if when else ""))
        needs[name] = tuple(found)
    return ImportTable(path, str(generated), importer_releases, needs, partner_releases, names, sources)


def _key(need: dict[str, str]) -> str:
    return f"{need['module']}:{need['name']}" if need["name"] else need["module"]
