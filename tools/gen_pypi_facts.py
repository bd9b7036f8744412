"""Regenerate ``matrices/pypi/<name>.json`` from PyPI: release dates, wheels, Requires-Python and Requires-Dist.

Usage: python tools/gen_pypi_facts.py [--only NAME ...] [--out DIR] [--config FILE] [--threads N]

For every package in ``tools/pypi_packages.toml`` (final and post releases at or above its floor):
- ``https://pypi.org/pypi/NAME/json`` gives the release list, each release's files (names, first upload time,
  yanked flags, Requires-Python);
- each release's Requires-Dist comes from the METADATA of one of its wheels, read with HTTP range requests
  (the zip's central directory and the METADATA member only, as pip's lazy wheel does): the manylinux x86_64
  wheel when there is one (torch's Requires-Dist differs per platform), else a pure-Python wheel, else any.
  The PEP 658 ``<wheel URL>.metadata`` file is tried first and used when the index serves it.
Lines that apply only to an ``extra`` are kept apart, under ``extras``, when the extra is not a development one
(dev, test, docs...), the line names a package of the tables and has a version range: what a release needs of an
optional package it uses when that is installed. Markers are kept verbatim. A release with only an sdist has
``requires: null`` (unknown): an sdist's ``*.egg-info/requires.txt`` is not read, since a setup.py may compute
its pins on the build machine (axolotl pins the torch it finds there). ``extras = false`` for a package leaves its
extras out (Unsloth's name one install variant per CUDA and torch pair, hundreds of them). ``code_floor = true``:
each release whose Requires-Python admits Python 3.9 or older is read (its pure wheel, else its sdist) for syntax a
newer Python needs, a ``X | None`` annotation run at import (``python_floor``, ``python_floor_from``). Requests run
on a few threads with retries and backoff.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import re
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import tomllib
from packaging.utils import canonicalize_name

from envdoctor.pypi_facts import PYPI_JSON_API as INDEX
from envdoctor.pypi_release import (  # the release list and METADATA reading, shared with `check --online`
    Fetch,
    ReleaseFiles,
    http_get,
    kept_versions,
    release_entry,
    release_files,
    wheel_metadata,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tools" / "pypi_packages.toml"
OUT = ROOT / "matrices" / "pypi"
GENERATOR = "tools/gen_pypi_facts.py"


# --- the lowest Python a release's code runs on ------------------------------------------------------

CODE_FLOOR_KEY = "python_floor"
# Scripts shipped inside a package that importing it never runs (weight conversion, ``python -m`` entry points).
STANDALONE_SCRIPT = re.compile(r"(^|/)(convert_[^/]*|__main__)\.py$")
# Text that may hold what code_python_floor looks for (checked before parsing; parsing every module of a large
# package takes seconds): a line with an annotation holding "|", or match, except*, type aliases, type parameters.
UNION_LINE = re.compile(r"(?::|->)[^=#]*[\w\])]\s*\|\s*[\w\[]")
NEWER_STATEMENT = re.compile(r"^\s*(?:match\s|type\s+\w|(?:def|class)\s+\w+\[)|except\s*\*", re.M)
# Python 3.8 syntax: an assignment expression (``:=``) or a positional-only marker (``/``) in a parameter list.
PYTHON38_SYNTAX = re.compile(r":=|[(,]\s*/\s*[,)]")


def _may_need_newer_python(text: str) -> bool:
    if NEWER_STATEMENT.search(text) or PYTHON38_SYNTAX.search(text):
        return True
    return any(UNION_LINE.search(line) for line in text.splitlines() if "|" in line)


def code_python_floor(modules: list[tuple[str, str]]) -> tuple[int, str] | None:
    """The lowest CPython 3 minor that can import every module of a release, judged from its syntax, and where
    that is decided (``("transformers/generation/streamers.py:38", ...)``): a ``X | Y`` union in an annotation that
    runs at definition (module or class level, no ``from __future__ import annotations``) needs 3.10, as do
    ``match`` statements; ``except*`` needs 3.11; ``type`` aliases and type parameters 3.12; an assignment
    expression (``:=``) or a positional-only parameter needs 3.8 (older Pythons cannot parse the module). None when
    nothing needs more than 3.7. Modules that do not parse here, and scripts importing the package never runs
    (``convert_*.py``, ``__main__.py``), are skipped."""
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
    if not postponed:
        found += [(10, line) for line in _runtime_union_annotations(tree.body, ast)]
    return found


def _runtime_union_annotations(body: list[Any], ast: Any) -> list[int]:
    """Lines of ``X | Y`` annotations evaluated when ``body`` (a module or class body) runs: the annotations of
    the functions defined there and its own variable annotations (function bodies run later, if ever)."""
    lines: list[int] = []
    for node in body:
        annotations: list[Any] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            every = arguments.posonlyargs + arguments.args + arguments.kwonlyargs + \
                [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
            annotations = [a.annotation for a in every] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        elif isinstance(node, ast.ClassDef):
            lines += _runtime_union_annotations(node.body, ast)
        elif isinstance(node, (ast.If, ast.Try)) and not _is_type_checking(node, ast):
            for block in (node.body, node.orelse, *[h.body for h in getattr(node, "handlers", [])]):
                lines += _runtime_union_annotations(block, ast)
        for annotation in annotations:
            if annotation is not None and any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)
                                              for n in ast.walk(annotation)):
                lines.append(annotation.lineno)
    return lines


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
    floor = code_python_floor(modules)
    if floor is None or (lower is not None and floor[0] <= lower):
        return None
    return {CODE_FLOOR_KEY: f"3.{floor[0]}", f"{CODE_FLOOR_KEY}_from": floor[1]}


# --- one package ------------------------------------------------------------------------------------


def generate(name: str, options: dict[str, Any], threads: int, fetch: Fetch = http_get,
             today: str | None = None, tabled: set[str] | None = None) -> dict[str, Any]:
    """The JSON document for one package. ``tabled``: the normalized names of every package in the tables; the
    extra-only requirements on them are kept under ``extras``."""
    index_url = INDEX.format(name=name)
    index = json.loads(fetch(index_url, None))
    floor = options.get("floor")
    requires_only = bool(options.get("requires_only", False))
    versions = kept_versions(index["releases"], floor)
    listed = [release_files(v, index["releases"][v]) for v in versions]

    def read(files: ReleaseFiles) -> tuple[str, str] | None:
        wheel = files.metadata_wheel
        if wheel is None:
            return None
        return wheel_metadata(urljoin(index_url, wheel["url"]), wheel["size"], fetch), wheel["filename"]

    def code_floor(files: ReleaseFiles) -> dict[str, str] | None:
        if not options.get("code_floor", False):
            return None
        return release_code_floor(index["releases"][files.version], files.requires_python, index_url, fetch)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        metadata = list(pool.map(read, listed))
        floors = list(pool.map(code_floor, listed))
    return {
        "package": canonicalize_name(name),
        "generator": GENERATOR,
        "generated": today or datetime.date.today().isoformat(),
        "source": {
            "releases": index_url,
            "requires": "Requires-Dist of the METADATA of the wheel named in requires_from (files listed by "
            + index_url + "), lines that apply only to an extra dropped",
            **({"extras": "the same METADATA's lines that apply only to an extra (not dev, test, docs...) and "
                "name a package of tools/pypi_packages.toml"} if tabled else {}),
            **({"python_floor": "the syntax of the .py files of the release's pure wheel (else its sdist), read "
                "with ast: the lowest Python that can import them, where above Requires-Python"}
               if options.get("code_floor") else {}),
        },
        "floor": floor,
        "requires_only": requires_only,
        "releases": {files.version: {**release_entry(files, read_from[0] if read_from else None, requires_only,
                                                     tabled if options.get("extras", True) else None,
                                                     read_from[1] if read_from else None), **(floor or {})}
                     for files, read_from, floor in zip(listed, metadata, floors, strict=True)},
    }


def dump(document: dict[str, Any]) -> str:
    """One release per line: small files with readable diffs."""
    head = {key: value for key, value in document.items() if key != "releases"}
    lines = [json.dumps(head, sort_keys=False)[:-1] + ', "releases": {']
    items = list(document["releases"].items())
    for i, (version, entry) in enumerate(items):
        lines.append(f"  {json.dumps(version)}: {json.dumps(entry, separators=(',', ':'))}"
                     + ("," if i < len(items) - 1 else ""))
    lines.append("}}")
    return "\n".join(lines) + "\n"


def tabled_names(config: Path) -> set[str]:
    """The normalized names of every package the configuration lists."""
    return {canonicalize_name(name) for name in tomllib.loads(config.read_text())["packages"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", nargs="*", default=None, help="regenerate only these packages")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    packages = tomllib.loads(args.config.read_text())["packages"]
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for name, options in packages.items():
        if args.only and name not in args.only:
            continue
        began = time.monotonic()
        document = generate(name, options, args.threads, tabled=tabled_names(args.config))
        path = args.out / f"{canonicalize_name(name)}.json"
        path.write_text(dump(document), encoding="utf-8")
        unknown = sum(1 for r in document["releases"].values() if r["requires"] is None)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {len(document['releases'])} "
              f"releases ({unknown} with unknown requirements), {time.monotonic() - began:.1f} s", flush=True)
    print(f"done in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
