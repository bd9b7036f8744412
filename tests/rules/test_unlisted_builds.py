"""Builds a snapshot names without the facts to place them: torch-bound packages at releases no table or PyPI
lists, extensions beside a torch the snapshot leaves out, source-only pre-releases, and the metadata forms and
version spellings those judgements read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.declared import exact_torch_pin
from envdoctor.findings import Finding, Report
from envdoctor.pypi_facts import forget_fetched_facts, read_fetched_facts, release_facts
from envdoctor.snapshot import snapshot_from_dict

SCHEMA = "envdoctor.snapshot/1"
MATRICES = Path(__file__).resolve().parents[2] / "matrices"
LINUX = {"os": "linux", "arch": "x86_64"}


def check(tmp_path: Path, **sections: object) -> Report:
    return run_check(snapshot_from_dict({"schema": SCHEMA, **sections}), stack=None, cwd=tmp_path)


def found(report: Report, rule: str, component: str | None = None) -> list[Finding]:
    return [f for f in report.findings if f.rule == rule and f.severity.value in ("warn", "fail")
            and (component is None or component in f.components)]


def test_torch_pins_in_both_metadata_forms() -> None:
    assert exact_torch_pin(("numpy", "torch (==2.0.1)")) == "2.0.1"  # the older form, torchvision 0.15.2's
    assert exact_torch_pin(("torch==2.3.1 ; platform_system == 'Linux'",)) == "2.3.1"
    assert exact_torch_pin(("torch (>=2.0.1)", "torchvision==0.18.0")) is None


def test_release_lookup_reads_the_version_as_pip_normalizes_it() -> None:
    assert release_facts("xformers", "0.0.23") is not None
    assert release_facts("xformers", "0.0.23.POST1") is release_facts("xformers", "0.0.23.post1") is not None
    assert release_facts("xformers", "0.0.23-post1") is not None  # PEP 440's alternative spelling
    assert release_facts("xformers", "not a version") is None


# --- torchvision / torchaudio / xformers at a release no table or PyPI lists ------------------------------------------

def test_lockstep_package_at_an_unlisted_release_is_unverified_not_silent(tmp_path: Path) -> None:
    """xformers 0.0.22.post4 came from the PyTorch index only (a rebuild for torch 2.1); the nearest PyPI release,
    0.0.22, pins torch 2.0.1, so beside torch 2.0.1 nothing places it."""
    report = check(tmp_path, host=LINUX, packages={"torch": "2.0.1", "xformers": "0.0.22.post4"})
    [finding] = found(report, "extension-build-unverified", "xformers")
    assert finding.verified is False and "neither envdoctor's table nor PyPI lists" in finding.message
    assert finding.fix == 'pip install "xformers==0.0.22"   # built for torch 2.0.1'
    # a listed release is judged on its pin, and an unlisted one whose nearest release pins another torch is left
    # to the declared-requirements check's inference
    assert not found(check(tmp_path, host=LINUX, packages={"torch": "2.0.1", "xformers": "0.0.22"}),
                     "extension-build-unverified")
    other = check(tmp_path, host=LINUX, packages={"torch": "2.1.0", "xformers": "0.0.22.post4"})
    assert not found(other, "extension-build-unverified", "xformers")
    assert found(other, "declared-requirement-conflict-inferred", "xformers")


def test_companion_at_an_unlisted_release_names_the_build_for_torch(tmp_path: Path) -> None:
    report = check(tmp_path, host=LINUX, packages={"torch": "2.3.1", "torchvision": "0.18.7"})
    [finding] = found(report, "extension-build-unverified", "torchvision")
    assert "torchvision==0.18.1" in (finding.fix or "")


# --- extensions beside a torch the snapshot leaves out ------------------------------------------------------------

def test_extension_beside_an_unlisted_torch(tmp_path: Path) -> None:
    """auto-gptq 0.5.0 requires torch>=1.13.0 without pinning it: the torch it was built for is not known."""
    report = check(tmp_path, host=LINUX, packages={"auto-gptq": "0.5.0"})
    [finding] = found(report, "extension-build-unknown", "auto-gptq")
    assert finding.verified is False and "does not list torch" in finding.message


def test_unlisted_torch_is_not_judged_where_the_release_pins_it_or_the_list_is_complete(tmp_path: Path) -> None:
    assert not found(check(tmp_path, host=LINUX, packages={"vllm": "0.6.3"}), "extension-build-unknown")
    assert not found(check(tmp_path, host=LINUX, packages={"auto-gptq": None}), "extension-build-unknown")
    probed = {"auto-gptq": {"version": "0.5.0", "requires": ["torch>=1.13.0"]}}
    assert not found(check(tmp_path, host=LINUX, packages=probed), "extension-build-unknown")


# --- a source-only pre-release installed where no final release could be ------------------------------------------

@pytest.fixture
def codec_facts(tmp_path: Path) -> Iterator[None]:
    """A package whose first upload is a source-only placeholder and whose finals ship x86_64 wheels only."""
    folder = tmp_path / "fetched"
    folder.mkdir()
    document = json.loads((MATRICES / "pypi" / "ctranslate2.json").read_text(encoding="utf-8"))
    template = next(iter(document["releases"].values()))
    rows = {"0.0.0.dev0": [], "0.1.0": ["cp311-linux_x86_64"], "0.2.0": ["cp311-linux_x86_64", "cp311-win_amd64"]}
    document["package"], document["releases"] = "demo-codec", {
        version: {**template, "date": f"2025-0{i + 1}-01", "requires": [], "wheels": wheels, "sdist": not wheels}
        for i, (version, wheels) in enumerate(rows.items())}
    (folder / "demo-codec.json").write_text(json.dumps(document), encoding="utf-8")
    read_fetched_facts(folder, ("demo-codec",))
    yield
    forget_fetched_facts()


@pytest.mark.usefixtures("codec_facts")
def test_source_only_pre_release_where_no_final_release_has_a_wheel(tmp_path: Path) -> None:
    arm = {"os": "linux", "arch": "aarch64"}
    report = check(tmp_path, host=arm, packages={"demo-codec": "0.0.0dev"})  # pip's own spelling of 0.0.0.dev0
    [finding] = found(report, "no-wheel-for-platform", "demo-codec")
    assert "source-only pre-release" in finding.message and "none has a wheel for Linux aarch64" in finding.message
    on_x86 = check(tmp_path, host=LINUX, python={"version": "3.11.9"}, packages={"demo-codec": "0.0.0.dev0"})
    [finding] = found(on_x86, "no-wheel-for-platform", "demo-codec")
    assert finding.fix == 'pip install "demo-codec>=0.1.0"'
    final = found(check(tmp_path, host=arm, packages={"demo-codec": "0.2.0"}), "no-wheel-for-platform", "demo-codec")
    assert final and all("pre-release" not in f.message for f in final)  # a final release: the plain no-wheel finding


# --- sdist-only newest releases of a source-built extension --------------------------------------------------------

def test_newest_releases_source_only_need_the_toolkit_when_the_version_is_unknown(tmp_path: Path) -> None:
    """autoawq's newest releases on PyPI are source archives only, its older ones had wheels."""
    report = check(tmp_path, host=LINUX, packages={"torch": "2.5.1", "autoawq": None})
    [finding] = found(report, "cuda-toolkit-needed-for-source-build")
    assert "autoawq" in finding.components and finding.verified is False
    assert "newest releases" in finding.message


def test_a_jit_compiled_extension_needs_the_toolkit_at_first_use(tmp_path: Path) -> None:
    report = check(tmp_path, host=LINUX, packages={"torch": "2.1.0", "gsplat": "1.4.0"})
    assert found(report, "nvcc-unknown-for-runtime-builds", "gsplat")


# --- nightlies: a pre-release stands for the final it leads to, and pairs with the other's nightly -----------------

def test_nightly_companions_pair_with_the_nightly_torch(tmp_path: Path) -> None:
    paired = {"torch": "2.10.0.dev20251024+cu130", "torchvision": "0.25.0.dev20251025"}
    report = check(tmp_path, host=LINUX, packages=paired)
    assert not [f for f in report.findings if f.rule.startswith("declared-requirement-conflict")]
    released = check(tmp_path, host=LINUX, packages={"torch": "2.9.1", "torchvision": "0.25.0.dev20251025"})
    [finding] = found(released, "declared-requirement-conflict-inferred", "torchvision")
    assert "torch==2.10.0" in finding.message and "the release it leads to" in finding.message
    assert not found(released, "extension-build-unverified", "torchvision")  # one cause, one finding


def test_development_builds_under_a_range_are_judged_as_usual(tmp_path: Path) -> None:
    """llamafactory 0.9.2.dev0 stands on 0.9.1 (transformers<=4.46.1 there) and 0.9.2: a range says nothing of
    which development build of transformers was current, so 4.49.0.dev0 is judged against both."""
    report = check(tmp_path, host=LINUX, packages={"llamafactory": "0.9.2.dev0", "transformers": "4.49.0.dev0"})
    assert found(report, "declared-requirement-conflict-inferred", "transformers")


# --- platforms and GPU intent a pasted snapshot shows ---------------------------------------------------------------

def test_a_32_bit_arm_host_is_a_wheel_platform(tmp_path: Path) -> None:
    """PyPI's wheel tables record linux_armv7l (and i686, ppc64le, s390x) wheels; onnxruntime publishes none."""
    arm = {"os": "linux", "arch": "armv7l"}
    [finding] = found(check(tmp_path, host=arm, packages={"onnxruntime": None}), "no-wheel-for-platform")
    assert "Linux armv7l" in finding.message and finding.components == ("onnxruntime",)
    assert not found(check(tmp_path, host=LINUX, packages={"onnxruntime": None}), "no-wheel-for-platform")


def test_no_release_for_this_python_here_is_said_beside_the_requires_python_information(tmp_path: Path) -> None:
    """microsoft/onnxruntime#25288: onnxruntime-gpu's Linux aarch64 wheels start at 1.29.0, which requires Python
    3.11; on 3.10 no release has a wheel there, while Linux x86_64 has CPython 3.10 wheels: the platform is what
    lacks them. The information that newer releases need 3.11 does not replace it."""
    jetson = {"os": "linux", "arch": "aarch64"}
    report = check(tmp_path, host=jetson, python={"version": "3.10.12"}, packages={"onnxruntime-gpu": None})
    [finding] = found(report, "no-wheel-for-platform", "onnxruntime-gpu")
    assert "CPython 3.10 on Linux aarch64 (CPython 3.10 wheels are for Linux x86_64" in finding.message
    assert [f.rule for f in report.findings if f.rule == "requires-python-excluded"]
    assert not found(check(tmp_path, host=LINUX, python={"version": "3.10.12"}, packages={"onnxruntime-gpu": None}),
                     "no-wheel-for-platform")


def test_cuda_runtime_wheels_show_gpu_intent(tmp_path: Path) -> None:
    """jax[cuda12] on native Windows installs NVIDIA's CUDA wheels, but JAX has no GPU build there."""
    windows = {"os": "windows", "arch": "x86_64"}
    intent = check(tmp_path, host=windows, packages={"jax": "0.4.6", "nvidia-cublas-cu12": "12.2.5.6"})
    assert [f.components for f in found(intent, "no-gpu-build-for-os")] == [("jax",)]
    assert not found(check(tmp_path, host=windows, packages={"jax": "0.4.6"}), "no-gpu-build-for-os")


def test_a_driver_alone_is_judged_against_current_builds(tmp_path: Path) -> None:
    """nvidia-smi's header and nothing else: a CUDA 11 driver runs none of the current CUDA 12/13 builds."""
    old = check(tmp_path, host=LINUX, nvidia={"driver": "510.54", "cuda_driver": "11.6"})
    [finding] = found(old, "driver-older-than-current-builds")
    assert finding.verified is False and "names no package" in finding.message
    assert not found(check(tmp_path, host=LINUX, nvidia={"driver": "580.95.05", "cuda_driver": "13.0"}),
                     "driver-older-than-current-builds")
