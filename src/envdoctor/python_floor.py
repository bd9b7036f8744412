"""The lowest Python a release's own code imports on, read from its syntax (never run).

Shared by ``tools/gen_pypi_facts.py`` (the bundled tables) and ``check --online`` (a package the tables lack): a
release whose Requires-Python admits an older Python than its code needs fails at import there, with a
``SyntaxError`` or ``TypeError: unsupported operand type(s) for |`` / ``'type' object is not subscriptable``.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any
from urllib.parse import urljoin

from envdoctor.pypi_release import Fetch, http_get

CODE_FLOOR_KEY = "python_floor"
# Scripts shipped inside a package that importing it never runs (weight conversion, ``python -m`` entry points).
STANDALONE_SCRIPT = re.compile(r"(^|/)(convert_[^/]*|__main__)\.py$")
# Text that may hold what code_python_floor looks for (checked before parsing; parsing every module of a large
# package takes seconds): a line with an annotation holding "|", or match, except*, type aliases, type parameters.
UNION_LINE = re.compile(r"(?::|->)[^=#]*[\w\])]\s*\|\s*[\w\[]")
NEWER_STATEMENT = re.compile(r"^\s*(?:match\s|type\s+\w|(?:def|class)\s+\w+\[)|except\s*\*", re.M)
# Builtin types subscripted as generics (PEP 585, Python 3.9).
BUILTIN_GENERICS = frozenset({"list", "dict", "tuple", "set", "frozenset", "type"})
BUILTIN_GENERIC_TEXT = re.compile(r"\b(?:list|dict|tuple|set|frozenset|type)\[")
# Python 3.8 syntax: an assignment expression (``:=``) or a positional-only marker (``/``) in a parameter list.
PYTHON38_SYNTAX = re.compile(r":=|[(,]\s*/\s*[,)]")


def _may_need_newer_python(text: str) -> bool:
    if NEWER_STATEMENT.search(text) or PYTHON38_SYNTAX.search(text) or BUILTIN_GENERIC_TEXT.search(text):
        return True
    return any(UNION_LINE.search(line) for line in text.splitlines() if "|" in line)


def code_python_floor(modules: list[tuple[str, str]]) -> tuple[int, str] | None:
    """The lowest CPython 3 minor that can import every module of a release, judged from its syntax, and where
    that is decided (``("transformers/generation/streamers.py:38", ...)``): a ``X | Y`` union in an annotation that
    runs at definition (module or class level, no ``from __future__ import annotations``) needs 3.10, as do
    ``match`` statements; ``list[str]`` and other subscripted builtins run there need 3.9; ``except*`` needs 3.11;
    ``type`` aliases and type parameters 3.12; an assignment expression (``:=``) or a positional-only parameter
    needs 3.8 (older Pythons cannot parse the module). None when nothing needs more than 3.7. Modules that do not
    parse here, and scripts importing the package never runs (``convert_*.py``, ``__main__.py``), are skipped."""
    import ast

    best: tuple[int, str] | None = None
    for path, text in modules:
        if STANDALONE_SCRIPT.search(path) or not _may_need_newer_python(text):
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        for minor, line in _module_floors(tree, ast):
            if best is None or minor > best[0]:
                best = (minor, f"{path}:{line}")
    return best


def _module_floors(tree: Any, ast: Any) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    postponed = any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
                    and any(alias.name == "annotations" for alias in node.names) for node in tree.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.NamedExpr) or (isinstance(node, ast.arguments) and node.posonlyargs):
            found.append((8, node.lineno if isinstance(node, ast.NamedExpr) else node.posonlyargs[0].lineno))
        elif isinstance(node, ast.Match):
            found.append((10, node.lineno))
        elif type(node).__name__ == "TryStar":
            found.append((11, node.lineno))
        elif type(node).__name__ == "TypeAlias" or getattr(node, "type_params", None):
            found.append((12, node.lineno))
    return found + _runtime_floors(tree.body, ast, postponed)


def _runtime_floors(body: list[Any], ast: Any, postponed: bool) -> list[tuple[int, int]]:
    """(minor, line) of what runs when ``body`` (a module or class body) runs and needs a newer Python: ``X | Y``
    annotations (3.10) and subscripted builtins such as ``list[str]`` (3.9, PEP 585) in the annotations of the
    functions defined there and in its own variable annotations, unless ``from __future__ import annotations``
    postpones them (``postponed``); subscripted builtins in its assignments' values. Function bodies run later, if
    ever, and are not read."""
    found: list[tuple[int, int]] = []
    for node in body:
        annotations: list[Any] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            every = arguments.posonlyargs + arguments.args + arguments.kwonlyargs + \
                [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
            annotations = [a.annotation for a in every] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
            found += [(9, line) for line in _builtin_generics(node.value, ast)]
        elif isinstance(node, ast.Assign):
            found += [(9, line) for line in _builtin_generics(node.value, ast)]
        elif isinstance(node, ast.ClassDef):
            found += _runtime_floors(node.body, ast, postponed)
        elif isinstance(node, (ast.If, ast.Try)) and not _is_type_checking(node, ast):
            for block in (node.body, node.orelse, *[h.body for h in getattr(node, "handlers", [])]):
                found += _runtime_floors(block, ast, postponed)
        for annotation in annotations if not postponed else ():
            if annotation is None:
                continue
            if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(annotation)):
                found.append((10, annotation.lineno))
            found += [(9, line) for line in _builtin_generics(annotation, ast)]
    return found


def _builtin_generics(node: Any, ast: Any) -> list[int]:
    """Lines of ``list[...]``, ``dict[...]`` and the like in ``node`` (Python 3.8 raises 'type' object is not
    subscriptable)."""
    if node is None:
        return []
    return [n.lineno for n in ast.walk(node) if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name)
            and n.value.id in BUILTIN_GENERICS]


def _is_type_checking(node: Any, ast: Any) -> bool:
    test = getattr(node, "test", None)
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def python_lower_bound(requires_python: str | None) -> int | None:
    """The lowest CPython 3 minor a Requires-Python admits (``>=3.9`` -> 9); None when it sets no lower bound."""
    minors = [int(m) for m in re.findall(r">=?\s*3\.(\d+)", requires_python or "")]
    return max(minors) if minors else None


def wheel_modules(url: str, size: int, fetch: Fetch = http_get) -> list[tuple[str, str]]:
    """(path, text) of every ``.py`` file of the wheel at ``url``."""
    with zipfile.ZipFile(io.BytesIO(fetch(url, None))) as wheel:
        return [(name, wheel.read(name).decode("utf-8", "replace")) for name in wheel.namelist()
                if name.endswith(".py")]


def sdist_modules(url: str, fetch: Fetch = http_get) -> list[tuple[str, str]]:
    """(path, text) of every ``.py`` file of a ``.tar.gz`` source archive, tests and examples left out."""
    import tarfile

    out = []
    with tarfile.open(fileobj=io.BytesIO(fetch(url, None)), mode="r:gz") as archive:
        for member in archive:
            parts = member.name.split("/")
            if member.isfile() and member.name.endswith(".py") and not {"tests", "test", "examples", "benchmarks"} \
                    & set(parts) and parts[-1] != "setup.py":
                out.append((member.name, (archive.extractfile(member) or io.BytesIO()).read().decode("utf-8",
                                                                                                   "replace")))
    return out


def release_code_floor(files: list[dict[str, Any]], requires_python: str | None, index_url: str,
                       fetch: Fetch = http_get) -> dict[str, str] | None:
    """``{"python_floor": "3.10", "python_floor_from": "<file:line>"}`` when the release's pure-Python code needs a
    newer Python than its Requires-Python admits; None otherwise (or when it has no pure wheel nor sdist)."""
    lower = python_lower_bound(requires_python)
    if lower is not None and lower >= 10:
        return None  # read only where the declared floor admits Python 3.9 or older (what X | Y annotations break)
    pure = [f for f in files if f["filename"].endswith("-none-any.whl")]
    sdists = [f for f in files if f.get("packagetype") == "sdist" and f["filename"].endswith(".tar.gz")]
    if pure:
        modules = wheel_modules(urljoin(index_url, pure[0]["url"]), pure[0]["size"], fetch)
    elif sdists and not any(f["filename"].endswith(".whl") for f in files):
        modules = sdist_modules(urljoin(index_url, sdists[0]["url"]), fetch)
    else:
        return None
    return modules_code_floor(modules, requires_python)


def modules_code_floor(modules: list[tuple[str, str]], requires_python: str | None) -> dict[str, str] | None:
    """``release_code_floor`` of modules already read."""
    lower = python_lower_bound(requires_python)
    if lower is not None and lower >= 10:
        return None
    floor = code_python_floor(modules)
    if floor is None or (lower is not None and floor[0] <= lower):
        return None
    return {CODE_FLOOR_KEY: f"3.{floor[0]}", f"{CODE_FLOOR_KEY}_from": floor[1]}


