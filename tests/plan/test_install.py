"""The emitted script, run for real: its PyPI part installs exactly the pinned versions into a throwaway venv,
once with pip in a ``python -m venv`` venv and once with uv in a ``uv venv`` venv (which has no pip).

Only packages that need neither torch nor a GPU index are installed (numpy and pyarrow, the pair whose versions
must hold together), so the run stays short on a CPU machine; the torch and flash-attn steps need indexes this
machine cannot reach.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envdoctor.matrices import load_matrices
from envdoctor.plan.build import build_plan
from envdoctor.plan.installer import choose_installer, find_uv
from envdoctor.plan.model import Installer, Plan, PlanError, Target
from envdoctor.plan.verify import PYPI_PROBE_URL, reach
from envdoctor.render.script import render_script

STACK = "lora-cu128-2026.11"
INSTALLED = ("numpy", "pyarrow")  # need neither torch nor a GPU index, and install in seconds
UV = find_uv()
needs_uv = pytest.mark.skipif(UV is None, reason="uv not installed (pip install uv; it is in the [test] extra)")


def _packages_plan() -> Plan:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        plan = build_plan(load_matrices().stack(STACK), Target(cuda="12.8", python=python)).only_steps(("packages",))
    except PlanError as error:
        pytest.skip(f"{STACK} has no plan for this Python {python}: {error}")
    (packages,) = plan.steps
    wanted = tuple(r for r in packages.requirements if r.split("==")[0] in INSTALLED)
    assert len(wanted) == len(INSTALLED), packages.requirements
    return dataclasses.replace(plan, steps=(dataclasses.replace(packages, requirements=wanted),))


def _make_venv(venv: Path, maker: Installer) -> Path:
    if maker is Installer.UV:
        subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return venv / "bin" / "python"


def _env(python: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(Path(UV).parent) if UV else "", os.environ.get("PATH", "")) if p)
    return {**os.environ, "PATH": path, "PYTHON": str(python), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _run(plan: Plan, python: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "install.sh"
    script.write_text(render_script(plan))
    return subprocess.run(["bash", str(script)], env=_env(python), capture_output=True, text=True, timeout=900)


def _installed(python: Path) -> dict[str, str]:
    if UV is not None:  # reads a venv with or without pip
        command = [UV, "pip", "list", "--python", str(python), "--format", "json"]
    else:
        command = [str(python), "-m", "pip", "list", "--format", "json"]
    listed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {item["name"].lower(): item["version"] for item in json.loads(listed)}


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("maker", [Installer.PIP, pytest.param(Installer.UV, marks=needs_uv)])
def test_pypi_part_of_the_script_installs_exactly_the_pins(tmp_path: Path, maker: Installer) -> None:
    """pip venv: the installer detected is pip; uv venv (no pip there): the installer detected is uv."""
    if reach(PYPI_PROBE_URL) is None:
        pytest.skip("PyPI not reachable")
    plan = _packages_plan()
    python = _make_venv(tmp_path / "venv", maker)
    choice = choose_installer(None, None, environ=_env(python))
    assert choice.installer is maker, choice.reason
    plan = dataclasses.replace(plan, installer=choice.installer, installer_reason=choice.reason)

    done = _run(plan, python, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    installed = _installed(python)
    for requirement in plan.steps[0].requirements:
        name, version = requirement.split("==")
        assert installed.get(name) == version, (name, installed.get(name))
    assert "torch" not in installed  # nothing pulled torch in behind the constraints


@needs_uv
def test_a_pip_script_in_a_uv_venv_stops_with_a_way_out(tmp_path: Path) -> None:
    python = _make_venv(tmp_path / "venv", Installer.UV)
    plan = dataclasses.replace(_packages_plan(), installer=Installer.PIP, installer_reason="--installer pip")
    done = _run(plan, python, tmp_path)
    assert done.returncode == 1
    assert "pip is missing for this interpreter" in done.stderr and "--installer uv" in done.stderr
    assert "numpy" not in _installed(python)
