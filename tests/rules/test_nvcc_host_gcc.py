"""The host gcc against the CUDA toolkit's nvcc (matrices/nvcc_host_gcc.json, from each toolkit's host_config.h)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.nvcc_host_gcc import load_nvcc_host_gcc
from envdoctor.findings import Finding, Report
from envdoctor.matrices import MatrixError, load_matrices
from envdoctor.snapshot import snapshot_from_dict

SCHEMA = "envdoctor.snapshot/1"
MATRICES = Path(__file__).resolve().parents[2] / "matrices"
sys.path.insert(0, str(MATRICES.parent / "tools"))

from gen_nvcc_host_gcc import gnu_bound  # noqa: E402


def check(tmp_path: Path, **sections: object) -> Report:
    return run_check(snapshot_from_dict({"schema": SCHEMA, **sections}), stack=None, cwd=tmp_path)


def found(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.rule == "nvcc-host-gcc-too-new"]


def test_the_table_covers_every_toolkit_from_cuda_8_and_never_lowers_the_bound() -> None:
    table = load_nvcc_host_gcc(load_matrices(MATRICES))
    assert table is not None and len(table.gcc_max) >= 30
    bounds = [table.gcc_max[minor] for minor in sorted(table.gcc_max)]
    assert bounds == sorted(bounds)  # a later toolkit never accepts less
    assert min(table.gcc_max).release == (8, 0)


@pytest.mark.parametrize(("nvcc", "gcc", "bound"), [("9.0", "7.4", 6), ("10.0", "8.3.1", 7), ("11.3", "11.2.0", 10),
                                                   ("12.1", "13.2.0", 12), ("12.4.1", "14", 13)])
def test_a_gcc_newer_than_the_toolkit_accepts_is_a_warning(tmp_path: Path, nvcc: str, gcc: str, bound: int) -> None:
    [finding] = found(check(tmp_path, host={"os": "linux", "gcc": gcc}, cuda_toolkit={"nvcc": nvcc}))
    assert finding.category.value == "cuda-build" and finding.components[0] == "cuda-toolkit"
    assert f"gcc versions later than {bound} are not supported" in finding.message
    assert f"CC=gcc-{bound} CXX=g++-{bound}" in (finding.fix or "")


def test_the_fix_names_the_first_toolkit_that_accepts_the_gcc(tmp_path: Path) -> None:
    [finding] = found(check(tmp_path, host={"gcc": "7.4"}, cuda_toolkit={"nvcc": "9.0"}))
    assert "CUDA 9.2 or newer toolkit" in (finding.fix or "")


def test_an_accepted_gcc_or_a_missing_fact_gives_nothing(tmp_path: Path) -> None:
    assert not found(check(tmp_path, host={"os": "linux", "gcc": "6.5.0"}, cuda_toolkit={"nvcc": "9.0"}))
    assert not found(check(tmp_path, host={"os": "linux", "gcc": "11.4.0"}, cuda_toolkit={"nvcc": "12.4"}))
    assert not found(check(tmp_path, host={"os": "linux"}, cuda_toolkit={"nvcc": "9.0"}))
    assert not found(check(tmp_path, host={"os": "linux", "gcc": "13"}))
    assert not found(check(tmp_path, host={"os": "linux", "gcc": "13"}, cuda_toolkit={"nvcc": "7.5"}))  # not tabled
    # MSVC is nvcc's host compiler on Windows
    assert not found(check(tmp_path, host={"os": "windows", "gcc": "13"}, cuda_toolkit={"nvcc": "9.0"}))


def test_a_gcc_that_is_not_a_version_is_a_field_problem_not_a_finding(tmp_path: Path) -> None:
    report = check(tmp_path, host={"os": "linux", "gcc": "gcc (Ubuntu) $(rm -rf /)"}, cuda_toolkit={"nvcc": "9.0"})
    assert not found(report)
    assert "host.gcc" in {f.components[0] for f in report.findings if f.rule == "snapshot-value-invalid"} | {
        p.where for p in snapshot_from_dict({"schema": SCHEMA, "host": {"gcc": "x y"}}).problems}


def test_the_generator_reads_both_forms_of_the_header_test() -> None:
    assert gnu_bound("#if __GNUC__ > 13\n\n#error -- unsupported GNU version! gcc versions later than 13") == 13
    assert gnu_bound("#if __GNUC__ > 4 || (__GNUC__ == 4 && __GNUC_MINOR__ > 9)\n"
                     "#error -- unsupported GNU version! gcc versions later than 4.9 are not supported!") == 4
    assert gnu_bound("#if __GNUC__ > 13\n#endif\n#error -- unsupported clang version!") is None


def test_a_malformed_table_is_refused_naming_the_key(tmp_path: Path) -> None:
    root = tmp_path / "matrices"
    shutil.copytree(MATRICES, root)
    path = root / "nvcc_host_gcc.json"
    raw = json.loads(path.read_text())
    raw["toolkits"]["12.4"]["gcc_max"] = "13"
    path.write_text(json.dumps(raw))
    with pytest.raises(MatrixError, match=r"toolkits\.12\.4"):
        load_nvcc_host_gcc(load_matrices(root))
