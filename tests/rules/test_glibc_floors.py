"""The host's glibc (probed, or its distribution's) against the manylinux tags of each release's wheels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.glibc_floors import host_glibc, load_distro_glibc
from envdoctor.findings import Finding
from envdoctor.matrices import MatrixError, load_matrices
from envdoctor.pypi_facts import release_facts
from envdoctor.pypi_release import glibc_floors
from envdoctor.snapshot import Host, snapshot_from_dict

SCHEMA = "envdoctor.snapshot/1"
MATRICES = Path(__file__).resolve().parents[2] / "matrices"


def found(tmp_path: Path, host: dict, packages: dict) -> list[Finding]:
    snap = snapshot_from_dict({"schema": SCHEMA, "host": host, "python": {"version": "3.11"}, "packages": packages})
    return [f for f in run_check(snap, stack=None, cwd=tmp_path).findings
            if f.rule == "glibc-older-than-wheels"]


def test_a_wheel_needs_the_lowest_glibc_of_its_tags_and_a_pure_wheel_needs_none() -> None:
    assert glibc_floors(["x-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                         "x-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
                         "x-1.0-cp311-cp311-manylinux_2_28_aarch64.whl",
                         "x-1.0-cp311-cp311-win_amd64.whl"]) == {"aarch64": "2.28", "x86_64": "2.17"}
    assert glibc_floors(["x-1.0-cp36-cp36m-manylinux1_x86_64.whl"]) == {"x86_64": "2.5"}
    assert glibc_floors(["x-1.0-cp311-cp311-manylinux_2_35_x86_64.whl", "x-1.0-py3-none-any.whl"]) == {}


def test_the_distribution_names_its_glibc(tmp_path: Path) -> None:
    matrices = load_matrices(MATRICES)
    for distro, glibc in (("Ubuntu 18.04 (WSL)", "2.27"), ("Ubuntu 22.04.3 LTS", "2.35"),
                          ("CentOS Linux 7 (Core)", "2.17"), ("Debian GNU/Linux 12 (bookworm)", "2.36"),
                          ("Amazon Linux 2", "2.26"), ("Rocky Linux 8.9 (Green Obsidian)", "2.28")):
        inferred = host_glibc(Host(os="linux", distro=distro), matrices)
        assert inferred is not None and str(inferred.version) == glibc and not inferred.verified, distro
    assert host_glibc(Host(os="linux", distro="Ubuntu 99.04"), matrices) is None
    assert host_glibc(Host(os="linux", distro="Arch Linux"), matrices) is None
    probed = host_glibc(Host(os="linux", distro="Ubuntu 18.04", glibc="2.31"), matrices)
    assert probed is not None and str(probed.version) == "2.31" and probed.verified


def test_a_release_whose_wheels_need_a_newer_glibc_fails_and_names_an_earlier_one(tmp_path: Path) -> None:
    torch = release_facts("torch", "2.7.0")
    assert torch is not None and torch.glibc_for("x86_64") == "2.28"
    [finding] = found(tmp_path, {"os": "linux", "arch": "x86_64", "glibc": "2.17"}, {"torch": {"version": "2.7.0"}})
    assert finding.severity.value == "fail" and finding.verified and "GLIBC_2.28" in finding.message
    assert 'pip install "torch==' in (finding.fix or "")
    [inferred] = found(tmp_path, {"os": "linux", "distro": "CentOS Linux 7 (Core)"}, {"torch": {"version": "2.7.0"}})
    assert inferred.severity.value == "warn" and not inferred.verified and "inferred" in inferred.message
    assert not found(tmp_path, {"os": "linux", "glibc": "2.35"}, {"torch": {"version": "2.7.0"}})
    assert not found(tmp_path, {"os": "linux", "glibc": "2.17"}, {"torch": {"version": "2.7.0+cu126"}})
    assert not found(tmp_path, {"os": "windows"}, {"torch": {"version": "2.7.0"}})


def test_an_unknown_version_is_judged_on_the_newest_release(tmp_path: Path) -> None:
    [finding] = found(tmp_path, {"os": "linux", "arch": "x86_64", "glibc": "2.17"}, {"torch": {"version": None}})
    assert finding.severity.value == "warn" and not finding.verified and "pip stops at torch" in finding.message
    assert not found(tmp_path, {"os": "linux", "arch": "x86_64", "glibc": "2.39"}, {"torch": {"version": None}})


def test_a_malformed_distro_table_is_refused_naming_the_family(tmp_path: Path) -> None:
    root = tmp_path / "matrices"
    shutil.copytree(MATRICES, root)
    path = root / "distro_glibc.toml"
    path.write_text(path.read_text().replace('"20.04" = "2.31"', '"20.04" = "two"'))
    with pytest.raises(MatrixError, match=r"families\.ubuntu"):
        load_distro_glibc(load_matrices(root))


def test_a_glibc_stated_in_the_distribution_text_is_taken_as_stated() -> None:
    stated = host_glibc(Host(os="linux", distro="Debian 11 (glibc 2.31-13+deb11u6)"), load_matrices(MATRICES))
    assert stated is not None and str(stated.version) == "2.31" and stated.verified


def test_flash_attn_release_wheels_are_judged_by_the_image_they_were_built_on(tmp_path: Path) -> None:
    """flash-attn 2.8.1 on builds its GitHub wheels on ubuntu-22.04 (glibc 2.35), 2.8.0 and before on ubuntu-20.04
    (publish.yml's matrix os): on Ubuntu 20.04 (2.31) the newer wheels may need symbols it lacks."""
    focal = {"os": "linux", "arch": "x86_64", "distro": "Ubuntu 20.04"}
    [finding] = found(tmp_path, focal, {"flash-attn": {"version": "2.8.3"}})
    assert not finding.verified and "ubuntu-22.04" in finding.message and 'flash-attn==2.8.0"' in (finding.fix or "")
    [unknown] = found(tmp_path, focal, {"flash-attn": {"version": None}})
    assert "version unknown" in unknown.message
    assert not found(tmp_path, focal, {"flash-attn": {"version": "2.7.4.post1"}})
    assert not found(tmp_path, {"os": "linux", "distro": "Ubuntu 22.04"}, {"flash-attn": {"version": "2.8.3"}})
