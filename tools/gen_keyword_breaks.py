"""Regenerate ``matrices/keyword_floors.json``: the keyword arguments libraries pass to trainer-level callables of
trl, transformers, peft and accelerate (``SFTTrainer(max_seq_length=...)``, ``TrainingArguments(evaluation_strategy=
...)``, ``LoraConfig(use_dora=...)``), and which releases of those packages accept each keyword.

Usage:
    python tools/gen_keyword_breaks.py [--cache DIR] [--threads N] [--out FILE]

Every release is read from its PyPI wheel (final releases uploaded since ``PROVIDER_SINCE`` for providers and
``IMPORTER_SINCE`` for importers). A wheel up to ``WHOLE_WHEEL`` bytes is downloaded once into ``--cache``; a larger
one (transformers, recent unsloth) is read by HTTP range requests, only the files needed, which are kept there as a
small zip. Nothing is executed: each file is parsed with ``ast``.

Providers. For each callable in ``CALLABLES`` a release defines (its top ``__init__.py`` names it): the keywords its
``__init__`` takes (or, for a function, its parameters), plus the old names a ``@deprecate_kwarg("old", ...)``
decorator still accepts; a dataclass without ``__init__`` takes its fields (``field(init=False)`` and ``ClassVar``
left out) and those of its base classes within the package; a class without either inherits its base's. A
``**kwargs`` parameter means the callable accepts anything ("open"); a base class from another provider
(``SFTConfig(TrainingArguments)``) is recorded under ``extends``.

Importers. Each release's Requires-Dist on the providers (``requires``: provider -> specifier -> releases). In every
shipped ``.py`` file of each release: calls of a tracked callable, resolved through the file's
imports (``from trl import SFTTrainer as T``, ``import transformers as tf; tf.Trainer(...)``), and
``super().__init__(...)`` or ``Base.__init__(self, ...)`` inside a class whose base is one; the keywords written at
the call (``**kwargs`` spreads are not read). Calls under an ``if`` that tests a version, ``hasattr``, a signature or
an availability helper, and in a ``try`` that catches ``TypeError``, are left out: they are the importer's own
switches between provider releases.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import hashlib
import json
import re
import sys
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "matrices" / "keyword_floors.json"
GENERATOR = "tools/gen_keyword_breaks.py"
CACHE = Path.home() / ".cache" / "envdoctor-wheels"
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))

from gen_import_floors import catches, final_version, ranges  # noqa: E402

from envdoctor import pypi_release  # noqa: E402 - after the path is set for a checkout without an install
from envdoctor.atomic import write_atomic  # noqa: E402
from envdoctor.numpy_name_scan import scanned_once, shipped_code  # noqa: E402

PROVIDER_SINCE = "2023-01-01"
IMPORTER_SINCE = "2024-01-01"
WHOLE_WHEEL = 8 * 1024 * 1024


@dataclass(frozen=True)
class Provider:
    """A package whose callables are read; ``files``: the only files read from its wheels (None: every file)."""

    dist: str
    module: str
    callables: tuple[str, ...]
    files: tuple[str, ...] | None = None


PROVIDERS = {
    "trl": Provider("trl", "trl", (
        "SFTTrainer", "SFTConfig", "DPOTrainer", "DPOConfig", "RewardTrainer", "RewardConfig", "ORPOTrainer",
        "ORPOConfig", "KTOTrainer", "KTOConfig", "CPOTrainer", "CPOConfig", "PPOTrainer", "PPOConfig", "GRPOTrainer",
        "GRPOConfig", "DataCollatorForCompletionOnlyLM")),
    "transformers": Provider("transformers", "transformers", (
        "Trainer", "TrainingArguments", "Seq2SeqTrainer", "Seq2SeqTrainingArguments"),
        ("transformers/__init__.py", "transformers/trainer.py", "transformers/training_args.py",
         "transformers/trainer_seq2seq.py", "transformers/training_args_seq2seq.py")),
    "peft": Provider("peft", "peft", ("LoraConfig", "get_peft_model", "prepare_model_for_kbit_training")),
    "accelerate": Provider("accelerate", "accelerate", ("Accelerator",)),
}
# Libraries that pass keywords to those callables (PyPI names), and their import names.
IMPORTERS = {
    "instructlab": "instructlab", "instructlab-training": "instructlab", "llamafactory": "llamafactory",
    "axolotl": "axolotl", "unsloth": "unsloth", "lm-eval": "lm_eval", "setfit": "setfit",
    "sentence-transformers": "sentence_transformers", "trl": "trl", "openrlhf": "openrlhf",
}
PROVIDER_OF_MODULE = {spec.module: name for name, spec in PROVIDERS.items()}
# Tests of an ``if`` whose branches switch on the provider at hand.
GUARD_TEST = re.compile(r"version|hasattr|getattr|signature|parameters|TYPE_CHECKING|_available|__code__|"
                        r"co_varnames|argspec|is_\w+_(greater|less|newer|older)|__name__", re.I)
GUARD_HANDLERS = {"TypeError", "Exception", "BaseException"}
DEPRECATED_KEYWORD = {"deprecate_kwarg"}  # transformers.utils.deprecation: the old name is still accepted


# --- the wheels -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wheel:
    version: str
    url: str
    filename: str
    size: int


def wheels(dist: str, since: str) -> tuple[str, list[Wheel]]:
    """The index URL and one wheel per final release first uploaded on or after ``since`` (oldest first)."""
    url = f"https://pypi.org/pypi/{dist}/json"
    index = json.loads(pypi_release.http_get(url))
    found = []
    for version in pypi_release.kept_versions(index["releases"], None):
        files = index["releases"][version]
        if final_version(version, "0") is None or not files or all(f.get("yanked") for f in files):
            continue
        if min(f.get("upload_time_iso_8601") or f["upload_time"] for f in files)[:10] < since:
            continue
        chosen = pypi_release.metadata_wheel(files)
        if chosen is not None:
            found.append(Wheel(version, urljoin(url, chosen["url"]), chosen["filename"], chosen["size"]))
    return url, found


def wheel_files(wheel: Wheel, cache: Path, wanted: tuple[str, ...] | None, prefix: str) -> Iterator[tuple[str, str]]:
    """(path, text) of the wheel's shipped ``.py`` files under ``prefix`` (only ``wanted`` when given): from the
    cached wheel (a small wheel read whole is downloaded there first), else by range requests."""
    def keep(name: str) -> bool:
        return name in wanted if wanted is not None else name.startswith(prefix) and shipped_code(name)

    cached = cache / wheel.filename
    if not cached.exists() and wanted is None and wheel.size <= WHOLE_WHEEL:
        cache.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{threading.get_ident()}.part")
        partial.write_bytes(pypi_release.http_get(wheel.url))
        partial.replace(cached)
    if cached.exists():
        with zipfile.ZipFile(cached) as archive:
            for name in archive.namelist():
                if keep(name):
                    yield name, archive.read(name).decode("utf-8", errors="replace")
        return
    subset = cache / f"{wheel.filename}.{hashlib.sha256(repr(wanted or prefix).encode()).hexdigest()[:12]}.zip"
    if not subset.exists():  # read by range requests once, kept as a zip of the files read
        remote = pypi_release.RangeFile(wheel.url, wheel.size, pypi_release.http_get)
        with zipfile.ZipFile(remote) as archive:  # type: ignore[arg-type]
            members = [info for info in archive.infolist() if keep(info.filename)]
            _prefetch(remote, members)
            texts = [(info.filename, archive.read(info)) for info in members]
        cache.mkdir(parents=True, exist_ok=True)
        partial = subset.with_name(f"{subset.name}.{threading.get_ident()}.part")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as kept:
            for name, data in texts:
                kept.writestr(name, data)
        partial.replace(subset)
    with zipfile.ZipFile(subset) as archive:
        for name in archive.namelist():
            yield name, archive.read(name).decode("utf-8", errors="replace")


def declared(wheel: Wheel, cache: Path) -> dict[str, str]:
    """The wheel's Requires-Dist on each provider that applies without extras: provider -> specifier ("" when it
    names no versions)."""
    cached = cache / wheel.filename
    if cached.exists():
        with zipfile.ZipFile(cached) as archive:
            names = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            metadata = archive.read(names[0]).decode("utf-8", errors="replace") if names else ""
    else:
        metadata = pypi_release.wheel_metadata(wheel.url, wheel.size)
    found: dict[str, str] = {}
    for line in pypi_release.requires_dist(metadata):
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        name = canonicalize_name(requirement.name)
        if name in PROVIDERS:
            found[name] = ",".join(sorted(str(s) for s in requirement.specifier))
    return found


def _prefetch(remote: pypi_release.RangeFile, members: list[zipfile.ZipInfo], gap: int = 512 * 1024) -> None:
    """Fetch the members' bytes in few requests: runs of members less than ``gap`` bytes apart in one range each."""
    spans: list[list[int]] = []
    for info in sorted(members, key=lambda i: i.header_offset):
        start, end = info.header_offset, info.header_offset + 30 + len(info.filename) + 1024 + info.compress_size
        if spans and start - spans[-1][1] <= gap:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    for start, end in spans:
        end = min(end, remote.size)
        remote.chunks.append((start, remote.fetch(remote.url, (start, end - 1))))


# --- providers: the keywords a callable accepts ---------------------------------------------------------


@dataclass(frozen=True)
class Params:
    """Keywords one signature takes; ``open``: it has ``**kwargs``."""

    keywords: frozenset[str]
    open: bool


@dataclass(frozen=True)
class ClassFacts:
    name: str
    bases: tuple[str, ...]  # as written (``TrainingArguments``, ``transformers.TrainingArguments``)
    is_dataclass: bool
    init: Params | None
    fields: tuple[str, ...]


@dataclass(frozen=True)
class FileFacts:
    """What one provider file defines at module level, and the names it imports (local name -> module, name)."""

    classes: dict[str, ClassFacts]
    functions: dict[str, Params]
    imports: dict[str, tuple[str, str]]


def signature(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> Params:
    """The keywords a ``def`` takes (positional-only ones and ``self`` left out), and the old names its
    ``@deprecate_kwarg`` decorators accept."""
    arguments = node.args
    names = [a.arg for a in arguments.args]
    if method and names and not any(_decorator_name(d) == "staticmethod" for d in node.decorator_list):
        names = names[1:] if not arguments.posonlyargs else names
    keywords = {*names, *(a.arg for a in arguments.kwonlyargs)}
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call) and _decorator_name(decorator) in DEPRECATED_KEYWORD:
            old = decorator.args[0] if decorator.args else next(
                (k.value for k in decorator.keywords if k.arg == "old_name"), None)
            if isinstance(old, ast.Constant) and isinstance(old.value, str):
                keywords.add(old.value)
    return Params(frozenset(keywords), arguments.kwarg is not None)


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return ast.unparse(target).rsplit(".", 1)[-1]


def _dataclass_fields(body: list[ast.stmt]) -> tuple[str, ...]:
    out = []
    for node in body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        if "ClassVar" in ast.unparse(node.annotation):
            continue
        value = node.value
        if isinstance(value, ast.Call) and ast.unparse(value.func).rsplit(".", 1)[-1] == "field" and any(
                k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False
                for k in value.keywords):
            continue
        out.append(node.target.id)
    return tuple(out)


def _top_level(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, inside ``if``/``try`` blocks too."""
    for node in body:
        if isinstance(node, ast.If | ast.Try | getattr(ast, "TryStar", ast.Try)):
            for block in ("body", "orelse", "finalbody"):
                yield from _top_level(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                yield from _top_level(handler.body)
        else:
            yield node


def file_facts(text: str, module: str = "", is_package: bool = False) -> FileFacts:
    """Classes, functions and imports of one provider file (``module``: its dotted name, for relative imports)."""
    tree = ast.parse(text)
    classes: dict[str, ClassFacts] = {}
    functions: dict[str, Params] = {}
    imports: dict[str, tuple[str, str]] = {}
    for node in _top_level(tree.body):
        if isinstance(node, ast.ClassDef):
            init = next((signature(n, True) for n in node.body
                         if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "__init__"), None)
            is_dataclass = any(_decorator_name(d) == "dataclass" for d in node.decorator_list)
            classes[node.name] = ClassFacts(node.name, tuple(ast.unparse(b) for b in node.bases), is_dataclass, init,
                                            _dataclass_fields(node.body) if is_dataclass else ())
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions[node.name] = signature(node, False)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node)
            for alias in node.names:
                imports[alias.asname or alias.name] = (source, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                imports[alias.asname or alias.name.split(".")[0]] = (alias.name if alias.asname else
                                                                     alias.name.split(".")[0], "")
    return FileFacts(classes, functions, imports)


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    base = parts[: len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


@dataclass(frozen=True)
class Accepted:
    """What one release's callable accepts: its keywords, whether it takes anything, and the classes of other
    providers it extends (provider, class)."""

    keywords: frozenset[str]
    open: bool
    extends: tuple[tuple[str, str], ...] = ()
    is_class: bool = True


def _module_of(path: str) -> tuple[str, bool]:
    stem = path.removesuffix(".py")
    return (stem.removesuffix("/__init__").replace("/", "."), stem.endswith("/__init__"))


class ProviderRelease:
    """The callables one release of a provider defines, from its files."""

    def __init__(self, provider: str, files: dict[str, str]) -> None:
        self.provider, self.spec = provider, PROVIDERS[provider]
        self.facts: dict[str, FileFacts] = {}
        for path, text in files.items():
            module, is_package = _module_of(path)
            parsed = scanned_once(text, _file_facts_scanner(module, is_package))
            if parsed is not None:
                self.facts[path] = parsed  # type: ignore[assignment]
        self.exported = files.get(f"{self.spec.module}/__init__.py", "")

    def accepted(self, name: str) -> Accepted | None:
        """None when the release does not offer ``name`` at the package's top."""
        if not re.search(rf"\b{re.escape(name)}\b", self.exported):
            return None
        return self._resolve(name, None, set())

    def _definition(self, name: str, near: str | None) -> tuple[str, ClassFacts | Params] | None:
        """Where ``name`` is defined: in ``near`` when it defines it, else the first file by path, outside
        ``experimental``/``deprecated`` folders when possible."""
        if near is not None and near in self.facts:
            here = self.facts[near]
            if name in here.classes or name in here.functions:
                return near, here.classes.get(name) or here.functions[name]
        paths = sorted(self.facts, key=lambda p: (bool(re.search(r"experimental|deprecated|legacy", p)), p))
        for path in paths:
            found = self.facts[path].classes.get(name) or self.facts[path].functions.get(name)
            if found is not None:
                return path, found
        return None

    def _resolve(self, name: str, near: str | None, seen: set[str]) -> Accepted:
        found = self._definition(name, near)
        if found is None or name in seen:
            return Accepted(frozenset(), True)  # not read: accepts anything as far as this table can tell
        seen = seen | {name}
        path, facts = found
        if isinstance(facts, Params):
            return Accepted(facts.keywords, facts.open, is_class=False)
        if facts.init is not None:
            return Accepted(facts.init.keywords, facts.init.open)
        keywords: set[str] = set(facts.fields)
        extends: list[tuple[str, str]] = []
        opened = False
        for base in facts.bases:
            origin = self._base(path, base)
            if origin is None:
                opened = opened or not facts.is_dataclass  # an unread base's __init__ may take anything
                continue
            provider, base_name = origin
            if provider != self.provider and base_name not in TRACKED[provider]:
                opened = opened or not facts.is_dataclass  # a mixin: no dataclass fields, an __init__ not read
                continue
            if provider == self.provider:
                inherited = self._resolve(base_name, path, seen)
                if facts.is_dataclass:
                    keywords |= inherited.keywords
                    opened, extends = opened or inherited.open, [*extends, *inherited.extends]
                    continue
                return Accepted(frozenset(keywords | inherited.keywords), inherited.open, inherited.extends)
            extends.append((provider, base_name))
            if not facts.is_dataclass:
                break
        return Accepted(frozenset(keywords), opened, tuple(dict.fromkeys(extends)))

    def _base(self, path: str, base: str) -> tuple[str, str] | None:
        """(provider, class) a base class expression names; None when it is not a tracked provider's class."""
        head, _, attr = base.partition(".")
        imports = self.facts[path].imports
        if attr:
            module, name = imports.get(head, ("", ""))
            top = (module if not name else f"{module}.{name}").split(".")[0]
            return (PROVIDER_OF_MODULE[top], attr.rsplit(".", 1)[-1]) if top in PROVIDER_OF_MODULE else None
        if base in imports:
            module, name = imports[base]
            top = module.split(".")[0]
            return (PROVIDER_OF_MODULE[top], name) if top in PROVIDER_OF_MODULE and name else None
        return (self.provider, base) if self._definition(base, path) is not None else None


def _file_facts_scanner(module: str, is_package: bool) -> Any:
    """A scanner for ``scanned_once`` (one parse per distinct text, module and package flag)."""
    def scan(text: str) -> FileFacts:
        return file_facts(text, module, is_package)

    scan.__qualname__ = f"file_facts[{module}:{is_package}]"
    return scan


# --- importers: the keywords they pass ------------------------------------------------------------------


@dataclass(frozen=True)
class KeywordUse:
    """``keyword`` passed to ``provider``'s ``callable`` at ``line`` of a file."""

    provider: str
    callable: str
    keyword: str
    line: int


@dataclass
class _CallFinder(ast.NodeVisitor):
    """Calls of tracked callables in one file, with the keywords written at each."""

    tracked: dict[str, set[str]]  # provider -> callables
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # local name -> (provider, callable)
    modules: dict[str, str] = field(default_factory=dict)  # local name -> provider (the package module)
    bases: list[tuple[str, str] | None] = field(default_factory=list)  # the enclosing classes' tracked base
    uses: list[KeywordUse] = field(default_factory=list)

    def bind(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                provider = PROVIDER_OF_MODULE.get(node.module.split(".")[0])
                for alias in node.names:
                    if provider and alias.name in self.tracked.get(provider, ()):
                        self.names[alias.asname or alias.name] = (provider, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    provider = PROVIDER_OF_MODULE.get(alias.name.split(".")[0])
                    if provider:
                        self.modules[alias.asname or alias.name.split(".")[0]] = provider

    def resolve(self, node: ast.expr) -> tuple[str, str] | None:
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            root: ast.expr = node
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in self.modules:
                provider = self.modules[root.id]
                if node.attr in self.tracked.get(provider, ()):
                    return provider, node.attr
        return None

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        base = next((found for b in node.bases if (found := self.resolve(b)) is not None), None)
        self.bases.append(base)
        self.generic_visit(node)
        self.bases.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        enclosing = self.bases[-1] if self.bases else None
        self.bases.append(enclosing if node.name == "__init__" else None)  # super() calls of __init__ only
        self.generic_visit(node)
        self.bases.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        target = self.resolve(node.func)
        func = node.func
        if target is None and isinstance(func, ast.Attribute) and func.attr == "__init__" and self.bases:
            if isinstance(func.value, ast.Call) and ast.unparse(func.value.func) == "super":
                target = self.bases[-1]
            elif (owner := self.resolve(func.value)) is not None and owner == self.bases[-1]:
                target = owner
        if target is not None:
            self.uses += [KeywordUse(target[0], target[1], k.arg, node.lineno) for k in node.keywords if k.arg]
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if not GUARD_TEST.search(ast.unparse(node.test)):
            self.generic_visit(node)

    def visit_Try(self, node: ast.Try) -> None:
        if not catches(node, GUARD_HANDLERS):
            for statement in node.body:
                self.visit(statement)
        for part in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(part)

    visit_TryStar = visit_Try


def keyword_uses(text: str, tracked: dict[str, set[str]]) -> list[KeywordUse]:
    """Keywords one file passes to tracked callables (``tracked``: provider -> callable names)."""
    tree = ast.parse(text)
    finder = _CallFinder(tracked)
    finder.bind(tree)
    if not finder.names and not finder.modules:
        return []
    finder.visit(tree)
    return finder.uses


TRACKED = {name: set(spec.callables) for name, spec in PROVIDERS.items()}
_MAY_CALL = re.compile(r"\b(?:" + "|".join(sorted({c for s in PROVIDERS.values() for c in s.callables})) + r")\b")


def _uses_once(text: str) -> list[KeywordUse] | None:
    if not _MAY_CALL.search(text):
        return []
    return scanned_once(text, _tracked_uses)  # type: ignore[arg-type,return-value]


def _tracked_uses(text: str) -> list[KeywordUse]:
    return keyword_uses(text, TRACKED)


# --- the table ------------------------------------------------------------------------------------------


def read_provider(name: str, cache: Path, threads: int) -> dict[str, Any]:
    spec = PROVIDERS[name]
    url, found = wheels(spec.dist, PROVIDER_SINCE)

    def one(wheel: Wheel) -> dict[str, Accepted | None]:
        release = ProviderRelease(name, dict(wheel_files(wheel, cache, spec.files, f"{spec.module}/")))
        return {callable_: release.accepted(callable_) for callable_ in spec.callables}

    with ThreadPoolExecutor(max_workers=threads) as pool:
        read = dict(zip([w.version for w in found], pool.map(one, found), strict=True))
    versions = [w.version for w in found]
    callables: dict[str, Any] = {}
    for callable_ in spec.callables:
        facts = {v: read[v][callable_] for v in versions}
        defined = {v for v, f in facts.items() if f is not None}
        if not defined:
            continue
        kind = "class" if all(f.is_class for f in facts.values() if f is not None) else "function"
        entry: dict[str, Any] = {"kind": kind, "defined": ranges(versions, defined)}
        opened = {v for v, f in facts.items() if f is not None and f.open}
        if opened:
            entry["open"] = ranges(versions, opened)
        bases = sorted({b for f in facts.values() if f is not None for b in f.extends})
        if bases:
            entry["extends"] = {f"{p}:{c}": ranges(versions, {v for v, f in facts.items()
                                                               if f is not None and (p, c) in f.extends})
                                for p, c in bases}
        words = sorted({k for f in facts.values() if f is not None for k in f.keywords})
        entry["keywords"] = {k: ranges(versions, {v for v, f in facts.items() if f is not None and k in f.keywords})
                             for k in words}
        callables[callable_] = entry
    newest = found[-1] if found else None
    print(f"{name}: {len(versions)} releases, {len(callables)} callables", file=sys.stderr, flush=True)
    return {"source": {"url": url, "read": "each release's wheel, the files defining the callables",
                       "newest_release": newest.version if newest else "", "newest_wheel":
                       newest.filename if newest else ""},
            "releases": versions, "callables": callables}


def read_importer(name: str, cache: Path, threads: int) -> dict[str, Any]:
    module = IMPORTERS[name]
    url, found = wheels(name, IMPORTER_SINCE)

    def one(wheel: Wheel) -> tuple[dict[tuple[str, str, str], str], int, dict[str, str]]:
        uses: dict[tuple[str, str, str], str] = {}
        unparsed = 0
        requires = declared(wheel, cache)
        for path, text in wheel_files(wheel, cache, None, f"{module}/"):
            found_uses = _uses_once(text)
            if found_uses is None:
                unparsed += 1
                continue
            for use in found_uses:
                if use.provider != name:
                    uses.setdefault((use.provider, use.callable, use.keyword), f"{path}:{use.line}")
        return uses, unparsed, requires

    with ThreadPoolExecutor(max_workers=threads) as pool:
        read = dict(zip([w.version for w in found], pool.map(one, found), strict=True))
    versions = [w.version for w in found]
    keys = sorted({key for uses, _, _ in read.values() for key in uses})
    rows = []
    for key in keys:
        members = {v for v in versions if key in read[v][0]}
        where = read[max(members, key=versions.index)][0][key]
        rows.append({"provider": key[0], "callable": key[1], "keyword": key[2], "where": where,
                     "releases": ranges(versions, members)})
    newest = found[-1] if found else None
    print(f"{name}: {len(versions)} releases, {len(rows)} keyword uses", file=sys.stderr, flush=True)
    return {"source": {"url": url, "read": "each release's wheel, every shipped .py file",
                       "newest_release": newest.version if newest else "", "newest_wheel":
                       newest.filename if newest else ""},
            "releases": versions,
            "unparsed": {v: n for v, (_, n, _) in read.items() if n},
            "requires": _requires_runs(versions, {v: r for v, (_, _, r) in read.items()}),
            "uses": rows}


def _requires_runs(versions: list[str], declared_by: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
    """provider -> specifier -> runs of releases that declare it (releases that do not name the provider: none)."""
    out: dict[str, dict[str, Any]] = {}
    for provider in sorted({p for found in declared_by.values() for p in found}):
        specifiers = dict.fromkeys(declared_by[v][provider] for v in versions if provider in declared_by[v])
        out[provider] = {spec: ranges(versions, {v for v in versions if declared_by[v].get(provider) == spec})
                         for spec in specifiers}
    return out


def document(importers: dict[str, Any], providers: dict[str, Any], command: str,
             today: str | None = None) -> dict[str, Any]:
    return {
        "generator": GENERATOR,
        "command": command,
        "generated": today or datetime.date.today().isoformat(),
        "what": "keyword arguments libraries pass to trainer-level callables of trl, transformers, peft and "
                "accelerate, and the provider releases whose signatures (or dataclass fields) accept each; "
                "open: the callable takes **kwargs; extends: a base class of another provider; read from each "
                "release's wheel with ast",
        "importers": importers,
        "providers": providers,
    }


def dump(table: dict[str, Any]) -> str:
    """One use or keyword per line: a readable diff when a release is added."""
    lines = ["{"]
    for key, value in table.items():
        if key not in ("importers", "providers"):
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    lines.append('  "importers": {')
    importers = list(table["importers"].items())
    for i, (name, entry) in enumerate(importers):
        fields = [f"      {json.dumps(k)}: {json.dumps(v)}" for k, v in entry.items() if k != "uses"]
        rows = ",\n".join(f"        {json.dumps(row)}" for row in entry["uses"])
        fields.append('      "uses": [\n' + rows + "\n      ]" if rows else '      "uses": []')
        lines.append(f"    {json.dumps(name)}: {{\n" + ",\n".join(fields) + "\n    }" +
                     ("," if i < len(importers) - 1 else ""))
    lines += ["  },", '  "providers": {']
    providers = list(table["providers"].items())
    for i, (name, entry) in enumerate(providers):
        fields = [f"      {json.dumps(k)}: {json.dumps(v)}" for k, v in entry.items() if k != "callables"]
        blocks = []
        for callable_, facts in entry["callables"].items():
            parts = [f"          {json.dumps(k)}: {json.dumps(v)}" for k, v in facts.items() if k != "keywords"]
            words = ",\n".join(f"            {json.dumps(k)}: {json.dumps(v)}" for k, v in facts["keywords"].items())
            parts.append('          "keywords": {\n' + words + "\n          }" if words else '          "keywords": {}')
            blocks.append(f"        {json.dumps(callable_)}: {{\n" + ",\n".join(parts) + "\n        }")
        fields.append('      "callables": {\n' + ",\n".join(blocks) + "\n      }" if blocks else
                      '      "callables": {}')
        lines.append(f"    {json.dumps(name)}: {{\n" + ",\n".join(fields) + "\n    }" +
                     ("," if i < len(providers) - 1 else ""))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"wheel download folder (default {CACHE})")
    parser.add_argument("--threads", type=int, default=8, help="downloads at once per package (default 8)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        provider_jobs = {n: pool.submit(read_provider, n, args.cache, args.threads) for n in PROVIDERS}
        importer_jobs = {n: pool.submit(read_importer, n, args.cache, args.threads) for n in IMPORTERS}
        providers = {n: job.result() for n, job in provider_jobs.items()}
        importers = {n: job.result() for n, job in importer_jobs.items()}
    write_atomic(args.out, dump(document(importers, providers, f"python {GENERATOR}")))
    print(f"wrote {args.out} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
