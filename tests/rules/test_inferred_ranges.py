"""Thin snapshots judged over the range of what an unknown fact may be: a warning when the fact holds for most of
the range (saying it is inferred), the unverified finding or silence otherwise."""

from __future__ import annotations

from pathlib import Path

from envdoctor.checker import run_check
from envdoctor.findings import Finding, Report
from envdoctor.snapshot import snapshot_from_dict

SCHEMA = "envdoctor.snapshot/1"


def check(tmp_path: Path, **sections: object) -> Report:
    return run_check(snapshot_from_dict({"schema": SCHEMA, **sections}), stack=None, cwd=tmp_path)


def found(report: Report, rule: str, verified: bool | None = True) -> list[Finding]:
    return [f for f in report.findings if f.rule == rule and f.severity.value in ("warn", "fail")
            and (verified is None or f.verified is verified)]


def gpu(cc: str) -> dict[str, object]:
    return {"gpus": [{"name": "GPU", "compute_capability": cc}]}


# --- torch of unknown build against the GPU and the driver --------------------------------------------------------

def test_unknown_torch_on_blackwell_warns_over_the_range(tmp_path: Path) -> None:
    report = check(tmp_path, nvidia=gpu("12.0"), packages={"torch": None})
    [finding] = found(report, "gpu-arch-not-in-torch")
    assert finding.severity.value == "warn" and "inferred over the range" in finding.message
    assert "cu128 of 2.7.0" in finding.message


def test_unknown_torch_on_ampere_is_not_a_range_warning(tmp_path: Path) -> None:
    report = check(tmp_path, nvidia=gpu("8.6"), packages={"torch": None})
    assert not found(report, "gpu-arch-not-in-torch", verified=None)


def test_on_an_old_python_the_range_holds_the_releases_older_than_the_table(tmp_path: Path) -> None:
    """Python 3.7 has no torch of the table (2.1 on): pip finds 1.x only, whose plain PyPI wheels were CUDA 10.x
    builds without Ampere kernels up to 1.12 (cu102), so an RTX 3080 gets the range warning."""
    report = check(tmp_path, python={"version": "3.7"}, nvidia=gpu("8.6"), packages={"torch": None})
    [finding] = found(report, "gpu-arch-not-in-torch")
    assert ("torch 1.2.0-1.13.1 (every release with wheels for Python 3.7, each as its plain PyPI wheel)"
            in finding.message)
    assert "cu117 of 1.13.1" in finding.message
    windows = check(tmp_path, host={"os": "windows"}, python={"version": "3.7"}, nvidia=gpu("8.6"),
                    packages={"torch": None})
    assert not found(windows, "gpu-arch-not-in-torch", verified=None)  # PyPI's Windows wheels: no CUDA to judge
    assert not found(check(tmp_path, python={"version": "3.7"}, nvidia=gpu("7.5"), packages={"torch": None}),
                     "gpu-arch-not-in-torch", verified=None)  # cu101/cu102 have sm_75


def test_tagless_torch_on_windows_judged_against_its_default_cuda_build(tmp_path: Path) -> None:
    """torch 2.8.0's default build (cu128) has no Maxwell kernels; a cu126 build would."""
    report = check(tmp_path, host={"os": "windows"}, nvidia=gpu("5.2"), packages={"torch": "2.8.0"})
    [finding] = found(report, "gpu-arch-not-in-torch")
    assert "cu128" in finding.message and "inferred" in finding.message
    assert not found(check(tmp_path, host={"os": "windows"}, nvidia=gpu("8.6"), packages={"torch": "2.8.0"}),
                     "gpu-arch-not-in-torch", verified=None)


def test_a_package_pinning_torch_judges_the_driver_through_its_pins(tmp_path: Path) -> None:
    report = check(tmp_path, host={"os": "linux"}, nvidia={"cuda_driver": "11.4"}, packages={"vllm": None})
    [finding] = found(report, "driver-too-old-for-pinned-torch")
    assert finding.components == ("vllm", "torch", "nvidia-driver") and "inferred over its releases" in finding.message
    assert not found(check(tmp_path, host={"os": "linux"}, nvidia={"cuda_driver": "12.8"}, packages={"vllm": None}),
                     "driver-too-old-for-pinned-torch", verified=None)


def test_a_known_release_pinning_torch_is_judged_exactly(tmp_path: Path) -> None:
    report = check(tmp_path, host={"os": "linux"}, nvidia={"cuda_driver": "11.8"}, packages={"vllm": "0.6.3"})
    [finding] = found(report, "driver-too-old-for-pinned-torch")
    assert "pins torch==2.4.0" in finding.message


def test_cpu_tagged_torch_without_gpu_facts_is_a_verified_warning(tmp_path: Path) -> None:
    report = check(tmp_path, packages={"torch": "2.2.0+cpu"})
    assert found(report, "cpu-torch-gpu-unknown")


def test_a_build_that_reports_no_cuda_is_a_cpu_build_and_an_unknown_cuda_is_not(tmp_path: Path) -> None:
    """"torch.cuda": null is what torch.version.cuda says of a CPU build; leaving the key out says nothing."""
    stated = check(tmp_path, packages={"torch": "1.11.0"}, torch={"cuda": None})
    assert found(stated, "cpu-torch-gpu-unknown")
    assert found(check(tmp_path, packages={"torch": "1.11.0"}, torch={"cuda": None}, nvidia=gpu("8.6")),
                 "cpu-torch-on-gpu-machine")
    assert not found(check(tmp_path, packages={"torch": "1.11.0"}, torch={}), "cpu-torch-gpu-unknown", verified=None)
    contradicted = check(tmp_path, packages={"torch": "2.3.1+cu121"}, torch={"cuda": None})
    assert not found(contradicted, "cpu-torch-gpu-unknown", verified=None)
    assert any(f.rule == "snapshot-invalid-value" for f in contradicted.findings)


# --- source builds without a toolkit -----------------------------------------------------------------------------

def test_sdist_only_extensions_need_the_toolkit_the_snapshot_lacks(tmp_path: Path) -> None:
    report = check(tmp_path, packages={"torch": None, "mamba-ssm": None, "causal-conv1d": "1.0.2"})
    [finding] = found(report, "cuda-toolkit-needed-for-source-build")
    assert finding.category.value == "missing" and finding.components[0] == "cuda-toolkit"
    assert {"mamba-ssm", "causal-conv1d"} <= set(finding.components)


def test_a_found_toolkit_or_a_wheel_release_needs_no_such_warning(tmp_path: Path) -> None:
    with_nvcc = check(tmp_path, cuda_toolkit={"nvcc": "12.1"}, packages={"torch": "2.3.1+cu121", "mamba-ssm": None})
    assert not found(with_nvcc, "cuda-toolkit-needed-for-source-build", verified=None)
    wheels = check(tmp_path, packages={"torch": "2.3.1+cu121", "xformers": "0.0.27"})
    assert not found(wheels, "cuda-toolkit-needed-for-source-build", verified=None)


# --- NumPy ---------------------------------------------------------------------------------------------------------

def test_intel_mac_torch_under_unknown_numpy_warns(tmp_path: Path) -> None:
    report = check(tmp_path, host={"os": "darwin", "arch": "x86_64"},
                   packages={"torch": "2.2.2", "numpy": None})
    [finding] = found(report, "numpy2-abi-numpy1-build")
    assert "macOS" in finding.message or "darwin x86_64" in finding.message
    arm = check(tmp_path, host={"os": "darwin", "arch": "arm64"}, packages={"torch": "2.2.2", "numpy": None})
    assert not found(arm, "numpy2-abi-numpy1-build")


def test_unknown_torch_under_numpy2_on_intel_mac_is_inferred(tmp_path: Path) -> None:
    report = check(tmp_path, host={"os": "darwin", "arch": "x86_64"}, python={"version": "3.12"},
                   packages={"torch": None, "numpy": "2.4.5"})
    [finding] = found(report, "numpy2-abi-numpy1-build", verified=False)
    assert "inferred" in finding.message


def test_unlisted_compiled_dependency_under_numpy2(tmp_path: Path) -> None:
    packages = {"numpy": "2.0.2", "sentence-transformers": "3.4.1"}
    report = check(tmp_path, python={"version": "3.9.14"}, packages=packages)
    [finding] = [f for f in found(report, "numpy2-dependency-numpy1-build") if f.components[0] == "torch"]
    assert finding.components == ("torch", "sentence-transformers", "numpy") and "does not list" in finding.message
    listed = check(tmp_path, python={"version": "3.9.14"}, packages={**packages, "torch": "2.5.1"})
    assert not [f for f in found(listed, "numpy2-dependency-numpy1-build", verified=None) if f.components[0] == "torch"]


# --- extensions against torch --------------------------------------------------------------------------------------

def test_unknown_xformers_beside_a_covered_torch_is_inferred(tmp_path: Path) -> None:
    report = check(tmp_path, packages={"torch": "2.1.0+cu121", "xformers": None})
    [finding] = found(report, "extension-build-unknown")
    assert "0.0.22.post7" in finding.message


def test_unknown_companion_beside_a_torch_the_tables_do_not_cover_stays_unverified(tmp_path: Path) -> None:
    report = check(tmp_path, packages={"torch": "1.13.1", "torchaudio": None})
    assert not found(report, "extension-build-unknown")
    assert found(report, "extension-build-unknown", verified=False)


def test_extensions_beside_a_torch_that_is_not_a_release(tmp_path: Path) -> None:
    report = check(tmp_path, packages={"torch": "2.4.0a0+07cecf4168", "torch-scatter": "2.1.2"})
    [finding] = found(report, "extension-on-prerelease-torch")
    assert finding.components == ("torch-scatter", "torch")
    released = check(tmp_path, packages={"torch": "2.4.0", "torch-scatter": "2.1.2"})
    assert not found(released, "extension-on-prerelease-torch", verified=None)


# --- builds that do not exist for the host -------------------------------------------------------------------------

def test_pytorch_index_torch_on_an_intel_mac(tmp_path: Path) -> None:
    report = check(tmp_path, host={"os": "darwin", "arch": "x86_64"}, packages={"torch": "2.11.0+cpu"})
    [finding] = found(report, "no-build-for-host")
    assert "2.2.2" in finding.message
    arm = check(tmp_path, host={"os": "darwin", "arch": "arm64"}, packages={"torch": "2.11.0+cpu"})
    assert not found(arm, "no-build-for-host", verified=None)


def test_triton_for_torch_compile_on_windows(tmp_path: Path) -> None:
    packages = {"torch": "2.5.1+cu124"}
    [finding] = found(check(tmp_path, host={"os": "windows"}, packages=packages), "no-build-for-host")
    assert finding.components == ("triton", "torch")
    assert not found(check(tmp_path, host={"os": "linux"}, packages=packages), "no-build-for-host", verified=None)
    with_fork = check(tmp_path, host={"os": "windows"}, packages={**packages, "triton-windows": "3.1.0"})
    assert not found(with_fork, "no-build-for-host", verified=None)


def test_bitsandbytes_of_unknown_version_on_volta_is_said_unverified(tmp_path: Path) -> None:
    report = check(tmp_path, host={"os": "linux"}, nvidia=gpu("7.0"), packages={"bitsandbytes": None})
    assert found(report, "bitsandbytes-release-gpu-support", verified=False)


def test_triton_kernel_packages_on_a_host_without_triton(tmp_path: Path) -> None:
    windows = {"os": "windows", "arch": "x86_64"}
    [finding] = found(check(tmp_path, host=windows, packages={"liger-kernel": None}), "no-build-for-host")
    assert finding.components == ("liger-kernel", "triton") and "inferred" in finding.message
    old = check(tmp_path, host=windows, packages={"unsloth": "2024.11.7"})
    assert [f.components for f in found(old, "no-build-for-host")] == [("unsloth", "triton")]
    # later unsloth releases pull in triton-windows on Windows, and an installed Triton build answers the question
    assert not found(check(tmp_path, host=windows, packages={"unsloth": "2026.10.9"}), "no-build-for-host")
    with_fork = check(tmp_path, host=windows, packages={"liger-kernel": None, "triton-windows": "3.2.0"})
    assert not found(with_fork, "no-build-for-host", verified=None)


def test_flash_attn_on_linux_needs_the_toolkit_only_without_a_release_wheel(tmp_path: Path) -> None:
    linux = {"os": "linux", "arch": "x86_64"}
    matching = check(tmp_path, host=linux, packages={"torch": "2.3.1+cu121", "flash-attn": "2.6.3"})
    assert not found(matching, "cuda-toolkit-needed-for-source-build", verified=None)
    unknown_torch = check(tmp_path, host=linux, python={"version": "3.11"},
                          packages={"torch": None, "flash-attn": "2.6.3"})
    [finding] = found(unknown_torch, "cuda-toolkit-needed-for-source-build", verified=False)
    assert "inferred over the range" in finding.message


def test_a_variant_of_unrecorded_archs_keeps_the_floor_of_the_older_cuda_build(tmp_path: Path) -> None:
    """torch 2.8.0+cu129's arch list is not recorded; its cu128 build starts at sm_70, so Pascal is out."""
    pascal = check(tmp_path, nvidia=gpu("6.1"), packages={"torch": "2.8.0+cu129"})
    [finding] = found(pascal, "gpu-arch-not-in-torch", verified=False)
    assert "cu128 build starts at sm_70" in finding.message and finding.severity.value == "warn"
    assert not found(check(tmp_path, nvidia=gpu("8.6"), packages={"torch": "2.8.0+cu129"}), "gpu-arch-not-in-torch",
                     verified=None)


def test_reported_archs_follow_torchs_own_rule_for_ptx(tmp_path: Path) -> None:
    """torch.cuda._check_cubins counts SASS of the GPU's major only: an old build's compute_37 PTX does not make a
    Blackwell GPU supported, while PTX of the GPU's own major does; a build that reports archs is a CUDA build."""
    archs = ["sm_37", "sm_50", "sm_61", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "compute_37"]
    blackwell = check(tmp_path, nvidia=gpu("12.0"), packages={"torch": None}, torch={"archs": archs})
    [finding] = found(blackwell, "gpu-arch-not-in-torch")
    assert "12.0" in finding.message and finding.severity.value == "fail"
    assert not found(blackwell, "torch-build-unknown", verified=None)
    ptx_80 = {"archs": ["sm_75", "compute_80"]}
    ampere = check(tmp_path, nvidia=gpu("8.6"), packages={"torch": None}, torch=ptx_80)
    assert not found(ampere, "gpu-arch-not-in-torch", verified=None)
    assert found(check(tmp_path, nvidia=gpu("9.0"), packages={"torch": None}, torch=ptx_80), "gpu-arch-not-in-torch")
