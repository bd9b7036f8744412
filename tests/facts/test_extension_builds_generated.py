"""tools/gen_extension_builds.py (pyproject build requirements per tag) and the table it writes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from envdoctor.checks.extension_builds import load_extension_builds
from envdoctor.matrices import MatrixError, load_matrices

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gen_extension_builds", ROOT / "tools" / "gen_extension_builds.py")
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_extension_builds"] = gen
_spec.loader.exec_module(gen)


def test_build_requirements_naming_torch():
    assert gen.builds_against_torch('[build-system]\nrequires = ["setuptools>=61", "torch", "ninja"]\n')
    assert gen.builds_against_torch('[build-system]\nrequires = ["torch>=2.1; platform_system==\'Linux\'"]\n')
    assert not gen.builds_against_torch('[build-system]\nrequires = ["setuptools", "torchvision-helper"]\n')
    assert not gen.builds_against_torch(None)  # no pyproject.toml: pip's default isolated setuptools only


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    repo.mkdir()
    run("init", "-q")
    run("config", "user.email", "t@example.org")
    run("config", "user.name", "t")
    (repo / "setup.py").write_text("")
    run("add", ".")
    run("commit", "-qm", "old")
    run("tag", "v2.2.2")
    (repo / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools", "torch"]\n')
    run("add", ".")
    run("commit", "-qm", "new")
    run("tag", "v2.2.4")
    run("tag", "v9.9.9")  # not a release on PyPI: not read
    return repo


def test_reads_every_tag_that_is_a_pypi_release(tmp_path: Path):
    entry = gen.read_package("mamba-ssm", gen.git_dir_of(_repo(tmp_path)))
    assert entry["releases_read"] == ["2.2.2", "2.2.4"]
    assert entry["isolated_torch_build"] == ["2.2.4"]


def test_bundled_table_loads_and_names_known_releases():
    table = load_extension_builds(load_matrices())
    assert "2.2.4" in table.isolated["mamba-ssm"] and "2.2.2" not in table.isolated["mamba-ssm"]
    assert "windows" in table.precompiled["deepspeed"][0]


def test_bad_table_is_one_matrix_error(tmp_path: Path):
    root = tmp_path / "m"
    (root / "rules").mkdir(parents=True)
    (root / "stacks").mkdir()
    (root / "extension_builds.toml").write_text('[isolated_builds."x"]\nisolated_torch_build = "2.2.4"\n')
    with pytest.raises(MatrixError, match="isolated_builds.x.isolated_torch_build"):
        load_extension_builds(load_matrices(root))
