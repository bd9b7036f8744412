"""Regenerate ``matrices/runtime_floors.json``: the versions of other packages that a library checks when it is
imported or first used, read from the library's own source at every release.

Usage:
    python tools/gen_runtime_floors.py [--out FILE] [--transformers-wheels] [GIT_DIR ...]

Each GIT_DIR is a bare clone of github.com/huggingface/{peft,trl,accelerate,transformers} or jax-ml/jax (its
package is told by the folder name). Release tags ``vX.Y.Z`` (``jax-vX.Y.Z`` for JAX; final releases, at or above
the floor in ``PACKAGES``) are read with ``git show TAG:PATH``. A run over some of the packages keeps the file's
entries for the others. ``--transformers-wheels`` reads transformers from its
PyPI wheels instead (the files of each release's wheel, fetched by HTTP range requests), for when no clone of
that repository is at hand; the file records which source each package came from.

Nothing is executed: each file is parsed with ``ast``. What counts as a run-time check (each kind in one
function below):

- ``dependency_versions_check``: transformers' ``pkgs_to_check_at_runtime`` (a list literal or a split string,
  with appends under ``sys.version_info`` guards kept as markers), each looked up in
  ``dependency_versions_table.deps`` and checked by ``require_version_core`` at ``import transformers``.
- ``check_peft_version(min_version=X)`` calls (transformers' PEFT integration): ``peft>=X`` at first use.
- A raise guarded by an older-version test, at first use: an ``if`` whose whole test is
  ``compare_versions("pkg", OP, "V")``, ``is_torch_version(OP, "V")``, ``is_torch_greater_or_equal("V")``,
  ``version.parse(<pkg version>) OP version.parse("V")`` or ``not is_pkg_available()`` whose ``min_version``
  parameter has a default, and whose body raises. The requirement is the negated test. Guards that apply only on
  one accelerator platform (the body of ``if is_mlu_available():`` and the like) are left out.
Feature switches (``if version >= X: use the new API``) are not checks and are not recorded.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urljoin

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "matrices" / "runtime_floors.json"
GENERATOR = "tools/gen_runtime_floors.py"


@dataclass(frozen=True)
class PackageSpec:
    """Where one library's checks live: its import name, first release read, the files holding version
    constants, and the files always parsed (others are found by the trigger words)."""

    name: str
    module: str
    floor: str
    constant_files: tuple[str, ...]
    always: tuple[str, ...] = ()
    # Functions every user of the library runs (a qualified name, or a class name ending in "."): a check in
    # one of them is "first use"; a check in any other function is a "feature" check (only its callers hit it).
    entry_points: tuple[str, ...] = ()
    tag_prefix: str = "v"  # release tags are this prefix and the version ("v4.30.0"; JAX: "jax-v0.4.30")
    kinds: tuple[str, ...] = ("dependency_versions_check", "peft_version_calls", "guarded_raises")

    def is_entry_point(self, function: str) -> bool:
        return any(function == e or (e.endswith(".") and function.startswith(e)) for e in self.entry_points)


PACKAGES = {
    "transformers": PackageSpec(
        "transformers", "transformers", "4.30.0",
        constant_files=("utils/import_utils.py", "integrations/peft.py", "utils/peft_utils.py"),
        always=("dependency_versions_check.py", "training_args.py", "integrations/peft.py", "trainer.py",
                "utils/peft_utils.py", "utils/import_utils.py"),
        # check_torch_load_is_safe runs at every torch.load: .bin weights, and a Trainer resuming its checkpoint
        entry_points=("TrainingArguments.__post_init__", "TrainingArguments._setup_devices", "PeftAdapterMixin.",
                      "check_torch_load_is_safe")),
    "peft": PackageSpec("peft", "peft", "0.3.0", constant_files=("import_utils.py",)),
    "trl": PackageSpec("trl", "trl", "0.7.0", constant_files=("import_utils.py",)),
    "accelerate": PackageSpec("accelerate", "accelerate", "0.20.0",
                              constant_files=("utils/constants.py", "utils/imports.py"),
                              entry_points=("Accelerator.__init__", "Accelerator.prepare")),
    # JAX checks the installed jaxlib at import (check_jaxlib_version): at least jax.version's
    # _minimum_jaxlib_version, and no newer than jax itself.
    "jax": PackageSpec("jax", "jax", "0.2.0", constant_files=("version.py",), tag_prefix="jax-v",
                       kinds=("jaxlib_version_check",)),
}
# Words that mark a file worth parsing (found with git grep, so most files are never read).
TRIGGERS = (r"compare_versions\(|is_torch_version\(|is_torch_greater_or_equal\(|check_peft_version\(|version\.parse\(|"
            r"Version\(|_available\(")
# Folders of a package that users do not import.
SKIPPED_DIRS = ("test_utils/", "tests/", "testing_utils", "commands/", "scripts/", "cli")
# Accelerator platforms: a check in the body of `if is_<platform>_available():` holds only there.
PLATFORM_GUARD = re.compile(
    r"^is_(torch_)?(mlu|musa|npu|xpu|hpu|sdaa|tpu|xla|neuron|ipex|mps|habana|gaudi|rocm|torch_xla|sagemaker_mp)"
    r"(_available|_enabled)?$")
NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
OPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


# --- where the files come from ----------------------------------------------------------------------


class Source(Protocol):
    url: str

    def releases(self, floor: str, prefix: str = "v") -> list[tuple[str, str]]:
        """(version, ref) pairs, oldest first (``prefix``: what a git release tag starts with)."""

    def read(self, ref: str, path: str) -> str | None:
        """The text of ``path`` (relative to the package folder) at ``ref``; None when absent."""

    def candidates(self, ref: str, module: str) -> list[str]:
        """Paths (relative to the package folder) that may hold checks."""

    def provenance(self, ref: str, prefix: str = "v") -> dict[str, str]:
        """What the newest release read is, for the ``source`` entry (``prefix``: as for ``releases``)."""


def _final(text: str, floor: str) -> Version | None:
    try:
        version = Version(text.lstrip("v"))
    except InvalidVersion:
        return None
    return version if not version.is_prerelease and not version.is_devrelease and version >= Version(floor) else None


class GitTags:
    """Release tags of a bare git clone."""

    def __init__(self, git_dir: Path, module: str) -> None:
        self.git_dir, self.module = git_dir, module
        self.url = f"https://github.com/{_repo_of(git_dir)}"
        self._prefix: dict[str, str] = {}
        self._batch: subprocess.Popen[bytes] | None = None

    def _git(self, *args: str) -> str | None:
        done = subprocess.run(["git", "--git-dir", str(self.git_dir), *args], capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else None

    def releases(self, floor: str, prefix: str = "v") -> list[tuple[str, str]]:
        tags = (self._git("tag") or "").split()
        found = {str(v): tag for tag in tags
                 if tag.startswith(prefix) and (v := _final(tag[len(prefix):], floor)) is not None}
        return sorted(found.items(), key=lambda item: Version(item[0]))

    def _package_dir(self, ref: str) -> str:
        if ref not in self._prefix:
            listing = self._git("ls-tree", "--name-only", ref, f"src/{self.module}/") or ""
            self._prefix[ref] = f"src/{self.module}/" if listing.strip() else f"{self.module}/"
        return self._prefix[ref]

    def read(self, ref: str, path: str) -> str | None:
        if self._batch is None:  # one `git cat-file --batch` serves every read
            self._batch = subprocess.Popen(["git", "--git-dir", str(self.git_dir), "cat-file", "--batch"],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._batch.stdin is not None and self._batch.stdout is not None
        self._batch.stdin.write(f"{ref}:{self._package_dir(ref)}{path}\n".encode())
        self._batch.stdin.flush()
        header = self._batch.stdout.readline().decode().split()
        if len(header) != 3 or header[1] != "blob":
            return None
        data = self._batch.stdout.read(int(header[2]) + 1)[:-1]
        return data.decode("utf-8", errors="replace")

    def candidates(self, ref: str, module: str) -> list[str]:
        prefix = self._package_dir(ref)
        listing = self._git("grep", "-l", "-E", TRIGGERS, ref, "--", f"{prefix}*.py") or ""
        return [line.split(":", 1)[1][len(prefix):] for line in listing.splitlines() if ":" in line]

    def provenance(self, ref: str, prefix: str = "v") -> dict[str, str]:
        commit = (self._git("rev-parse", f"{ref}^{{commit}}") or "").strip()
        return {"url": self.url, "read": f"git tags {prefix}*, files at each tag", "newest_tag": ref, "commit": commit}


class PyPIWheels:
    """The files of each release's wheel on PyPI, read by HTTP range requests (no full download)."""

    def __init__(self, name: str, always: tuple[str, ...]) -> None:
        from envdoctor import pypi_release  # noqa: PLC0415 - the HTTP reader `check --online` and the PyPI facts use

        self.pypi = pypi_release
        self.name, self.always = name, always
        self.url = f"https://pypi.org/pypi/{name}/json"
        self.index = json.loads(self.pypi.http_get(self.url))
        self._open: tuple[str, zipfile.ZipFile] | None = None

    def releases(self, floor: str, prefix: str = "v") -> list[tuple[str, str]]:
        kept = [v for v in self.pypi.kept_versions(self.index["releases"], floor) if _final(v, floor) is not None]
        return [(v, v) for v in kept]

    def _wheel(self, ref: str) -> zipfile.ZipFile:
        if self._open is None or self._open[0] != ref:
            wheel = self.pypi.metadata_wheel(self.index["releases"][ref])
            remote = self.pypi.RangeFile(urljoin(self.url, wheel["url"]), wheel["size"], self.pypi.http_get)
            self._open = (ref, zipfile.ZipFile(remote))  # type: ignore[arg-type]
        return self._open[1]

    def read(self, ref: str, path: str) -> str | None:
        try:
            return self._wheel(ref).read(f"{self.name}/{path}").decode("utf-8")
        except KeyError:
            return None

    def candidates(self, ref: str, module: str) -> list[str]:
        return list(self.always)

    def provenance(self, ref: str, prefix: str = "v") -> dict[str, str]:
        wheel = self.pypi.metadata_wheel(self.index["releases"][ref])
        return {"url": self.url, "read": "files of each release's wheel", "newest_release": ref,
                "newest_wheel": wheel["filename"], "sha256": wheel.get("digests", {}).get("sha256", "")}


def _repo_of(git_dir: Path) -> str:
    """``/work/.mirror/huggingface+peft/repo`` -> ``huggingface/peft``."""
    for part in reversed(git_dir.resolve().parts):
        if "+" in part:
            return part.replace("+", "/", 1)
    return git_dir.resolve().name.removesuffix(".git")


# --- reading one release ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    """One requirement a release checks at run time."""

    requires: str  # PEP 508
    file: str  # path inside the package, e.g. transformers/dependency_versions_check.py
    when: str  # "import"; "first use" (a function runs it whenever called); "feature" (only under `condition`)
    error: str  # what the user sees when it fails
    function: str = ""  # where the check runs: "TrainingArguments._setup_devices"; "" at module level
    condition: str = ""  # for "feature": the tests (as written) under which the check runs

    def as_json(self) -> dict[str, str]:
        out = {"requires": self.requires, "file": self.file, "when": self.when, "error": self.error}
        if self.function:
            out["function"] = self.function
        if self.condition:
            out["condition"] = self.condition
        return out


class Release:
    """The parsed files of one release, with its module-level string constants."""

    def __init__(self, source: Source, spec: PackageSpec, ref: str) -> None:
        self.source, self.spec, self.ref = source, spec, ref
        self.trees: dict[str, ast.Module | None] = {}
        self.constants: dict[str, str] = {}
        self.unparsed: list[str] = []
        for path in spec.constant_files:
            tree = self.tree(path)
            if tree is not None:
                for name, value in _string_constants(tree).items():
                    self.constants.setdefault(name, value)

    def tree(self, path: str) -> ast.Module | None:
        if path not in self.trees:
            text = self.source.read(self.ref, path)
            try:
                self.trees[path] = ast.parse(text) if text is not None else None
            except SyntaxError:
                self.unparsed.append(path)
                self.trees[path] = None
        return self.trees[path]

    def value(self, node: ast.expr, local: dict[str, str]) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return local.get(node.id, self.constants.get(node.id))
        return None

    def text(self, node: ast.expr | None, local: dict[str, str]) -> str:
        """A message as the user reads it: string parts joined, names of known constants filled in."""
        if node is None:
            return ""
        if isinstance(node, ast.JoinedStr):
            parts = []
            for part in node.values:
                if isinstance(part, ast.FormattedValue):
                    known = self.value(part.value, local)
                    parts.append(known if known is not None else "{" + ast.unparse(part.value) + "}")
                else:
                    parts.append(self.text(part, local))
            return "".join(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.text(node.left, local) + self.text(node.right, local)
        known = self.value(node, local)
        return known if known is not None else ast.unparse(node)


def _string_constants(tree: ast.Module) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) and node.value is not None else []
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            for target in targets:
                if isinstance(target, ast.Name):
                    out[target.id] = value.value
    return out


def _dict_constant(tree: ast.Module, name: str) -> dict[str, str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = ast.literal_eval(node.value)
            return {str(k): str(v) for k, v in value.items()}
    return {}


# --- the kinds of checks ----------------------------------------------------------------------------


def dependency_versions_check(release: Release) -> list[Floor]:
    """transformers' import-time ``require_version_core(deps[pkg])`` for each of ``pkgs_to_check_at_runtime``."""
    path = "dependency_versions_check.py"
    check, table = release.tree(path), release.tree("dependency_versions_table.py")
    if check is None or table is None:
        return []
    deps = _dict_constant(table, "deps")
    checked: list[tuple[str, str]] = []  # (package, marker)
    for node, marker in _top_level_with_markers(check.body, ""):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pkgs_to_check_at_runtime"
                                                for t in node.targets):
            checked += [(name, marker) for name in _name_list(node.value)]
        elif (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
              and ast.unparse(node.value.func) == "pkgs_to_check_at_runtime.append" and node.value.args):
            checked += [(name, marker) for name in _name_list(ast.List(elts=node.value.args))]
    module = release.spec.module
    out = []
    for name, marker in checked:
        if name == "python" or name not in deps:  # python: Requires-Python says it
            continue
        line = deps[name] + (f"; {marker}" if marker else "")
        written = Requirement(line).name  # a table entry that is not PEP 508 stops the generator
        out.append(Floor(line, f"{module}/{path}", "import",
                         f"ImportError: {deps[name]} is required for a normal functioning of this module, "
                         f"but found {written}=={{installed}}"))
    return out


def _top_level_with_markers(body: list[ast.stmt], marker: str) -> Iterator[tuple[ast.stmt, str]]:
    """Module statements, descending into ``if sys.version_info < (3, 8):`` blocks as a python_version marker."""
    for node in body:
        if isinstance(node, ast.If):
            inner = _python_marker(node.test)
            if inner is not None:
                yield from _top_level_with_markers(node.body, f"{marker} and {inner}" if marker else inner)
            continue
        yield node, marker


def _python_marker(test: ast.expr) -> str | None:
    if (isinstance(test, ast.Compare) and ast.unparse(test.left) == "sys.version_info" and len(test.ops) == 1
            and type(test.ops[0]) in OPS and isinstance(test.comparators[0], ast.Tuple)):
        version = ".".join(str(ast.literal_eval(e)) for e in test.comparators[0].elts[:2])
        return f'python_version {OPS[type(test.ops[0])]} "{version}"'
    return None


def _name_list(node: ast.expr) -> list[str]:
    if isinstance(node, ast.List | ast.Tuple):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "split"
            and isinstance(node.func.value, ast.Constant)):
        return str(node.func.value.value).split()
    return []


def peft_version_calls(release: Release) -> list[Floor]:
    """``check_peft_version(min_version=X)``: PEFT integration entry points refuse an older peft."""
    helper = release.tree("utils/peft_utils.py")
    message = ""
    if helper is not None:
        for node in ast.walk(helper):
            if isinstance(node, ast.FunctionDef) and node.name == "check_peft_version":
                raises = [n for n in ast.walk(node) if isinstance(n, ast.Raise) and "compatible" in ast.unparse(n)]
                message = _raise_text(release, raises[0], {}) if raises else ""
    out = []
    for path in release.source.candidates(release.ref, release.spec.module):
        tree = release.tree(path)
        if tree is None:
            continue
        local = _string_constants(tree)
        for function, node in _calls(tree, "check_peft_version"):
            args = [k.value for k in node.keywords if k.arg == "min_version"] + node.args[:1]
            version = release.value(args[0], local) if args else None
            if version:
                text = message.replace("{min_version}", version) or f"peft>={version} is required"
                entry = release.spec.is_entry_point(function)
                out.append(Floor(f"peft>={version}", f"{release.spec.module}/{path}", "first use" if entry else
                                 "feature", text, function, "" if entry else f"{function}() is called"))
    return out


def _calls(tree: ast.Module, name: str) -> Iterator[tuple[str, ast.Call]]:
    """Calls of ``name`` with the qualified name of the function they are in (outermost first)."""

    def visit(node: ast.AST, scope: str) -> Iterator[tuple[str, ast.Call]]:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            scope = f"{scope}.{node.name}" if scope else node.name
        if isinstance(node, ast.Call) and ast.unparse(node.func).rsplit(".", 1)[-1] == name:
            yield scope, node
        for child in ast.iter_child_nodes(node):
            yield from visit(child, scope)

    yield from visit(tree, "")


def guarded_raises(release: Release) -> list[Floor]:
    """Raises under a test that the installed version of a package is too old (or too new)."""
    out = []
    availability = _availability_defaults(release)
    for path in release.source.candidates(release.ref, release.spec.module):
        if path.startswith(SKIPPED_DIRS):
            continue
        tree = release.tree(path)
        if tree is None:
            continue
        local = _string_constants(tree)
        for guard in _unguarded_ifs(tree):
            node = guard.node
            raises = [n for n in node.body if isinstance(n, ast.Raise)]
            if not raises:
                continue
            found = _failing_test(release, node.test, local, availability)
            if found is None:
                continue
            package, op, version = found
            requirement = _requirement(package, NEGATE[op], version)
            if requirement is None:
                print(f"{release.spec.name} {release.ref}: {path}: unreadable version test {ast.unparse(node.test)}",
                      file=sys.stderr)
                continue
            conditions = guard.conditions
            if guard.function and not release.spec.is_entry_point(guard.function):
                conditions = (f"{guard.function}() is called", *conditions)
            when = "feature" if conditions else "first use" if guard.function else "import"
            out.append(Floor(requirement, f"{release.spec.module}/{path}", when,
                             _raise_text(release, raises[0], local), guard.function, " and ".join(conditions)))
    return out


def _requirement(package: str, op: str, version: str) -> str | None:
    """``torch>=2.1.0a0`` for a test on ``2.1.0a0+32f93b1``: a local label orders after its public version, and
    PEP 440 allows it only with == and !=, so an ordered comparison keeps the public part."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    text = version if op in ("==", "!=") or not parsed.local else parsed.public
    return f"{canonicalize_name(package)}{op}{text}"


def _raise_text(release: Release, node: ast.Raise, local: dict[str, str]) -> str:
    exc = node.exc
    if isinstance(exc, ast.Call):
        kind = ast.unparse(exc.func).rsplit(".", 1)[-1]
        return f"{kind}: {release.text(exc.args[0], local) if exc.args else ''}".strip()
    return ast.unparse(exc) if exc is not None else "raise"


def _availability_defaults(release: Release) -> dict[str, tuple[str, str]]:
    """``is_accelerate_available(min_version=ACCELERATE_MIN_VERSION)`` -> {"is_accelerate_available":
    ("accelerate", "0.21.0")}: availability tests that also refuse an older version."""
    out: dict[str, tuple[str, str]] = {}
    for path in release.spec.constant_files:
        tree = release.tree(path)
        if tree is None:
            continue
        for node in tree.body:
            if not (isinstance(node, ast.FunctionDef) and re.fullmatch(r"is_\w+_available", node.name)):
                continue
            arguments = node.args.args[-len(node.args.defaults):] if node.args.defaults else []
            for argument, default in zip(arguments, node.args.defaults, strict=True):
                version = release.value(default, {})
                if argument.arg == "min_version" and version:
                    package = node.name.removeprefix("is_").removesuffix("_available")
                    out[node.name] = (package.replace("_", "-"), version)
    return out


@dataclass(frozen=True)
class Guard:
    """An ``if`` statement, the function it is in (``""`` at module level) and the tests that must hold to reach
    it (the normal side of platform tests left out)."""

    node: ast.If
    function: str
    conditions: tuple[str, ...]


def _unguarded_ifs(tree: ast.Module) -> Iterator[Guard]:
    """Every ``if`` except those inside a branch that runs only on one accelerator platform."""

    def visit(node: ast.AST, scope: str, conditions: tuple[str, ...], on_platform: bool) -> Iterator[Guard]:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            inner = f"{scope}.{node.name}" if scope else node.name
            for child in node.body:
                yield from visit(child, inner, conditions, on_platform)
            return
        if isinstance(node, ast.If):
            polarity = _platform_polarity(node.test)
            if not on_platform:
                yield Guard(node, scope, conditions)
            test = ast.unparse(node.test)
            body = conditions if polarity is not None else (*conditions, test)
            orelse = conditions if polarity is not None else (*conditions, f"not ({test})")
            for child in node.body:
                yield from visit(child, scope, body, on_platform or polarity is True)
            for child in node.orelse:
                yield from visit(child, scope, orelse, on_platform or polarity is False)
            return
        for child in ast.iter_child_nodes(node):
            yield from visit(child, scope, conditions, on_platform)

    yield from visit(tree, "", (), False)


def _platform_polarity(test: ast.expr) -> bool | None:
    """True for ``is_npu_available()``, False for ``not is_npu_available()``, None for any other test."""
    negated = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
    call = test.operand if negated else test  # type: ignore[union-attr]
    if isinstance(call, ast.Call) and PLATFORM_GUARD.match(ast.unparse(call.func).rsplit(".", 1)[-1]):
        return not negated
    return None


def _failing_test(release: Release, test: ast.expr, local: dict[str, str],
                  availability: dict[str, tuple[str, str]]) -> tuple[str, str, str] | None:
    """(package, op, version) when the test is true exactly when ``package op version`` holds."""
    negated = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
    inner = test.operand if negated else test  # type: ignore[union-attr]
    found: tuple[str, str, str] | None = None
    if isinstance(inner, ast.Call):
        name = ast.unparse(inner.func).rsplit(".", 1)[-1]
        values = [release.value(a, local) for a in inner.args]
        if name == "compare_versions" and len(values) == 3 and None not in values and values[1] in NEGATE:
            found = (values[0], values[1], values[2])  # type: ignore[assignment]
        elif name == "is_torch_version" and len(values) == 2 and None not in values and values[0] in NEGATE:
            found = ("torch", values[0], values[1])  # type: ignore[assignment]
        elif name == "is_torch_greater_or_equal" and values and values[0] is not None:
            found = ("torch", ">=", values[0])  # type: ignore[assignment]
        elif name in availability and negated:
            explicit = [release.value(a, local) for a in inner.args] + [
                release.value(k.value, local) for k in inner.keywords if k.arg == "min_version"]
            package, default = availability[name]
            version = explicit[0] if explicit else default
            return (package, "<", version) if version else None  # "not available" includes "too old"
    elif isinstance(inner, ast.Compare) and len(inner.ops) == 1 and type(inner.ops[0]) in OPS:
        package = _version_of(inner.left)
        version = _parsed_literal(release, inner.comparators[0], local)
        if package and version:
            found = (package, OPS[type(inner.ops[0])], version)
    if found is None:
        return None
    if negated:
        return (found[0], NEGATE[found[1]], found[2])
    return found


def _version_of(node: ast.expr) -> str | None:
    """The package whose installed version ``version.parse(X)`` parses: ``transformers.__version__``,
    ``importlib.metadata.version("peft")``."""
    if isinstance(node, ast.Call) and ast.unparse(node.func).rsplit(".", 1)[-1] in ("parse", "Version") and node.args:
        node = node.args[0]
    if isinstance(node, ast.Attribute) and node.attr == "__version__" and isinstance(node.value, ast.Name):
        return node.value.id
    if (isinstance(node, ast.Call) and ast.unparse(node.func).rsplit(".", 1)[-1] == "version" and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return node.args[0].value
    return None


def _parsed_literal(release: Release, node: ast.expr, local: dict[str, str]) -> str | None:
    if isinstance(node, ast.Call) and ast.unparse(node.func).rsplit(".", 1)[-1] in ("parse", "Version") and node.args:
        return release.value(node.args[0], local)
    return None


# --- the document -----------------------------------------------------------------------------------


def jaxlib_version_check(release: Release) -> list[Floor]:
    """JAX's ``check_jaxlib_version`` at import: jaxlib at least ``_minimum_jaxlib_version`` (jax/version.py), and,
    where the function also compares jaxlib with jax, no newer than this jax."""
    for path in ("_src/lib/__init__.py", "lib/__init__.py"):
        text = release.source.read(release.ref, path)
        if text is not None and "check_jaxlib_version(" in text:
            break
    else:
        return []
    minimum = release.constants.get("_minimum_jaxlib_version")
    version = release.ref[len(release.spec.tag_prefix):]
    file = f"{release.spec.module}/{path}"
    floors = []
    if minimum:
        floors.append(Floor(f"jaxlib>={minimum}", file, "import", f"RuntimeError: jaxlib is version {{installed}}, "
                            f"but this version of jax requires version >= {minimum}."))
    if "is newer than and" in text:
        floors.append(Floor(f"jaxlib<={version}", file, "import", "RuntimeError: jaxlib version {installed} is newer "
                            f"than and incompatible with jax version {version}. Please update your jax and/or jaxlib "
                            "packages."))
    return floors


KINDS = {"dependency_versions_check": dependency_versions_check, "peft_version_calls": peft_version_calls,
         "guarded_raises": guarded_raises, "jaxlib_version_check": jaxlib_version_check}


def release_floors(source: Source, spec: PackageSpec, ref: str) -> tuple[list[Floor], list[str]]:
    release = Release(source, spec, ref)
    found = [floor for kind in spec.kinds for floor in KINDS[kind](release)]
    unique: dict[tuple[str, str, str, str], Floor] = {}
    for floor in found:  # one entry per requirement and file, unless each of its places is its own feature
        unique.setdefault((floor.requires, floor.file, floor.when, floor.condition), floor)
    return sorted(unique.values(), key=lambda f: (f.when != "import", f.requires, f.file)), release.unparsed


def generate(sources: dict[str, Source], today: str | None = None) -> dict[str, object]:
    with ThreadPoolExecutor(max_workers=len(sources) or 1) as pool:  # git and HTTP waits overlap
        done = dict(zip(sources, pool.map(lambda item: _package(*item), sources.items()), strict=True))
    return {
        "generator": GENERATOR,
        "generated": today or datetime.date.today().isoformat(),
        "what": "requirements each release checks at import or first use, read from its own source with ast",
        "packages": done,
    }


def _package(name: str, source: Source) -> dict[str, object]:
    """Every release of one library, read from ``source``."""
    spec = PACKAGES[name]
    releases = source.releases(spec.floor, spec.tag_prefix)
    entries: dict[str, list[dict[str, str]]] = {}
    unparsed: dict[str, list[str]] = {}
    for version, ref in releases:
        floors, skipped = release_floors(source, spec, ref)
        entries[version] = [f.as_json() for f in floors]
        if skipped:
            unparsed[version] = skipped
    print(f"{name}: {len(releases)} releases, {sum(len(v) for v in entries.values())} floors", flush=True)
    provenance = source.provenance(releases[-1][1], spec.tag_prefix) if releases else {"url": source.url}
    return {"source": {**provenance, "read_on": datetime.date.today().isoformat()},
            "floor": spec.floor, "unparsed": unparsed, "releases": entries}


def dump(document: dict[str, object]) -> str:
    """One release per line: a readable diff when a release is added."""
    lines = ["{"]
    head = {k: v for k, v in document.items() if k != "packages"}
    lines += [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    lines.append('  "packages": {')
    packages = document["packages"]
    assert isinstance(packages, dict)
    for i, (name, entry) in enumerate(packages.items()):
        lines.append(f"    {json.dumps(name)}: {{")
        for key in ("source", "floor", "unparsed"):
            lines.append(f"      {json.dumps(key)}: {json.dumps(entry[key])},")
        lines.append('      "releases": {')
        items = list(entry["releases"].items())
        for j, (version, floors) in enumerate(items):
            lines.append(f"        {json.dumps(version)}: {json.dumps(floors)}" + ("," if j < len(items) - 1 else ""))
        lines.append("      }")
        lines.append("    }" + ("," if i < len(packages) - 1 else ""))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("git_dirs", nargs="*", type=Path, help="bare clones; the package is told by the path")
    parser.add_argument("--transformers-wheels", action="store_true", help="read transformers from PyPI wheels")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    sources: dict[str, Source] = {}
    for git_dir in args.git_dirs:
        name = _repo_of(git_dir).rsplit("/", 1)[-1]
        if name not in PACKAGES:
            parser.error(f"{git_dir}: not one of {', '.join(PACKAGES)} (the path names the repository)")
        sources[name] = GitTags(git_dir, PACKAGES[name].module)
    if args.transformers_wheels:
        sources.setdefault("transformers", PyPIWheels("transformers", PACKAGES["transformers"].always))
    if not sources:
        parser.error("give at least one git dir or --transformers-wheels")
    ordered = {name: sources[name] for name in PACKAGES if name in sources}
    document = generate(ordered)
    # a run over some of the packages keeps what the file holds for the others
    existing = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {"packages": {}}
    kept = existing["packages"]
    for entry in kept.values():  # the day each kept package was read: the file's date when it was written
        entry["source"].setdefault("read_on", existing["generated"])
    read = document["packages"]
    assert isinstance(read, dict)
    document["packages"] = {name: read.get(name, kept.get(name)) for name in PACKAGES if name in read or name in kept}
    args.out.write_text(dump(document), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
