"""Which installer a plan's script uses (pip or uv), and where the ``uv`` executable is.

Detection looks at the interpreter the script will install into: ``--venv DIR`` when it exists (a new one is
made by ``python -m venv``, which has pip), else ``$PYTHON`` or ``python3`` on PATH, the script's own default.
uv is chosen only when that interpreter has no pip and ``uv`` is on PATH; pip otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from envdoctor.plan.model import Installer

HAS_PIP_TIMEOUT_S = 10.0

@dataclass(frozen=True)
class InstallerChoice:
    installer: Installer
    reason: str  # one line for the script header: why this installer


def find_uv(search_path: str | None = None) -> str | None:
    """``uv`` on PATH (or on ``search_path``), else the one installed next to this interpreter; None if neither."""
    found = shutil.which("uv", path=search_path)
    if found or search_path is not None:
        return found
    sibling = Path(sys.executable).parent / "uv"
    return str(sibling) if sibling.is_file() and os.access(sibling, os.X_OK) else None


def choose_installer(
    asked: str | None, venv: str | None, environ: Mapping[str, str] | None = None, uv_path: str | None = None
) -> InstallerChoice:
    """``--installer pip|uv`` as given, else detected for the target interpreter (see the module docstring)."""
    if asked:
        return InstallerChoice(Installer(asked), f"--installer {asked}")
    environ = os.environ if environ is None else environ
    target = _target_interpreter(venv, environ)
    if target is None:
        return InstallerChoice(Installer.PIP, "detected: pip (the target interpreter is made by python -m venv or"
                                              " not found here; --installer uv to choose uv)")
    if _has_pip(target):
        return InstallerChoice(Installer.PIP, "detected: the target interpreter has pip (--installer uv to choose uv)")
    uv = uv_path if uv_path is not None else find_uv(environ.get("PATH"))
    if uv is None:
        return InstallerChoice(Installer.PIP, "detected: the target interpreter has no pip and uv is not on PATH;"
                                              " the script says how to add pip")
    return InstallerChoice(Installer.UV, "detected: the target interpreter has no pip and uv is on PATH"
                                         " (--installer pip to choose pip)")


def _target_interpreter(venv: str | None, environ: Mapping[str, str]) -> str | None:
    if venv is not None:
        python = Path(venv) / "bin" / "python"
        return str(python) if python.is_file() else None
    return shutil.which(environ.get("PYTHON") or "python3", path=environ.get("PATH"))


def _has_pip(python: str) -> bool:
    """Whether ``python -m pip`` would work: pip is importable by that interpreter."""
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('pip') is None)"
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, timeout=HAS_PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
