"""Builds a platform cannot have: required compiled packages without wheels there, source-only releases from before
a platform's first wheel, CUDA builds on macOS, Linux-only flash-attn wheels, pure-tagged wheels with Linux binaries."""

from __future__ import annotations

from pathlib import Path

from envdoctor.checker import run_check
from envdoctor.findings import Report
from envdoctor.snapshot import snapshot_from_dict


def check(tmp_path: Path, host: dict, packages: dict, python: str | None = "3.11.9") -> Report:
    return run_check(snapshot_from_dict({"host": host, "python": {"version": python}, "packages": packages}),
                     cwd=tmp_path)


def by_rule(report: Report, rule: str) -> list:
    return [f for f in report.findings if f.rule == rule]


def test_a_requirement_without_windows_wheels_blocks_the_package(tmp_path: Path) -> None:
    # axolotl requires triton on Windows too; no triton release has a Windows wheel or an sdist
    (finding,) = by_rule(check(tmp_path, {"os": "windows", "arch": "AMD64"}, {"axolotl": None}),
                         "required-package-not-built-here")
    assert finding.components == ("axolotl", "triton") and finding.category.value == "platform"
    assert not by_rule(check(tmp_path, {"os": "linux", "arch": "x86_64"}, {"axolotl": None}),
                       "required-package-not-built-here")


def test_source_only_release_before_the_first_windows_wheel(tmp_path: Path) -> None:
    (finding,) = by_rule(check(tmp_path, {"os": "windows"}, {"deepspeed": "0.10.1"}),
                         "release-predates-platform-wheels")
    assert finding.severity.value == "warn" and ">=" in (finding.fix or "")
    assert not by_rule(check(tmp_path, {"os": "linux"}, {"deepspeed": "0.10.1"}), "release-predates-platform-wheels")


def test_cuda_builds_never_run_on_macos(tmp_path: Path) -> None:
    report = check(tmp_path, {"os": "darwin", "arch": "arm64"}, {"torch": "2.1.2+cu118", "flash-attn": None})
    assert {f.components[0] for f in by_rule(report, "cuda-build-on-macos")} == {"torch", "flash-attn"}
    assert not by_rule(report, "cpu-torch-gpu-unknown")


def test_flash_attn_has_official_wheels_for_linux_x86_64_only(tmp_path: Path) -> None:
    assert by_rule(check(tmp_path, {"os": "windows", "arch": "AMD64"}, {"flash-attn": "2.8.3"}),
                   "flash-attn-no-official-wheel-here")
    assert not by_rule(check(tmp_path, {"os": "linux", "arch": "x86_64"}, {"flash-attn": "2.8.3"}),
                       "flash-attn-no-official-wheel-here")


def test_pure_tagged_bitsandbytes_before_0_43_has_linux_binaries_only(tmp_path: Path) -> None:
    (finding,) = by_rule(check(tmp_path, {"os": "linux", "arch": "aarch64"}, {"bitsandbytes": "0.42.0"}),
                         "no-native-library-for-platform")
    assert "0.46.0" in (finding.fix or "")  # the first release with a Linux aarch64 wheel
    assert not by_rule(check(tmp_path, {"os": "linux", "arch": "x86_64"}, {"bitsandbytes": "0.42.0"}),
                       "no-native-library-for-platform")
    # the OS alone settles it when no architecture of it has the libraries; Linux of unknown arch stays open
    (windows,) = by_rule(check(tmp_path, {"os": "windows"}, {"bitsandbytes": "0.42.0"}),
                         "no-native-library-for-platform")
    assert "on Windows" in windows.message and "0.43.0" in (windows.fix or "")
    assert not by_rule(check(tmp_path, {"os": "linux"}, {"bitsandbytes": "0.42.0"}), "no-native-library-for-platform")
