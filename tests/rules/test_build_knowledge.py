"""Knowledge families over build facts: each rule fires on the fact it states and stays quiet on its complement."""

from __future__ import annotations

from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.plain_torch import plain_wheel_is_cpu_only
from envdoctor.findings import Finding

from .synth import H100, snapshot

NO_GPU_FACTS = {"driver": None, "cuda_driver": None, "gpus": None}


def _findings(snap, tmp_path: Path, rule: str) -> list[Finding]:
    report = run_check(snap, stack=None, cwd=tmp_path)
    return [f for f in report.findings if f.rule == rule and f.severity.rank >= 2]


# --- triton pairs with one torch release (torch's Requires-Dist) ------------------------------------------------

@pytest.mark.parametrize(("torch", "triton", "fires"), [
    ("2.3.1+cu121", "3.1.0", True),   # torch 2.3 pins triton 2.3.1
    ("2.5.1+cu124", "3.1.0", False),  # torch 2.5 pins triton 3.1.0
    ("2.6.0+cu124", "3.1.0", True),   # torch 2.6 pins triton 3.2.0
])
def test_triton_of_another_torch_release_on_windows(tmp_path: Path, torch: str, triton: str, fires: bool) -> None:
    snap = snapshot({"torch": torch, "triton": triton}, host={"os": "windows", "arch": "x86_64"},
                    nvidia=NO_GPU_FACTS)
    assert bool(_findings(snap, tmp_path, "triton-other-torch-release")) is fires


def test_triton_windows_distribution_is_paired_too(tmp_path: Path) -> None:
    snap = snapshot({"torch": "2.6.0+cu126", "triton-windows": "3.3.1.post19"},
                    host={"os": "windows", "arch": "x86_64"}, nvidia=NO_GPU_FACTS)
    found = _findings(snap, tmp_path, "triton-other-torch-release")
    assert found and 'triton-windows>=3.2,<3.3' in (found[0].fix or "")


def test_triton_pin_on_linux_is_left_to_the_declared_check(tmp_path: Path) -> None:
    snap = snapshot({"torch": "2.3.1+cu121", "triton": "3.1.0"})
    assert not _findings(snap, tmp_path, "triton-other-torch-release")


# --- the plain PyPI torch wheel per platform (nvidia-* requirements' markers) -----------------------------------

@pytest.mark.parametrize(("version", "arch", "cpu_only"), [
    ("2.1.0", "aarch64", True),     # nvidia-* required on Linux x86_64 only
    ("2.9.0", "aarch64", True),
    ("2.1.0", "x86_64", False),
    ("2.12.0", "aarch64", False),   # nvidia-cublas required on every Linux
    ("2.1.0+cpu", "aarch64", None),  # a local tag: not the plain PyPI wheel
])
def test_plain_wheel_cpu_only_per_platform(version: str, arch: str, cpu_only: bool | None) -> None:
    snap = snapshot({"torch": version}, host={"os": "linux", "arch": arch})
    assert plain_wheel_is_cpu_only(snap, version) is cpu_only


def test_plain_aarch64_torch_beside_a_gpu_is_a_cpu_build(tmp_path: Path) -> None:
    arm = snapshot({"torch": "2.5.1"}, host={"os": "linux", "arch": "aarch64"})
    x86 = snapshot({"torch": "2.5.1"}, host={"os": "linux", "arch": "x86_64"})
    assert _findings(arm, tmp_path, "cpu-torch-on-gpu-machine")
    assert not _findings(x86, tmp_path, "cpu-torch-on-gpu-machine")
    # a CPU build needs nothing from the driver: no CUDA-vs-driver verdict for it
    old_driver = snapshot({"torch": "2.5.1"}, host={"os": "linux", "arch": "aarch64"},
                          nvidia={"driver": "470.256.02", "cuda_driver": "11.4", "gpus": [H100]})
    assert not _findings(old_driver, tmp_path, "driver-too-old-for-torch-cuda")


# --- CUDA wheels of unknown version against the driver (cuda.toml [[builds]]) -----------------------------------

def test_cuda_wheel_of_unknown_version_on_an_old_driver(tmp_path: Path) -> None:
    old = snapshot({"ctranslate2": None}, nvidia={"driver": "470.256.02", "cuda_driver": "11.4", "gpus": [H100]})
    new = snapshot({"ctranslate2": None}, nvidia={"driver": "550.54.14", "cuda_driver": "12.4", "gpus": [H100]})
    found = _findings(old, tmp_path, "driver-too-old-for-cuda-build-unknown-version")
    assert found and not found[0].verified and 'ctranslate2>=3.0.0,<4.0.0' in (found[0].fix or "")
    assert not _findings(new, tmp_path, "driver-too-old-for-cuda-build-unknown-version")


@pytest.mark.parametrize(("driver", "judged"), [("368.71", True), ("391.35", True), ("441.22", True), ("452.39", False),
                                                ("531.14", False)])
def test_a_windows_driver_is_read_against_the_windows_floors(tmp_path: Path, driver: str, judged: bool) -> None:
    """Windows drivers have their own numbers (CUDA 8.0 needs 376.51 there, 11.x 452.39): a driver below a CUDA
    major's Windows floor runs the older majors only (tensorflow-gpu's newest builds need CUDA 11); at or above CUDA
    12's floor there is no judged limit, since CUDA 13's Windows floor is not recorded."""
    snap = snapshot({"tensorflow-gpu": None}, host={"os": "windows", "arch": "x86_64"},
                    nvidia={"driver": driver, "gpus": [H100]})
    found = _findings(snap, tmp_path, "driver-too-old-for-cuda-build-unknown-version")
    assert bool(found) is judged
    if driver == "368.71":
        assert "CUDA 7.x at most" in found[0].message  # below CUDA 8's Windows floor, 376.51


# --- bitsandbytes GPU support by release range (CHANGELOG) ------------------------------------------------------

@pytest.mark.parametrize(("version", "cc", "fires"), [
    ("0.36.0.post2", "6.1", True),   # no int8 matmul below 7.5 before 0.37.0
    ("0.37.0", "6.1", False),
    ("0.36.0.post2", "7.5", False),
    ("0.35.4", "9.0", True),          # Ada/Hopper support added in 0.36.0
])
def test_bitsandbytes_release_gpu_support(tmp_path: Path, version: str, cc: str, fires: bool) -> None:
    gpu = {"index": 0, "name": "GPU", "compute_capability": cc, "memory_mib": 24000}
    snap = snapshot({"bitsandbytes": version}, nvidia={"driver": "535.104.05", "gpus": [gpu]})
    assert bool(_findings(snap, tmp_path, "bitsandbytes-release-gpu-support")) is fires


# --- flash-attn wheels: the exact torch each was built against (publish.yml torch-version) ----------------------

@pytest.mark.parametrize(("torch", "flash_attn", "fires"), [
    ("2.3.0", "2.5.7", True),   # its torch 2.3 wheel was built against the nightly 2.3.0.dev20240207
    ("2.2.0", "2.5.8", True),   # built against 2.2.2, a later patch than the installed one
    ("2.2.2", "2.5.8", False),
    ("2.3.1", "2.5.8", False),  # a later patch than the build keeps the ABI
])
def test_flash_attn_wheel_torch_build(tmp_path: Path, torch: str, flash_attn: str, fires: bool) -> None:
    snap = snapshot({"torch": torch, "flash-attn": flash_attn}, nvidia=NO_GPU_FACTS)
    assert bool(_findings(snap, tmp_path, "flash-attn-wheel-other-torch-build")) is fires


# --- flash-attn's cxx11abiFALSE wheels take the C++ ABI of the torch CI built them against (torch_build_cuda) ----

@pytest.mark.parametrize(("torch", "flash_attn", "fires"), [
    ("2.6.0+cu124", "2.8.2", True),         # CI built its torch 2.6 wheels against 2.6.0+cu126 (C++11 ABI)
    ("2.6.0", "2.8.0.post2", True),         # PyPI's 2.6.0 is the cu124 build: the old ABI
    ("2.6.0+cu126", "2.8.2", False),        # a C++11-ABI torch takes the same ABI
    ("2.6.0+cu124", "2.7.4.post1", False),  # built against 2.6.0+cu124
    ("2.5.1+cu124", "2.8.2", False),        # torch 2.5 wheels were built against 2.5.1+cu124
])
def test_flash_attn_false_wheel_built_against_cxx11_torch(tmp_path: Path, torch: str, flash_attn: str,
                                                          fires: bool) -> None:
    snap = snapshot({"torch": torch, "flash-attn": flash_attn}, nvidia=NO_GPU_FACTS, python={"version": "3.11.10"})
    found = _findings(snap, tmp_path, "flash-attn-wheel-abi-of-ci-torch")
    assert bool(found) is fires
    if fires:
        assert found[0].verified is False and "2.7.4.post1" in found[0].fix


def test_flash_attn_false_wheel_named_in_direct_url_is_a_verified_failure(tmp_path: Path) -> None:
    url = ("https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.2/"
           "flash_attn-2.8.2+cu12torch2.6cxx11abiFALSE-cp311-cp311-linux_x86_64.whl")
    snap = snapshot({"torch": "2.6.0+cu124", "flash-attn": {"version": "2.8.2", "direct_url": url}},
                    nvidia=NO_GPU_FACTS, python={"version": "3.11.10"})
    found = _findings(snap, tmp_path, "flash-attn-wheel-abi-of-ci-torch")
    assert found and found[0].severity.value == "fail" and found[0].verified is True


# --- extensions built in pip's isolated environment, precompiled, or from a checkout ----------------------------

def test_isolated_build_extension_beside_an_older_torch(tmp_path: Path) -> None:
    isolated = snapshot({"torch": "2.5.1", "mamba-ssm": "2.2.4"}, nvidia=NO_GPU_FACTS)
    before = snapshot({"torch": "2.5.1", "mamba-ssm": "2.2.2"}, nvidia=NO_GPU_FACTS)  # no torch build requirement
    found = _findings(isolated, tmp_path, "extension-isolated-build-other-torch")
    assert found and "--no-build-isolation" in (found[0].fix or "")
    assert not _findings(before, tmp_path, "extension-isolated-build-other-torch")


def test_precompiled_ops_and_checkout_builds(tmp_path: Path) -> None:
    windows = snapshot({"torch": "2.1.0+cu121", "deepspeed": "0.12.6"}, host={"os": "windows", "arch": "x86_64"},
                       nvidia=NO_GPU_FACTS)
    linux_jit = snapshot({"torch": "2.1.0+cu121", "deepspeed": "0.12.6+fed2284"}, nvidia=NO_GPU_FACTS)
    checkout = snapshot({"torch": "2.1.0+cu121", "apex": "0.1+3f2a1b9c"}, nvidia=NO_GPU_FACTS)
    nightly = snapshot({"torch": "2.7.0+cu126", "vllm": "0.9.2.dev226+g9a3b88328"}, nvidia=NO_GPU_FACTS)
    assert _findings(windows, tmp_path, "extension-source-build-unverified")
    assert not _findings(linux_jit, tmp_path, "extension-source-build-unverified")  # DeepSpeed JIT-compiles here
    assert _findings(checkout, tmp_path, "extension-source-build-unverified")
    assert not _findings(nightly, tmp_path, "extension-source-build-unverified")


# --- NumPy 2 beside what cannot be judged ------------------------------------------------------------------------

def test_numpy2_beside_unknown_packages(tmp_path: Path) -> None:
    unknown = snapshot({"numpy": "2.0.0", "some-compiled-tool": None})
    numpy1 = snapshot({"numpy": "1.26.4", "some-compiled-tool": None})
    prerelease = snapshot({"numpy": "2.0.0rc1"})
    final = snapshot({"numpy": "2.0.0"})
    assert _findings(unknown, tmp_path, "numpy2-unverified-dependents")
    assert not _findings(numpy1, tmp_path, "numpy2-unverified-dependents")
    assert _findings(prerelease, tmp_path, "numpy2-unverified-dependents")
    assert not _findings(final, tmp_path, "numpy2-unverified-dependents")


def test_known_numpy_break_is_the_only_numpy_diagnosis(tmp_path: Path) -> None:
    snap = snapshot({"numpy": "2.0.0", "pandas": "2.1.4", "some-compiled-tool": None})
    assert not _findings(snap, tmp_path, "numpy2-unverified-dependents")


# --- a source-only release without a CUDA toolkit ----------------------------------------------------------------

def test_sdist_only_extension_without_nvcc(tmp_path: Path) -> None:
    missing = snapshot({"torch": "2.7.1+cu128", "flash-attn": "2.8.0.post2"}, cuda_toolkit={"nvcc": None},
                       torch={"cuda": "12.8"})
    present = snapshot({"torch": "2.7.1+cu128", "flash-attn": "2.8.0.post2"}, cuda_toolkit={"nvcc": "12.8"},
                       torch={"cuda": "12.8"})
    found = _findings(missing, tmp_path, "nvcc-missing-for-source-builds")
    assert found and "FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE" in (found[0].fix or "")
    assert not _findings(present, tmp_path, "nvcc-missing-for-source-builds")


def test_bad_gpu_support_row_is_one_line_naming_the_row(tmp_path: Path) -> None:
    from envdoctor.checks.bitsandbytes_support import load_gpu_support
    from envdoctor.table_validation import problems_loading

    validate_gpu_support = problems_loading(load_gpu_support)
    from envdoctor.matrices import default_root

    root = tmp_path / "m"
    (root / "rules").mkdir(parents=True)
    (root / "stacks").mkdir()
    (root / "bitsandbytes.toml").write_text('[[gpu_support]]\nversions = "<0.37.0"\nint8_min_compute_capability = '
                                            '"seven"\nchangelog = "x"\nsources = ["s"]\n')
    problems = validate_gpu_support(root)
    assert len(problems) == 1 and "gpu_support[0].int8_min_compute_capability" in problems[0]
    assert validate_gpu_support(default_root()) == []


# --- the GPU archs each nvcc can target (cuda.toml [nvcc_archs]) -------------------------------------------------

@pytest.mark.parametrize(("nvcc", "cc", "fires"), [
    ("11.7", "8.9", True),    # sm_89 came with CUDA 11.8
    ("11.8", "8.9", False),
    ("12.6", "12.0", True),   # Blackwell sm_120 came with CUDA 12.8
    ("13.0", "7.0", True),    # CUDA 13.0 dropped Volta
    ("12.8", "7.0", False),
    ("9.2", "7.5", True),     # Turing sm_75 came with CUDA 10.0
    ("10.0", "7.5", False),
])
def test_nvcc_against_the_gpu_arch(tmp_path: Path, nvcc: str, cc: str, fires: bool) -> None:
    gpu = {"index": 0, "name": "GPU", "compute_capability": cc, "memory_mib": 24000}
    snap = snapshot({"torch": "2.7.1+cu128", "deepspeed": "0.16.4"}, cuda_toolkit={"nvcc": nvcc},
                    torch={"cuda": "12.8"}, nvidia={"driver": "580.159.04", "cuda_driver": "13.0", "gpus": [gpu]})
    assert bool(_findings(snap, tmp_path, "nvcc-cannot-target-gpu")) is fires


def test_nvcc_arch_without_anything_to_build_still_warns(tmp_path: Path) -> None:
    gpu = {"index": 0, "name": "RTX 4090", "compute_capability": "8.9", "memory_mib": 24000}
    snap = snapshot({"torch": "2.7.1+cu128"}, cuda_toolkit={"nvcc": "11.7"}, torch={"cuda": "12.8"},
                    nvidia={"driver": "580.159.04", "cuda_driver": "13.0", "gpus": [gpu]})
    report = run_check(snap, stack=None, cwd=tmp_path)
    (finding,) = [f for f in report.findings if f.rule == "nvcc-cannot-target-gpu"]
    assert finding.severity.value == "warn" and finding.components == ("cuda-toolkit",)
    assert "any extension compiled here fails" in finding.message


@pytest.mark.parametrize(("name", "version", "torch", "fires"), [
    ("torch-scatter", "2.1.2+pt21cu121", "2.3.1+cu121", True),   # PyG label pt21: built for torch 2.1
    ("torch-scatter", "2.1.2+pt23cu121", "2.3.1+cu121", False),
    ("natten", "0.17.1+torch240cu121", "2.5.1+cu121", True),      # NATTEN label torch240: torch 2.4
    ("natten", "0.17.1+torch250cu121", "2.5.1+cu121", False),
])
def test_local_label_names_the_torch_minor(tmp_path: Path, name: str, version: str, torch: str, fires: bool) -> None:
    snap = snapshot({"torch": torch, name: version}, nvidia=NO_GPU_FACTS)
    assert bool(_findings(snap, tmp_path, "extension-built-for-other-torch")) is fires


def test_cuda_named_by_a_wheel_label_against_the_driver(tmp_path: Path) -> None:
    old = snapshot({"xformers": "0.0.23+cu121"}, nvidia={"driver": "470.256.02", "cuda_driver": "11.4",
                                                         "gpus": [H100]})
    cu118 = snapshot({"xformers": "0.0.23+cu118"}, nvidia={"driver": "470.256.02", "cuda_driver": "11.4",
                                                           "gpus": [H100]})
    found = _findings(old, tmp_path, "driver-too-old-for-cuda-build")
    assert [f.components[:2] for f in found] == [("xformers", "nvidia-driver")]
    assert not _findings(cu118, tmp_path, "driver-too-old-for-cuda-build")


@pytest.mark.parametrize(("version", "driver", "fires"), [
    ("1.5.1.post107", "396.26", True),    # CUDA 10.0 needs 410.48; 396.26 runs CUDA 9.2 at most
    ("1.5.1.post97", "396.26", False),    # the CUDA 9.0 build of the same release
    ("2.4.2.post117", "440.33.01", True),   # CUDA 11.7 needs 450.80.02 (11.x's floor); 440 runs CUDA 10.2
    ("2.4.2", "440.33.01", False),          # no post number: the default build, not named here
])
def test_a_post_release_number_names_paddles_cuda(tmp_path: Path, version: str, driver: str, fires: bool) -> None:
    snap = snapshot({"paddlepaddle-gpu": version}, nvidia={"driver": driver, "gpus": [H100]})
    found = _findings(snap, tmp_path, "driver-too-old-for-cuda-build")
    assert bool(found) is fires
    if fires:
        assert "CUDA " + {"1": "10.0", "2": "11.7"}[version[0]] in found[0].message


@pytest.mark.parametrize(("cc", "version", "fires"), [
    ("6.0", "0.3.0", True),    # P100: Triton compiles for 7.0+ only; liger-kernel declares triton
    ("7.5", "0.3.0", False),
    ("6.1", None, True),       # version unknown: its releases declare triton
])
def test_triton_kernels_on_a_gpu_too_old(tmp_path: Path, cc: str, version: str | None, fires: bool) -> None:
    gpu = {"index": 0, "name": "Tesla", "compute_capability": cc, "memory_mib": 16000}
    snap = snapshot({"torch": "2.5.1+cu121", "liger-kernel": version},
                    nvidia={"driver": "550.54.14", "cuda_driver": "12.4", "gpus": [gpu]})
    assert bool(_findings(snap, tmp_path, "triton-kernels-gpu-too-old")) is fires


def test_torch_alone_on_an_old_gpu_is_not_a_triton_finding(tmp_path: Path) -> None:
    gpu = {"index": 0, "name": "Tesla P100", "compute_capability": "6.0", "memory_mib": 16000}
    snap = snapshot({"torch": "2.5.1+cu121", "triton": "3.1.0"},
                    nvidia={"driver": "550.54.14", "cuda_driver": "12.4", "gpus": [gpu]})
    assert not _findings(snap, tmp_path, "triton-kernels-gpu-too-old")


# --- nvcc newer than what the driver runs (the header's CUDA version, else the toolkit release's driver floor) --------

@pytest.mark.parametrize(("nvidia", "nvcc", "fires"), [
    ({"driver": None, "cuda_driver": "12.2", "gpus": [H100]}, "12.4", True),     # the header's CUDA version
    ({"driver": None, "cuda_driver": "12.4", "gpus": [H100]}, "12.4", False),
    ({"driver": "460.80", "cuda_driver": None, "gpus": [H100]}, "11.3", True),   # CUDA 11.3 needs 465.19.01
    ({"driver": "465.19.01", "cuda_driver": None, "gpus": [H100]}, "11.3.109", False),
    ({"driver": "535.54.03", "cuda_driver": None, "gpus": [H100]}, "12.4", True),  # CUDA 12.4 needs 550.54.14
])
def test_nvcc_newer_than_the_driver(tmp_path: Path, nvidia: dict, nvcc: str, fires: bool) -> None:
    found = _findings(snapshot({}, nvidia=nvidia, cuda_toolkit={"nvcc": nvcc}), tmp_path, "nvcc-newer-than-driver")
    assert bool(found) is fires
    assert all(f.components[:2] == ("cuda-toolkit", "nvidia-driver") for f in found)


def test_runtime_compiled_package_without_toolkit_facts_is_unverified(tmp_path: Path) -> None:
    """DeepSpeed builds its ops with nvcc at first use: a snapshot without a cuda_toolkit block cannot say whether
    that works (warned, unverified); one whose toolkit has nvcc says nothing of it."""
    unknown = _findings(snapshot({"torch": "2.7.1+cu128", "deepspeed": "0.16.4"}), tmp_path,
                        "nvcc-unknown-for-runtime-builds")
    assert [(f.components, f.verified) for f in unknown] == [(("cuda-toolkit", "deepspeed"), False)]
    known = snapshot({"torch": "2.7.1+cu128", "deepspeed": "0.16.4"}, cuda_toolkit={"nvcc": "12.8"})
    assert not _findings(known, tmp_path, "nvcc-unknown-for-runtime-builds")


# --- a package's CUDA build against the GPU's arch (nvcc_archs of the build's CUDA) -----------------------------

BLACKWELL = {"index": 0, "name": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0"}
KEPLER = {"index": 0, "name": "Tesla K80", "compute_capability": "3.7"}


@pytest.mark.parametrize(("gpu", "packages", "rule"), [
    (BLACKWELL, {"dgl": "2.1.0+cu118"}, "build-cuda-predates-gpu"),          # CUDA 11.8 < 12.8 (sm_120)
    (BLACKWELL, {"onnxruntime-gpu": "1.18.0"}, "build-cuda-predates-gpu"),   # a [[builds]] row: CUDA 11.x
    (KEPLER, {"onnxruntime-gpu": "1.20.0"}, "build-cuda-dropped-gpu"),       # CUDA 12 dropped sm_37
    (BLACKWELL, {"dgl": "2.4.0+cu128"}, None),
    (BLACKWELL, {"onnxruntime-gpu": "1.20.0"}, None),                        # CUDA 12.x: 12.8 may target it
    (BLACKWELL, {"torchvision": "0.20.0+cu118"}, None),                      # judged on torch's arch lists
])
def test_a_build_of_a_cuda_that_cannot_target_the_gpu(tmp_path: Path, gpu: dict, packages: dict,
                                                       rule: str | None) -> None:
    nvidia = {"driver": "580.159.04", "cuda_driver": "13.0", "gpus": [gpu]}
    found = [f for f in run_check(snapshot(packages, nvidia=nvidia), stack=None, cwd=tmp_path).findings
             if f.rule.startswith("build-cuda-")]
    assert [f.rule for f in found] == ([rule] if rule else [])
    assert all(f.components == tuple(packages) for f in found)


def test_cuda_10_build_on_windows_is_judged_on_its_release_driver(tmp_path: Path) -> None:
    """CUDA 10 has no minor-version compatibility and no Windows family floor: cudatoolkit 10.0 needs 411.31."""
    old = snapshot({"cudatoolkit": "10.0.130"}, host={"os": "windows", "arch": "x86_64"},
                   nvidia={"driver": "388.73", "gpus": [H100]})
    [finding] = _findings(old, tmp_path, "driver-too-old-for-cuda-build")
    assert "411.31" in finding.message and finding.fix == "upgrade the NVIDIA driver to >= 411.31"
    new = snapshot({"cudatoolkit": "10.0.130"}, host={"os": "windows", "arch": "x86_64"},
                   nvidia={"driver": "411.31", "gpus": [H100]})
    assert not _findings(new, tmp_path, "driver-too-old-for-cuda-build")


def test_flashinfer_compiles_on_first_use_unless_its_kernel_cache_is_installed(tmp_path: Path) -> None:
    """flashinfer-python compiles its kernels with nvcc on first use; flashinfer-jit-cache (or -cubin) spares it."""
    bare = _findings(snapshot({"torch": "2.11.0+cu130", "flashinfer-python": "0.6.15.post1"}), tmp_path,
                     "nvcc-unknown-for-runtime-builds")
    assert [f.components for f in bare] == [("cuda-toolkit", "flashinfer-python")]
    cached = snapshot({"torch": "2.11.0+cu130", "flashinfer-python": "0.6.15.post1", "flashinfer-jit-cache": "0.6.15"})
    assert not _findings(cached, tmp_path, "nvcc-unknown-for-runtime-builds")
    no_nvcc = snapshot({"torch": "2.11.0+cu130", "flashinfer-python": "0.6.15.post1"}, cuda_toolkit={"nvcc": None})
    assert [f.components for f in _findings(no_nvcc, tmp_path, "nvcc-missing-for-runtime-builds")] == [
        ("cuda-toolkit", "flashinfer-python")]


def test_conda_torch_takes_the_cuda_of_its_runtime_package_against_nvcc(tmp_path: Path) -> None:
    """A plain torch beside conda's cudatoolkit 10.0 is (if a CUDA build) built for CUDA 10.0: nvcc 9.1 mismatches."""
    conda = snapshot({"torch": "1.4.0", "cudatoolkit": "10.0.130"}, cuda_toolkit={"nvcc": "9.1"})
    [finding] = _findings(conda, tmp_path, "nvcc-torch-cuda-mismatch")
    assert "(10.0)" in finding.message
    matching = snapshot({"torch": "1.4.0", "cudatoolkit": "10.0.130"}, cuda_toolkit={"nvcc": "10.0"})
    assert not _findings(matching, tmp_path, "nvcc-torch-cuda-mismatch")


def test_tensorflow_gpu_builds_are_judged_against_the_driver(tmp_path: Path) -> None:
    """tensorflow_gpu 1.13.1 is built with CUDA 10.0 (TensorFlow's tested build configurations)."""
    old = snapshot({"tensorflow-gpu": "1.13.1"}, nvidia={"driver": "396.26", "gpus": [H100]})
    [finding] = _findings(old, tmp_path, "driver-too-old-for-cuda-build")
    assert finding.components[:2] == ("tensorflow-gpu", "nvidia-driver") and "10.0" in finding.message
    assert not _findings(snapshot({"tensorflow-gpu": "1.12.0"}, nvidia={"driver": "396.26", "gpus": [H100]}),
                         tmp_path, "driver-too-old-for-cuda-build")  # CUDA 9.0 runs on 396


def test_an_extension_compiled_beside_a_cpu_torch_is_cpu_only_too(tmp_path: Path) -> None:
    """torch-scatter from PyPI is a source archive whose setup.py builds CUDA ops only where torch has CUDA: beside
    the CPU-only torch 2.0.0 of PyPI on a Jetson (aarch64) it is built without them."""
    jetson = {"name": "NVIDIA Jetson Xavier", "compute_capability": "7.2"}
    arm = snapshot({"torch": "2.0.0", "torch-scatter": "2.1.1"}, nvidia={"gpus": [jetson]},
                   host={"os": "linux", "arch": "aarch64"})
    [finding] = _findings(arm, tmp_path, "extension-built-against-cpu-torch")
    assert finding.components == ("torch-scatter", "torch") and not finding.verified
    assert '"torch-scatter==2.1.1"' in (finding.fix or "")
    # a wheel from PyG's index carries its build in the local label; a CUDA torch builds CUDA ops
    labelled = snapshot({"torch": "2.0.0", "torch-scatter": "2.1.1+pt20cpu"}, nvidia={"gpus": [jetson]},
                        host={"os": "linux", "arch": "aarch64"})
    assert not _findings(labelled, tmp_path, "extension-built-against-cpu-torch")
    cuda = snapshot({"torch": "2.0.0+cu118", "torch-scatter": "2.1.1"}, nvidia={"gpus": [H100]},
                    host={"os": "linux", "arch": "x86_64"})
    assert not _findings(cuda, tmp_path, "extension-built-against-cpu-torch")


@pytest.mark.parametrize(("version", "cc", "fires"), [
    ("0.2.1", "8.9", True),     # 0.x/1.x: head dim > 64 backward on A100/H100 only
    ("1.0.9", "8.0", False),
    ("2.4.2", "8.6", True),     # 2.0-2.5.4: head dim > 192
    ("2.4.2", "9.0", False),
    ("2.5.5", "8.6", False),    # lifted for head dim 256 without dropout
])
def test_flash_attn_backward_head_dim_limits(tmp_path: Path, version: str, cc: str, fires: bool) -> None:
    snap = snapshot({"flash-attn": version}, nvidia={"gpus": [{"name": "GPU", "compute_capability": cc}]})
    found = [f for f in run_check(snap, stack=None, cwd=tmp_path).findings
             if f.rule == "flash-attn-backward-head-dim"]
    assert bool(found) is fires
    assert all(not f.verified and f.severity.value == "warn" for f in found)


def test_a_release_built_for_several_cudas_is_judged_by_its_oldest(tmp_path: Path) -> None:
    """TensorRT 7.1 came for CUDA 10.2 and 11.0: driver 410.78 (CUDA 10.0) runs neither. The oldest CUDA is not the
    installed build's, so the arch check that reads a build's CUDA leaves it alone (Jetson's TensorRT 8.5 is a
    CUDA 11.4 build with sm_87)."""
    old = snapshot({"tensorrt": "7.1.3"}, nvidia={"driver": "410.78", "gpus": [H100]})
    [finding] = _findings(old, tmp_path, "driver-too-old-for-cuda-build")
    assert "CUDA 10.2 (its oldest build" in finding.message and finding.components[:2] == ("tensorrt", "nvidia-driver")
    assert not _findings(snapshot({"tensorrt": "7.1.3"}, nvidia={"driver": "450.51.06", "gpus": [H100]}), tmp_path,
                         "driver-too-old-for-cuda-build")
    orin = snapshot({"tensorrt": "8.5.2.2"}, host={"os": "linux", "arch": "aarch64"},
                    nvidia={"gpus": [{"name": "Orin", "compute_capability": "8.7"}]})
    assert not _findings(orin, tmp_path, "build-cuda-predates-gpu")
    cu12 = snapshot({"tensorrt-cu12": "10.3.0"}, nvidia={"driver": "470.256.02", "gpus": [H100]})
    assert _findings(cu12, tmp_path, "driver-too-old-for-cuda-build")


def test_jaxlib_names_its_cuda_as_cuda111(tmp_path: Path) -> None:
    """jaxlib 0.1.61+cuda111 is a CUDA 11.1 build: on a CUDA 11.0 driver it runs through minor-version
    compatibility only."""
    snap = snapshot({"jaxlib": "0.1.61+cuda111"}, nvidia={"driver": "450.102.04", "cuda_driver": "11.0",
                                                          "gpus": [H100]})
    [finding] = _findings(snap, tmp_path, "driver-minor-version-compat")
    assert "jaxlib's CUDA 11.1" in finding.message
    too_old = snapshot({"jaxlib": "0.4.9+cuda12.cudnn89"}, nvidia={"driver": "470.256.02", "gpus": [H100]})
    assert _findings(too_old, tmp_path, "driver-too-old-for-cuda-build")


def test_transformers_4_beside_keras_3_without_tf_keras(tmp_path: Path) -> None:
    """TensorFlow 2.16 brings Keras 3, which transformers 4.x's TensorFlow models refuse unless tf-keras is
    installed; transformers 5 has no TensorFlow models, and tf-keras or a TensorFlow before 2.16 settles it."""
    broken = snapshot({"transformers": "4.49.0", "tensorflow": "2.18.0", "keras": "3.8.0"})
    [finding] = _findings(broken, tmp_path, "transformers-tf-keras-3")
    assert finding.severity.value == "warn" and "pip install tf-keras" in (finding.fix or "")
    for fine in ({"transformers": "4.49.0", "tensorflow": "2.18.0", "tf-keras": "2.18.0"},
                 {"transformers": "4.49.0", "tensorflow": "2.15.1"},
                 {"transformers": "5.17.0", "tensorflow": "2.18.0"},
                 {"transformers": "4.49.0", "keras": "3.8.0"}):
        assert not [f for f in _findings(snapshot(fine), tmp_path, "transformers-tf-keras-3")
                    if f.severity.value == "warn"], fine
    assert _findings(snapshot({"transformers": "4.40.0", "tensorflow": "2.15.1", "keras": "3.1.0"}), tmp_path,
                     "transformers-tf-keras-3")  # Keras 3 installed by hand beside TensorFlow 2.15
