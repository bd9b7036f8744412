"""The toolkit floors of torch CUDA extensions' build scripts (matrices/nvcc_floors.json): the generator's reading of
real setup.py and CMake text (ast and regular expressions, never run), and the check that warns when nvcc is older
than the installed release's floor (per GPU architecture where the script says so), inferred when its version is
unknown."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from envdoctor.checker import run_check
from envdoctor.checks.nvcc_floors import JUDGED_ELSEWHERE, RULE, load_nvcc_floors
from envdoctor.facts import default_facts
from envdoctor.findings import Finding, Severity
from envdoctor.matrices import MatrixError, default_root, load_matrices
from envdoctor.table_validation import validate_matrices

from .synth import H100, snapshot

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
gen = importlib.import_module("gen_nvcc_floors")

TABLE = load_nvcc_floors(load_matrices(default_root()))
assert TABLE is not None
JUDGED = sorted(name for name, floors in TABLE.packages.items() if name not in JUDGED_ELSEWHERE
                and any(r.floor is not None for r in floors.releases.values()))
L40 = {"index": 0, "name": "NVIDIA L40S", "compute_capability": "8.9", "memory_mib": 46068}
A100 = {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0", "memory_mib": 81920}


def _below(version: Version) -> str:
    """The CUDA release just before ``version`` (11.5 before 11.6, 11.8 before 12.0)."""
    return f"{version.major}.{version.minor - 1}" if version.minor else f"{version.major - 1}.8"


def _newest_with_floor(name: str):
    floors = TABLE.packages[name]
    release = max((r for r in floors.releases.values() if r.floor is not None), key=lambda r: r.release)
    return release


def _findings(version: str | None, name: str, nvcc: str | None, gpu: dict = H100, tmp_path: Path | None = None,
              matrices: Path | None = None, toolkit: bool = True) -> list[Finding]:
    sections = {"nvidia": {"driver": "580.159.04", "cuda_driver": "13.0", "gpus": [gpu]}}
    if toolkit:
        sections["cuda_toolkit"] = {"nvcc": nvcc, "home": "/usr/local/cuda"}
    snap = snapshot({"torch": {"version": "2.7.1+cu126"}, name: {"version": version}}, **sections)
    report = run_check(snap, cwd=tmp_path, matrices=load_matrices(matrices) if matrices else None)
    return [f for f in report.findings if f.rule == RULE]


# --- the check ------------------------------------------------------------------------------------------------


def test_the_table_covers_the_extensions_users_build() -> None:
    assert {"mamba-ssm", "causal-conv1d", "sageattention", "transformer-engine"} <= set(JUDGED)
    # xformers skips kernels an old nvcc cannot build instead of stopping; apex stops only for opt-in extensions
    for name in ("xformers", "apex"):
        assert TABLE.packages[name].releases_read and not TABLE.packages[name].releases


@pytest.mark.parametrize("name", JUDGED)
def test_an_old_nvcc_for_a_known_release_warns(tmp_path: Path, name: str) -> None:
    release = _newest_with_floor(name)
    nvcc = _below(release.floor.version)
    (finding,) = _findings(str(release.release), name, nvcc, A100, tmp_path)
    assert finding.severity is Severity.WARN and finding.verified
    assert finding.components == ("cuda-toolkit", name)
    assert f"needs CUDA >= {release.floor.version}" in finding.message and f"nvcc is {nvcc}" in finding.message
    assert release.floor.where in finding.message and release.floor.error in finding.message
    path, _, line = release.floor.where.rpartition(":")
    assert f"{TABLE.packages[name].repository}/blob/{release.tag}/{path}#L{line}" in finding.message
    assert f"export CUDA_HOME=/usr/local/cuda-{release.floor.version}" in (finding.fix or "")


@pytest.mark.parametrize("name", JUDGED)
def test_an_unknown_version_is_held_to_the_newest_release_read(tmp_path: Path, name: str) -> None:
    floors = TABLE.packages[name]
    newest = floors.releases.get(floors.releases_read[-1])
    if newest is None or newest.floor is None:
        pytest.skip(f"{name}'s newest release read states no plain floor")
    (finding,) = _findings(None, name, _below(newest.floor.version), A100, tmp_path)
    assert not finding.verified and "version unknown" in finding.message
    assert f"held to {name} {newest.release}" in finding.message


def test_a_release_not_read_is_held_to_the_nearest_below_and_inferred(tmp_path: Path) -> None:
    floors = TABLE.packages["mamba-ssm"]
    newest = floors.releases[floors.releases_read[-1]]
    (later,) = _findings("99.0", "mamba-ssm", _below(newest.floor.version), A100, tmp_path)
    assert not later.verified and f"held to mamba-ssm {newest.release}, the nearest read" in later.message
    (garbage,) = _findings("$(reboot)", "mamba-ssm", _below(newest.floor.version), A100, tmp_path)
    assert not garbage.verified and "$(reboot)" not in garbage.message + (garbage.fix or "")


@pytest.mark.parametrize("name", JUDGED)
def test_quiet_with_a_new_enough_nvcc_or_none_known(tmp_path: Path, name: str) -> None:
    release = _newest_with_floor(name)
    assert not _findings(str(release.release), name, str(release.floor.version), A100, tmp_path)
    assert not _findings(str(release.release), name, None, A100, tmp_path)
    assert not _findings(str(release.release), name, None, A100, tmp_path, toolkit=False)


def test_a_release_whose_scripts_state_no_floor_is_quiet(tmp_path: Path) -> None:
    floors = TABLE.packages["transformer-engine"]
    without = [v for v in floors.releases_read if v not in floors.releases]
    assert without, "TransformerEngine before 1.10 checks no CUDA version"
    assert not _findings(str(without[-1]), "transformer-engine", "11.8", A100, tmp_path)


def test_an_architecture_floor_only_on_that_gpu(tmp_path: Path) -> None:
    release = TABLE.packages["sageattention"].releases[Version("2.2.0")]
    sm89, sm90 = release.by_arch["sm_89"], release.by_arch["sm_90"]
    nvcc = "12.2"
    assert release.floor.version <= Version(nvcc) < sm90.version <= sm89.version
    (on_l40,) = _findings("2.2.0", "sageattention", nvcc, L40, tmp_path)
    assert f"needs CUDA >= {sm89.version}" in on_l40.message and "compute capability 8.9, sm_89" in on_l40.message
    assert sm89.where in on_l40.message and on_l40.verified
    (on_h100,) = _findings("2.2.0", "sageattention", nvcc, H100, tmp_path)
    assert f"needs CUDA >= {sm90.version}" in on_h100.message and "sm_90" in on_h100.message
    assert not _findings("2.2.0", "sageattention", nvcc, A100, tmp_path)
    assert not _findings("2.2.0", "sageattention", str(sm90.version), H100, tmp_path)


def test_flash_attn_floors_agree_with_the_flash_attn_table() -> None:
    """flash-attn is judged by flash_attn_build from matrices/flash_attn.toml; both read the same setup.py lines."""
    facts = default_facts()
    for version, release in TABLE.packages["flash-attn"].releases.items():
        known = facts.flash_attn(str(version))
        if known is not None and known.min_nvcc:
            assert Version(known.min_nvcc) == release.floor.version, version


def _broken_root(tmp_path: Path) -> Path:
    root = tmp_path / "matrices"
    shutil.copytree(default_root(), root)
    path = root / "nvcc_floors.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["packages"]["mamba-ssm"]["releases"]["2.2.4"]["min_nvcc"] = "eleven"
    path.write_text(json.dumps(document), encoding="utf-8")
    return root


def test_a_broken_table_is_one_line_naming_the_file_and_key(tmp_path: Path) -> None:
    root = _broken_root(tmp_path)
    with pytest.raises(MatrixError, match=r"nvcc_floors.json: packages.mamba-ssm.releases.2.2.4: .*eleven"):
        load_nvcc_floors(load_matrices(root))
    problems = [p for p in validate_matrices(root) if "nvcc_floors.json" in p]
    assert len(problems) == 1 and "\n" not in problems[0] and "tools/gen_nvcc_floors.py" in problems[0]


# --- the generator's reading of build scripts -------------------------------------------------------------------

MAMBA = '''
PACKAGE_NAME = "mamba_ssm"
if not SKIP_CUDA_BUILD:
    print("\\n\\ntorch.__version__  = {}\\n\\n".format(torch.__version__))
    TORCH_MAJOR = int(torch.__version__.split(".")[0])
    if TORCH_MAJOR == 0 and TORCH_MINOR < 4:
        raise RuntimeError("requires Pytorch 0.4 or newer")
    check_if_cuda_home_none(PACKAGE_NAME)
    # Check, if CUDA11 is installed for compute capability 8.0
    cc_flag = []
    if CUDA_HOME is not None:
        _, bare_metal_version = get_cuda_bare_metal_version(CUDA_HOME)
        if bare_metal_version < Version("11.6"):
            raise RuntimeError(
                f"{PACKAGE_NAME} is only supported on CUDA 11.6 and above.  "
                "Note: make sure nvcc has a supported version by running nvcc -V."
            )
    if bare_metal_version >= Version("11.8"):
        cc_flag.append("-gencode")
'''

SAGE_220 = '''
nvcc_cuda_version = get_nvcc_cuda_version(CUDA_HOME)
# Validate the NVCC CUDA version.
if nvcc_cuda_version < Version("12.0"):
    raise RuntimeError("CUDA 12.0 or higher is required to build the package.")
if nvcc_cuda_version < Version("12.4") and any(cc.startswith("8.9") for cc in compute_capabilities):
    raise RuntimeError(
        "CUDA 12.4 or higher is required for compute capability 8.9.")
if nvcc_cuda_version < Version("12.3") and any(cc.startswith("9.0") for cc in compute_capabilities):
    raise RuntimeError(
        "CUDA 12.3 or higher is required for compute capability 9.0.")
'''

SAGE_201 = '''
if nvcc_cuda_version < Version("12.0"):
    raise RuntimeError("CUDA 12.0 or higher is required to build the package.")
if nvcc_cuda_version < Version("12.4"):
    if any(cc.startswith("8.9") for cc in compute_capabilities):
        raise RuntimeError(
            "CUDA 12.4 or higher is required for compute capability 8.9.")
    if any(cc.startswith("9.0") for cc in compute_capabilities):
        raise RuntimeError(
            "CUDA 12.4 or higher is required for compute capability 9.0.")
'''

TE_PYTORCH = '''
def setup_pytorch_extension(csrc_source_files, csrc_header_files, common_header_files):
    # Version-dependent CUDA options
    try:
        version = cuda_version()
    except FileNotFoundError:
        print("Could not determine CUDA version")
    else:
        if version < (12, 0):
            raise RuntimeError("Transformer Engine requires CUDA 12.0 or newer")
'''

TE_CMAKE = '''cmake_minimum_required(VERSION 3.21)
find_package(CUDAToolkit REQUIRED)
if (CUDAToolkit_VERSION VERSION_LESS 12.1)
  message(FATAL_ERROR "CUDA 12.1+ is required, but found CUDA ${CUDAToolkit_VERSION}")
endif()
if (CUDAToolkit_VERSION VERSION_GREATER_EQUAL 12.8)
  set(CMAKE_CUDA_ARCHITECTURES 75 80 89 90 100 120)
endif()
'''

APEX_FMHA = '''
if has_flag("--fmha", "APEX_FMHA"):
    if "--fmha" in sys.argv:
        sys.argv.remove("--fmha")
    raise_if_cuda_home_none("--fmha")

    if bare_metal_version < Version("11.0"):
        raise RuntimeError("--fmha only supported on sm_80 and sm_90 GPUs")
'''

XFORMERS = '''
        if num >= 90 and cuda_version < 1108:
            continue
        if cuda_version < 1205:
            sources.remove(os.path.join(extensions_dir, "swiglu_fairinternal.cu"))
'''


def _line(text: str, needle: str, nth: int = 0) -> str:
    """"setup.py:N" of the ``nth`` line of ``text`` holding ``needle``."""
    return f"setup.py:{[i for i, line in enumerate(text.splitlines(), start=1) if needle in line][nth]}"


def test_a_plain_floor_with_its_line_and_error() -> None:
    (floor,) = gen.python_floors(MAMBA, "setup.py")
    where = _line(MAMBA, 'bare_metal_version < Version("11.6")')
    assert (str(floor.version), floor.arch, floor.where) == ("11.6", None, where)
    assert floor.error.startswith("RuntimeError: mamba_ssm is only supported on CUDA 11.6 and above.")
    assert gen.release_entry([floor]) == {"min_nvcc": "11.6", "from": where, "error": floor.error}


@pytest.mark.parametrize(("text", "sm90"), [(SAGE_220, "12.3"), (SAGE_201, "12.4")])
def test_architecture_floors_and_ed_or_nested(text: str, sm90: str) -> None:
    entry = gen.release_entry(gen.python_floors(text, "setup.py"))
    assert entry["min_nvcc"] == "12.0" and entry["from"] == _line(text, 'Version("12.0")')
    assert entry["arch_min"] == {"sm_89": "12.4", "sm_90": sm90}
    assert entry["arch_from"] == {"sm_89": _line(text, 'startswith("8.9")'), "sm_90": _line(text, 'startswith("9.0")')}
    assert "compute capability 8.9" in entry["arch_error"]["sm_89"]


def test_a_tuple_floor_and_a_cmake_floor_take_the_higher() -> None:
    floors = gen.python_floors(TE_PYTORCH, "build_tools/pytorch.py") + gen.cmake_floors(
        TE_CMAKE, "transformer_engine/common/CMakeLists.txt")
    assert [str(f.version) for f in floors] == ["12.0", "12.1"]
    entry = gen.release_entry(floors)
    assert entry["min_nvcc"] == "12.1"
    assert entry["from"] == "transformer_engine/common/CMakeLists.txt:" + _line(TE_CMAKE, "VERSION_LESS").split(":")[1]
    assert entry["error"] == "CMake Error: CUDA 12.1+ is required, but found CUDA ${CUDAToolkit_VERSION}"


@pytest.mark.parametrize("text", [APEX_FMHA, XFORMERS])
def test_opt_in_extensions_and_checks_that_do_not_stop_are_no_floor(text: str) -> None:
    assert gen.python_floors(text, "setup.py") == []
    assert gen.release_entry([]) is None
