"""Load and validate the knowledge in ``matrices/`` (TOML): sources, rules, stacks, smoke patterns, policy.

Files load lazily, one at a time, so ``check`` reads only what it needs. Every problem in a file is
collected and reported at once, each line naming the file and the key.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor import table_cache
from envdoctor.errors import EnvdoctorError
from envdoctor.finding_ids import FindingIdError, registration_problem, registry
from envdoctor.findings import Category, Severity
from envdoctor.snapshot import normalize_name

RULE_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
FACT_PATHS = frozenset(
    {
        "python.version", "host.os", "host.arch", "host.glibc", "nvidia.driver", "nvidia.cuda_driver",
        "nvidia.error", "gpu.count", "gpu.min_cc", "gpu.max_cc", "gpu.min_memory_mib", "torch.cuda",
        "torch.variant", "torch.cxx11abi",
    }
)
FACT_PREFIXES = ("packages.", "vcs.")
SPECIAL_VALUES = frozenset({"absent", "present"})
SPEC_START = ("<", ">", "=", "!", "~")
SOURCE_FILES = ("sources.toml", "sources_facts.toml")


class MatrixError(EnvdoctorError, ValueError):
    """A matrix file that cannot be used; the message lists every problem with its file and key."""


class StackNotFoundError(MatrixError):
    """No bundled stack has that name; the message names the nearest ones."""


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    url: str | None = None
    accessed: str | None = None
    confidence: str | None = None


Condition = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Rule:
    """A condition rule: when every fact in ``when`` holds (and one group of ``any``, if given), report."""

    id: str
    category: Category
    severity: Severity
    message: str
    when: Condition = ()
    any: tuple[Condition, ...] = ()
    components: tuple[str, ...] = ()
    fix: str | None = None
    sources: tuple[str, ...] = ()
    origin: str = ""


@dataclass(frozen=True)
class StackVariant:
    """One torch CUDA variant of a stack: ``cuda`` is the torch local tag (``cu121``)."""

    cuda: str
    torch: str
    packages: dict[str, str] = field(default_factory=dict)  # extra exact pins (torchvision, flash-attn)

    def pins(self) -> dict[str, str]:
        return {"torch": self.torch, **self.packages}


@dataclass(frozen=True)
class VcsPackage:
    url: str
    ref: str
    extras: tuple[str, ...] = ()
    optional: bool = False
    note: str | None = None


@dataclass(frozen=True)
class Stack:
    name: str
    summary: str
    python: str | None = None
    cpu_ok: bool = False
    sources: tuple[str, ...] = ()
    min_compute_capability: str | None = None
    min_memory_mib: int | None = None
    requires: dict[str, str] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict)
    variants: tuple[StackVariant, ...] = ()
    vcs: dict[str, VcsPackage] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    origin: str = ""

    def variant(self, cuda: str | None) -> StackVariant | None:
        """The variant for torch local tag ``cuda``, else the first (the default), else None."""
        for variant in self.variants:
            if variant.cuda == cuda:
                return variant
        return self.variants[0] if self.variants else None


@dataclass(frozen=True)
class SmokePattern:
    id: str
    pattern: re.Pattern[str]
    category: Category
    cause: str
    fix: str
    sources: tuple[str, ...] = ()


# --- TOML reading -----------------------------------------------------------------------------


@functools.cache  # asked for by every table lookup; the answer cannot change within a process
def default_root() -> Path:
    """The bundled matrices: ``envdoctor/matrices`` in a wheel, ``<repo>/matrices`` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "matrices", here.parent.parent / "matrices"):
        if (candidate / "rules").is_dir():
            return candidate
    return here / "matrices"


def read_json_object(path: Path, errors: list[str], generator: str) -> dict[str, Any] | None:
    """A generated table's JSON object, or None with the problem (and the ``generator`` that remakes it) appended to
    ``errors``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        errors.append(f"{path}: not readable JSON: {exc}; regenerate it with {generator}")
        return None
    if not isinstance(raw, dict):
        errors.append(f"{path}: top level: expected an object")
        return None
    return raw


T = TypeVar("T")


def parsed_or_raise(path: Path, parse: Callable[[Path, list[str]], T | None]) -> T | None:
    """``parse(path, errors)`` of a table file; None when the file is absent; MatrixError naming every problem."""
    if not path.exists():
        return None
    errors: list[str] = []
    table = parse(path, errors)
    if errors or table is None:
        raise MatrixError("\n".join(errors))
    return table


Problem = Callable[[str, str], None]  # (key, problem) of a table being parsed


def generated_json_table(path: Path, generator: str,
                         parse: Callable[[dict[str, Any], Problem], T | None]) -> T | None:
    """A generated JSON table: ``parse(raw, error)`` of its top-level object, each ``error(key, problem)`` worded
    "PATH: KEY: PROBLEM; regenerate it with GENERATOR"; None when the file is absent; MatrixError naming every
    problem (an unreadable file included)."""
    def read(where: Path, errors: list[str]) -> T | None:
        raw = read_json_object(where, errors, generator)
        if raw is None:
            return None

        def error(key: str, problem: str) -> None:
            errors.append(f"{where}: {key}: {problem}; regenerate it with {generator}")

        return parse(raw, error)

    return parsed_or_raise(path, read)


def read_toml(path: Path, errors: list[str]) -> dict[str, Any]:
    """Parsed TOML, or {} with the problem appended to ``errors``."""
    try:
        return table_cache.load_toml(path)
    except OSError as exc:
        errors.append(f"{path}: cannot read ({exc.strerror or exc})")
    except table_cache.TOMLDecodeError as exc:
        errors.append(f"{path}: invalid TOML: {exc}")
    except UnicodeDecodeError:
        errors.append(f"{path}: not UTF-8 text")
    return {}


class _Checker:
    """Collects problems for one file; each message names the file and the dotted key."""

    def __init__(self, path: Path, errors: list[str]) -> None:
        self.path = path
        self.errors = errors

    def error(self, key: str, problem: str) -> None:
        self.errors.append(f"{self.path}: {key}: {problem}")

    def keys(self, table: dict[str, Any], allowed: set[str], where: str, required: set[str] = frozenset()) -> None:
        for key in sorted(set(table) - allowed):
            self.error(f"{where}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required - set(table)):
            self.error(f"{where}{key}", "missing required key")

    def text(self, table: dict[str, Any], key: str, where: str, default: str | None = None) -> str | None:
        value = table.get(key, default)
        if value is not None and not isinstance(value, str):
            self.error(f"{where}{key}", f"should be a string, got {type(value).__name__}")
            return default
        return value

    def strings(self, table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            self.error(f"{where}{key}", "should be a list of strings")
            return ()
        return tuple(value)

    def enum(self, table: dict[str, Any], key: str, kind: type, where: str) -> Any:
        value = table.get(key)
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(m.value for m in kind)
            self.error(f"{where}{key}", f"{value!r} is not one of: {choices}")
            return None

    def registered(self, finding_id: str, category: Category, severity: Severity, where: str) -> None:
        """The id is in the finding id registry for this category and severity (envdoctor/finding_ids.toml)."""
        try:
            problem = registration_problem(finding_id, category, severity)
        except FindingIdError as exc:
            problem = str(exc).splitlines()[0]
        if problem is not None:
            self.error(f"{where}id", problem)

    def specifier(self, value: Any, key: str) -> str | None:
        if not isinstance(value, str):
            self.error(key, f"should be a version specifier string, got {type(value).__name__}")
            return None
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            self.error(key, f"bad version specifier {value!r} (write e.g. '>=2,<3')")
            return None
        return value

    def version(self, value: Any, key: str) -> str | None:
        if not isinstance(value, str):
            self.error(key, f"should be a version string, got {type(value).__name__}")
            return None
        try:
            Version(value)
        except InvalidVersion:
            self.error(key, f"bad version {value!r}")
            return None
        return value


# --- rules ------------------------------------------------------------------------------------

RULE_KEYS = {
    "id", "category", "severity", "components", "when", "any", "message", "fix", "sources", "note",
}


def parse_rules(path: Path, errors: list[str], seen: dict[str, str]) -> list[Rule]:
    """Rules of one ``rules/*.toml`` file; ``seen`` maps rule id -> where it was first defined."""
    data = read_toml(path, errors)
    check = _Checker(path, errors)
    check.keys(data, {"rule"}, "")
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        check.error("rule", "should be an array of tables ([[rule]])")
        return []
    rules = [_parse_rule(check, raw, i, seen) for i, raw in enumerate(raw_rules)]
    return [r for r in rules if r is not None]


def _parse_rule(check: _Checker, raw: Any, index: int, seen: dict[str, str]) -> Rule | None:
    where = f"rule[{index}]."
    if not isinstance(raw, dict):
        check.error(where.rstrip("."), "should be a table")
        return None
    before = len(check.errors)
    check.keys(raw, RULE_KEYS, where, required={"id", "category", "severity", "message"})
    rule_id = check.text(raw, "id", where) or ""
    if rule_id and not RULE_ID.match(rule_id):
        check.error(f"{where}id", f"{rule_id!r} is not kebab-case (a-z, 0-9, '-')")
    if rule_id in seen:
        check.error(f"{where}id", f"duplicate rule id {rule_id!r} (first defined in {seen[rule_id]})")
    seen.setdefault(rule_id, str(check.path))
    when = _parse_condition(check, raw.get("when", {}), f"{where}when")
    groups = raw.get("any", [])
    if not isinstance(groups, list):
        check.error(f"{where}any", "should be a list of tables")
        groups = []
    any_of = tuple(_parse_condition(check, g, f"{where}any[{i}]") for i, g in enumerate(groups))
    if not when and not any_of:
        check.error(f"{where}when", "a rule needs 'when' or 'any'")
    message = check.text(raw, "message", where) or ""
    _check_placeholders(check, message, f"{where}message")
    rule = Rule(
        id=rule_id,
        category=check.enum(raw, "category", Category, where),
        severity=check.enum(raw, "severity", Severity, where),
        message=message,
        when=when,
        any=any_of,
        components=tuple(normalize_name(c) for c in check.strings(raw, "components", where)),
        fix=check.text(raw, "fix", where),
        sources=check.strings(raw, "sources", where),
        origin=str(check.path),
    )
    if len(check.errors) == before:
        check.registered(rule_id, rule.category, rule.severity, where)
    return rule if len(check.errors) == before else None


def _parse_condition(check: _Checker, raw: Any, where: str) -> Condition:
    if not isinstance(raw, dict):
        check.error(where, "should be a table of fact path = condition")
        return ()
    out = []
    for path, expected in raw.items():
        key = f'{where}."{path}"'
        if not is_fact_path(path):
            check.error(key, f"unknown fact path (use packages.<name>, vcs.<name> or one of {sorted(FACT_PATHS)})")
            continue
        if isinstance(expected, str) and expected.startswith(SPEC_START):
            check.specifier(expected, key)
        elif not isinstance(expected, (str, bool, int, list)):
            check.error(key, f"condition should be a specifier, a string or a bool, got {type(expected).__name__}")
            continue
        out.append((path, tuple(expected) if isinstance(expected, list) else expected))
    return tuple(out)


def is_fact_path(path: str) -> bool:
    return path in FACT_PATHS or (path.startswith(FACT_PREFIXES) and len(path.split(".", 1)[1]) > 0)


def _check_placeholders(check: _Checker, message: str, where: str) -> None:
    for name in re.findall(r"\{([^{}]*)\}", message):
        if not is_fact_path(name):
            check.error(where, f"placeholder {{{name}}} is not a fact path")


# --- stacks -----------------------------------------------------------------------------------

STACK_KEYS = {"name", "summary", "python", "cpu_ok", "sources", "notes", "gpu", "requires", "pins", "variants", "vcs"}
VCS_KEYS = {"url", "ref", "extras", "optional", "note"}


def parse_stack(path: Path, errors: list[str]) -> Stack | None:
    """One ``stacks/<name>.toml``; None (with errors appended) when it is unusable."""
    data = read_toml(path, errors)
    if not data:
        return None
    check = _Checker(path, errors)
    before = len(errors)
    check.keys(data, STACK_KEYS, "", required={"name", "summary"})
    name = check.text(data, "name", "") or path.stem
    if name != path.stem:
        check.error("name", f"{name!r} differs from the file name {path.stem!r}")
    python = data.get("python")
    gpu = _table(check, data, "gpu")
    check.keys(gpu, {"min_compute_capability", "min_memory_mib"}, "gpu.")
    cpu_ok = data.get("cpu_ok", False)
    if not isinstance(cpu_ok, bool):
        check.error("cpu_ok", "should be true or false")
    stack = Stack(
        name=name,
        summary=check.text(data, "summary", "") or "",
        python=check.specifier(python, "python") if python is not None else None,
        cpu_ok=cpu_ok is True,
        sources=check.strings(data, "sources", ""),
        min_compute_capability=_optional_version(check, gpu, "min_compute_capability", "gpu."),
        min_memory_mib=_optional_int(check, gpu, "min_memory_mib", "gpu."),
        requires=_package_specs(check, _table(check, data, "requires"), "requires", check.specifier),
        pins=_package_specs(check, _table(check, data, "pins"), "pins", check.version),
        variants=_variants(check, data.get("variants", [])),
        vcs=_vcs(check, _table(check, data, "vcs")),
        notes=check.strings(data, "notes", ""),
        origin=str(path),
    )
    return stack if len(errors) == before else None


def _table(check: _Checker, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        check.error(key, "should be a table")
        return {}
    return value


def _optional_version(check: _Checker, table: dict[str, Any], key: str, where: str) -> str | None:
    return check.version(table[key], f"{where}{key}") if key in table else None


def _optional_int(check: _Checker, table: dict[str, Any], key: str, where: str) -> int | None:
    value = table.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        check.error(f"{where}{key}", "should be an integer")
        return None
    return value


def _package_specs(check: _Checker, table: dict[str, Any], where: str, validate: Any) -> dict[str, str]:
    out = {}
    for name, value in table.items():
        if validate(value, f"{where}.{name}") is not None:
            out[normalize_name(name)] = value
    return out


def _variants(check: _Checker, raw: Any) -> tuple[StackVariant, ...]:
    if not isinstance(raw, list):
        check.error("variants", "should be an array of tables ([[variants]])")
        return ()
    out = []
    for i, entry in enumerate(raw):
        where = f"variants[{i}]."
        if not isinstance(entry, dict) or not {"cuda", "torch"} <= set(entry):
            check.error(where.rstrip("."), "needs at least 'cuda' (torch local tag) and 'torch'")
            continue
        cuda = check.text(entry, "cuda", where) or ""
        if not re.match(r"^(cu\d+|cpu)$", cuda):
            check.error(f"{where}cuda", f"{cuda!r} is not a torch local tag like 'cu121' or 'cpu'")
        extra = {k: v for k, v in entry.items() if k not in ("cuda", "torch")}
        pins = _package_specs(check, extra, f"variants[{i}]", check.version)
        out.append(StackVariant(cuda=cuda, torch=check.version(entry["torch"], f"{where}torch") or "", packages=pins))
    return tuple(out)


def _vcs(check: _Checker, table: dict[str, Any]) -> dict[str, VcsPackage]:
    out = {}
    for name, entry in table.items():
        where = f"vcs.{name}."
        if not isinstance(entry, dict):
            check.error(where.rstrip("."), "should be a table with url and ref")
            continue
        check.keys(entry, VCS_KEYS, where, required={"url", "ref"})
        out[normalize_name(name)] = VcsPackage(
            url=check.text(entry, "url", where) or "",
            ref=check.text(entry, "ref", where) or "",
            extras=check.strings(entry, "extras", where),
            optional=entry.get("optional", False) is True,
            note=check.text(entry, "note", where),
        )
    return out


# --- sources, smoke, policy -------------------------------------------------------------------


def parse_sources(path: Path, errors: list[str]) -> dict[str, Source]:
    data = read_toml(path, errors)
    check = _Checker(path, errors)
    check.keys(data, {"sources"}, "")
    out = {}
    for source_id, entry in _table(check, data, "sources").items():
        where = f"sources.{source_id}."
        if not isinstance(entry, dict):
            check.error(where.rstrip("."), "should be a table")
            continue
        check.keys(entry, {"title", "url", "accessed", "confidence", "note"}, where, required={"title"})
        out[source_id] = Source(
            id=source_id,
            title=check.text(entry, "title", where) or "",
            url=check.text(entry, "url", where),
            accessed=check.text(entry, "accessed", where),
            confidence=check.text(entry, "confidence", where),
        )
    return out


def parse_smoke(path: Path, errors: list[str]) -> tuple[SmokePattern, ...]:
    data = read_toml(path, errors)
    check = _Checker(path, errors)
    check.keys(data, {"pattern"}, "")
    out = []
    for i, entry in enumerate(data.get("pattern", [])):
        where = f"pattern[{i}]."
        check.keys(entry, {"id", "match", "category", "cause", "fix", "sources"}, where,
                   required={"id", "match", "category", "cause", "fix"})
        try:
            regex = re.compile(entry.get("match", ""))
        except re.error as exc:
            check.error(f"{where}match", f"bad regular expression: {exc}")
            continue
        category = check.enum(entry, "category", Category, where)
        if category is None:
            continue
        check.registered(check.text(entry, "id", where) or "", category, Severity.FAIL, where)
        out.append(SmokePattern(
            id=check.text(entry, "id", where) or "", pattern=regex, category=category,
            cause=check.text(entry, "cause", where) or "", fix=check.text(entry, "fix", where) or "",
            sources=check.strings(entry, "sources", where),
        ))
    return tuple(out)


@dataclass(frozen=True)
class Policy:
    """Score penalties per severity and the category of a failed stack requirement per package."""

    penalties: dict[Severity, int]
    requirement_category: dict[str, Category]
    unverified_penalty: int = 0
    torch_extensions: tuple[str, ...] = ()
    runtime_compiled: tuple[str, ...] = ()  # extensions that build CUDA ops with nvcc at run time
    # runtime-compiled extension -> packages of pre-built kernels that spare it the compilation
    kernel_caches: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ptxas_at_run: tuple[str, ...] = ()  # packages whose XLA runs ptxas at run time
    ptxas_wheels: tuple[str, ...] = ()  # pip wheels that install a ptxas
    # extensions whose setup.py builds CUDA ops only when torch has CUDA (a CPU-only build beside a CPU torch)
    cuda_if_torch_cuda: tuple[str, ...] = ()
    # extensions released in step with torch: each release built against the torch minor of its own number
    torch_minor_paired: tuple[str, ...] = ()


def parse_policy(path: Path, errors: list[str]) -> Policy:
    data = read_toml(path, errors)
    check = _Checker(path, errors)
    check.keys(data, {"penalty", "requirement_category", "extensions", "ptxas"}, "")
    penalties = {}
    for name, points in _table(check, data, "penalty").items():
        if name == "unverified" or name in {s.value for s in Severity}:
            if not isinstance(points, int):
                check.error(f"penalty.{name}", "should be an integer")
            elif name != "unverified":
                penalties[Severity(name)] = points
        else:
            check.error(f"penalty.{name}", "unknown severity (ok, info, warn, fail, unverified)")
    categories = {}
    for name, value in _table(check, data, "requirement_category").items():
        category = check.enum({"c": value}, "c", Category, f"requirement_category.{name}:")
        if category is not None:
            categories[normalize_name(name)] = category
    unverified = data.get("penalty", {}).get("unverified", 0)
    extensions_table = _table(check, data, "extensions")
    check.keys(extensions_table, {"torch_bound", "runtime_compiled", "kernel_caches", "cuda_if_torch_cuda",
                                  "torch_minor_paired"}, "extensions.")
    extensions = check.strings(extensions_table, "torch_bound", "extensions.")
    runtime = check.strings(extensions_table, "runtime_compiled", "extensions.")
    caches = {}
    for name, packages in _table(check, extensions_table, "kernel_caches").items():
        if isinstance(packages, list) and all(isinstance(p, str) for p in packages):
            caches[normalize_name(name)] = tuple(normalize_name(p) for p in packages)
        else:
            check.error(f"extensions.kernel_caches.{name}", "should be a list of package names")
    ptxas = _table(check, data, "ptxas")
    check.keys(ptxas, {"at_run", "wheels"}, "ptxas.")
    return Policy(
        penalties, categories, unverified if isinstance(unverified, int) else 0,
        tuple(normalize_name(e) for e in extensions), tuple(normalize_name(e) for e in runtime), caches,
        tuple(normalize_name(n) for n in check.strings(ptxas, "at_run", "ptxas.")),
        tuple(normalize_name(n) for n in check.strings(ptxas, "wheels", "ptxas.")),
        tuple(normalize_name(n) for n in check.strings(extensions_table, "cuda_if_torch_cuda", "extensions.")),
        tuple(normalize_name(n) for n in check.strings(extensions_table, "torch_minor_paired", "extensions.")),
    )


# --- declared requirements of releases, backend rules --------------------------------------------

DATA_SHAPES = ("fixed", "packed")
BACKENDS = ("hf", "unsloth")


@dataclass(frozen=True)
class DeclaredRelease:
    """The Requires-Dist lines one release of a package declares (copied from its wheel METADATA)."""

    package: str
    version: str
    requires: tuple[str, ...]
    source: str
    extras: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendRule:
    """``--backend auto``: use ``backend`` for ``data_shape`` (only when it is installed, if ``when_installed``)."""

    data_shape: str
    backend: str
    when_installed: bool
    source: str
    note: str | None = None


def parse_declared(path: Path, errors: list[str]) -> list[DeclaredRelease]:
    """The ``[[release]]`` tables of one ``declared/*.toml`` file; every line must be a PEP 508 requirement."""
    data = read_toml(path, errors)
    check = _Checker(path, errors)
    check.keys(data, {"sources", "release"}, "")
    out = []
    for i, raw in enumerate(data.get("release", [])):
        where = f"release[{i}]."
        check.keys(raw, {"package", "version", "source", "requires", "extras"}, where,
                   required={"package", "version", "source", "requires"})
        requires = _requirements(check, check.strings(raw, "requires", where), f"{where}requires")
        extras = {name: _requirements(check, check.strings(raw.get("extras", {}), name, f"{where}extras."),
                                      f"{where}extras.{name}") for name in raw.get("extras", {})}
        version = check.version(raw.get("version"), f"{where}version")
        out.append(DeclaredRelease(normalize_name(check.text(raw, "package", where) or ""), version or "",
                                   requires, check.text(raw, "source", where) or "", extras))
    return out


def _requirements(check: _Checker, lines: tuple[str, ...], where: str) -> tuple[str, ...]:
    from packaging.requirements import InvalidRequirement, Requirement  # only when declared/*.toml is read

    for i, line in enumerate(lines):
        try:
            Requirement(line)
        except InvalidRequirement as exc:
            check.error(f"{where}[{i}]", f"not a PEP 508 requirement: {exc}")
    return lines


def parse_backends(path: Path, errors: list[str]) -> tuple[BackendRule, ...]:
    data = read_toml(path, errors)
    check = _Checker(path, errors)
    check.keys(data, {"sources", "rule"}, "")
    out = []
    for i, raw in enumerate(data.get("rule", [])):
        where = f"rule[{i}]."
        check.keys(raw, {"data_shape", "backend", "when_installed", "source", "note"}, where,
                   required={"data_shape", "backend", "source"})
        shape, backend = raw.get("data_shape"), raw.get("backend")
        if shape not in DATA_SHAPES:
            check.error(f"{where}data_shape", f"{shape!r} is not one of: {', '.join(DATA_SHAPES)}")
        if backend not in BACKENDS:
            check.error(f"{where}backend", f"{backend!r} is not one of: {', '.join(BACKENDS)}")
        out.append(BackendRule(str(shape), str(backend), raw.get("when_installed", False) is True,
                               check.text(raw, "source", where) or "", check.text(raw, "note", where)))
    return tuple(out)


def backend_rules(root: Path | str | None = None) -> tuple[BackendRule, ...]:
    """The measured ``--backend auto`` rules (``matrices/backends.toml``), in order. Raises MatrixError."""
    return load_matrices(root).backends


# --- the Matrices object ----------------------------------------------------------------------


class Matrices:
    """Lazy view of one matrices folder. Each part is read and validated on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, Any] = {}

    def _load(self, key: str, loader: Any) -> Any:
        if key not in self._cache:
            errors: list[str] = []
            value = loader(errors)
            if errors:
                raise MatrixError("\n".join(errors))
            self._cache[key] = value
        return self._cache[key]

    @property
    def rules(self) -> tuple[Rule, ...]:
        def load(errors: list[str]) -> tuple[Rule, ...]:
            seen: dict[str, str] = {}
            files = sorted((self.root / "rules").glob("*.toml"))
            return tuple(rule for path in files for rule in parse_rules(path, errors, seen))

        return self._load("rules", load)

    @property
    def sources(self) -> dict[str, Source]:
        return self._load("sources", lambda errors: _all_sources(self.root, errors))

    @property
    def smoke(self) -> tuple[SmokePattern, ...]:
        return self._load("smoke", lambda errors: parse_smoke(self.root / "smoke.toml", errors))

    @property
    def policy(self) -> Policy:
        return self._load("policy", lambda errors: parse_policy(self.root / "policy.toml", errors))

    @property
    def declared(self) -> dict[tuple[str, str], DeclaredRelease]:
        """(normalized package, version) -> the requirements that release declares (``declared/*.toml``)."""
        def load(errors: list[str]) -> dict[tuple[str, str], DeclaredRelease]:
            files = sorted((self.root / "declared").glob("*.toml"))
            return {(r.package, r.version): r for path in files for r in parse_declared(path, errors)}

        return self._load("declared", load)

    @property
    def backends(self) -> tuple[BackendRule, ...]:
        path = self.root / "backends.toml"
        return self._load("backends", lambda errors: parse_backends(path, errors) if path.exists() else ())

    def stack_names(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "stacks").glob("*.toml"))

    def stack(self, name: str) -> Stack:
        """The bundled stack ``name``. Raises StackNotFoundError naming the nearest, MatrixError if broken."""
        names = self.stack_names()
        if name not in names:
            near = difflib.get_close_matches(name, names, n=3, cutoff=0.3) or names
            raise StackNotFoundError(f"no stack named {name!r}; nearest: {', '.join(near)}")
        return self._load(f"stack:{name}", lambda errors: parse_stack(self.root / "stacks" / f"{name}.toml", errors))

    def stacks(self) -> list[Stack]:
        return [self.stack(name) for name in self.stack_names()]

    def table(self, name: str) -> dict[str, Any]:
        """A raw facts/data table (``models``, ``cuda`` ...) as parsed TOML; {} when the file is absent."""
        path = self.root / f"{name}.toml"
        if not path.exists():
            return {}
        return self._load(f"table:{name}", lambda errors: read_toml(path, errors))


def load_matrices(root: Path | str | None = None) -> Matrices:
    """The matrices at ``root`` (default: the bundled ones). Raises MatrixError if the folder is missing.

    Files are read when first used; a broken file raises MatrixError listing every problem in it.
    """
    path = Path(root) if root is not None else default_root()
    if not (path / "rules").is_dir() or not (path / "stacks").is_dir():
        raise MatrixError(f"{path}: not a matrices folder (needs rules/ and stacks/)")
    return Matrices(path)


def validate_matrix_files(root: Path | str | None = None) -> list[str]:
    """Every problem in the rules, stacks, smoke, policy, models, NumPy ABI, declared and backends files, as
    'path: key: problem' lines ([] when all is well). envdoctor.table_validation adds the other tables' checks."""
    path = Path(root) if root is not None else default_root()
    errors: list[str] = []
    sources = _all_sources(path, errors)
    seen: dict[str, str] = {}
    rules = [r for f in sorted((path / "rules").glob("*.toml")) for r in parse_rules(f, errors, seen)]
    stacks = [s for f in sorted((path / "stacks").glob("*.toml")) if (s := parse_stack(f, errors))]
    for optional, parser in (("smoke.toml", parse_smoke), ("policy.toml", parse_policy)):
        if (path / optional).exists():
            parser(path / optional, errors)
    for name in ("models",):
        if (path / f"{name}.toml").exists():
            read_toml(path / f"{name}.toml", errors)
    if (path / "numpy_abi.toml").exists():
        from envdoctor.numpy_abi import parse_numpy_abi  # numpy_abi does not import this module

        parse_numpy_abi(read_toml(path / "numpy_abi.toml", errors), path / "numpy_abi.toml", errors, sources or None)
    for declared in sorted((path / "declared").glob("*.toml")):
        parse_declared(declared, errors)
    if (path / "backends.toml").exists():
        parse_backends(path / "backends.toml", errors)
    if sources:
        errors.extend(_unknown_sources(rules, stacks, sources))
        errors.extend(_unregistered_sources(sources))
    return errors


def _all_sources(root: Path, errors: list[str]) -> dict[str, Source]:
    """sources.toml plus sources_facts.toml (the facts tables' own sources), when present."""
    out: dict[str, Source] = {}
    for name in SOURCE_FILES:
        if (root / name).exists():
            out.update(parse_sources(root / name, errors))
    return out


def _unregistered_sources(sources: dict[str, Source]) -> list[str]:
    """Sources the finding id registry cites that these matrices do not define (or the registry's own problems)."""
    try:
        entries = registry()
    except FindingIdError as exc:
        return str(exc).splitlines()
    return [f"envdoctor/finding_ids.toml: [{entry.id}].sources: source {source_id!r} is not in sources.toml"
            for entry in entries.values() for source_id in entry.sources if source_id not in sources]


def _unknown_sources(rules: list[Rule], stacks: list[Stack], sources: dict[str, Source]) -> list[str]:
    out = []
    for item in [*rules, *stacks]:
        label = f"rule {item.id!r}" if isinstance(item, Rule) else "sources"
        for source_id in item.sources:
            if source_id not in sources:
                out.append(f"{item.origin}: {label}: source {source_id!r} is not in sources.toml")
    return out
