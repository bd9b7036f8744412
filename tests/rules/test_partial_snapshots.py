"""Snapshots written from issue threads: unknown versions, missing blocks, only nvidia-smi's header, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.findings import Report
from envdoctor.snapshot import SnapshotError, load_snapshot, snapshot_from_dict

SCHEMA = "envdoctor.snapshot/1"


def check(tmp_path: Path, stack: str | None = None, **sections: object) -> Report:
    return run_check(snapshot_from_dict({"schema": SCHEMA, **sections}), stack=stack, cwd=tmp_path)


def rules(report: Report, severities: tuple[str, ...] = ("warn", "fail")) -> dict[str, tuple[str, ...]]:
    return {f.rule: f.components for f in report.findings if f.severity.value in severities}


def test_null_and_missing_versions_mean_installed_version_unknown(tmp_path: Path) -> None:
    snapshot = snapshot_from_dict({"packages": {"flash-attn": None, "bitsandbytes": {}, "torch": {"version": None}}})
    assert {name: p.version for name, p in snapshot.packages.items()} == {
        "flash-attn": None, "bitsandbytes": None, "torch": None}


def test_a_git_commit_given_as_the_version_is_the_vcs_commit_of_an_unknown_version() -> None:
    snapshot = snapshot_from_dict({"packages": {"invokeai": "0e53b27655594b36d5565168998a8701a45e2c1f",
                                                "app": "1234567"}})
    assert snapshot.packages["invokeai"].version is None
    assert snapshot.packages["invokeai"].vcs_commit == "0e53b27655594b36d5565168998a8701a45e2c1f"
    assert snapshot.packages["app"].version == "1234567" and snapshot.packages["app"].vcs_commit is None


def test_presence_alone_fires_flash_attn_on_turing(tmp_path: Path) -> None:
    report = check(tmp_path, nvidia={"gpus": [{"name": "Tesla T4", "compute_capability": "7.5"}]},
                   packages={"torch": "2.3.1+cu121", "flash-attn": None})
    found = [f for f in report.findings if f.rule == "flash-attn-gpu-arch"]
    assert found and found[0].severity.value == "fail" and "version is unknown" in found[0].message


def test_flash_attn_of_unknown_version_on_a_gpu_only_later_releases_build_for(tmp_path: Path) -> None:
    report = check(tmp_path, nvidia={"gpus": [{"name": "RTX 5090", "compute_capability": "12.0"}]},
                   packages={"torch": "2.7.0+cu128", "flash-attn": None})
    found = [f for f in report.findings if f.rule == "flash-attn-gpu-arch-unknown-release"]
    assert found and found[0].severity.value == "warn" and found[0].verified is False
    assert "flash-attn 2.8.0 and later" in found[0].message and "'flash-attn>=2.8.0'" in found[0].fix


@pytest.mark.parametrize("version", ["2.8.3+cu128torch2.8cxx11abiTRUE", "2.8.9", "2.8.0.post2+local"])
def test_flash_attn_release_newer_than_the_first_with_kernels_is_not_an_unknown_release(tmp_path: Path,
                                                                                        version: str) -> None:
    report = check(tmp_path, nvidia={"gpus": [{"name": "RTX 5090", "compute_capability": "12.0"}]},
                   packages={"torch": "2.8.0+cu128", "flash-attn": version})
    assert "flash-attn-gpu-arch-unknown-release" not in rules(report)


def test_flash_attn_release_without_kernels_for_the_gpu_fails(tmp_path: Path) -> None:
    report = check(tmp_path, nvidia={"gpus": [{"name": "RTX 5090", "compute_capability": "12.0"}]},
                   packages={"torch": "2.7.0+cu128", "flash-attn": "2.7.4.post1"})
    found = [f for f in report.findings if f.rule == "flash-attn-gpu-arch"]
    assert found and found[0].severity.value == "fail" and "no kernel image" in found[0].message
    assert not [f for f in report.findings if f.rule == "flash-attn-gpu-arch-unknown-release"]


def test_flash_attn_on_a_gpu_every_release_builds_for_is_quiet(tmp_path: Path) -> None:
    report = check(tmp_path, nvidia={"gpus": [{"name": "H100", "compute_capability": "9.0"}]},
                   packages={"torch": "2.7.0+cu128", "flash-attn": None})
    assert not {"flash-attn-gpu-arch", "flash-attn-gpu-arch-unknown-release"} & set(rules(report))


def test_no_nvidia_block_beside_cuda_builds_says_the_driver_is_unknown(tmp_path: Path) -> None:
    report = check(tmp_path, host={"os": "linux"}, packages={"torch": "2.4.0+cu124", "ctranslate2": "4.4.0"})
    found = [f for f in report.findings if f.rule == "driver-unknown"]
    assert found and found[0].verified is False and found[0].severity.value == "info"
    assert "torch 2.4.0+cu124 (CUDA 12.4)" in found[0].message and "ctranslate2 4.4.0" in found[0].message


def test_no_nvidia_block_beside_cpu_builds_says_nothing_of_the_driver(tmp_path: Path) -> None:
    report = check(tmp_path, host={"os": "linux"}, packages={"torch": "2.4.0+cpu"})
    assert "driver-unknown" not in rules(report, ("info", "warn", "fail"))


def test_package_floors_of_serving_kernels(tmp_path: Path) -> None:
    report = check(tmp_path, nvidia={"gpus": [{"name": "Tesla V100", "compute_capability": "7.0"}]},
                   packages={"sglang": "0.2.12", "flashinfer": "0.1.4+cu124torch2.4"})
    found = {f.components[0]: f.severity.value for f in report.findings if f.rule == "package-gpu-too-old"}
    assert found == {"sglang": "fail", "flashinfer": "fail"}
    turing = check(tmp_path, nvidia={"gpus": [{"name": "RTX 2080", "compute_capability": "7.5"}]},
                   packages={"sglang": None, "sgl-kernel": None})
    found = {f.components[0]: f.severity.value for f in turing.findings if f.rule == "package-gpu-too-old"}
    assert found == {"sgl-kernel": "warn"}


def test_companion_of_another_cuda_beside_torch_of_unknown_version_but_known_cuda(tmp_path: Path) -> None:
    report = check(tmp_path, packages={"torch": None, "torchaudio": "2.0.2+cu117"}, torch={"cuda": "11.8"})
    assert rules(report)["companion-other-cuda-variant"] == ("torchaudio", "torch")
    same = check(tmp_path, packages={"torch": None, "torchaudio": "2.0.2+cu118"}, torch={"cuda": "11.8"})
    assert "companion-other-cuda-variant" not in rules(same)


def test_unknown_version_is_said_not_silent(tmp_path: Path) -> None:
    report = check(tmp_path, packages={"peft": None, "numpy": "1.26.4"}, python={"version": "3.11.7"})
    unknown = [f for f in report.findings if f.rule == "package-version-unknown"]
    assert unknown and unknown[0].components == ("peft",) and unknown[0].verified is False


def test_header_cuda_version_alone_judges_the_driver(tmp_path: Path) -> None:
    report = check(tmp_path, nvidia={"cuda_driver": "11.4"}, packages={"torch": "2.3.1+cu121"})
    assert rules(report)["driver-too-old-for-torch-cuda"] == ("torch", "nvidia-driver")


def test_a_bare_driver_branch_is_judged_where_the_floor_lies_in_another_branch(tmp_path: Path) -> None:
    """Threads often give only the branch ("driver 384"): below a higher branch's floor, above a lower one's."""
    older = check(tmp_path, host={"os": "linux"}, nvidia={"driver": "470"}, packages={"torch": "2.3.1+cu121"})
    finding = next(f for f in older.findings if f.rule == "driver-too-old-for-torch-cuda")
    assert finding.severity.value == "fail" and "470 branch" in finding.message
    newer = check(tmp_path, host={"os": "linux"}, nvidia={"driver": "550"}, packages={"torch": "2.3.1+cu121"})
    assert "driver-too-old-for-torch-cuda" not in rules(newer)


def test_a_bare_driver_branch_holding_the_floor_is_not_verified(tmp_path: Path) -> None:
    """CUDA 12.x needs 525.60.13: a 525 driver may be 525.60 or 525.20, so the answer is unknown, never green."""
    report = check(tmp_path, host={"os": "linux"}, nvidia={"driver": "525"}, packages={"torch": "2.3.1+cu121"})
    finding = next(f for f in report.findings if f.rule == "driver-too-old-for-torch-cuda")
    assert finding.verified is False and "branch (525)" in finding.message


def test_a_plain_old_torch_is_judged_by_its_pypi_wheels_cuda_or_said_unverified(tmp_path: Path) -> None:
    """torch 1.2.0's plain wheel is CUDA 10.0 (previous-versions page); 1.1.0's is not recorded: never green."""
    recorded = check(tmp_path, host={"os": "linux"}, nvidia={"driver": "384.111"}, packages={"torch": "1.2.0"})
    assert rules(recorded)["driver-too-old-for-torch-cuda"] == ("torch", "nvidia-driver")
    unrecorded = check(tmp_path, host={"os": "linux"}, nvidia={"driver": "384.111"}, packages={"torch": "1.1.0"})
    finding = next(f for f in unrecorded.findings if f.rule == "driver-too-old-for-torch-cuda")
    assert finding.verified is False and "torch 1.1.0" in finding.message


def test_nvcc_against_a_driver_version_alone_uses_the_toolkits_floor_or_says_it_cannot(tmp_path: Path) -> None:
    """No Windows floor recorded: a Windows driver of a lower branch than the Linux floor is below it; a toolkit
    newer than the table, or a driver inside the floor's branch, is an unverified finding, never silence."""
    windows = check(tmp_path, host={"os": "windows"}, nvidia={"driver": "560.94"}, cuda_toolkit={"nvcc": "13.0"})
    finding = next(f for f in windows.findings if f.rule == "nvcc-newer-than-driver")
    assert finding.severity.value == "warn" and "580 branch" in finding.message
    future = check(tmp_path, host={"os": "linux"}, nvidia={"driver": "610.10"}, cuda_toolkit={"nvcc": "19.1"})
    finding = next(f for f in future.findings if f.rule == "nvcc-newer-than-driver")
    assert finding.severity.value == "info" and finding.verified is False


def test_builds_under_minor_version_compatibility_give_one_finding_naming_each(tmp_path: Path) -> None:
    report = check(tmp_path, host={"os": "linux"}, nvidia={"driver": "525.89.02"},
                   packages={"torch": "2.3.1+cu121", "torchvision": "0.18.1+cu121", "torchaudio": "2.3.1+cu121"})
    found = [f for f in report.findings if f.rule == "driver-minor-version-compat"]
    assert len(found) == 1 and found[0].severity.value == "warn"
    assert set(found[0].components) == {"torch", "torchvision", "torchaudio", "nvidia-driver"}
    assert "530.30.02" in found[0].fix


def test_driver_at_the_toolkit_release_driver_is_not_minor_version_compatibility(tmp_path: Path) -> None:
    report = check(tmp_path, host={"os": "linux"}, nvidia={"driver": "530.30.02"}, packages={"torch": "2.3.1+cu121"})
    assert not [f for f in report.findings if f.rule == "driver-minor-version-compat"]


def test_header_same_major_newer_minor_is_minor_version_compatibility(tmp_path: Path) -> None:
    report = check(tmp_path, nvidia={"cuda_driver": "12.2"}, packages={"torch": "2.5.1+cu124"})
    assert "driver-minor-version-compat" in rules(report, ("warn",))
    assert report.status.value == "warn"


def test_cuda_runtime_wheel_is_evidence_too(tmp_path: Path) -> None:
    report = check(tmp_path, nvidia={"driver": "470.82.01"},
                   packages={"jax-cuda12-plugin": "0.4.30", "nvidia-cuda-runtime-cu12": "12.4.127"})
    failing = rules(report)
    assert failing["driver-too-old-for-cuda-build"][1] == "nvidia-driver"


def test_unknown_torch_on_a_driver_most_builds_outgrew_warns_inferred(tmp_path: Path) -> None:
    """CUDA 11 driver: most CUDA builds of every torch release in the table are CUDA 12 or 13."""
    report = check(tmp_path, nvidia={"cuda_driver": "11.6"}, packages={"torch": None})
    finding = next(f for f in report.findings if f.rule == "driver-too-old-for-torch-cuda")
    assert finding.severity.value == "warn" and finding.verified is True
    assert "inferred over the range" in finding.message and "2.7.1+cu118" in finding.message


def test_unknown_torch_on_a_driver_most_builds_run_on_stays_unverified(tmp_path: Path) -> None:
    """CUDA 12 driver: only the CUDA 13 builds (a minority of the range) outgrew it."""
    report = check(tmp_path, nvidia={"cuda_driver": "12.4"}, packages={"torch": None})
    finding = next(f for f in report.findings if f.rule == "driver-too-old-for-torch-cuda")
    assert finding.severity.value == "warn" and finding.verified is False


def test_windows_plain_pypi_torch_is_a_cpu_build(tmp_path: Path) -> None:
    report = check(tmp_path, host={"os": "win32"}, packages={"torch": "2.2.2"},
                   nvidia={"driver": "551.86", "gpus": [{"name": "RTX 4080", "compute_capability": "8.9"}]})
    assert rules(report)["cpu-torch-on-gpu-machine"] == ("torch",)


def test_nightly_torch_gets_its_variants_archs(tmp_path: Path) -> None:
    report = check(tmp_path, packages={"torch": "2.6.0.dev20241112+cu121"},
                   nvidia={"driver": "570.86", "gpus": [{"name": "RTX 5070 Ti", "compute_capability": "12.0"}]})
    assert rules(report)["gpu-arch-not-in-torch"] == ("torch",)


def test_nvcc_major_mismatch_breaks_source_builds(tmp_path: Path) -> None:
    report = check(tmp_path, cuda_toolkit={"nvcc": "12.1"}, torch={"cuda": "11.8"},
                   packages={"torch": None, "flash-attn": None})
    finding = next(f for f in report.findings if f.rule == "nvcc-torch-cuda-mismatch")
    assert finding.severity.value == "fail" and set(finding.components) >= {"cuda-toolkit", "torch", "flash-attn"}


def test_nvcc_minor_mismatch_depends_on_setuptools(tmp_path: Path) -> None:
    """torch's builder accepts another minor CUDA only with setuptools >= 49.4.0 (pytorch#97602)."""
    def minor(setuptools: str | None) -> list:
        packages = {"torch": "2.3.1+cu121"} | ({"setuptools": setuptools} if setuptools else {})
        report = check(tmp_path, cuda_toolkit={"nvcc": "12.4"}, packages=packages)
        assert "nvcc-torch-cuda-mismatch" not in rules(report, ("info", "warn", "fail"))
        return [(f.severity.value, f.verified) for f in report.findings if f.rule == "nvcc-torch-cuda-minor-mismatch"]

    assert minor("69.5.1") == [("info", True)]
    assert minor("45.2.0") == [("fail", True)]
    assert minor(None) == [("warn", False)]


def test_deepspeed_without_nvcc(tmp_path: Path) -> None:
    report = check(tmp_path, cuda_toolkit={"nvcc": None}, packages={"torch": "2.3.1+cu121", "deepspeed": "0.14.0"})
    assert rules(report)["nvcc-missing-for-runtime-builds"] == ("cuda-toolkit", "deepspeed")


def test_extension_released_before_torch_minor(tmp_path: Path) -> None:
    # xformers 0.0.20 (2023-05) cannot have been built for torch 2.1 (2023-10)
    report = check(tmp_path, packages={"torch": "2.1.0", "xformers": "0.0.20"})
    assert {"xformers", "torch"} <= set(next(f.components for f in report.findings if "xformers" in f.components
                                             and f.category.value in ("abi", "version")
                                             and f.severity.value in ("warn", "fail")))


def test_flash_attn_without_a_wheel_for_this_torch_warns(tmp_path: Path) -> None:
    report = check(tmp_path, packages={"torch": "2.6.0", "flash-attn": "2.6.3"})
    finding = next(f for f in report.findings if f.rule == "flash-attn-no-release-wheel")
    assert finding.severity.value == "warn" and finding.verified is False


def test_unknown_companion_version_beside_torch_warns(tmp_path: Path) -> None:
    report = check(tmp_path, packages={"torch": "2.1.0+cu121", "xformers": None})
    assert rules(report)["extension-build-unknown"] == ("xformers", "torch")


@pytest.mark.parametrize(("where", "section"), [
    ("nvidia.gpus[0].compute_capability", {"nvidia": {"driver": "550.54.14", "gpus": [{"compute_capability": "abc"}]}}),
    ("nvidia.gpus[0].compute_capability", {"nvidia": {"driver": "550.54.14", "gpus": [{"compute_capability": "75"}]}}),
    ("nvidia.gpus[0].memory_mib", {"nvidia": {"driver": "550.54.14", "gpus": [{"memory_mib": -5}]}}),
    ("nvidia.cuda_driver", {"nvidia": {"cuda_driver": "twelve"}}),
    ("torch.cuda", {"torch": {"cuda": "banana"}, "packages": {"torch": "2.3.1"}}),
    ("torch.cuda", {"torch": {"cuda": "11.8"}, "packages": {"torch": "2.3.1+cu121"}}),
    ("packages.torch.version", {"packages": {"torch": "latest"}}),
    ("packages.torch.version", {"packages": {"torch": "2.3.1 ; rm -rf x"}}),
    ("packages.torch.version", {"packages": {"torch": "999.0\ntouch /tmp/x #"}}),
])
def test_invalid_values_are_reported_and_never_green(tmp_path: Path, where: str, section: dict) -> None:
    report = check(tmp_path, **section)
    invalid = [f for f in report.findings if f.rule == "snapshot-invalid-value"]
    assert invalid and where in invalid[0].message and invalid[0].verified is False
    assert report.status.value != "ok"
    assert all("\n" not in (f.fix or "") and "rm -rf" not in (f.fix or "") for f in report.findings)


def test_gpu_stack_with_unknown_compute_capability_is_not_ok(tmp_path: Path) -> None:
    report = check(tmp_path, stack="phase1a-2.0", nvidia={"driver": "550.54.14", "gpus": [{"name": "GPU"}]},
                   packages={"torch": "2.3.1+cu121"})
    assert "gpu-arch-unknown" in rules(report) and report.status.value != "ok"


def test_gpu_listed_without_driver_facts_is_said(tmp_path: Path) -> None:
    report = check(tmp_path, stack="phase1a-2.0", nvidia={"gpus": [{"compute_capability": "9.0"}]},
                   packages={"torch": "2.3.1+cu121"})
    assert "driver-unknown" in rules(report)


def test_two_spellings_of_one_package_are_refused() -> None:
    with pytest.raises(SnapshotError, match="names one package twice"):
        snapshot_from_dict({"packages": {"TORCH": "2.3.1", "torch": "2.4.0"}})


@pytest.mark.parametrize(("text", "message"), [
    ("{}", "field 'schema' is missing"),
    ('{"packages": {"torch": "2.3.1"}}', "field 'schema' is missing"),
    ('{"schema": "envdoctor.snapshot/0"}', "not a format envdoctor ever wrote"),
    ('{"schema": "envdoctor.snapshot/2"}', "newer than this envdoctor reads"),
    ('{"schema": "something/1"}', "expected 'envdoctor.snapshot/1'"),
])
def test_a_file_that_is_not_a_snapshot_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(SnapshotError, match=message):
        load_snapshot(path)


def test_schema_only_snapshot_is_not_ok(tmp_path: Path) -> None:
    report = check(tmp_path)
    assert "snapshot-empty" in rules(report) and report.status.value != "ok"


def test_without_a_stack_an_absent_package_is_not_a_failure(tmp_path: Path) -> None:
    report = check(tmp_path, python={"version": "3.11.7"}, packages={"packaging": "24.1", "rich": "13.7.1"},
                   nvidia={"error": "libnvidia-ml.so.1 not found", "gpus": []})
    assert report.stack is None and not [f for f in report.findings if f.category.value == "missing"]


def test_host_os_aliases_are_one_value() -> None:
    for alias in ("win32", "Windows", "cygwin"):
        assert snapshot_from_dict({"host": {"os": alias}}).host.os == "windows"
    assert snapshot_from_dict({"host": {"os": "macOS"}}).host.os == "darwin"


def test_old_torch_series_use_their_pypi_default_build(tmp_path: Path) -> None:
    # torch 1.10's plain Linux wheel is a CUDA 10.2 build: no sm_80 kernels, and CUDA 10 has no minor compatibility
    arch = check(tmp_path, packages={"torch": "1.10.1"},
                 nvidia={"driver": "470.82.01", "gpus": [{"name": "A100", "compute_capability": "8.0"}]})
    assert "gpu-arch-not-in-torch" in rules(arch)
    driver = check(tmp_path, packages={"torch": "1.7.1"}, nvidia={"cuda_driver": "10.1"})
    assert rules(driver)["driver-too-old-for-torch-cuda"] == ("torch", "nvidia-driver")


def test_an_extension_beside_a_torch_of_unknown_version_is_an_unverified_abi_warning(tmp_path: Path) -> None:
    report = check(tmp_path, packages={"torch": None, "pytorch3d": None, "exllamav2": "0.0.19+cu118",
                                       "torchvision": None})
    found = {f.components: f for f in report.findings if f.rule == "extension-build-unknown"}
    assert set(found) == {("pytorch3d", "torch"), ("exllamav2", "torch")}  # torchvision: the lockstep check's
    assert all(f.severity.value == "warn" and not f.verified for f in found.values())
    assert "exllamav2 0.0.19+cu118 is compiled against torch's C++ API" in found[("exllamav2", "torch")].message
    # nothing without torch listed, or with a known torch (the known-version checks judge that)
    assert not [f for f in check(tmp_path, packages={"pytorch3d": None}).findings
                if f.rule == "extension-build-unknown"]


def test_a_tagless_torch_whose_other_cuda_builds_lack_the_gpu_warns_inferred(tmp_path: Path) -> None:
    pascal = {"gpus": [{"name": "NVIDIA GeForce GTX 1080", "compute_capability": "6.1"}]}
    report = check(tmp_path, nvidia=pascal, packages={"torch": "2.7.1"})
    (finding,) = [f for f in report.findings if f.rule == "gpu-arch-not-in-torch"]
    assert finding.severity.value == "warn" and not finding.verified
    assert "PyPI's cu126 build" in finding.message and "cu128 build from the PyTorch index (+cu128)" in finding.message
    # a tag or a reported CUDA decides the build: the table's verdict, no inference
    assert not [f for f in check(tmp_path, nvidia=pascal, packages={"torch": "2.7.1+cu126"}).findings
                if f.rule == "gpu-arch-not-in-torch"]
    tagged = check(tmp_path, nvidia=pascal, packages={"torch": "2.7.1+cu128"})
    assert [f.severity.value for f in tagged.findings if f.rule == "gpu-arch-not-in-torch"] == ["fail"]


def test_a_platform_a_package_dropped_warns_for_an_unknown_version(tmp_path: Path) -> None:
    # torch's releases after 2.2.2 have no macOS x86_64 wheel: pip stops at 2.2.2 on an Intel Mac
    report = check(tmp_path, host={"os": "darwin", "arch": "x86_64"}, packages={"torch": None})
    (finding,) = [f for f in report.findings if f.rule == "no-wheel-for-platform"]
    assert finding.severity.value == "warn" and not finding.verified
    assert "releases after 2.2.2" in finding.message and "macOS Intel" in finding.message
    arm = check(tmp_path, host={"os": "darwin", "arch": "arm64"}, packages={"torch": None})
    assert not [f for f in arm.findings if f.rule == "no-wheel-for-platform"]


def test_a_platform_a_package_reached_late_warns_for_an_unknown_version(tmp_path: Path) -> None:
    """onnxruntime-gpu has Linux aarch64 wheels only since 1.29.0: an install of unknown version on a Jetson may be
    a source or community build from before; on Linux x86_64, where it always had wheels, nothing is said."""
    arm = {"os": "linux", "arch": "aarch64"}
    report = check(tmp_path, host=arm, packages={"onnxruntime-gpu": None})
    (finding,) = [f for f in report.findings if f.rule == "no-wheel-for-platform"]
    assert finding.severity.value == "warn" and not finding.verified
    assert "only since 1.29.0" in finding.message and "onnxruntime-gpu>=1.29.0" in (finding.fix or "")
    x86 = check(tmp_path, host={"os": "linux", "arch": "x86_64"}, packages={"onnxruntime-gpu": None})
    assert not [f for f in x86.findings if f.rule == "no-wheel-for-platform"]
    known = check(tmp_path, host=arm, packages={"onnxruntime-gpu": "1.31.0"})
    assert not [f for f in known.findings if f.rule == "no-wheel-for-platform"]


def test_condas_cudatoolkit_is_a_cuda_runtime_the_driver_must_run(tmp_path: Path) -> None:
    report = check(tmp_path, nvidia={"driver": "390.87"}, packages={"numba": None, "cudatoolkit": "10.0"})
    assert rules(report)["driver-too-old-for-cuda-build"] == ("cudatoolkit", "nvidia-driver")
    fine = check(tmp_path, nvidia={"driver": "410.48"}, packages={"numba": None, "cudatoolkit": "10.0"})
    assert "driver-too-old-for-cuda-build" not in rules(fine)


def test_a_cuda_9_build_needs_its_own_releases_driver(tmp_path: Path) -> None:
    # CUDA 9.x had no minor-version compatibility: a 9.2 build needs the 9.2 driver (396.37), not 9.1's
    report = check(tmp_path, nvidia={"driver": "387.26"}, packages={"torch": "0.4.1"}, torch={"cuda": "9.2"})
    assert rules(report)["driver-too-old-for-torch-cuda"] == ("torch", "nvidia-driver")
    fine = check(tmp_path, nvidia={"driver": "396.37"}, packages={"torch": "0.4.1"}, torch={"cuda": "9.2"})
    assert "driver-too-old-for-torch-cuda" not in rules(fine)


def test_torch_written_as_a_minor_is_any_release_of_that_minor(tmp_path: Path) -> None:
    """'torch 2.7' (as threads write it) beside torchvision 0.22.0 (built for torch 2.7.0) is no mismatch; beside
    torchvision 0.21.0 (torch 2.6.0) it is; xformers of unknown version names the releases built for a 2.7.x."""
    paired = check(tmp_path, packages={"torch": "2.7", "torchvision": "0.22.0"})
    assert "companion-built-for-other-torch" not in rules(paired)
    mismatched = check(tmp_path, packages={"torch": "2.7", "torchvision": "0.21.0"})
    assert rules(mismatched).get("companion-built-for-other-torch") == ("torchvision", "torch")
    unknown = check(tmp_path, packages={"torch": "2.7", "xformers": None})
    [finding] = [f for f in unknown.findings if f.rule == "extension-build-unknown"]
    assert "xformers 0.0.30" in finding.message and "none is built" not in finding.message


def test_torch_written_as_a_minor_is_judged_on_the_archs_every_release_of_it_ships(tmp_path: Path) -> None:
    """'torch 2.8' on a GTX 1080 Ti: every 2.8.x release's PyPI default build (cu128) starts at sm_70."""
    pascal = {"gpus": [{"name": "NVIDIA GeForce GTX 1080 Ti", "compute_capability": "6.1"}]}
    report = check(tmp_path, nvidia=pascal, packages={"torch": "2.8"})
    [finding] = [f for f in report.findings if f.rule == "gpu-arch-not-in-torch"]
    assert finding.severity.value == "fail" and "every 2.8.x release" in finding.message
    older = check(tmp_path, nvidia=pascal, packages={"torch": "2.5"})  # cu124 builds still ship sm_60/61
    assert "gpu-arch-not-in-torch" not in rules(older)


def test_a_python_a_platform_never_got_is_the_platforms_gap(tmp_path: Path) -> None:
    """decord's macOS wheels stop at CPython 3.8 while its Linux and Windows wheels are py3: on macOS with 3.9 the
    platform lacks it. torch 1.13.1 on Windows with 3.11: later torch releases have Windows 3.11 wheels, so this
    Python is what this release lacks."""
    mac = check(tmp_path, host={"os": "darwin", "arch": "x86_64"}, python={"version": "3.9"},
                packages={"decord": None})
    [finding] = [f for f in mac.findings if f.rule == "no-wheel-for-platform"]
    assert finding.category.value == "platform" and "CPython 3.9 wheels are for Linux x86_64" in finding.message
    windows = check(tmp_path, host={"os": "windows", "arch": "x86_64"}, python={"version": "3.11"},
                    packages={"torch": "1.13.1"})
    assert "no-wheel-for-python" in rules(windows) and "no-wheel-for-platform" not in rules(windows)


def test_a_toolchain_only_snapshot_is_checked_and_says_so(tmp_path: Path) -> None:
    """nvcc and gcc alone (a build thread): the host compiler is judged, and the emptiness finding says what was."""
    report = check(tmp_path, host={"os": "linux", "gcc": "12.3.0"}, cuda_toolkit={"nvcc": "11.5"})
    assert "nvcc-host-gcc-too-new" in rules(report)
    [empty] = [f for f in report.findings if f.rule == "snapshot-empty"]
    assert "only the CUDA toolkit and the host compiler could be checked" in empty.message
    [bare] = [f for f in check(tmp_path).findings if f.rule == "snapshot-empty"]
    assert bare.message.endswith("nothing could be checked")


def test_torch_xla_is_released_in_step_with_torch(tmp_path: Path) -> None:
    """torch-xla declares no torch requirement, but each release is built against the torch minor of its number."""
    other = check(tmp_path, packages={"torch": "2.5.1", "torch-xla": "2.4.0"})
    [finding] = [f for f in other.findings if f.rule == "extension-pins-other-torch"]
    assert finding.severity.value == "fail" and finding.components == ("torch-xla", "torch")
    assert "torch~=2.4.0" in (finding.fix or "")
    assert "extension-pins-other-torch" not in rules(check(tmp_path, packages={"torch": "2.5.1", "torch-xla": "2.5.0"}))
    unknown = check(tmp_path, packages={"torch": None, "torch-xla": None})
    assert rules(unknown).get("extension-build-unknown") == ("torch-xla", "torch")


def test_torch_of_unknown_build_with_no_gpu_facts_is_an_unverified_warning(tmp_path: Path) -> None:
    """'torch installed' and nothing about its build or the GPUs: whether it is a CUDA build is unknown (said, not
    silence); a known CUDA build, a tag, or a macOS host (judged by its own rule) are not this finding."""
    unknown = [f for f in check(tmp_path, host={"os": "linux"}, packages={"torch": None}).findings
               if f.rule == "torch-build-unknown"]
    assert [(f.severity.value, f.verified, f.components) for f in unknown] == [("warn", False, ("torch",))]
    for sections in ({"packages": {"torch": None}, "torch": {"cuda": "12.4"}},
                     {"packages": {"torch": "2.5.1+cu124"}},
                     {"host": {"os": "darwin", "arch": "arm64"}, "packages": {"torch": None}}):
        assert "torch-build-unknown" not in rules(check(tmp_path, **sections)), sections
