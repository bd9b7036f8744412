"""--installer: the uv form of the script (same pins, indexes and constraints as the pip form), its detection, and
the check step's ENVDOCTOR_SOURCE (never a path of the machine that wrote the plan)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import ROOT, python_env, run_envdoctor

import envdoctor
from envdoctor.plan.installer import choose_installer, find_uv
from envdoctor.plan.model import Installer
from envdoctor.plan.source import _from_direct_url

ARGS = ("plan", "--cuda", "12.4", "--python", "3.10", "--stack", "phase1a-2.0")
UV = find_uv()


def _script(*extra: str) -> str:
    done = run_envdoctor(*ARGS, *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _commands(script: str) -> list[str]:
    """Each command of the script on one line (backslash continuations joined), comments dropped."""
    joined = script.replace(" \\\n    ", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_uv_script_has_the_same_steps_as_the_pip_script():
    pip_form, uv_form = _script("--installer", "pip"), _script("--installer", "uv")
    assert "# Installer: uv (--installer uv)" in uv_form and "# Installer: pip (--installer pip)" in pip_form
    assert "-m pip" not in uv_form
    uv_installs = [c for c in _commands(uv_form) if "pip install" in c]
    pip_installs = [c for c in _commands(pip_form) if "pip install" in c]
    assert uv_installs and all(c.lstrip().startswith('uv pip install --python "$PY" ') for c in uv_installs)
    normalized = [c.replace('uv pip install --python "$PY"', '"$PY" -m pip install') for c in uv_installs]
    assert normalized == pip_installs  # same pins, same --index-url, same -c "$CONSTRAINTS", same --only-binary
    assert "--index-url https://download.pytorch.org/whl/cu121" in uv_form
    assert 'uv pip uninstall --python "$PY" torch torchvision torchaudio triton flash-attn xformers' in uv_form
    assert uv_form.split("# Step 1")[0].count("CONSTRAINTS") == pip_form.split("# Step 1")[0].count("CONSTRAINTS")


def test_uv_script_checks_for_uv_and_makes_its_venv_with_uv():
    script = _script("--installer", "uv", "--venv", "/tmp/a venv")
    assert "if ! command -v uv >/dev/null 2>&1; then" in script
    assert "uv venv --python 3.10 -- \"$VENV\"" in script and "VENV='/tmp/a venv'" in script
    assert "ensurepip" not in script  # a uv venv has no pip, and needs none
    assert script.index("command -v uv") < script.index("uv venv")


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("extra", [("--installer", "uv"), ("--installer", "uv", "--venv", "/tmp/v"),
                                   ("--installer", "pip", "--venv", "/tmp/v")])
def test_both_forms_pass_shellcheck(tmp_path, extra):
    path = tmp_path / "install.sh"
    path.write_text(_script(*extra))
    check = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_unknown_installer_is_a_one_line_usage_error():
    done = run_envdoctor(*ARGS, "--installer", "conda")
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "--installer" in done.stderr


def test_plan_json_names_the_installer():
    done = run_envdoctor(*ARGS, "--installer", "uv", "--format", "json")
    assert json.loads(done.stdout)["installer"] == "uv"


# --- detection ------------------------------------------------------------------------------------------------


def _detected(python: Path, path: str) -> str:
    env = {**python_env(), "PYTHON": str(python), "PATH": path}
    done = subprocess.run([sys.executable, "-m", "envdoctor", *ARGS], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return next(line for line in done.stdout.splitlines() if line.startswith("# Installer:"))


@pytest.mark.skipif(UV is None, reason="uv not installed (it is in the [test] extra)")
def test_detection_picks_uv_for_a_uv_venv_and_pip_for_a_pip_venv(tmp_path):
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(tmp_path / "uv")], check=True)
    uv_python = tmp_path / "uv" / "bin" / "python"
    with_uv = os.pathsep.join([str(Path(UV).parent), os.environ.get("PATH", "")])
    without_uv = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                                 if p and not (Path(p) / "uv").exists())
    assert _detected(uv_python, with_uv).startswith("# Installer: uv (detected: the target interpreter has no pip")
    assert _detected(uv_python, without_uv).startswith("# Installer: pip (detected: the target interpreter has no pip"
                                                       " and uv is not on PATH")
    assert _detected(Path(sys.executable), with_uv).startswith("# Installer: pip (detected: the target interpreter"
                                                               " has pip")


def test_detection_for_a_venv_the_script_will_make_is_pip(tmp_path):
    choice = choose_installer(None, str(tmp_path / "new-venv"), environ={"PATH": ""}, uv_path="/usr/bin/uv")
    assert choice.installer is Installer.PIP
    assert choose_installer("uv", None).installer is Installer.UV  # asked for: no detection


# --- ENVDOCTOR_SOURCE -------------------------------------------------------------------------------------------


def test_the_check_step_names_no_path_of_this_machine():
    script = _script()
    assert str(ROOT) not in script and "/work/" not in script
    assert f"ENVDOCTOR_SOURCE=envdoctor=={envdoctor.__version__}; fi" in script


@pytest.mark.parametrize("direct_url,expected", [
    ({"url": "file:///home/me/envdoctor", "dir_info": {"editable": True}}, None),
    ({"url": "file:///tmp/envdoctor-0.1.0-py3-none-any.whl", "archive_info": {}}, None),
    ({"url": "https://github.com/o/envdoctor", "vcs_info": {"vcs": "git", "commit_id": "abc123"}},
     "envdoctor @ git+https://github.com/o/envdoctor@abc123"),
    ({"url": "https://example.org/envdoctor-0.1.0-py3-none-any.whl", "archive_info": {}},
     "envdoctor @ https://example.org/envdoctor-0.1.0-py3-none-any.whl"),
])
def test_source_is_a_requirement_any_machine_can_install(direct_url, expected):
    assert _from_direct_url(json.dumps(direct_url)) == expected
