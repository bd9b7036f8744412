"""Every fix is an exact command: real versions, local tags, index URLs, wheel URLs; one cause, one finding."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.facts import Facts
from envdoctor.matrices import load_matrices
from envdoctor.snapshot import load_snapshot

from .synth import snapshot

DATA = Path(__file__).parents[1] / "data" / "snapshots"
EXAMPLES = sorted(p.stem for p in DATA.glob("*.json") if p.stem != "expected")
MATRICES = load_matrices()
FACTS = Facts(MATRICES.root)
PLACEHOLDER = re.compile(r"<(the|cu|[a-z ]+>)|cuXYZ|\.\.\.")


def _report(name: str, stack: str, tmp_path: Path):
    return run_check(load_snapshot(DATA / f"{name}.json"), stack=stack, cwd=tmp_path, matrices=MATRICES)


def _by_rule(report, rule: str, component: str | None = None) -> list:
    return [f for f in report.findings if f.rule == rule and (component is None or component in f.components)]


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("stack", MATRICES.stack_names())
def test_no_placeholder_or_source_build_in_any_fix(name: str, stack: str, tmp_path: Path) -> None:
    for finding in _report(name, stack, tmp_path).findings:
        fix = finding.fix or ""
        assert not PLACEHOLDER.search(fix), (finding.rule, fix)
        assert "no-build-isolation" not in fix and not re.search(r">=0(?![.\d])", fix), (finding.rule, fix)
        assert "torchvision::nms" not in finding.message or "torchvision" in finding.components[0]


def test_seed_companion_fixes_name_the_exact_releases(tmp_path: Path) -> None:
    report = _report("seed-install-followed", "phase1a-2.0", tmp_path)
    fixes = {f.components[0]: f.fix for f in _by_rule(report, "companion-built-for-other-torch")}
    index = "--index-url https://download.pytorch.org/whl/cu128"  # the snapshot's torch reports CUDA 12.8
    assert fixes == {"torchvision": f'pip install --force-reinstall --no-deps "torchvision==0.23.0+cu128" {index}',
                     "torchaudio": f'pip install --force-reinstall --no-deps "torchaudio==2.8.0+cu128" {index}'}
    (audio,) = _by_rule(report, "companion-built-for-other-torch", "torchaudio")
    assert "torchvision::nms" not in audio.message and "libtorchaudio" in audio.message


def test_companion_fix_keeps_the_local_tag_and_index(tmp_path: Path) -> None:
    snap = snapshot({"torch": "2.8.0+cu126", "torchvision": "0.21.0+cu124"}, torch={"cuda": "12.6"})
    (finding,) = _by_rule(run_check(snap, stack="lora-cu128-2026.11", cwd=tmp_path), "companion-built-for-other-torch")
    assert finding.fix == ('pip install --force-reinstall --no-deps "torchvision==0.23.0+cu126" '
                           "--index-url https://download.pytorch.org/whl/cu126")


def test_seed_flash_attn_fix_is_the_release_wheel_for_the_installed_torch(tmp_path: Path) -> None:
    report = _report("seed-install-followed", "phase1a-2.0", tmp_path)
    (finding,) = _by_rule(report, "extension-torch-replaced", "flash-attn")
    name = FACTS.flash_attn_wheel("2.8.3", "2.8.0", "12.8", cxx11abi=True, python="3.10")
    assert name and finding.fix == f"pip install --force-reinstall --no-deps {FACTS.flash_attn('2.8.3').url(name)}"


def test_flash_attn_without_any_wheel_says_so(tmp_path: Path) -> None:
    packages = {"torch": "2.8.0+cu128", "flash-attn": {"version": "2.8.3", "direct_url": (
        "https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/"
        "flash_attn-2.8.3+cu12torch2.8cxx11abiFALSE-cp311-cp311-linux_x86_64.whl")}}
    snap = snapshot(packages, python={"version": "3.7.17"}, torch={"cuda": "12.8", "cxx11abi": True})
    (finding,) = _by_rule(run_check(snap, stack="lora-cu128-2026.11", cwd=tmp_path), "extension-built-for-other-torch")
    assert finding.fix.startswith("pip uninstall -y flash-attn   # no flash-attn release has a prebuilt wheel")
    assert "envdoctor plan --stack lora-cu128-2026.11 --cuda 13.0 > install.sh" in finding.fix


def test_missing_flash_attn_gets_the_stack_wheel(tmp_path: Path) -> None:
    report = _report("a100-cpu-torch", "phase1a-2.0", tmp_path)
    (finding,) = _by_rule(report, "stack-missing", "flash-attn")
    name = FACTS.flash_attn_wheel("2.5.8", "2.3.1", "12.1", cxx11abi=False, python="3.10")
    assert finding.fix == f"pip install --no-deps {FACTS.flash_attn('2.5.8').url(name)}"


def test_torch_pin_fix_has_local_tag_and_index(tmp_path: Path) -> None:
    report = _report("h100-torch211-numpy2", "phase1a-2.0", tmp_path)
    (finding,) = _by_rule(report, "stack-pin", "torch")
    assert finding.fix == ('pip install --force-reinstall "torch==2.3.1+cu121" '
                           "--index-url https://download.pytorch.org/whl/cu121")
    assert not _by_rule(report, "stack-torch-variant"), "the pin finding already covers the variant"


def test_cpu_torch_is_one_finding_with_an_exact_command(tmp_path: Path) -> None:
    report = _report("a100-cpu-torch", "phase1a-2.0", tmp_path)
    (finding,) = [f for f in report.findings if "torch" in f.components and f.category.value == "cuda-build"]
    assert finding.fix == ('pip install --force-reinstall "torch==2.3.1+cu121" '
                           "--index-url https://download.pytorch.org/whl/cu121")


def test_old_driver_fix_is_a_torch_build_the_driver_runs(tmp_path: Path) -> None:
    (finding,) = _by_rule(_report("old-driver", "phase1a-2.0", tmp_path), "driver-too-old-for-torch-cuda")
    assert finding.fix.startswith('pip install --force-reinstall "torch==2.3.1+cu118" '
                                  "--index-url https://download.pytorch.org/whl/cu118")


def test_rich_is_one_finding_with_a_plain_install(tmp_path: Path) -> None:
    report = _report("t4-flash-attn", "phase1a-2.0", tmp_path)
    rich = [f for f in report.findings if "rich" in f.components]
    assert [(f.rule, f.fix) for f in rich] == [("trl-undeclared-rich", "pip install rich")]
    missing = run_check(snapshot({"trl": "1.16.0"}), stack="phase1a-2.0", cwd=tmp_path)
    (alone,) = _by_rule(missing, "stack-missing", "rich")
    assert alone.fix == "pip install rich" and "rich>=0" not in alone.message


@pytest.mark.parametrize(("name", "component", "kept"), [
    ("torch23-numpy2", "numpy", "numpy2-with-trl-numpy1"),
    ("numpy1-new-pyarrow", "pyarrow", "numpy1-with-numpy2-only-build"),
])
def test_one_cause_one_finding(name: str, component: str, kept: str, tmp_path: Path) -> None:
    report = _report(name, "phase1a-2.0", tmp_path)
    failing = [f.rule for f in report.findings if component in f.components and f.severity.value == "fail"]
    assert failing == [kept]


def test_supersede_needs_the_same_components(tmp_path: Path) -> None:
    """A rule on (trl, rich) does not hide a stack finding on another package."""
    report = run_check(snapshot({"trl": "0.9.6"}), stack="phase1a-2.0", cwd=tmp_path)
    assert _by_rule(report, "stack-missing", "pyarrow") and _by_rule(report, "trl-undeclared-rich")
    assert not _by_rule(report, "stack-missing", "rich")


def test_python_fix_names_an_allowed_python(tmp_path: Path) -> None:
    (finding,) = _by_rule(_report("h100-torch211-numpy2", "phase1a-2.0", tmp_path), "stack-python")
    assert finding.fix.startswith("uv venv --python 3.11 ")
    assert "envdoctor plan --stack phase1a-2.0 --cuda 13.0 > install.sh" in finding.fix


def test_shadowed_numpy_first_on_path_meets_the_stack(tmp_path: Path) -> None:
    """The probe keeps the numpy first on sys.path (a PYTHONPATH 1.26.4 before site-packages' 2.5.2)."""
    from envdoctor.probe.packages import probe_packages

    for folder, version in (("pythonpath", "1.26.4"), ("site", "2.5.2")):
        info = tmp_path / folder / f"numpy-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: numpy\nVersion: {version}\n\n")
    found = probe_packages([str(tmp_path / "pythonpath"), str(tmp_path / "site")])
    assert found["numpy"].version == "1.26.4"
    snap = snapshot({"numpy": found["numpy"].version, "trl": "0.9.6"})
    report = run_check(snap, stack="phase1a-2.0", cwd=tmp_path)
    assert not [f for f in report.findings if "numpy" in f.components and f.severity.rank >= 2]
    flipped = run_check(snapshot({"numpy": "2.5.2", "trl": "0.9.6"}), stack="phase1a-2.0", cwd=tmp_path)
    # numpy 2.5.2 declares Requires-Python >=3.12: that is its own finding beside the NumPy-2 one.
    assert [f.rule for f in flipped.findings if "numpy" in f.components and f.rule != "requires-python-excluded"] == [
        "numpy2-with-trl-numpy1"]
