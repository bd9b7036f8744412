"""The facts tables read back the sourced values (copied here from /work/shared/compat-facts.toml)."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from envdoctor.facts import Facts, FactsError, default_matrices_root, gpu_runs_archs

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


W, L = "flash_attn-", "-linux_x86_64.whl"


@pytest.fixture(scope="module")
def facts() -> Facts:
    return Facts()


@pytest.mark.parametrize(
    "args,expected",
    [
        (("2.5.8", "2.3.1", "12.1", False, "3.10"), W + "2.5.8+cu122torch2.3cxx11abiFALSE-cp310-cp310" + L),
        (("2.5.8", "2.3.1+cu118", "cu118", False, "3.11"), W + "2.5.8+cu118torch2.3cxx11abiFALSE-cp311-cp311" + L),
        (("2.6.3", "2.4.0", "12.4", True, "3.12"), W + "2.6.3+cu123torch2.4cxx11abiTRUE-cp312-cp312" + L),
        (("2.8.3", "2.8.0", "12.8", True, "3.12"), W + "2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312" + L),
        (("2.5.8", "2.3.1", "12.1", False, "3.12"), None),  # 2.5.8 stops at cp311
        (("2.7.4.post1", "2.6.0", "11.8", False, "3.11"), None),  # CUDA 11 dropped in 2.7.4
        (("2.8.3", "2.9.0", "12.8", True, "3.12"), None),  # no official wheel for torch >= 2.9
        (("2.8.3.post1", "2.11.0", "13.0", True, "3.12"), None),  # cu13 name exists, wheel does not
        (("9.9.9", "2.3.1", "12.1", False, "3.10"), None),
    ],
)
def test_flash_attn_wheel(facts, args, expected):
    assert facts.flash_attn_wheel(*args) == expected


def test_flash_attn_release(facts):
    release = facts.flash_attn("2.5.8")
    assert len(release.wheels) == 74 and release.sass == ("sm_80", "sm_90") and release.min_cc == "8.0"
    assert release.url("x.whl") == "https://github.com/Dao-AILab/flash-attention/releases/download/v2.5.8/x.whl"
    assert facts.flash_attn("2.8.3.post2").wheels == frozenset()


def test_cuda(facts):
    cuda = facts.cuda("12.4")
    assert (cuda.min_driver_linux, cuda.family_min_driver_linux) == ("550.54.14", "525.60.13")
    assert facts.cuda("11.8").family_min_driver_linux == "450.80.02"
    assert facts.cuda("13.0").family_min_driver_linux == "580"
    assert facts.cuda("12.7") is None  # there is no CUDA 12.7


def test_torch(facts):
    assert facts.torch("2.3.1+cu121").pypi_default == "cu121"
    assert facts.torch("2.2.2").numpy2 is False and facts.torch("2.3.1").numpy2 is True
    assert facts.torch("2.6.0").cxx11abi("cu126") is True and facts.torch("2.6.0").cxx11abi("cu124") is False
    assert facts.torch("2.7.0").cxx11abi_pypi is True
    assert facts.torch("2.15.0").pypi_default == "cu132" and "3.10" not in facts.torch("2.15.0").python
    assert facts.torch("1.0.0") is None


def test_torch_archs(facts):
    assert facts.torch_archs("2.8.0", "cu128")[-1] == "sm_120"
    assert "sm_70" not in facts.torch_archs("2.7.0", "cu128")  # conservative: conda 2.7.0 cu128 has no sm_70
    assert facts.torch_archs("2.8.0", "cu129") is None  # never checked
    assert facts.torch_archs("2.3.1", "cu124") is None  # no such build


def test_companions(facts):
    assert facts.companion_torch("torchvision", "0.18.1") == "2.3.1"
    assert facts.companion_torch("torchvision", "0.29.2") is None  # declares only torch>=2.14.0
    assert facts.companions_of("2.3.1") == {"torchvision": "0.18.1", "torchaudio": "2.3.1"}
    assert facts.companions_of("2.15.0") == {}
    assert facts.torch("2.8.0").torchvision == "0.23.0"


def test_xformers_and_bitsandbytes(facts):
    assert facts.xformers_torch("0.0.27") == "==2.3.1"
    assert facts.xformers_torch("0.0.26.post1") == "==2.3.0"
    assert facts.xformers_torch("0.0.35") == ">=2.10"
    bnb = facts.bitsandbytes("0.50.2")
    assert "132" in bnb.cuda_libs and bnb.min_cc == "6.0" and bnb.torch == "<3,>=2.4"


@pytest.mark.parametrize(
    "cc,archs,runs",
    [("6.1", ("sm_60",), True), ("8.6", ("sm_80",), True), ("7.5", ("sm_80", "sm_90"), False),
     ("12.0", ("sm_80", "sm_90"), False), ("9.0", ("sm_90a",), True)],
)
def test_gpu_runs_archs(cc, archs, runs):
    assert gpu_runs_archs(cc, archs) is runs


def test_bad_file_names_file_and_key(tmp_path):
    (tmp_path / "torch.toml").write_text('[releases."2.3.1"]\nvariants = "cu121"\npypi_default = "cu121"\n')
    with pytest.raises(FactsError, match=r"torch.toml: 'releases.\"2.3.1\".variants' should be a list of strings"):
        Facts(tmp_path).torch("2.3.1")
    (tmp_path / "cuda.toml").write_text("[releases\n")
    with pytest.raises(FactsError, match=r"cuda.toml: invalid TOML"):
        Facts(tmp_path).cuda("12.4")


def test_every_cited_source_exists():
    root = default_matrices_root()
    known = set()
    for name in ("sources.toml", "sources_facts.toml"):
        known |= set(tomllib.loads((root / name).read_text())["sources"])
    facts = Facts(root)
    for name in ("cuda.toml", "torch.toml", "flash_attn.toml", "xformers.toml", "bitsandbytes.toml", "companions.toml"):
        cited = facts.sources(name)
        assert cited and set(cited) <= known, (name, set(cited) - known)


def test_flash_attn_table_loads_fast():
    start = time.perf_counter()
    Facts().flash_attn("2.8.3")
    assert time.perf_counter() - start < 0.5


def test_tables_match_compat_facts_wheel_lists():
    """Every wheel name in the shared facts survives the compact encoding, and nothing is added."""
    shared = Path("/work/shared/compat-facts.toml")
    if not shared.exists():
        pytest.skip("shared compat facts not present")
    data = tomllib.loads(shared.read_text())
    facts = Facts()
    for version, table in data["flash_attn"].items():
        assert facts.flash_attn(version).wheels == frozenset(table.get("wheels", [])), version
        assert all(re.match(r"^flash_attn-", w) for w in table.get("wheels", []))
