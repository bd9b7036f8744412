"""The GPU code in packages' PyPI wheels (matrices/wheel_archs.json) against the GPUs, on the table as generated."""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from envdoctor.checker import run_check
from envdoctor.checks.wheel_archs import (
    FatbinGroup,
    GpuCode,
    _default_target_only,
    load_wheel_archs,
    load_wheel_archs_fully,
)
from envdoctor.matrices import MatrixError, load_matrices
from envdoctor.table_validation import validate_matrices

from .synth import snapshot

BLACKWELL = {"name": "NVIDIA RTX PRO 5000 Blackwell", "compute_capability": "12.0"}
V100 = {"name": "Tesla V100", "compute_capability": "7.0"}
REPO = Path(__file__).resolve().parents[2]


LINUX = {"os": "linux", "arch": "x86_64"}


def _rules(tmp_path: Path, packages: dict, gpu: dict, host: dict = LINUX) -> dict[str, tuple[str, bool]]:
    snap = snapshot(packages, nvidia={"gpus": [gpu]}, host=host)
    return {f.components[0]: (f.severity.value, f.verified) for f in run_check(snap, cwd=tmp_path).findings
            if f.rule == "wheel-lacks-gpu-code"}


def _group(sass: tuple[str, ...], ptx: tuple[str, ...], count: int) -> FatbinGroup:
    return FatbinGroup(frozenset(map(Version, sass)), frozenset(map(Version, ptx)), count)


def test_a_cubin_runs_on_its_major_at_or_above_its_minor_and_ptx_on_anything_newer():
    group = _group(("8.0", "9.0"), ("9.0",), 1)
    assert group.runs_on(Version("8.6")) and group.runs_on(Version("12.0"))  # 8.6 by the sm_80 cubin, 12.0 by PTX
    assert not group.runs_on(Version("7.5"))
    assert not _group(("8.0",), (), 1).runs_on(Version("9.0"))
    assert _default_target_only(["5.2"], ["5.2"]) and not _default_target_only(["8.0"], ["8.0"])


def test_a_library_runs_where_its_general_kernels_do_not_its_arch_specific_ones():
    general = _group(("7.0", "7.5", "8.0", "8.9", "9.0"), (), 29)  # the project's arch list
    hopper, ptx = _group(("9.0",), (), 18), _group(("8.0", "9.0"), ("9.0",), 3)  # arch-specific kernels
    library = GpuCode(((general, hopper, ptx),))
    assert library.runs_on(Version("7.0")) and library.runs_on(Version("8.6"))
    assert not library.runs_on(Version("12.0"))  # the PTX of a few Hopper kernels is not the library's kernels
    assert GpuCode(((general,), (_group(("12.0",), (), 1),))).runs_on(Version("12.0"))  # another library runs


def test_a_release_whose_wheel_lacks_the_gpu_fails_and_names_the_first_later_release_that_runs(tmp_path):
    table = load_wheel_archs(load_matrices()).releases_of("lmcache")
    lacking = sorted(v for v, code in table.items() if not code.runs_on(Version("12.0")))
    running = sorted(v for v, code in table.items() if code.runs_on(Version("12.0")))
    assert lacking and running, "the table should hold lmcache releases on both sides of sm_120"
    old = str(lacking[-1])
    assert _rules(tmp_path, {"lmcache": old}, BLACKWELL) == {"lmcache": ("fail", True)}
    snap = snapshot({"lmcache": old}, nvidia={"gpus": [BLACKWELL]})
    (finding,) = [f for f in run_check(snap, cwd=tmp_path).findings if f.rule == "wheel-lacks-gpu-code"]
    first_later = min(v for v in running if v > lacking[-1])
    assert f'lmcache=={first_later}"' in finding.fix and "no kernel image" in finding.message
    assert _rules(tmp_path, {"lmcache": str(running[-1])}, BLACKWELL) == {}


def test_other_builds_and_unstated_hosts_are_not_claimed_as_the_pypi_wheel(tmp_path):
    table = load_wheel_archs(load_matrices()).releases_of("lmcache")
    old = str(max(v for v, code in table.items() if not code.runs_on(Version("12.0"))))
    assert _rules(tmp_path, {"lmcache": f"{old}+cu128"}, BLACKWELL) == {}
    assert _rules(tmp_path, {"lmcache": {"version": old, "direct_url": "file:///wheels/lmcache.whl"}},
                  BLACKWELL) == {}
    assert _rules(tmp_path, {"lmcache": old}, BLACKWELL, host={}) == {"lmcache": ("fail", False)}
    assert _rules(tmp_path, {"lmcache": old}, BLACKWELL, host={"os": "linux", "arch": "aarch64"}) == {}
    # lmcache publishes no Windows wheel: a Windows install came from elsewhere
    assert _rules(tmp_path, {"lmcache": old}, BLACKWELL, host={"os": "windows", "arch": "x86_64"}) == {}


def test_a_windows_wheel_is_judged_by_its_linux_twin_unverified(tmp_path):
    """TensorFlow 2.3's pip packages hold no sm_50 kernels and PTX only for compute_70 (its release notes); its
    Windows wheel is built with the same list, which the table reads from the Linux one."""
    gtx_960m = {"name": "GeForce GTX 960M", "compute_capability": "5.0"}
    windows = {"os": "windows", "arch": "x86_64"}
    assert _rules(tmp_path, {"tensorflow": "2.3.0"}, gtx_960m, host=windows) == {"tensorflow": ("warn", False)}
    assert _rules(tmp_path, {"tensorflow": "2.3.0"}, gtx_960m) == {"tensorflow": ("fail", True)}
    assert _rules(tmp_path, {"tensorflow": "2.4.0"}, gtx_960m, host=windows) == {}


def test_an_unknown_version_warns_unverified_only_when_the_newest_release_does_not_run(tmp_path):
    table = load_wheel_archs(load_matrices()).releases_of("lmcache")
    newest = table[max(table)]
    assert newest.runs_on(Version("12.0"))
    if not newest.runs_on(Version("7.0")):
        assert _rules(tmp_path, {"lmcache": None}, V100) == {"lmcache": ("warn", False)}


def test_kernels_that_came_later_warn_for_an_unknown_version_unless_the_snapshot_is_newer(tmp_path):
    table = load_wheel_archs(load_matrices()).releases_of("sgl-kernel")
    ordered = sorted(table)
    first = next(v for i, v in enumerate(ordered) if all(table[w].runs_on(Version("12.0")) for w in ordered[i:]))
    assert first != ordered[0] and not table[ordered[ordered.index(first) - 1]].runs_on(Version("12.0"))
    assert _rules(tmp_path, {"sgl-kernel": None}, BLACKWELL) == {"sgl-kernel": ("warn", False)}
    snap = snapshot({"sgl-kernel": None}, nvidia={"gpus": [BLACKWELL]}, host=LINUX)
    (finding,) = [f for f in run_check(snap, cwd=tmp_path).findings if f.rule == "wheel-lacks-gpu-code"]
    assert f"only from {first}" in finding.message and f"older than {first}" in finding.message
    # a package of known version released after that first release dates the environment: nothing to say
    assert _rules(tmp_path, {"sgl-kernel": None, "transformers": "5.17.0"}, BLACKWELL) == {}


@pytest.mark.network
@pytest.mark.slow
def test_the_generator_reads_a_release_as_the_table_holds_it():
    """One small wheel read again from PyPI through the generator's own code gives the table's row."""
    sys.path.insert(0, str(REPO / "tools"))
    from gen_wheel_archs import JSON_API, release_row

    from envdoctor.pypi_release import http_get

    stored = json.loads((REPO / "matrices" / "wheel_archs.json").read_text())["packages"]["autoawq-kernels"]
    version = max(stored["releases"], key=Version)
    files = json.loads(http_get(JSON_API.format("autoawq-kernels")))["releases"][version]
    assert release_row(JSON_API.format("autoawq-kernels"), files) == stored["releases"][version]


def test_a_gpu_below_the_floor_the_project_states_is_left_to_that_finding(tmp_path):
    snap = snapshot({"vllm": None}, nvidia={"gpus": [V100]}, host=LINUX)
    rules = {f.rule for f in run_check(snap, cwd=tmp_path).findings}
    assert "package-gpu-too-old" in rules and "wheel-lacks-gpu-code" not in rules


def _fatbin(entries: list[tuple[int, int, int, int]]) -> bytes:
    """A fat binary of (kind, major, minor, arch) entries, 8 payload bytes each, as nvcc lays them out."""
    body = b"".join(struct.pack("<HHIQIIHHI", kind, 0x101, 64, 8, 0, 0, minor, major, arch).ljust(64, b"\0")
                    + b"\xff" * 8 for kind, major, minor, arch in entries)
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(body)) + body


def test_the_ptx_entries_of_a_fat_binary_name_the_ptx_isa_the_cubins_do_not():
    sys.path.insert(0, str(REPO / "tools"))
    from fatbin import fat_binaries, ptx_versions

    blob = b"junk" + _fatbin([(2, 1, 7, 80), (1, 7, 8, 90)]) + _fatbin([(2, 1, 7, 75), (1, 8, 1, 75)])
    assert ptx_versions(blob) == {(7, 8), (8, 1)}  # the cubins' (1, 7) is their ELF version, not an ISA
    assert [sorted((c.kind, c.arch) for c in codes) for codes in fat_binaries(blob)] == [
        [("ptx", 90), ("sass", 80)], [("ptx", 75), ("sass", 75)]]


def _driver_findings(tmp_path: Path, packages: dict, driver: str, host: dict = LINUX) -> list:
    snap = snapshot(packages, nvidia={"driver": driver, "gpus": [V100]}, host=host)
    return [f for f in run_check(snap, cwd=tmp_path).findings if f.category.value == "driver"]


def test_a_wheel_built_by_a_newer_cuda_than_the_driver_runs_fails_as_torch_would(tmp_path):
    table = load_wheel_archs(load_matrices())
    assert table is not None
    assert table.releases_of("catboost")[Version("1.1.1")].ptx_isa == "7.0"  # CUDA 11.0 (read from the wheel)
    (finding,) = _driver_findings(tmp_path, {"catboost": "1.1.1"}, "418.181.07")  # a CUDA 10.1 driver
    assert finding.severity.value == "fail" and "catboost" in finding.components and "11.0" in finding.message
    assert _driver_findings(tmp_path, {"catboost": "1.1.1"}, "470.82.01") == []  # a CUDA 11.4 driver
    # a local build or another platform's wheel is not PyPI's manylinux wheel the table read
    assert _driver_findings(tmp_path, {"catboost": "1.1.1"}, "418.181.07", {"os": "windows", "arch": "x86_64"}) == []


def test_a_wheel_from_a_newer_minor_runs_through_minor_version_compatibility(tmp_path):
    table = load_wheel_archs(load_matrices())
    assert table is not None
    isa = table.releases_of("xgboost")[Version("3.0.0")].ptx_isa
    assert isa is not None and isa.startswith("8.")  # CUDA 12.x
    (finding,) = _driver_findings(tmp_path, {"xgboost": "3.0.0"}, "525.60.13")  # the CUDA 12.0 driver
    assert finding.rule == "driver-minor-version-compat" and "xgboost" in finding.components


def test_a_ptx_isa_that_is_not_a_version_is_one_error(tmp_path):
    root = tmp_path / "m"
    shutil.copytree(load_matrices().root, root)
    document = json.loads((root / "wheel_archs.json").read_text())
    release = next(iter(document["packages"]["catboost"]["releases"].values()))
    release["ptx_isa"] = "seven"
    (root / "wheel_archs.json").write_text(json.dumps(document))
    with pytest.raises(MatrixError, match=r"packages\.catboost\.releases\..*ptx_isa"):
        load_wheel_archs_fully(load_matrices(root))
    assert any("packages.catboost.releases" in problem for problem in validate_matrices(root))


def test_tensorflow_2_3_left_out_maxwell_kernels_that_2_4_put_back(tmp_path):
    maxwell = {"name": "GeForce GTX 750 Ti", "compute_capability": "5.0"}
    assert _rules(tmp_path, {"tensorflow": "2.3.0"}, maxwell)["tensorflow"] == ("fail", True)
    assert "tensorflow" not in _rules(tmp_path, {"tensorflow": "2.4.0"}, maxwell)
    assert "tensorflow" not in _rules(tmp_path, {"tensorflow": "2.3.0"}, V100)


def test_a_release_the_table_did_not_read_takes_the_cuda_its_neighbours_share_unverified(tmp_path):
    """catboost 0.10.4.1 has no manylinux wheel the table read; 0.10.3 and 0.11.0 around it are CUDA 9.1 builds, and
    a CUDA 9.0 driver (384.130) cannot run them."""
    releases = load_wheel_archs(load_matrices()).releases_of("catboost")
    assert Version("0.10.4.1") not in releases
    (finding,) = _driver_findings(tmp_path, {"catboost": "0.10.4.1"}, "384.130")
    assert not finding.verified and "CUDA 9.1" in finding.message and "0.10.3 and 0.11.0" in finding.message
    assert _driver_findings(tmp_path, {"catboost": "0.10.4.1"}, "396.26") == []
    # below the first release read there is nothing around it to go by
    assert _driver_findings(tmp_path, {"catboost": "0.9.0"}, "384.130") == []
