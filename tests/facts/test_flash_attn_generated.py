"""tools/gen_flash_attn.py (workflow matrix, setup.py schemes), the table it writes, and the nvcc-floor check."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib
from packaging.version import Version

from envdoctor.checker import run_check
from envdoctor.facts import Facts
from envdoctor.snapshot import snapshot_from_dict
from envdoctor.table_validation import validate_matrices

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gen_flash_attn", ROOT / "tools" / "gen_flash_attn.py")
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_flash_attn"] = gen
_spec.loader.exec_module(gen)

WORKFLOW = textwrap.dedent("""\
    on:
      create:
        tags: [v*]
    jobs:
      setup_release:
        runs-on: ubuntu-latest
      build_wheels:
        runs-on: ${{ matrix.os }}
        strategy:
          matrix:
            os: [ubuntu-20.04]
            python-version: ['3.8', '3.11']
            torch-version: ['1.13.1', '2.1.0.dev20230731']
            cuda-version: ['11.8.0', '12.2.2']
            cxx11_abi: ['FALSE', 'TRUE']
            exclude:
              - torch-version: '1.13.1'
                cuda-version: '12.2.2'
              - torch-version: '2.1.0.dev20230731'
                python-version: '3.8'
              - torch-version: '9.9.9'
                cuda-version: '11.8.0'
            include:
              - python-version: '3.12'
                torch-version: '2.2.0'
                cuda-version: '12.3.2'
                cxx11_abi: 'TRUE'
                os: ubuntu-20.04
              - cuda-version: '11.8.0'
                note: old
        steps:
          - name: Set CUDA and PyTorch versions
            run: |
              echo "MATRIX_CUDA_VERSION=$(echo ${{ matrix.cuda-version }} | awk -F \\. {'print $1 $2'})" >> $GITHUB_ENV
              echo "MATRIX_TORCH_VERSION=$(echo ${{ matrix.torch-version }} | awk -F \\. {'print $1 "." $2'})"
          - name: Build wheel
            run: |
              tmpname=cu${MATRIX_CUDA_VERSION}torch${MATRIX_TORCH_VERSION}cxx11abi${{ matrix.cxx11_abi }}
    """)

# get_wheel_url and the nvcc/arch checks as setup.py has them at v2.3.1.post1 (torch's exact CUDA, torch 2.1
# forced to 12.2) and at v2.8.3.post1 (one CUDA per major, tag cu<major>).
SETUP_OLD = textwrap.dedent("""\
    if not SKIP_CUDA_BUILD:
        cc_flag = []
        if CUDA_HOME is not None:
            _, bare_metal_version = get_cuda_bare_metal_version(CUDA_HOME)
            if bare_metal_version < Version("11.6"):
                raise RuntimeError("FlashAttention is only supported on CUDA 11.6 and above.")
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_80,code=sm_80")
        if CUDA_HOME is not None:
            if bare_metal_version >= Version("11.8"):
                cc_flag.append("-gencode")
                cc_flag.append("arch=compute_90,code=sm_90")

    def get_wheel_url():
        torch_cuda_version = parse(torch.version.cuda)
        torch_version_raw = parse(torch.__version__)
        if torch_version_raw.major == 2 and torch_version_raw.minor == 1 and torch_cuda_version.major == 12:
            torch_cuda_version = parse("12.2")
        cuda_version = f"{torch_cuda_version.major}{torch_cuda_version.minor}"
        torch_version = f"{torch_version_raw.major}.{torch_version_raw.minor}"
        wheel_filename = f"{PACKAGE_NAME}-{flash_version}+cu{cuda_version}torch{torch_version}"
        return wheel_filename
    """)

SETUP_NEW = textwrap.dedent("""\
    def cuda_archs() -> str:
        return os.getenv("FLASH_ATTN_CUDA_ARCHS", "80;90;100;120").split(";")

    if not SKIP_CUDA_BUILD and not IS_ROCM:
        cc_flag = []
        if CUDA_HOME is not None:
            _, bare_metal_version = get_cuda_bare_metal_version(CUDA_HOME)
            if bare_metal_version < Version("11.7"):
                raise RuntimeError("FlashAttention is only supported on CUDA 11.7 and above.")
        if "80" in cuda_archs():
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_80,code=sm_80")
        if CUDA_HOME is not None:
            if bare_metal_version >= Version("11.8") and "90" in cuda_archs():
                cc_flag.append("arch=compute_90,code=sm_90")
            if bare_metal_version >= Version("12.8") and "100" in cuda_archs():
                cc_flag.append("arch=compute_100,code=sm_100")
            if bare_metal_version >= Version("12.8") and "120" in cuda_archs():
                cc_flag.append("arch=compute_120,code=sm_120")

    def get_wheel_url():
        if IS_ROCM:
            wheel_filename = "rocm"
        else:
            torch_cuda_version = parse(torch.version.cuda)
            if torch_cuda_version.major == 11:
                torch_cuda_version = parse("11.8")
            elif torch_cuda_version.major == 12:
                torch_cuda_version = parse("12.3")
            else:
                torch_cuda_version = parse("13.0")
            cuda_version = f"{torch_cuda_version.major}"
        return wheel_filename
    """)


# --- the generator --------------------------------------------------------------------------------------------


def test_matrix_minus_exclude_plus_include():
    entries = {entry for _, entry in gen.wheel_entries(WORKFLOW)}
    assert entries == {
        "cu118torch1.13cxx11abiFALSE-cp38", "cu118torch1.13cxx11abiTRUE-cp38",
        "cu118torch1.13cxx11abiFALSE-cp311", "cu118torch1.13cxx11abiTRUE-cp311",
        "cu118torch2.1cxx11abiFALSE-cp311", "cu118torch2.1cxx11abiTRUE-cp311",
        "cu122torch2.1cxx11abiFALSE-cp311", "cu122torch2.1cxx11abiTRUE-cp311",
        "cu123torch2.2cxx11abiTRUE-cp312",  # include that fits no combination: a job of its own
    }
    jobs = gen.matrix_jobs(gen.yaml.safe_load(WORKFLOW)["jobs"]["build_wheels"]["strategy"]["matrix"])
    assert all(job.get("note") == "old" for job in jobs if job["cuda-version"] == "11.8.0")  # include merged in
    assert len(jobs) == 9


def test_exclude_that_matches_nothing_is_reported():
    matrix = gen.yaml.safe_load(WORKFLOW)["jobs"]["build_wheels"]["strategy"]["matrix"]
    assert gen.unmatched_excludes(matrix) == [{"torch-version": "9.9.9", "cuda-version": "11.8.0"}]


def test_awk_programs():
    assert gen.awk_print("$1 $2", "12.2.2") == "122"
    assert gen.awk_print('$1 "." $2', "2.1.0.dev20230731") == "2.1"
    assert gen.awk_print("$1", "12.9.1") == "12"


def test_old_scheme_uses_torch_exact_cuda_with_torch21_forced():
    scheme = gen.wheel_scheme(SETUP_OLD)
    assert scheme.digits == ("major", "minor") and not scheme.per_major
    assert scheme.cuda_tags([Version("11.7.1"), Version("11.8.0"), Version("12.2.0")]) == {
        "11.7": "cu117", "11.8": "cu118", "12": "cu122", "12.2": "cu122"}
    assert gen.min_nvcc(SETUP_OLD) == "11.6"
    assert gen.sass_for(SETUP_OLD, Version("11.7")) == ["sm_80"]
    assert gen.sass_for(SETUP_OLD, Version("12.2")) == ["sm_80", "sm_90"]


def test_new_scheme_one_cuda_per_major():
    scheme = gen.wheel_scheme(SETUP_NEW)
    assert scheme.digits == ("major",)
    assert scheme.cuda_tags([Version("12.9.1")]) == {"11": "cu11", "12": "cu12", "13": "cu13"}
    assert gen.min_nvcc(SETUP_NEW) == "11.7"
    assert gen.sass_for(SETUP_NEW, Version("12.4")) == ["sm_80", "sm_90"]
    assert gen.sass_for(SETUP_NEW, Version("12.9")) == ["sm_80", "sm_90", "sm_100", "sm_120"]


def test_release_entry_reads_both_files():
    entry, _ = gen.release_entry("2.3.9", WORKFLOW, SETUP_OLD, on_pypi=True)
    assert entry["torch_minors"] == ["1.13", "2.1", "2.2"] and entry["python"] == ["3.8", "3.11", "3.12"]
    assert entry["min_nvcc"] == "11.6" and entry["min_compute_capability"] == "8.0"
    assert entry["wheels_confidence"].startswith("ci-matrix, overstated")
    assert entry["torch_builds"] == {"1.13": "1.13.1", "2.1": "2.1.0.dev20230731", "2.2": "2.2.0"}


def test_unreadable_setup_py_is_a_source_error():
    with pytest.raises(gen.SourceError, match="get_wheel_url"):
        gen.wheel_scheme("def other():\n    pass\n")


# --- the generated table, read through Facts ------------------------------------------------------------------


@pytest.fixture(scope="module")
def facts() -> Facts:
    return Facts()


def test_table_covers_every_release_from_2_3(facts):
    versions = facts.flash_attn_versions()
    assert versions[0] == "2.3.0" and {"2.3.6", "2.4.2", "2.5.7", "2.8.3.post1"} <= set(versions)


def test_flash_attn_2_3_wheels_cover_torch_2_0_and_2_1(facts):
    for version in ("2.3.0", "2.3.3", "2.3.6"):
        assert {"2.0", "2.1"} <= set(facts.flash_attn(version).torch_minors), version
    assert facts.flash_attn_wheel("2.3.3", "2.1.0", "12.1", False, "3.10") == (
        "flash_attn-2.3.3+cu122torch2.1cxx11abiFALSE-cp310-cp310-linux_x86_64.whl")  # setup.py forces 12.2
    assert facts.flash_attn_wheel("2.3.3", "2.0.1", "11.7", False, "3.10") == (
        "flash_attn-2.3.3+cu117torch2.0cxx11abiFALSE-cp310-cp310-linux_x86_64.whl")  # torch's exact CUDA
    assert facts.flash_attn_wheel("2.3.3", "1.12.1", "11.3", False, "3.10") is None  # no cu113 wheel


def test_every_2x_release_needs_compute_capability_8_and_has_an_nvcc_floor(facts):
    for version in facts.flash_attn_versions():
        release = facts.flash_attn(version)
        if release.wheels:
            assert release.min_cc == "8.0" and release.sass[0] == "sm_80", version
            assert Version(release.min_nvcc) >= Version("11.6"), version
    assert facts.flash_attn("2.6.3").min_nvcc == "11.6" and facts.flash_attn("2.7.0").min_nvcc == "11.7"


def test_matrices_still_validate():
    assert validate_matrices() == []


# --- the check --------------------------------------------------------------------------------------------------


def _snapshot(flash_attn, nvcc, torch="2.9.0+cu128"):
    return snapshot_from_dict({
        "host": {"os": "linux", "arch": "x86_64"},
        "python": {"version": "3.11.9", "implementation": "cpython"},
        "nvidia": {"driver": "580.159.04", "cuda_driver": "13.0",
                   "gpus": [{"index": 0, "compute_capability": "9.0", "memory_mib": 81559}]},
        "cuda_toolkit": {"nvcc": nvcc},
        "packages": {"torch": {"version": torch}, "flash-attn": {"version": flash_attn}},
    })


def _nvcc_findings(snapshot, tmp_path):
    return [f for f in run_check(snapshot, stack=None, cwd=tmp_path).findings if f.rule == "flash-attn-nvcc-too-old"]


@pytest.mark.parametrize("flash_attn,nvcc,torch,fires", [
    ("2.8.3", "11.5", "2.9.0+cu128", True),     # no torch 2.9 wheel: built from source, floor 11.7
    ("2.8.3", "12.4", "2.9.0+cu128", False),    # nvcc new enough
    ("2.8.3", "11.5", "2.8.0+cu128", False),    # the release has a torch 2.8 wheel: nothing is compiled
    ("2.5.8", "11.6", "2.4.0+cu121", False),    # 2.5.8's own floor is 11.6
    ("2.5.8", "11.5", "2.4.0+cu121", True),
])
def test_nvcc_below_the_release_floor_warns(tmp_path, flash_attn, nvcc, torch, fires):
    found = _nvcc_findings(_snapshot(flash_attn, nvcc, torch), tmp_path)
    assert bool(found) is fires
    if found:
        (finding,) = found
        assert finding.severity.value == "warn" and finding.category.value == "cuda-build" and finding.verified
        assert finding.components == ("flash-attn", "cuda-toolkit") and finding.fix


def test_unknown_flash_attn_version_is_held_to_the_newest_floor(tmp_path):
    (finding,) = _nvcc_findings(_snapshot(None, "11.6"), tmp_path)
    assert not finding.verified and "version unknown" in finding.message and "11.7" in finding.message
    assert "cuda-toolkit" in finding.fix or "pip install" in finding.fix


CLAMP_STEP = (  # one line in the workflow, as in v2.3.0
    "          export TORCH_CUDA_VERSION=$(python -c \"import os; "
    "minv = {'2.0': 117, '2.1': 118}[os.environ['MATRIX_TORCH_VERSION']]; "
    "maxv = {'2.0': 118, '2.1': 121}[os.environ['MATRIX_TORCH_VERSION']]; "
    "print(max(min(int(os.environ['MATRIX_CUDA_VERSION']), maxv), minv))\")\n"
)
THRESHOLD_STEP = '''      - name: Install PyTorch
        run: |
          export TORCH_CUDA_VERSION=$(python -c "from os import environ as env; \\
            minv = {'2.6': 118, '2.7': 118}[env['MATRIX_TORCH_VERSION']]; \\
            maxv = {'2.6': 126, '2.7': 128}[env['MATRIX_TORCH_VERSION']]; \\
            print(minv if int(env['MATRIX_CUDA_VERSION']) < 120 else maxv)" \\
          )
          pip install --no-cache-dir torch==2.6.0 --index-url https://download.pytorch.org/whl/cu${TORCH_CUDA_VERSION}
'''


@pytest.mark.parametrize(("step", "minor", "cuda", "variant"), [
    (CLAMP_STEP, "2.0", "12.2.0", "cu118"),      # clamped to maxv
    (CLAMP_STEP, "2.1", "11.6.2", "cu118"),      # clamped to minv
    (THRESHOLD_STEP, "2.6", "12.9.1", "cu126"),  # CUDA 12 jobs take maxv
    (THRESHOLD_STEP, "2.7", "11.8.0", "cu118"),  # CUDA 11 jobs take minv
])
def test_ci_torch_cuda_is_read_from_the_install_step(step: str, minor: str, cuda: str, variant: str) -> None:
    chooser = gen.torch_cuda_chooser(step)
    assert chooser is not None and gen.ci_torch_cuda(chooser, minor, cuda) == variant


def test_install_step_that_is_not_a_table_lookup_gives_nothing() -> None:
    step = 'export TORCH_CUDA_VERSION=$(python -c "import os; print(os.system(\'true\'))")'
    chooser = gen.torch_cuda_chooser(step)
    assert chooser is None or gen.ci_torch_cuda(chooser, "2.6", "12.4.1") is None
    assert gen.torch_cuda_chooser("no such step") is None


def test_table_records_the_ci_torch_of_torch_2_6_wheels(facts):
    releases = tomllib.loads((ROOT / "matrices" / "flash_attn.toml").read_text())["releases"]
    assert releases["2.8.2"]["torch_build_cuda"]["cu12torch2.6"] == "cu126"
    assert releases["2.7.4.post1"]["torch_build_cuda"]["cu12torch2.6"] == "cu124"


def test_malformed_ci_torch_variants_are_one_line_each(tmp_path):
    root = tmp_path / "matrices"
    shutil.copytree(ROOT / "matrices", root)
    path = root / "flash_attn.toml"
    path.write_text(path.read_text().replace('torch_build_cuda = { "cu12torch2.4" = "cu124"',
                                             'torch_build_cuda = { "cu12torch2.4" = 124', 1))
    problems = validate_matrices(root)
    assert problems and all("torch_build_cuda" in line for line in problems)
