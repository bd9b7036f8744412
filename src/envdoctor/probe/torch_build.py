"""torch build facts read from files in the installed torch tree; torch itself is never imported.

- ``torch/version.py``: ``__version__`` and ``cuda`` (None for CPU builds).
- C++ ABI: ``-D_GLIBCXX_USE_CXX11_ABI=0|1`` in ``share/cmake/Torch/TorchConfig.cmake`` (torch < 2.7);
  newer torch (new ABI only) dropped the flag but hard-codes ``compiled_with_cxx11_abi()`` to
  ``return True`` in ``torch/__init__.py``; older ones return ``_C._GLIBCXX_USE_CXX11_ABI`` (unknown here).
- CUDA archs: no cheap file tells them; left None (``--deep`` fills them).
"""

from __future__ import annotations

import ast
import re
from importlib import util
from pathlib import Path

from envdoctor.snapshot import TorchBuild

_CMAKE_ABI = re.compile(r"-D_GLIBCXX_USE_CXX11_ABI=([01])")
_INIT_ABI = re.compile(r"def compiled_with_cxx11_abi\(\)[^:]*:\s*(?:r?\"\"\"[^\"]*\"\"\"\s*)?return (True|False)\b")


def find_torch_dir() -> Path | None:
    """The installed ``torch`` package directory, found without importing it; None when absent."""
    try:
        spec = util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent


def probe_torch_build(torch_dir: Path | None = None) -> TorchBuild | None:
    """Version, CUDA, C++ ABI of the torch at ``torch_dir`` (default: the importable one); None when absent."""
    torch_dir = torch_dir or find_torch_dir()
    if torch_dir is None:
        return None
    assignments = read_version_py(torch_dir / "version.py")
    return TorchBuild(
        version=assignments.get("__version__"),
        cuda=assignments.get("cuda"),
        cxx11abi=read_cxx11abi(torch_dir),
        archs=None,
        cuda_none="cuda" in assignments and assignments["cuda"] is None,
    )


def read_version_py(path: Path) -> dict[str, str | None]:
    """Top-level ``name = "literal"`` assignments of torch/version.py; {} when unreadable."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return {}
    values: dict[str, str | None] = {}
    for node in tree.body:
        target, value = _assignment(node)
        if target and isinstance(value, ast.Constant) and (value.value is None or isinstance(value.value, str)):
            values[target] = value.value
    return values


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def read_cxx11abi(torch_dir: Path) -> bool | None:
    """True/False when a file in the torch tree states the ABI, else None."""
    cmake = _read(torch_dir / "share" / "cmake" / "Torch" / "TorchConfig.cmake")
    match = _CMAKE_ABI.search(cmake or "")
    if match:
        return match.group(1) == "1"
    match = _INIT_ABI.search(_read(torch_dir / "__init__.py") or "")
    if match:
        return match.group(1) == "True"
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
