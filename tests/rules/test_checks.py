"""The generic checks, each on a snapshot built to trip it and one that should not."""

from __future__ import annotations

from pathlib import Path

from envdoctor.checker import run_check

from .synth import snapshot

WHEEL_FA = ("https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/"
            "flash_attn-2.8.3+cu12torch2.8cxx11abiFALSE-cp311-cp311-linux_x86_64.whl")


def _rules(snap, tmp_path: Path, stack: str = "lora-cu128-2026.11", **kw) -> set[str]:
    report = run_check(snap, stack=stack, cwd=tmp_path, **kw)
    return {f.rule for f in report.findings if f.severity.rank >= 2}


def test_flash_attn_wheel_for_other_abi_fails(tmp_path: Path) -> None:
    packages = {"torch": "2.8.0+cu128", "flash-attn": {"version": "2.8.3", "direct_url": WHEEL_FA}}
    bad = snapshot(packages, torch={"cuda": "12.8", "cxx11abi": True})
    good = snapshot(packages, torch={"cuda": "12.8", "cxx11abi": False})
    assert "extension-built-for-other-torch" in _rules(bad, tmp_path)
    assert "extension-built-for-other-torch" not in _rules(good, tmp_path)


def test_xformers_pinned_to_other_torch(tmp_path: Path) -> None:
    bad = snapshot({"torch": "2.8.0+cu128", "xformers": "0.0.27"}, torch={"cuda": "12.8"})
    good = snapshot({"torch": "2.8.0+cu128", "xformers": "0.0.32.post2"}, torch={"cuda": "12.8"})
    assert "companion-built-for-other-torch" in _rules(bad, tmp_path)
    assert "companion-built-for-other-torch" not in _rules(good, tmp_path)


def test_blackwell_gpu_on_cu121_torch(tmp_path: Path) -> None:
    blackwell = {"index": 0, "name": "RTX 5090", "compute_capability": "12.0", "memory_mib": 32607}
    snap = snapshot({"torch": "2.3.1+cu121"}, nvidia={"driver": "580.1", "gpus": [blackwell]},
                    torch={"cuda": "12.1"})
    assert "gpu-arch-not-in-torch" in _rules(snap, tmp_path, stack="phase1a-2.0")
    ada = {"index": 0, "name": "L40S", "compute_capability": "8.9", "memory_mib": 46068}
    snap = snapshot({"torch": "2.3.1+cu121"}, nvidia={"driver": "580.1", "gpus": [ada]}, torch={"cuda": "12.1"})
    assert "gpu-arch-not-in-torch" not in _rules(snap, tmp_path, stack="phase1a-2.0")


def test_cu130_torch_needs_driver_580(tmp_path: Path) -> None:
    old = snapshot({"torch": "2.11.0+cu130"}, nvidia={"driver": "570.124.06", "gpus": []}, torch={"cuda": "13.0"})
    old = snapshot({"torch": "2.11.0+cu130"}, nvidia={"driver": "570.124.06", "cuda_driver": "12.8",
                                                      "gpus": [{"compute_capability": "9.0", "memory_mib": 81559}]},
                   torch={"cuda": "13.0"})
    assert "driver-too-old-for-torch-cuda" in _rules(old, tmp_path, stack="lora-cu130-2026.11")
    new = snapshot({"torch": "2.11.0+cu130"}, torch={"cuda": "13.0"})
    assert "driver-too-old-for-torch-cuda" not in _rules(new, tmp_path, stack="lora-cu130-2026.11")



def test_a_windows_driver_of_an_older_branch_than_the_linux_floor_is_too_old(tmp_path: Path) -> None:
    """No Windows floor is recorded for CUDA 13; a Windows driver's branch number is never below Linux's."""
    windows = {"os": "windows", "arch": "x86_64"}
    gpus = [{"compute_capability": "8.9", "memory_mib": 24564}]
    old = snapshot({"torch": "2.9.1+cu130"}, host=windows, nvidia={"driver": "572.83", "gpus": gpus},
                   torch={"cuda": "13.0"})
    (finding,) = [f for f in run_check(old, cwd=tmp_path).findings if f.rule == "driver-too-old-for-torch-cuda"]
    assert finding.severity.value == "fail" and finding.verified and ">= 580" in finding.fix
    same_branch = snapshot({"torch": "2.9.1+cu130"}, host=windows, nvidia={"driver": "580.97", "gpus": gpus},
                           torch={"cuda": "13.0"})
    judged = [f for f in run_check(same_branch, cwd=tmp_path).findings if f.rule == "driver-too-old-for-torch-cuda"]
    assert all(not f.verified for f in judged)  # the branch is right; its Windows floor is not recorded

def test_declared_requirement_conflict_like_pip_check(tmp_path: Path) -> None:
    trl = {"version": "0.9.4", "requires": ["numpy<2.0.0,>=1.18.2", "bitsandbytes<=0.41.1; extra == 'quantization'"]}
    bad = snapshot({"trl": trl, "numpy": "2.0.1", "bitsandbytes": "0.43.1"})
    report = run_check(bad, stack="phase1a-2.0", cwd=tmp_path)
    conflicts = [f for f in report.findings if f.rule == "declared-requirement-conflict"]
    assert [(f.components, f.category.value) for f in conflicts] == [(("numpy", "trl"), "numpy")]


def test_conflicts_outside_the_stack_warn_once_per_package(tmp_path: Path) -> None:
    # Seen on the device image: NumPy 1.26.4 carried for the trainer, while jax/cupy (unused by the stack)
    # declare numpy>=2. They break only themselves: one warning, not a refusal of the training stack.
    trl = {"version": "1.16.0", "requires": ["numpy>=1.26.0", "datasets>=4.7.0"]}
    datasets = {"version": "5.2.0", "requires": ["numpy>=1.17", "pyarrow>=24.0.0"]}
    jax = {"version": "0.11.2", "requires": ["numpy>=2.1"]}
    cupy = {"version": "14.2.0", "requires": ["numpy<2.6,>=2.0"]}
    snap = snapshot({"torch": "2.11.0+cu130", "trl": trl, "datasets": datasets, "numpy": "1.26.4",
                     "pyarrow": "25.0.1", "jax": jax, "cupy-cuda13x": cupy}, torch={"cuda": "13.0"})
    report = run_check(snap, stack="lora-cu130-2026.11", cwd=tmp_path)
    rules = [(f.rule, f.severity.value) for f in report.findings if "requirement-conflict" in f.rule]
    assert rules == [("declared-requirement-conflict-outside-stack", "warn")]
    outside = next(f for f in report.findings if f.rule == "declared-requirement-conflict-outside-stack")
    assert "cupy-cuda13x 14.2.0" in outside.message and "jax 0.11.2" in outside.message
    # The same conflict on a package the stack uses (through trl -> datasets) fails.
    datasets_bad = {"version": "5.2.0", "requires": ["numpy>=2"]}
    snap = snapshot({"torch": "2.11.0+cu130", "trl": trl, "datasets": datasets_bad, "numpy": "1.26.4",
                     "pyarrow": "25.0.1"}, torch={"cuda": "13.0"})
    report = run_check(snap, stack="lora-cu130-2026.11", cwd=tmp_path)
    failed = [f.components for f in report.findings if f.rule == "declared-requirement-conflict"]
    assert failed == [("numpy", "datasets")]


def test_smoke_error_is_classified(tmp_path: Path) -> None:
    error = ("ImportError: flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: undefined symbol: "
             "_ZN3c105ErrorC2ENS_14SourceLocationENSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE")
    snap = snapshot({"torch": "2.8.0+cu128"}, smoke={"flash-attn": {"ok": False, "error": error},
                                                      "torch": {"ok": True}})
    report = run_check(snap, stack="lora-cu128-2026.11", cwd=tmp_path)
    smoke = [f for f in report.findings if f.components == ("flash-attn",) and f.rule.startswith("smoke-")]
    assert [(f.rule, f.category.value) for f in smoke] == [("smoke-cxx11-abi-flip", "abi")]


def test_project_file_chooses_the_stack(tmp_path: Path) -> None:
    (tmp_path / "envdoctor.toml").write_text('stack = "cpu-test"\n')
    report = run_check(snapshot({}), cwd=tmp_path)
    assert report.stack == "cpu-test" and "envdoctor.toml" in report.stack_reason


def test_score_is_explained_and_stable(tmp_path: Path) -> None:
    snap = snapshot({"pyarrow": "26.0.1", "numpy": "1.26.4"})
    first, second = (run_check(snap, stack="cpu-test", cwd=tmp_path) for _ in range(2))
    assert first.score == second.score
    assert sum(line.points for line in first.score.lost) == 100 - first.score.percent or first.score.percent == 0
    assert "numpy1-with-numpy2-only-build" in first.score.explanation


def test_check_imports_no_heavy_modules() -> None:
    import subprocess
    import sys

    code = "import sys, envdoctor.checker; print(sorted({'torch', 'rich', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(Path(__file__).parents[2] / "src")})
    assert out.stdout.strip() == "[]"
