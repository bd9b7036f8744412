"""Draws a package's internal import graph (module -> modules it imports, at any depth in the file) and exits 1 on
a circle. Reads the source with ast; imports nothing of the package.

    python tools/import_graph.py src/trainer
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_name(package_dir: Path, file: Path) -> str:
    parts = file.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(file: Path, package: str, known: set[str]) -> set[str]:
    """The package's modules that a file imports (`import a.b`, `from a import b`, `from a.b import c`)."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] == package and name in known}
    return found


def build_graph(package_dir: Path) -> dict[str, set[str]]:
    files = {module_name(package_dir, file): file for file in sorted(package_dir.rglob("*.py"))}
    known = set(files)
    return {name: imports_of(file, package_dir.name, known) - {name, package_dir.name}
            for name, file in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def render(graph: dict[str, set[str]], prefix: str) -> str:
    short = {name: name.removeprefix(prefix) for name in graph}
    width = max(len(value) for value in short.values())
    return "\n".join(f"{short[name]:<{width}} -> {', '.join(sorted(short[t] for t in targets)) or '(nothing)'}"
                     for name, targets in sorted(graph.items()))


def main(argv: list[str]) -> int:
    package_dir = Path(argv[0] if argv else "src/trainer")
    graph = build_graph(package_dir)
    print(render(graph, package_dir.name + "."))
    cycle = find_cycle(graph)
    print(f"circle: {' -> '.join(cycle)}" if cycle else "no circle")
    return 1 if cycle else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
