"""Regenerate ``matrices/nvcc_floors.json``: the oldest CUDA toolkit (nvcc) each release of a torch CUDA extension's
build accepts, read from the project's own build scripts.

Usage: python tools/gen_nvcc_floors.py --repo flash-attn=DIR [--repo sageattention=DIR ...] [--out FILE]

Each DIR is a clone (bare or not) of the package's repository (``REPOS`` names them). For every release tag (``vX.Y.Z``
or ``X.Y``; final releases only, and only those PyPI has when ``matrices/pypi/<package>.json`` lists its releases),
the package's build scripts (``BUILD_FILES``) at that tag are read with ``git show TAG:PATH``, never run:

- Python scripts are parsed with ``ast``: an ``if`` whose test compares the toolkit's version below a literal
  (``bare_metal_version < Version("11.6")``, ``version < (12, 0)``, ``cuda_version < 1106``,
  ``int(bare_metal_major) < 11``) and whose body raises is a floor. When the test also asks for a compute capability
  (``any(cc.startswith("8.9") ...)``) it is that architecture's floor. A floor inside an ``if`` that tests a
  command-line option (apex's ``--fmha``) holds only for that opt-in extension and is left out.
- CMake files: ``if (CUDAToolkit_VERSION VERSION_LESS X.Y)`` followed by ``message(FATAL_ERROR ...)``.

Each release's entry names its tag; the release's floor is the highest of its scripts' floors (every script
runs). Tables of packages not given with ``--repo`` are kept from the existing file. Differences from it are printed,
one line each.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from gen_extension_builds import PYPI, git, git_dir_of  # noqa: E402
from gen_extension_builds import REPOS as EXTENSION_REPOS  # noqa: E402

OUT = ROOT / "matrices" / "nvcc_floors.json"
GENERATOR = "tools/gen_nvcc_floors.py"
GENERATED = "2026-12-06"
SOURCE = "extension-setup-nvcc-floors"
REPOS = {
    **EXTENSION_REPOS,
    "sageattention": "https://github.com/thu-ml/SageAttention",
    "transformer-engine": "https://github.com/NVIDIA/TransformerEngine",
    "xformers": "https://github.com/facebookresearch/xformers",
    "apex": "https://github.com/NVIDIA/apex",
}
# The scripts a source build of the package runs (TransformerEngine: its PyTorch extension and the common library;
# the JAX and Paddle builders run only for those frameworks).
BUILD_FILES = {
    "transformer-engine": ("setup.py", "build_tools/utils.py", "build_tools/pytorch.py",
                           "transformer_engine/common/CMakeLists.txt"),
}
DEFAULT_FILES = ("setup.py",)
TAG = re.compile(r"^v?(\d+(?:\.\d+)*(?:\.post\d+)?)$")
# names of the toolkit's version in the scripts; torch's own CUDA (torch.version.cuda) is not the toolkit
TOOLKIT_NAME = re.compile(r"cuda|nvcc|bare_metal", re.IGNORECASE)
CMAKE_FLOOR = re.compile(r"^\s*if\s*\(\s*CUDAToolkit_VERSION\s+VERSION_LESS\s+([0-9]+(?:\.[0-9]+)?)\s*\)",
                         re.IGNORECASE)
ARCH_LITERAL = re.compile(r"^(?:sm_?)?(\d+)\.?(\d)?$")


@dataclass(frozen=True)
class Floor:
    """A build script stops when nvcc is older than ``version`` (for GPUs of compute capability ``arch``, "sm_89",
    when set), at ``where`` ("setup.py:NN"), with ``error`` (what it raises)."""

    version: Version
    where: str
    error: str
    arch: str | None = None


# --- reading one Python script ----------------------------------------------------------------------------------


def _text(node: ast.AST | None, names: dict[str, str]) -> str:
    """The text of a string expression: f-string parts shown as ``{expr}`` unless a module constant names them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                shown = ast.unparse(value.value)
                parts.append(names.get(shown, "{" + shown + "}"))
            else:
                parts.append(_text(value, names))
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left, names) + _text(node.right, names)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _text(node.func.value, names)
    return ""


def _raised(body: list[ast.stmt], names: dict[str, str]) -> str | None:
    """``Error: message`` of the first ``raise`` directly in ``body``; None when it raises nothing."""
    for statement in body:
        if isinstance(statement, ast.Raise):
            exc = statement.exc
            if isinstance(exc, ast.Call):
                kind = ast.unparse(exc.func)
                message = " ".join(filter(None, (_text(arg, names) for arg in exc.args)))
                return f"{kind}: {' '.join(message.split())}" if message else kind
            return ast.unparse(exc) if exc is not None else "raise"
    return None


def _version_literal(node: ast.expr) -> Version | None:
    """``Version("11.6")``/``parse("11.6")``, ``(12, 0)``, ``1106`` (major * 100 + minor) or ``11``."""
    if isinstance(node, ast.Call) and len(node.args) == 1 and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str):
        try:
            return Version(node.args[0].value)
        except InvalidVersion:
            return None
    if isinstance(node, ast.Tuple) and node.elts and all(
            isinstance(e, ast.Constant) and isinstance(e.value, int) for e in node.elts):
        return Version(".".join(str(e.value) for e in node.elts))  # type: ignore[attr-defined]
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        value = node.value
        if 1000 <= value < 10000:
            return Version(f"{value // 100}.{value % 100}")
        if 9 <= value < 100:
            return Version(f"{value}.0")
    return None


def _toolkit_below(test: ast.expr) -> Version | None:
    """The version of ``X < literal`` where X is not torch's version (``_names_toolkit`` asks whether it is the
    toolkit's)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Lt)):
        return None
    if "torch" in ast.unparse(test.left).lower():
        return None
    found = _version_literal(test.comparators[0])
    return found if found is not None and 9 <= found.major < 100 else None


def _arch_of(node: ast.expr) -> str | None:
    """"sm_89" when ``node`` asks for a compute capability: ``cc.startswith("8.9")``, ``"9.0" in ccs``."""
    for sub in ast.walk(node):
        literal = None
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == "startswith" \
                and sub.args and isinstance(sub.args[0], ast.Constant):
            literal = sub.args[0].value
        elif isinstance(sub, ast.Compare) and isinstance(sub.left, ast.Constant) \
                and isinstance(sub.ops[0], (ast.In, ast.Eq)):
            literal = sub.left.value
        if isinstance(literal, str) and (match := ARCH_LITERAL.match(literal)):
            return f"sm_{match.group(1)}{match.group(2) or ''}"
    return None


def _floor_test(test: ast.expr) -> tuple[Version, str | None] | None:
    """(version, arch) of an ``if`` test that compares the toolkit below a version, alone or and-ed with an
    architecture condition; None for any other test."""
    version = _toolkit_below(test)
    if version is not None:
        return version, None
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        versions = [v for v in map(_toolkit_below, test.values) if v is not None]
        others = [v for v in test.values if _toolkit_below(v) is None]
        arch = _arch_of(ast.BoolOp(op=ast.And(), values=others)) if others else None
        if len(versions) == 1 and arch is not None:
            return versions[0], arch
    return None


def _names_toolkit(test: ast.expr, error: str) -> bool:
    """The test names the toolkit's version (``bare_metal_version``, ``nvcc_cuda_version``), or what it raises
    speaks of CUDA (``version = cuda_version()`` ... ``if version < (12, 0): raise ...("... requires CUDA 12.0")``)."""
    return bool(TOOLKIT_NAME.search(ast.unparse(test)) or re.search(r"\bCUDA\b", error))


def _opt_in(test: ast.expr) -> bool:
    """Whether an ``if`` test asks for a command-line option (``"--fmha" in sys.argv``, ``has_flag("--fmha", ...)``):
    the code under it runs only when the user asks for that extension."""
    return any(isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value.startswith("--")
               for sub in ast.walk(test))


def _module_strings(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` constants, to show f-string messages as the script prints them."""
    found = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                and isinstance(statement.targets[0], ast.Name) and isinstance(statement.value, ast.Constant) \
                and isinstance(statement.value.value, str):
            found[statement.targets[0].id] = statement.value.value
    return found


def _nested_arch_floors(node: ast.If, version: Version, path: str, names: dict[str, str]) -> list[Floor]:
    """``if nvcc < Version("12.4"):`` whose body raises under ``if any(cc.startswith("8.9") ...)``: a floor of each
    such architecture (the ``if`` inside gives the line)."""
    floors = []
    for statement in node.body:
        arch = _arch_of(statement.test) if isinstance(statement, ast.If) else None
        error = _raised(statement.body, names) if isinstance(statement, ast.If) else None
        if arch and error and _names_toolkit(node.test, error):
            floors.append(Floor(version, f"{path}:{statement.lineno}", error, arch))
    return floors


def python_floors(source: str, path: str) -> list[Floor]:
    """Every floor of a Python build script (none when it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    names = _module_strings(tree)
    floors: list[Floor] = []

    def visit(node: ast.AST, opted: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If):
                found = _floor_test(child.test)
                error = _raised(child.body, names) if found else None
                if found and error and not opted and _names_toolkit(child.test, error):
                    floors.append(Floor(found[0], f"{path}:{child.lineno}", error, found[1]))
                elif found and found[1] is None and not opted:
                    floors.extend(_nested_arch_floors(child, found[0], path, names))
                visit_body(child.body, opted or _opt_in(child.test))
                visit_body(child.orelse, opted)
            else:
                visit(child, opted)

    def visit_body(statements: list[ast.stmt], opted: bool) -> None:
        holder = ast.Module(body=statements, type_ignores=[])
        visit(holder, opted)

    visit(tree, False)
    return floors


def cmake_floors(source: str, path: str) -> list[Floor]:
    """``if (CUDAToolkit_VERSION VERSION_LESS X.Y)`` followed within three lines by ``message(FATAL_ERROR ...)``."""
    lines = source.splitlines()
    floors = []
    for number, line in enumerate(lines, start=1):
        match = CMAKE_FLOOR.match(line)
        if not match:
            continue
        following = " ".join(lines[number:number + 3])
        fatal = re.search(r'message\s*\(\s*FATAL_ERROR\s+"([^"]*)"', following)
        if fatal:
            floors.append(Floor(Version(match.group(1)), f"{path}:{number}", f"CMake Error: {fatal.group(1)}"))
    return floors


def script_floors(source: str, path: str) -> list[Floor]:
    return cmake_floors(source, path) if path.endswith("CMakeLists.txt") else python_floors(source, path)


def release_entry(floors: list[Floor]) -> dict[str, Any] | None:
    """The table's entry for one release's floors: the highest unconditional one and the highest per architecture
    above it; None when its scripts state none."""
    plain = [f for f in floors if f.arch is None]
    top = max(plain, key=lambda f: f.version) if plain else None
    by_arch: dict[str, Floor] = {}
    for floor in floors:
        if floor.arch is not None and (top is None or floor.version > top.version) \
                and (floor.arch not in by_arch or floor.version > by_arch[floor.arch].version):
            by_arch[floor.arch] = floor
    if top is None and not by_arch:
        return None
    entry: dict[str, Any] = {}
    if top is not None:
        entry.update(min_nvcc=_short(top.version), **{"from": top.where}, error=top.error)
    if by_arch:
        ordered = sorted(by_arch, key=lambda arch: int(arch[3:]))
        entry["arch_min"] = {arch: _short(by_arch[arch].version) for arch in ordered}
        entry["arch_from"] = {arch: by_arch[arch].where for arch in ordered}
        entry["arch_error"] = {arch: by_arch[arch].error for arch in ordered}
    return entry


def _short(version: Version) -> str:
    return f"{version.major}.{version.minor}"


# --- reading a repository ---------------------------------------------------------------------------------------


def release_tags(package: str, git_dir: Path) -> dict[str, str]:
    """Release version -> tag: final releases only, and only PyPI's releases when the PyPI table lists them."""
    pypi = PYPI / f"{package}.json"
    on_pypi = set(json.loads(pypi.read_text(encoding="utf-8"))["releases"]) if pypi.exists() else None
    found: dict[str, str] = {}
    for tag in (git(git_dir, "tag", "--list") or "").split():
        match = TAG.match(tag)
        if not match:
            continue
        try:
            version = Version(match.group(1))
        except InvalidVersion:
            continue
        if version.is_prerelease or (on_pypi is not None and str(version) not in on_pypi):
            continue
        found.setdefault(str(version), tag)
    return found


def read_package(package: str, git_dir: Path) -> dict[str, Any]:
    tags = release_tags(package, git_dir)
    if not tags:
        raise SystemExit(f"{git_dir}: no release tag of {package} found")
    releases: dict[str, Any] = {}
    for version in sorted(tags, key=Version):
        floors = []
        for path in BUILD_FILES.get(package, DEFAULT_FILES):
            source = git(git_dir, "show", f"{tags[version]}:{path}")
            if source is not None:
                floors += script_floors(source, path)
        entry = release_entry(floors)
        if entry is not None:
            releases[version] = {"tag": tags[version], **entry}
    return {
        "repository": REPOS.get(package, ""),
        "commit": (git(git_dir, "rev-parse", "HEAD") or "").strip(),
        "files": list(BUILD_FILES.get(package, DEFAULT_FILES)),
        "releases_read": sorted(tags, key=Version),
        "releases": releases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", action="append", default=[], help="PACKAGE=DIR, a clone of its repository")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    old = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    packages: dict[str, Any] = dict(old.get("packages", {}))
    for item in args.repo:
        name, _, directory = item.partition("=")
        if not directory:
            parser.error(f"--repo {item!r}: expected PACKAGE=DIR")
        packages[name] = read_package(name, git_dir_of(Path(directory)))
    before = old.get("packages", {})
    for name in sorted(set(before) | set(packages)):
        was = {v: e.get("min_nvcc") for v, e in before.get(name, {}).get("releases", {}).items()}
        now = {v: e.get("min_nvcc") for v, e in packages.get(name, {}).get("releases", {}).items()}
        if was != now:
            print(f"changed: {name}: {len(was)} -> {len(now)} releases with a floor; "
                  f"{sorted(set(now.items()) - set(was.items()))[:5]}")
    command = "python tools/gen_nvcc_floors.py " + " ".join(
        f"--repo {name}=DIR" for name in sorted(packages))
    table = {
        "generator": GENERATOR,
        "command": command,
        "generated": GENERATED,
        "source": SOURCE,
        "packages": {name: packages[name] for name in sorted(packages)},
    }
    args.out.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(packages)} packages, "
          f"{sum(len(p['releases']) for p in packages.values())} releases with a floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
