"""The emitted script, run for real: its PyPI part installs exactly the pinned versions into a throwaway venv.

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
from envdoctor.plan.model import PlanError, Target
from envdoctor.plan.verify import PYPI_PROBE_URL, reach
from envdoctor.render.script import render_script

STACK = "lora-cu128-2026.11"
INSTALLED = ("numpy", "pyarrow")  # need neither torch nor a GPU index, and install in seconds


@pytest.mark.network
@pytest.mark.slow
def test_pypi_part_of_the_script_installs_exactly_the_pins(tmp_path: Path) -> None:
    if reach(PYPI_PROBE_URL) is None:
        pytest.skip("PyPI not reachable")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        plan = build_plan(load_matrices().stack(STACK), Target(cuda="12.8", python=python)).only_steps(("packages",))
    except PlanError as error:
        pytest.skip(f"{STACK} has no plan for this Python {python}: {error}")
    (packages,) = plan.steps
    wanted = tuple(r for r in packages.requirements if r.split("==")[0] in INSTALLED)
    assert len(wanted) == len(INSTALLED), packages.requirements
    plan = dataclasses.replace(plan, steps=(dataclasses.replace(packages, requirements=wanted),))
    script = tmp_path / "install.sh"
    script.write_text(render_script(plan))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PYTHON": str(venv / "bin" / "python"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, check=True).stdout
    installed = {item["name"].lower(): item["version"] for item in json.loads(listed)}
    for requirement in wanted:
        name, version = requirement.split("==")
        assert installed.get(name) == version, (name, installed.get(name))
    assert "torch" not in installed  # nothing pulled torch in behind the constraints
