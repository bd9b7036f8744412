"""envdoctor.pypi_facts on the bundled matrices/pypi files: facts anyone can check on pypi.org."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from packaging.version import Version

from envdoctor.matrices import MatrixError, default_root
from envdoctor.pypi_facts import (
    ReleaseFacts,
    known_packages,
    nearest_recorded_release,
    release_facts,
    releases,
    table_source,
    validate_pypi_facts,
)
from envdoctor.table_validation import validate_matrices

CONFIGURED = ("torch", "torchvision", "torchaudio", "triton", "xformers", "flash-attn", "bitsandbytes", "transformers",
              "peft", "trl", "accelerate", "datasets", "tokenizers", "huggingface-hub", "safetensors", "unsloth",
              "unsloth-zoo", "deepspeed", "vllm", "numpy", "pyarrow", "pandas", "scipy", "scikit-learn",
              "sentence-transformers", "liger-kernel", "auto-gptq", "optimum", "diffusers", "fsspec")


def test_every_configured_package_has_a_file() -> None:
    assert set(CONFIGURED) <= set(known_packages())


@pytest.mark.parametrize(("package", "version", "line"), [
    ("torchvision", "0.18.1", "torch (==2.3.1)"),
    ("torchvision", "0.18.1+cu121", "torch (==2.3.1)"),  # a local tag finds the public release
    ("torchaudio", "2.4.0", "torch (==2.4.0)"),
    ("xformers", "0.0.27.post2", "torch ==2.4.0"),
    ("transformers", "4.40.0", "tokenizers <0.20,>=0.19"),
    ("torch", "2.3.1", 'triton (==2.3.1) ; platform_system == "Linux" and platform_machine == "x86_64" and '
                       'python_version < "3.12"'),
])
def test_declared_requirements_of_known_releases(package: str, version: str, line: str) -> None:
    release = release_facts(package, version)
    assert isinstance(release, ReleaseFacts) and release.version == version.split("+")[0]
    assert line in release.requires


def test_extras_are_dropped_and_markers_kept() -> None:
    torch = release_facts("torch", "2.4.0")
    assert not [line for line in torch.requires if "extra" in line]  # opt-einsum, optree are extras
    assert [line for line in torch.requires if line.startswith("nvidia-cudnn-cu12")] == [
        'nvidia-cudnn-cu12 (==9.1.0.70) ; platform_system == "Linux" and platform_machine == "x86_64"']


def test_dates_wheels_and_python() -> None:
    torch = release_facts("torch", "2.3.1")
    assert torch.date == "2024-06-05" and torch.requires_python == ">=3.8.0" and not torch.yanked
    assert {"cp311-linux_x86_64", "cp311-linux_aarch64", "cp311-win_amd64", "cp311-macosx_arm64"} <= set(torch.wheels)
    assert not [tag for tag in torch.wheels if tag.endswith("macosx_x86_64")]  # 2.2 was the last for Intel Macs
    assert "cp311-macosx_x86_64" in release_facts("torch", "2.2.2").wheels
    assert "cp313-linux_x86_64" not in torch.wheels and "cp313-linux_x86_64" in release_facts("torch", "2.5.0").wheels


def test_sdist_only_releases_have_unknown_requirements() -> None:
    flash = release_facts("flash-attn", "2.5.8")
    assert flash.requires is None and flash.wheels == () and flash.sdist is True


def test_floors_and_order() -> None:
    torch = releases("torch")
    assert torch[0].version == "1.0.0" and all(Version(r.version) >= Version("1.0") for r in torch)
    versions = [Version(r.version) for r in releases("transformers")]
    assert versions == sorted(versions) and not [v for v in versions if v.is_prerelease]
    assert release_facts("torch", "2.0") is release_facts("torch", "2.0.0")


def test_unknown_package_or_release() -> None:
    assert release_facts("no-such-package", "1.0") is None and releases("no-such-package") == ()
    assert release_facts("torch", "0.4.1") is None  # below the floor
    assert release_facts("torch", None) is None
    assert table_source("no-such-package") is None


def test_source_and_generation_date_are_recorded() -> None:
    assert table_source("torch").startswith("https://pypi.org/pypi/torch/json (20")
    document = json.loads((default_root() / "pypi" / "torch.json").read_text())
    assert document["generator"] == "tools/gen_pypi_facts.py" and document["source"]["releases"]


def test_bundled_files_are_valid_and_small() -> None:
    folder = default_root() / "pypi"
    assert validate_pypi_facts() == []
    assert sum(path.stat().st_size for path in folder.glob("*.json")) < 7_500_000


def _broken_root(tmp_path: Path, edit) -> Path:
    root = tmp_path / "matrices"
    (root / "pypi").mkdir(parents=True)
    document = json.loads((default_root() / "pypi" / "triton.json").read_text())
    edit(document)
    (root / "pypi" / "triton.json").write_text(json.dumps(document))
    return root


def test_malformed_release_raises_naming_file_and_key(tmp_path: Path) -> None:
    root = _broken_root(tmp_path, lambda d: d["releases"]["2.3.1"].update(requires="torch"))
    with pytest.raises(MatrixError, match=r"triton\.json: releases\.2\.3\.1\.requires: should be a list"):
        release_facts("triton", "2.3.1", root)
    assert release_facts("triton", "2.3.0", root) is not None  # other releases still answer
    errors = validate_pypi_facts(root)
    assert len(errors) == 1 and "releases.2.3.1.requires" in errors[0]
    assert any("releases.2.3.1.requires" in e for e in validate_matrices(root))


def test_invalid_json_and_bad_requirement_are_reported(tmp_path: Path) -> None:
    root = _broken_root(tmp_path, lambda d: d["releases"]["2.3.1"].update(requires=["torch >>= 2"]))
    assert any("releases.2.3.1.requires[0]: not a PEP 508 requirement" in e for e in validate_pypi_facts(root))
    shutil.copy(default_root() / "pypi" / "triton.json", root / "pypi" / "numpy.json")
    (root / "pypi" / "peft.json").write_text("{not json")
    with pytest.raises(MatrixError, match=r"peft\.json: invalid JSON"):
        releases("peft", root)
    assert any("numpy.json: package: 'triton' differs from the file name" in e for e in validate_pypi_facts(root))


def test_a_version_pypi_lacks_stands_on_the_nearest_recorded_release_before_it() -> None:
    assert nearest_recorded_release("llamafactory", "0.9.4.dev0").version == "0.9.3"  # a build from git
    newest = releases("lm-eval")[-1].version
    assert nearest_recorded_release("lm-eval", "99.0.0").version == newest  # a branch ahead of the uploads
    assert nearest_recorded_release("torch", "2.3.1+cu121") is None  # recorded itself
    assert nearest_recorded_release("torch", "0.4.1") is None  # below the floor: nothing stands for it
    assert nearest_recorded_release("torch", "not-a-version") is None
    assert nearest_recorded_release("no-such-package", "1.0") is None


def test_extra_only_requirements_on_tabled_packages_are_kept_apart() -> None:
    diffusers = release_facts("diffusers", "0.35.1")
    assert 'peft>=0.17.0; extra == "training"' in diffusers.extras
    assert not [line for line in diffusers.requires if "extra" in line]
    assert not [line for line in diffusers.extras if '"dev"' in line or '"test"' in line]
    assert release_facts("unsloth", releases("unsloth")[-1].version).extras == ()  # extras = false
