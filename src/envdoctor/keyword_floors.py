"""Keyword arguments libraries pass to trainer-level callables of other packages (``matrices/keyword_floors.json``,
written by ``tools/gen_keyword_breaks.py`` from each release's wheel).

For each release of an importer (instructlab, llamafactory, axolotl, unsloth, trl...) the file lists the keywords
its code writes at calls of ``SFTTrainer``, ``TrainingArguments``, ``LoraConfig``, ``Accelerator``... (as runs of
releases); for each provider (trl, transformers, peft, accelerate) and callable, the runs of releases that define it,
that take ``**kwargs`` ("open"), that extend a class of another provider, and that accept each keyword.

The file is read the first time a question needs it, once. A malformed file raises
:class:`envdoctor.matrices.MatrixError`: one line naming the file and the key.

Example::

    table = keyword_table()
    [u.keyword for u in table.uses_of("instructlab", "0.17.1")
     if table.accepts(u, "0.13.0", {}) == "no"]
    # ['max_seq_length', 'dataset_text_field', 'tokenizer']
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from envdoctor.import_floors import TableReader, public_release, read_partner_document, table_source
from envdoctor.matrices import MatrixError, default_root
from envdoctor.snapshot import normalize_name

FILE = "keyword_floors.json"
GENERATOR = "tools/gen_keyword_breaks.py"
TOP_KEYS = {"generator", "command", "generated", "what", "importers", "providers"}
IMPORTER_KEYS = {"source", "releases", "unparsed", "requires", "uses"}
PROVIDER_KEYS = {"source", "releases", "callables"}
USE_KEYS = {"provider", "callable", "keyword", "where", "releases"}
CALLABLE_KEYS = {"kind", "defined", "open", "extends", "keywords"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class KeywordUse:
    """``importer`` releases ``releases`` pass ``keyword`` to ``provider``'s ``callable`` (at ``where``, file:line
    in the newest of them)."""

    importer: str
    provider: str
    callable: str
    keyword: str
    where: str
    releases: frozenset[str]


@dataclass(frozen=True)
class CallableFacts:
    """The releases of ``provider`` that define ``name``, take anything (``**kwargs``), extend a class of another
    provider ("provider:Class" -> releases), and accept each keyword."""

    provider: str
    name: str
    is_class: bool
    defined: frozenset[str]
    open: frozenset[str]
    extends: dict[str, frozenset[str]]
    keywords: dict[str, frozenset[str]]

    @property
    def signature(self) -> str:
        """How Python names it in the TypeError: ``SFTTrainer.__init__()`` or ``get_peft_model()``."""
        return f"{self.name}.__init__()" if self.is_class else f"{self.name}()"


@dataclass(frozen=True)
class KeywordTable:
    path: Path
    generated: str
    importer_releases: dict[str, tuple[str, ...]]  # importer -> releases read, oldest first
    uses: dict[str, tuple[KeywordUse, ...]]  # importer -> keyword uses
    requires: dict[str, dict[str, dict[str, frozenset[str]]]]  # importer -> provider -> specifier -> releases
    provider_releases: dict[str, tuple[str, ...]]  # provider -> releases read, oldest first
    callables: dict[str, dict[str, CallableFacts]]  # provider -> callable -> facts
    sources: dict[str, str]  # package -> "url at newest release (generated)"

    def release(self, package: str, version: str | None, provider: bool = False) -> str | None:
        """The release as the table writes it (``0.13`` finds ``0.13.0``; a local tag is ignored); None when the
        table does not cover that package or release."""
        wanted = public_release(version)
        if wanted is None:
            return None
        listed = (self.provider_releases if provider else self.importer_releases).get(normalize_name(package), ())
        return next((release for release in listed if public_release(release) == wanted), None)

    def uses_of(self, importer: str, release: str, provider: str | None = None) -> tuple[KeywordUse, ...]:
        return tuple(u for u in self.uses.get(normalize_name(importer), ())
                     if release in u.releases and (provider is None or u.provider == provider))

    def declared(self, importer: str, release: str, provider: str) -> SpecifierSet | None:
        """What the importer release's Requires-Dist (without extras) asks of the provider; None when it does not
        name it."""
        for specifier, members in self.requires.get(normalize_name(importer), {}).get(provider, {}).items():
            if release in members:
                return SpecifierSet(specifier)
        return None

    def facts(self, use: KeywordUse) -> CallableFacts | None:
        return self.callables.get(use.provider, {}).get(use.callable)

    def accepts(self, use: KeywordUse, provider_release: str, installed: dict[str, str | None]) -> str:
        """"yes", "no" or "unknown": whether ``provider_release`` of the use's provider takes its keyword.
        ``installed``: provider -> the release of it installed (None: version unknown), for a base class of
        another provider. Unknown when the table did not read that release, or the release does not define the
        callable (an import failure, not this table's question)."""
        return self._accepts(use.provider, use.callable, use.keyword, provider_release, installed, 0)

    def _accepts(self, provider: str, name: str, keyword: str, release: str, installed: dict[str, str | None],
                 depth: int) -> str:
        facts = self.callables.get(provider, {}).get(name)
        if facts is None or release not in facts.defined or depth > 4:
            return "unknown"
        if release in facts.keywords.get(keyword, ()) or release in facts.open:
            return "yes"
        for base, members in facts.extends.items():
            if release not in members:
                continue
            base_provider, _, base_name = base.partition(":")
            base_release = installed.get(base_provider)
            if base_release is not None and base_release in self.provider_releases.get(base_provider, ()):
                answer = self._accepts(base_provider, base_name, keyword, base_release, installed, depth + 1)
                if answer != "no":
                    return answer
                continue
            base_facts = self.callables.get(base_provider, {}).get(base_name)
            if base_facts is None or base_facts.keywords.get(keyword) or base_facts.open:
                return "unknown"  # some release of the base takes it: which one is installed is not known
        return "no"

    def accepting(self, use: KeywordUse) -> tuple[str, ...]:
        """The provider releases whose callable takes the keyword by name (oldest first)."""
        facts = self.facts(use)
        return tuple(r for r in self.provider_releases.get(use.provider, ())
                     if facts is not None and (r in facts.keywords.get(use.keyword, ()) or r in facts.open))


def keyword_floors_path(root: Path | str | None = None) -> Path:
    return Path(root if root is not None else default_root()) / FILE


def keyword_table(root: Path | str | None = None, installed: Iterable[str] | None = None) -> KeywordTable | None:
    """The table of the matrices folder ``root`` (default: the bundled one), with the entries of the ``installed``
    packages only when they are given (the uses of a provider not installed left out); None when the file is
    absent; a one-line MatrixError when what is read is malformed."""
    wanted = None if installed is None else frozenset(map(normalize_name, installed))
    return _table(keyword_floors_path(root), wanted)


def validate_keyword_floors(root: Path | str | None = None) -> list[str]:
    """Every problem in ``keyword_floors.json`` of the matrices folder ``root`` ([] when absent or sound)."""
    path = keyword_floors_path(root)
    if not path.exists():
        return []
    errors: list[str] = []
    _parse(path, errors)
    return errors


@functools.lru_cache(maxsize=8)
def _table(path: Path, wanted: frozenset[str] | None) -> KeywordTable | None:
    if not path.exists():
        return None
    errors: list[str] = []
    table = _parse(path, errors, wanted)
    if errors or table is None:
        more = f" (and {len(errors) - 1} more problems: envdoctor stacks --validate)" if len(errors) > 1 else ""
        raise MatrixError((errors[0] if errors else f"{path}: unreadable") + more)
    return table


def _parse(path: Path, errors: list[str], wanted: frozenset[str] | None = None) -> KeywordTable | None:
    document = read_partner_document(path, errors, GENERATOR, TOP_KEYS)
    if document is None:
        return None
    read, importers, providers, generated = (document.read, document.importers, document.providers,
                                             document.generated)
    sources: dict[str, str] = {}
    provider_releases: dict[str, tuple[str, ...]] = {}
    callables: dict[str, dict[str, CallableFacts]] = {}
    for part in read.entries("providers", providers, PROVIDER_KEYS, "callables", dict,
                             "expected an object with 'callables'", wanted):
        name, entry, releases, position, where = part.name, part.entry, part.releases, part.position, part.where
        provider_releases[name], sources[name] = releases, table_source(entry.get("source"), generated)
        callables[name] = {}
        for callable_name, facts in entry["callables"].items():
            at = f"{where}.callables.{callable_name}"
            found = _callable(read, name, callable_name, facts, releases, position, at)
            if found is not None:
                callables[name][callable_name] = found
    importer_releases: dict[str, tuple[str, ...]] = {}
    uses: dict[str, tuple[KeywordUse, ...]] = {}
    requires: dict[str, dict[str, dict[str, frozenset[str]]]] = {}
    for part in read.entries("importers", importers, IMPORTER_KEYS, "uses", list,
                             "expected an object with a 'uses' list", wanted):
        name, entry, releases, position, where = part.name, part.entry, part.releases, part.position, part.where
        importer_releases[name] = releases
        sources.setdefault(name, table_source(entry.get("source"), generated))
        requires[name] = _requires(read, entry.get("requires", {}), releases, position, f"{where}.requires")
        found = []
        for i, use in enumerate(entry["uses"]):
            at = f"{where}.uses[{i}]"
            if not isinstance(use, dict) or not all(isinstance(use.get(k), str) for k in USE_KEYS - {"releases"}):
                read.error(at, "expected an object with string provider, callable, keyword, where and a releases list")
                continue
            read.keys(use, USE_KEYS, at)
            provider = normalize_name(use["provider"])
            if wanted is not None and provider not in wanted:
                continue  # its provider is not installed: the use does not apply, and its entry was not read
            if use["callable"] not in callables.get(provider, {}):
                read.error(f"{at}.callable", f"{use['provider']}:{use['callable']} is not listed under providers")
            if not use["keyword"].isidentifier():
                read.error(f"{at}.keyword", f"not a keyword: {use['keyword']!r}")
            found.append(KeywordUse(name, provider, use["callable"], use["keyword"], use["where"],
                                    read.runs(use["releases"], releases, position, f"{at}.releases")))
        uses[name] = tuple(found)
    return KeywordTable(path, str(generated), importer_releases, uses, requires, provider_releases, callables,
                        sources)


def _requires(read: TableReader, raw: Any, releases: tuple[str, ...], position: dict[str, int],
              at: str) -> dict[str, dict[str, frozenset[str]]]:
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        read.error(at, "expected an object of provider -> specifier -> runs")
        return {}
    out: dict[str, dict[str, frozenset[str]]] = {}
    for provider, specifiers in raw.items():
        out[normalize_name(provider)] = {}
        for specifier, runs in specifiers.items():
            try:
                SpecifierSet(specifier)
            except InvalidSpecifier:
                read.error(f"{at}.{provider}", f"not a version specifier: {specifier!r}")
                continue
            out[normalize_name(provider)][specifier] = read.runs(runs, releases, position, f"{at}.{provider}")
    return out


def _callable(read: TableReader, provider: str, name: str, facts: Any, releases: tuple[str, ...],
              position: dict[str, int], at: str) -> CallableFacts | None:
    if not isinstance(facts, dict) or not isinstance(facts.get("keywords"), dict) \
            or facts.get("kind") not in ("class", "function"):
        read.error(at, "expected an object with kind ('class' or 'function'), defined runs and a keywords object")
        return None
    read.keys(facts, CALLABLE_KEYS, at)
    extends = facts.get("extends", {})
    if not isinstance(extends, dict) or not all(re.fullmatch(r"[a-z0-9_.-]+:[A-Za-z_]\w*", k) for k in extends):
        read.error(f"{at}.extends", "expected an object of 'provider:Class' -> runs")
        extends = {}
    return CallableFacts(
        provider, name, facts["kind"] == "class",
        read.runs(facts.get("defined", []), releases, position, f"{at}.defined"),
        read.runs(facts.get("open", []), releases, position, f"{at}.open"),
        {k: read.runs(v, releases, position, f"{at}.extends.{k}") for k, v in extends.items()},
        {k: read.runs(v, releases, position, f"{at}.keywords.{k}") for k, v in facts["keywords"].items()})
