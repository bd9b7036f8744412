"""GPU model names and their compute capability (matrices/gpu_names.toml): a snapshot that names a GPU without its
capability is judged at the capability of that model, and the report says so."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.gpu_names import capability_of, load_gpu_names, normalized_gpu_name
from envdoctor.matrices import MatrixError, default_root, load_matrices
from envdoctor.snapshot import snapshot_from_dict
from envdoctor.table_validation import validate_matrices


def _report(tmp_path: Path, gpu: dict, packages: dict[str, str | None], root: Path | None = None):
    snapshot = snapshot_from_dict({
        "schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"},
        "python": {"version": "3.10.12"}, "nvidia": {"driver": "550.54.14", "gpus": [gpu]},
        "packages": {name: {"version": version} for name, version in packages.items()},
    })
    return run_check(snapshot, stack=None, cwd=tmp_path, matrices=load_matrices(root) if root else None)


@pytest.mark.parametrize(("name", "capability"), [
    ("NVIDIA A100-SXM4-80GB", "8.0"), ("NVIDIA A100 80GB PCIe", "8.0"), ("Tesla V100-PCIE-16GB", "7.0"),
    ("NVIDIA H100 80GB HBM3", "9.0"), ("NVIDIA GeForce RTX 4090 Laptop GPU", "8.9"), ("GeForce RTX3090", "8.6"),
    ("Tesla T4", "7.5"), ("NVIDIA A10G", "8.6"), ("GeForce GTX 1080Ti", "6.1"), ("Quadro RTX 6000", "7.5"),
    ("NVIDIA RTX 6000 Ada Generation", "8.9"), ("NVIDIA GeForce RTX 5090", "12.0"), ("Tesla P100-PCIE-16GB", "6.0"),
])
def test_nvidia_smi_spellings_find_their_model(name: str, capability: str) -> None:
    named = capability_of(name, load_gpu_names(load_matrices()))
    assert named is not None and named.compute_capabilities == (capability,)


def test_a_model_number_is_not_matched_by_a_longer_or_shorter_one() -> None:
    table = load_gpu_names(load_matrices())
    assert capability_of("NVIDIA A1001", table) is None  # not the A100, nor the RTX A1000
    assert capability_of("NVIDIA1080Ti", table).compute_capabilities == ("6.1",)  # squashed, series word left out
    assert capability_of("MSI RTX3080", table).compute_capabilities == ("8.6",)  # a board maker's name first
    assert capability_of("6000", table).ambiguous  # the Quadro RTX 6000 or the RTX 6000 Ada
    assert capability_of("NVIDIA GeForce RTX 4080 SUPER", table).compute_capabilities == ("8.9",)
    assert capability_of("NVIDIA CMP 50HX", table) is None
    assert normalized_gpu_name("NVIDIA A10G") != normalized_gpu_name("NVIDIA A10")


def test_a_named_gpu_is_judged_at_its_models_capability(tmp_path: Path) -> None:
    report = _report(tmp_path, {"name": "Tesla T4"}, {"flash-attn": "2.5.8", "torch": "2.3.0+cu121"})
    named = [f for f in report.findings if f.rule == "gpu-capability-from-name"]
    assert len(named) == 1 and named[0].verified and "7.5" in named[0].message and "Tesla T4" in named[0].message
    arch = [f for f in report.findings if f.category.value == "gpu-arch" and "flash-attn" in f.components]
    assert arch and arch[0].severity.value == "fail"  # FlashAttention 2 needs Ampere (8.0) or newer
    assert report.snapshot.nvidia.gpus[0].compute_capability is None  # the report keeps the snapshot as given
    unnamed = _report(tmp_path, {"name": "Some Future GPU"}, {"flash-attn": "2.5.8", "torch": "2.3.0+cu121"})
    assert not [f for f in unnamed.findings if f.rule == "gpu-capability-from-name"]
    assert not [f for f in unnamed.findings if f.category.value == "gpu-arch" and f.severity.value == "fail"]


def test_a_name_sold_with_two_chips_is_not_filled_in_and_says_so_unverified(tmp_path: Path) -> None:
    report = _report(tmp_path, {"name": "NVIDIA GeForce GT 730"}, {"tensorrt": "8.6.1.6"})
    (named,) = [f for f in report.findings if f.rule == "gpu-capability-from-name"]
    assert not named.verified and "2.1 and 3.5" in named.message and "could not run" in named.message
    assert not [f for f in report.findings if f.rule == "package-gpu-too-old"]  # neither chip is taken as known


def test_a_stack_is_never_green_on_a_name_sold_with_two_chips(tmp_path: Path) -> None:
    """"RTX 6000" is the Turing Quadro (7.5) or the Ada card (8.9): taking the higher would call a GPU fit for a
    stack that needs Ampere when it may not be."""
    snapshot = snapshot_from_dict({
        "schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"},
        "nvidia": {"driver": "580.159.04", "gpus": [{"name": "NVIDIA RTX 6000"}]}, "packages": {},
    })
    report = run_check(snapshot, stack="lora-cu130-2026.11", cwd=tmp_path)
    assert report.snapshot.nvidia.gpus[0].compute_capability is None
    assert any(f.category.value == "gpu-arch" and f.severity.value in ("warn", "fail") for f in report.findings)


def test_a_given_capability_is_never_replaced(tmp_path: Path) -> None:
    report = _report(tmp_path, {"name": "Tesla T4", "compute_capability": "8.0"}, {"flash-attn": "2.5.8"})
    assert not [f for f in report.findings if f.rule == "gpu-capability-from-name"]
    assert not [f for f in report.findings if f.category.value == "gpu-arch" and "flash-attn" in f.components]


@pytest.mark.parametrize(("old", "new", "row"), [
    ('compute_capability = "12.1"', 'compute_capability = "twelve"', "capability[0]"),
    ('names = ["B300", "GB300"]', 'names = ["B300", "GB300", "B300"]', "capability["),  # B300 twice
])
def test_a_bad_row_is_one_line_naming_the_file_and_row(tmp_path: Path, old: str, new: str, row: str) -> None:
    root = tmp_path / "matrices"
    shutil.copytree(default_root(), root)
    table = root / "gpu_names.toml"
    table.write_text(table.read_text().replace(old, new, 1))
    assert any(f"gpu_names.toml: {row}" in problem for problem in validate_matrices(root))
    with pytest.raises(MatrixError, match="gpu_names.toml: " + re.escape(row)):
        _report(tmp_path, {"name": "Tesla T4"}, {}, root=root)
