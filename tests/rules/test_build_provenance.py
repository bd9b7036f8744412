"""Rules over where a build came from: torch-bound extensions PyPI does not list, a plain torch over companions from
a CUDA index, a package whose required CUDA wheel needs a newer driver, NumPy builds judged by release dates and by
an exact pin on an unlisted package."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.findings import Finding, Report
from envdoctor.pypi_facts import forget_fetched_facts, read_fetched_facts
from envdoctor.snapshot import snapshot_from_dict

SCHEMA = "envdoctor.snapshot/1"
MATRICES = Path(__file__).resolve().parents[2] / "matrices"


def check(tmp_path: Path, **sections: object) -> Report:
    return run_check(snapshot_from_dict({"schema": SCHEMA, **sections}), stack=None, cwd=tmp_path)


def found(report: Report, rule: str) -> list[Finding]:
    return [f for f in report.findings if f.rule == rule and f.severity.value in ("warn", "fail")]


LINUX = {"os": "linux", "arch": "x86_64"}
GPU = {"gpus": [{"name": "NVIDIA GeForce RTX 3090", "compute_capability": "8.6"}]}


# --- torch-bound extensions PyPI does not list ----------------------------------------------------------------------

def test_extension_release_unknown_to_pypi_is_an_unverified_abi_risk(tmp_path: Path) -> None:
    report = check(tmp_path, host=LINUX, packages={"torch": "2.10.0", "pytorch3d": "0.7.8"})
    [finding] = found(report, "extension-build-unverified")
    assert finding.components == ("pytorch3d", "torch") and finding.verified is False
    assert "torch 2.10" in finding.message


def test_binary_wheels_that_name_no_torch_minor_leave_the_build_unverified(tmp_path: Path) -> None:
    """torchao 0.16.0 ships compiled wheels on PyPI without a Requires-Dist pin to one torch minor; a '+cu113' build
    of an extension came from another index: neither says which torch it was built against."""
    [finding] = found(check(tmp_path, host=LINUX, packages={"torch": "2.9.1", "torchao": "0.16.0"}),
                      "extension-build-unverified")
    assert finding.components == ("torchao", "torch") and finding.verified is False
    assert "name no torch minor" in finding.message and "torch 2.9" in finding.message
    [local] = found(check(tmp_path, host=LINUX, packages={"torch": "2.9.1", "torchao": "0.16.0+cu126"}),
                    "extension-build-unverified")
    assert "'+cu126' label" in local.message


def test_extension_released_after_the_torch_minor_is_not_flagged(tmp_path: Path) -> None:
    """mamba-ssm 2.2.6.post3 is on PyPI and newer than torch 2.4: nothing to say about its build."""
    report = check(tmp_path, host=LINUX, packages={"torch": "2.4.1", "mamba-ssm": "2.2.6.post3"})
    assert not found(report, "extension-build-unverified") and not found(report, "extension-predates-torch")


def test_unknown_version_of_a_newly_listed_extension_is_reported(tmp_path: Path) -> None:
    report = check(tmp_path, host=LINUX, packages={"torch": "2.7.0", "sgl-kernel": None})
    assert [f.components for f in found(report, "extension-build-unknown")] == [("sgl-kernel", "torch")]
    nunchaku = check(tmp_path, host={"os": "windows"}, packages={"torch": "2.6.0+cu124", "nunchaku": None})
    assert [f.components for f in found(nunchaku, "extension-build-unknown")] == [("nunchaku", "torch")]


def test_compiled_release_pinning_another_torch_minor(tmp_path: Path) -> None:
    """torchtext 0.17.2 ships compiled wheels and requires torch==2.2.2."""
    [finding] = found(check(tmp_path, host=LINUX, packages={"torch": "2.3.1", "torchtext": "0.17.2"}),
                      "extension-pins-other-torch")
    assert finding.components == ("torchtext", "torch") and "torch 2.2" in finding.message
    assert "torch==2.2" in (finding.fix or "")  # no later torchtext release pins torch 2.3
    assert not found(check(tmp_path, host=LINUX, packages={"torch": "2.2.2", "torchtext": "0.17.2"}),
                     "extension-pins-other-torch")


# --- a plain torch over companions from a CUDA index ---------------------------------------------------------------

def test_plain_torch_beside_cuda_tagged_companion(tmp_path: Path) -> None:
    packages = {"torch": "2.9.1", "torchvision": "0.24.1", "torchaudio": "2.10.0+cu130"}
    unknown_os = found(check(tmp_path, nvidia=GPU, packages=packages), "plain-torch-over-cuda-build")
    assert [f.verified for f in unknown_os] == [False]
    windows = found(check(tmp_path, host={"os": "windows", "arch": "x86_64"}, nvidia=GPU, packages=packages),
                    "plain-torch-over-cuda-build")
    assert [f.verified for f in windows] == [True] and "CPU-only" in windows[0].message
    linux = found(check(tmp_path, host=LINUX, nvidia=GPU, packages=packages), "plain-torch-over-cuda-build")
    assert len(linux) == 1 and "cu128" in linux[0].message  # torch 2.9.1's PyPI default on Linux


def test_cpu_tagged_torch_is_not_called_a_plain_pypi_wheel(tmp_path: Path) -> None:
    packages = {"torch": "2.9.1+cpu", "torchvision": "0.24.1+cu128"}
    report = check(tmp_path, host=LINUX, nvidia=GPU, packages=packages)
    assert not found(report, "plain-torch-over-cuda-build") and found(report, "companion-other-cuda-variant")


def test_plain_torch_whose_linux_default_is_the_companions_cuda_is_fine(tmp_path: Path) -> None:
    packages = {"torch": "2.9.1", "torchvision": "0.24.1+cu128"}
    assert not found(check(tmp_path, host=LINUX, nvidia=GPU, packages=packages), "plain-torch-over-cuda-build")


def test_plain_companion_beside_a_tagged_torch_of_another_cuda_major(tmp_path: Path) -> None:
    """torchvision 0.24.0 from PyPI is torch 2.9's default cu128 build on Linux x86_64: beside +cu130 it cannot load
    its ops; beside +cu126 (the same CUDA major) nothing is said, and on Windows the plain wheel is a CPU build."""
    packages = {"torch": "2.9.0+cu130", "torchvision": "0.24.0"}
    [finding] = found(check(tmp_path, host=LINUX, nvidia=GPU, packages=packages), "companion-other-cuda-variant")
    assert finding.components == ("torchvision", "torch") and not finding.verified and "cu128" in finding.message
    assert "0.24.0+cu130" in (finding.fix or "")
    same_major = {"torch": "2.9.0+cu126", "torchvision": "0.24.0"}
    assert not found(check(tmp_path, host=LINUX, nvidia=GPU, packages=same_major), "companion-other-cuda-variant")
    windows = found(check(tmp_path, host={"os": "windows", "arch": "x86_64"}, nvidia=GPU,
                          packages={"torch": "2.9.0+cu126", "torchvision": "0.24.0"}), "companion-other-cuda-variant")
    assert len(windows) == 1 and "CPU-only" in windows[0].message
    # the OS unknown: either plain build may be the one installed, said unverified
    [unknown_os] = found(check(tmp_path, nvidia=GPU, packages=packages), "companion-other-cuda-variant")
    assert not unknown_os.verified and "cu128 build on Linux x86_64" in unknown_os.message
    assert "CPU-only build on Windows" in unknown_os.message


def test_a_plain_companion_beside_a_cpu_torch_on_an_unknown_os_is_the_linux_cuda_build(tmp_path: Path) -> None:
    """torch 2.7.0+cpu beside PyPI's torchvision 0.22.0: on Linux x86_64 that is the cu126 build ('operator
    torchvision::nms does not exist'); on Windows the CPU one, which works."""
    packages = {"torch": "2.7.0+cpu", "torchvision": "0.22.0"}
    [finding] = found(check(tmp_path, packages=packages), "companion-other-cuda-variant")
    assert not finding.verified and "cu126 build on Linux x86_64" in finding.message
    assert "Windows" not in finding.message
    assert not found(check(tmp_path, host={"os": "windows", "arch": "x86_64"}, packages=packages),
                     "companion-other-cuda-variant")


# --- a CUDA wheel reached through a requirement --------------------------------------------------------------------

def test_required_cuda_wheel_too_new_for_the_driver(tmp_path: Path) -> None:
    old_driver = {"driver": "472.12", **GPU}
    [unknown] = found(check(tmp_path, host=LINUX, nvidia=old_driver, packages={"faster-whisper": None}),
                      "driver-too-old-for-required-cuda-build")
    assert unknown.verified is False and "ctranslate2" in unknown.message and "inferred" in unknown.message
    [known] = found(check(tmp_path, host=LINUX, nvidia=old_driver, packages={"faster-whisper": "1.0.0"}),
                    "driver-too-old-for-required-cuda-build")
    assert known.verified is True


def test_required_cuda_wheel_on_a_new_driver_or_listed_is_not_flagged(tmp_path: Path) -> None:
    new_driver = {"driver": "580.95.05", "cuda_driver": "13.0", **GPU}
    assert not found(check(tmp_path, host=LINUX, nvidia=new_driver, packages={"faster-whisper": None}),
                     "driver-too-old-for-required-cuda-build")
    listed = {"faster-whisper": "1.0.0", "ctranslate2": "3.24.0"}  # ctranslate2 itself is judged instead
    assert not found(check(tmp_path, host=LINUX, nvidia={"driver": "472.12", **GPU}, packages=listed),
                     "driver-too-old-for-required-cuda-build")


# --- NumPy ----------------------------------------------------------------------------------------------------------

def test_exact_pin_on_an_unlisted_numpy1_build(tmp_path: Path) -> None:
    """torchvision 0.15.2 pins torch 2.0.1, built against NumPy 1.x; torch is not listed."""
    report = check(tmp_path, host=LINUX, packages={"numpy": "2.0.0", "torchvision": "0.15.2"})
    findings = found(report, "numpy2-dependency-numpy1-build")
    assert [f.components for f in findings] == [("torch", "torchvision", "numpy")]


def _write_facts(folder: Path, name: str, rows: dict[str, tuple[str, list[str]]]) -> None:
    """A facts document in the bundled format: release -> (upload date, Requires-Dist), one Linux cp311 wheel each."""
    document = json.loads((MATRICES / "pypi" / "ctranslate2.json").read_text(encoding="utf-8"))
    template = next(iter(document["releases"].values()))
    document["package"], document["releases"] = name, {
        version: {**template, "date": date, "requires": requires, "wheels": ["cp311-linux_x86_64"]}
        for version, (date, requires) in rows.items()}
    (folder / f"{name}.json").write_text(json.dumps(document), encoding="utf-8")


@pytest.fixture
def thinc_facts(tmp_path: Path) -> Iterator[None]:
    """thinc's and spaCy's releases as PyPI lists them (thinc 9.0.0 uploaded before 8.3.0, its first NumPy-2
    build; spaCy 3.7.6 admitting thinc 8.2.x only)."""
    folder = tmp_path / "fetched"
    folder.mkdir()
    _write_facts(folder, "thinc", {"8.2.4": ("2024-06-04", []), "8.2.5": ("2024-06-19", []),
                                   "8.3.0": ("2024-07-31", []), "9.0.0": ("2024-04-19", []),
                                   "9.1.0": ("2024-09-02", [])})
    _write_facts(folder, "spacy", {"3.7.6": ("2024-08-20", ["thinc <8.3.0,>=8.2.2", "numpy >=1.19.0"]),
                                   "3.8.2": ("2024-10-01", ["thinc <8.4.0,>=8.3.0", "numpy >=1.19.0"])})
    read_fetched_facts(folder, ("thinc", "spacy"))
    yield
    forget_fetched_facts()


@pytest.mark.usefixtures("thinc_facts")
def test_release_uploaded_before_the_first_numpy2_build_is_a_numpy1_build(tmp_path: Path) -> None:
    old_line = found(check(tmp_path, host=LINUX, packages={"numpy": "2.0.0", "thinc": "9.0.0"}),
                     "numpy2-abi-numpy1-build")
    assert [f.components for f in old_line] == [("thinc", "numpy")] and "release dates" in old_line[0].message
    assert not found(check(tmp_path, host=LINUX, packages={"numpy": "2.0.0", "thinc": "9.1.0"}),
                     "numpy2-abi-numpy1-build")


@pytest.mark.usefixtures("thinc_facts")
def test_requirement_admitting_only_numpy1_builds_under_unknown_numpy(tmp_path: Path) -> None:
    report = check(tmp_path, host=LINUX, python={"version": "3.11.9"},
                   packages={"spacy": "3.7.6", "numpy": None, "thinc": None})
    [finding] = found(report, "numpy2-dependency-numpy1-build")
    assert finding.components == ("thinc", "spacy", "numpy") and finding.verified is False
    assert "inferred" in finding.message
    newer = check(tmp_path, host=LINUX, python={"version": "3.11.9"},
                  packages={"spacy": "3.8.2", "numpy": None, "thinc": None})
    assert not found(newer, "numpy2-dependency-numpy1-build")


# --- Jetson ---------------------------------------------------------------------------------------------------------

ORIN = {"cuda_driver": "12.6", "gpus": [{"name": "Orin", "compute_capability": "8.7"}]}


def test_pypi_sbsa_wheel_on_a_jetson_is_flagged(tmp_path: Path) -> None:
    aarch64 = {"os": "linux", "arch": "aarch64"}
    [finding] = found(check(tmp_path, host=aarch64, nvidia=ORIN, packages={"bitsandbytes": "0.46.1"}),
                      "sbsa-wheel-on-jetson")
    assert finding.category.value == "platform" and finding.verified is False
    server = {"cuda_driver": "12.6", "gpus": [{"name": "NVIDIA GH200", "compute_capability": "9.0"}]}
    assert not found(check(tmp_path, host=aarch64, nvidia=server, packages={"bitsandbytes": "0.46.1"}),
                     "sbsa-wheel-on-jetson")
    assert not found(check(tmp_path, host=LINUX, nvidia=ORIN, packages={"bitsandbytes": "0.46.1"}),
                     "sbsa-wheel-on-jetson")


def test_plain_companion_beside_a_cpu_torch_on_linux_of_unknown_arch(tmp_path: Path) -> None:
    """Linux without an architecture is judged as x86_64, and the message says so; aarch64 is not judged."""
    packages = {"torch": "2.9.0+cpu", "torchvision": "0.24.0"}
    [finding] = found(check(tmp_path, host={"os": "linux"}, packages=packages), "companion-other-cuda-variant")
    assert not finding.verified and "x86_64 assumed" in finding.message and "cu128" in finding.message
    arm = check(tmp_path, host={"os": "linux", "arch": "aarch64"}, packages=packages)
    assert not found(arm, "companion-other-cuda-variant")
