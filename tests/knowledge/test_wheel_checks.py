"""Wheels for this platform and Python, and Requires-Python, from the bundled PyPI release facts."""

from __future__ import annotations

import re

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.wheels import cpython_tag, platform_family, runs_here
from envdoctor.findings import Finding
from envdoctor.pypi_facts import release_facts, releases
from envdoctor.snapshot import snapshot_from_dict

LINUX = {"os": "linux", "arch": "x86_64"}
RULES = ("no-wheel-for-platform", "no-wheel-for-python", "requires-python-excluded")


def wheel_findings(packages: dict, host: dict = LINUX, python: str | None = "3.11.9") -> list[Finding]:
    snap = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": host,
                               "python": {"version": python} if python else {}, "packages": packages})
    return [f for f in run_check(snap, stack=None).findings if f.rule in RULES]


def test_no_wheel_for_the_platform() -> None:
    (finding,) = wheel_findings({"torch": "2.5.1"}, host={"os": "darwin", "arch": "x86_64"})
    assert (finding.rule, finding.category.value, finding.severity.value) == ("no-wheel-for-platform", "platform",
                                                                             "warn")
    assert "macOS Intel" in finding.message and "compiled locally" in finding.message
    assert finding.fix.startswith('pip install "torch==2.2.2"')  # the last release with Intel Mac wheels
    assert "cp311-macosx_x86_64" in release_facts("torch", "2.2.2").wheels
    assert wheel_findings({"torch": "2.5.1"}, host={"os": "darwin", "arch": "arm64"}) == []


def test_no_wheel_for_this_python() -> None:
    (finding,) = wheel_findings({"torch": "2.3.1"}, python="3.13.1")
    assert (finding.rule, finding.category.value, finding.severity.value) == ("no-wheel-for-python", "python", "warn")
    assert "CPython 3.13" in finding.message
    assert finding.fix.startswith('pip install "torch==2.5.0"')  # the first torch with cp313 wheels


def test_requires_python_excluded_fails() -> None:
    (finding,) = wheel_findings({"numpy": "2.5.2"}, python="3.11.9")
    assert (finding.rule, finding.category.value, finding.severity.value) == ("requires-python-excluded", "python",
                                                                             "fail")
    nearest = finding.fix.split('"')[1].split("==")[1]
    assert release_facts("numpy", nearest).requires_python == ">=3.11"


def test_partly_known_hosts_are_judged_on_what_is_known() -> None:
    (no_cp312,) = wheel_findings({"torch": "2.0.1"}, host={}, python="3.12.0")  # OS unknown
    assert (no_cp312.rule, no_cp312.category.value) == ("no-wheel-for-python", "python")
    assert "CPython 3.12 on any platform" in no_cp312.message
    (windows,) = wheel_findings({"triton": "2.2.0"}, host={"os": "windows"}, python="3.10.13")  # arch unknown
    assert (windows.rule, windows.category.value) == ("no-wheel-for-platform", "platform")
    assert "no wheel for Windows" in windows.message
    (arm,) = wheel_findings({"triton": "3.1"}, host={"os": "linux", "arch": "aarch64"}, python=None)
    assert (arm.rule, arm.components) == ("no-wheel-for-platform", ("triton",)) and "3.1.0" in arm.message
    (excluded,) = wheel_findings({"vllm": "0.10"}, host={"os": "linux"}, python="3.13")
    assert (excluded.rule, excluded.severity.value) == ("requires-python-excluded", "fail")


def test_unknown_version_is_judged_on_every_release() -> None:
    (finding,) = wheel_findings({"vllm": None}, host={"os": "windows", "arch": "x86_64"}, python="3.11.3")
    assert (finding.rule, finding.category.value, finding.components) == ("no-wheel-for-platform", "platform",
                                                                          ("vllm",))
    assert "version unknown" in finding.message and "Windows x86_64" in finding.message
    assert wheel_findings({"vllm": None}, host={"os": "linux", "arch": "x86_64"}, python="3.11.3") == []
    # no release admits this Python either: both causes are named (no Windows build, and none for this Python)
    both = {f.rule: f for f in wheel_findings({"vllm": None}, host={"os": "windows", "arch": "x86_64"},
                                               python="3.7.9")}
    assert set(both) == {"no-wheel-for-platform", "requires-python-excluded"}
    python = both["requires-python-excluded"]
    assert (python.category.value, python.severity.value) == ("python", "fail")
    # older xformers had cp38 wheels, the newest require 3.9: an unverified warning, never a failure
    (old_python,) = wheel_findings({"xformers": None}, host={}, python="3.8.20")
    assert (old_python.rule, old_python.severity.value, old_python.verified) == ("requires-python-excluded", "warn",
                                                                                 False)


def test_pure_python_and_local_builds_and_unknowns_say_nothing() -> None:
    assert wheel_findings({"transformers": "4.40.0"}, host={"os": "windows", "arch": "ARM64"}) == []
    assert wheel_findings({"torch": "2.5.1+cpu"}, host={"os": "darwin", "arch": "x86_64"}) == []
    assert wheel_findings({"torch": "2.5.1"}, host={"os": None, "arch": "x86_64"}) == []
    assert wheel_findings({"torch": "2.0.1"}, host={}, python=None) == []  # neither platform nor Python known
    assert wheel_findings({"torch": "2.3.1"}, python=None) == []
    assert wheel_findings({"torch": None}, python="3.13.1") == []
    assert wheel_findings({"flash-attn": "2.5.8"}, host={"os": "windows", "arch": "AMD64"}) == []  # sdist only


@pytest.mark.parametrize(("tag", "family", "minor", "runs"), [
    ("cp311-linux_x86_64", "linux_x86_64", 11, True),
    ("cp311-linux_x86_64", "linux_x86_64", 12, False),
    ("cp311-linux_x86_64", "linux_aarch64", 11, False),
    ("cp38-abi3-linux_x86_64", "linux_x86_64", 12, True),
    ("cp38-abi3-linux_x86_64", "linux_x86_64", 7, False),
    ("py3-win_amd64", "win_amd64", 12, True),
    ("py3-any", "macosx_arm64", 9, True),
])
def test_runs_here(tag: str, family: str, minor: int, runs: bool) -> None:
    assert runs_here(tag, family, minor) is runs


def test_platform_and_python_names() -> None:
    assert platform_family("Linux", "aarch64") == "linux_aarch64"
    assert platform_family("windows", "AMD64") == "win_amd64"
    assert platform_family("darwin", "arm64") == "macosx_arm64"
    assert platform_family("linux", None) is None and platform_family("freebsd", "x86_64") is None
    assert cpython_tag("3.12.4") == 12 and cpython_tag("3.9") == 9 and cpython_tag(None) is None


def test_a_version_pypi_lacks_is_judged_on_the_requires_python_of_the_release_before_it() -> None:
    # lm-eval "1.0.0" (a branch's version, ahead of every upload) stands on the newest release: Requires-Python.
    newest = releases("lm-eval")[-1]
    findings = wheel_findings({"lm-eval": "99.0.0"}, python="3.8.10")
    assert [(f.rule, f.components, f.severity.value, f.verified) for f in findings] == [
        ("requires-python-excluded", ("lm-eval",), "warn", False)]
    assert newest.version in findings[0].message and "not on PyPI" in findings[0].message
    assert not wheel_findings({"lm-eval": "99.0.0"}, python="3.12.3")


def test_torch_companions_without_a_wheel_for_this_python() -> None:
    rule = "torch-companions-without-wheel-for-python"

    def companions(packages: dict, python: str) -> list[Finding]:
        snap = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": LINUX, "python": {"version": python},
                                   "packages": packages})
        return [f for f in run_check(snap, stack=None).findings if f.rule == rule]

    # torch 2.5.1 has CPython 3.13 wheels; torchvision 0.20.1 and torchaudio 2.5.1, which pin it, stop at 3.12.
    (finding,) = companions({"torch": "2.5.1+cu124"}, "3.13.1")
    assert finding.components == ("torchvision", "torchaudio", "torch") and finding.severity.value == "warn"
    assert "torchvision 0.20.1" in finding.message and "cp312" in finding.message
    assert not companions({"torch": "2.5.1"}, "3.12.4")  # built for 3.12
    assert not companions({"torch": "2.6.0"}, "3.13.1")  # torchvision 0.21.0 has 3.13 wheels
    # An installed companion of known version is judged by the wheel checks, not here.
    assert [f.components for f in companions({"torch": "2.5.1", "torchvision": "0.20.1"}, "3.13.1")] == [
        ("torchaudio", "torch")]


def test_torch_companion_rule_follows_every_torch_release() -> None:
    """For every recorded torch release with a CPython 3.x Linux wheel: the finding fires exactly when no
    torchvision release that pins it has a wheel for that Python."""
    from envdoctor.checks.wheels import Target, _pins_torch, wheel_runs

    checked = 0
    for torch in releases("torch")[-12:]:
        for minor in sorted({int(t[3:].split("-")[0]) for t in torch.wheels if t.endswith("linux_x86_64")
                             and t.startswith("cp3") and "abi3" not in t}):
            target = Target(frozenset({"linux_x86_64"}), minor, "Linux x86_64")
            made_for = [r for r in releases("torchvision") if _pins_torch(r, torch.version)]
            expected = bool(made_for) and not any(wheel_runs(r, target) for r in made_for)
            snap = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": LINUX,
                                       "python": {"version": f"3.{minor}.1"},
                                       "packages": {"torch": torch.version, "torchaudio": "0"}})
            found = [f for f in run_check(snap, stack=None).findings
                     if f.rule == "torch-companions-without-wheel-for-python" and "torchvision" in f.components]
            assert bool(found) == expected, (torch.version, minor)
            checked += 1
    assert checked >= 30


def test_code_that_needs_a_newer_python_than_requires_python_admits() -> None:
    # transformers 4.48.0 declares Requires-Python >=3.9.0, but generation/streamers.py evaluates "X | None" at
    # import (read from its wheel by tools/gen_pypi_facts.py).
    release = release_facts("transformers", "4.48.0")
    assert release.python_floor == "3.10" and release.python_floor_from.startswith("transformers/")
    rule = "code-needs-newer-python"
    findings = [f for f in _all_findings({"transformers": "4.48.0"}, "3.9.0") if f.rule == rule]
    assert [(f.components, f.severity.value, f.category.value) for f in findings] == [
        (("transformers",), "warn", "python")]
    assert release.python_floor_from in findings[0].message
    assert findings[0].fix.startswith('pip install "transformers==')
    assert not [f for f in _all_findings({"transformers": "4.48.0"}, "3.10.4") if f.rule == rule]
    assert not [f for f in _all_findings({"transformers": "4.38.2"}, "3.9.0") if f.rule == rule]


def test_code_floors_are_recorded_only_above_requires_python() -> None:
    checked = 0
    for package in ("transformers", "peft", "trl", "accelerate", "datasets", "huggingface-hub", "diffusers"):
        for release in releases(package):
            if release.python_floor is None:
                continue
            floor = int(release.python_floor.split(".")[1])
            lower = [int(m) for m in re.findall(r">=?\s*3\.(\d+)", release.requires_python or "")]
            assert not lower or floor > max(lower), (package, release.version)
            checked += 1
    assert checked >= 1


def _all_findings(packages: dict, python: str) -> list[Finding]:
    snap = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": LINUX, "python": {"version": python},
                               "packages": packages})
    return run_check(snap, stack=None).findings


def test_required_compiled_package_without_a_wheel_for_this_python_in_range() -> None:
    rule = "required-package-no-wheel-for-python"
    # transformers 4.30.0 (pure Python, Requires-Python >=3.7) requires tokenizers<0.14, whose wheels stop at 3.11.
    findings = [f for f in _all_findings({"transformers": "4.30.0"}, "3.12.3") if f.rule == rule]
    assert [(f.components, f.severity.value, f.category.value) for f in findings] == [
        (("transformers", "tokenizers"), "warn", "python")]
    assert "cp311" in findings[0].message and "from source" in findings[0].message
    assert not [f for f in _all_findings({"transformers": "4.30.0"}, "3.11.9") if f.rule == rule]
    # tokenizers installed with a known version: the wheel checks on it decide; an unknown owner version is judged
    # on its newest release, whose tokenizers range has CPython 3.12 wheels.
    assert not [f for f in _all_findings({"transformers": "4.30.0", "tokenizers": "0.13.3"}, "3.12.3")
                if f.rule == rule]
    assert not [f for f in _all_findings({"transformers": None}, "3.12.3") if f.rule == rule]


def test_an_unknown_owner_version_is_judged_on_its_newest_release_unverified() -> None:
    """The newest xformers requires torch>=2.10, which has no CPython 3.9 wheel: a fresh install of xformers on 3.9
    cannot get its torch from a wheel."""
    rule = "required-package-no-wheel-for-python"
    (finding,) = [f for f in _all_findings({"xformers": None}, "3.9.13") if f.rule == rule]
    assert not finding.verified and finding.components == ("xformers", "torch")
    assert "version unknown; its newest release" in finding.message
    assert not [f for f in _all_findings({"xformers": None}, "3.12.3") if f.rule == rule]


def test_an_index_build_is_judged_on_the_pythons_of_its_own_platform() -> None:
    """torch 1.13.1 has a cp311 wheel for Linux x86_64 only: a +cu117 build on Windows cannot run CPython 3.11."""
    windows = {"os": "windows", "arch": "x86_64"}
    (finding,) = wheel_findings({"torch": "1.13.1+cu117"}, host=windows, python="3.11.2")
    assert (finding.rule, finding.category.value) == ("no-wheel-for-python", "python") and "Windows" in finding.message
    assert wheel_findings({"torch": "1.13.1+cu117"}, host=LINUX, python="3.11.2") == []
    snap = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": windows, "python": {"version": "3.10.9"},
                               "packages": {"torch": {"version": "1.13.1+cu117"}}})
    assert not [f for f in run_check(snap, stack=None).findings if f.rule == "no-build-for-host"]  # no torch.compile


def test_unknown_version_whose_releases_for_this_python_all_need_newer_syntax() -> None:
    """auto-gptq 0.0.4 to 0.1.0 declare no Requires-Python but use assignment expressions; later releases require
    3.8: on Python 3.7 whatever pip installed fails at import."""
    snap = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": {"os": "linux"}, "python": {"version": "3.7"},
                               "packages": {"auto-gptq": None}})
    found = [f for f in run_check(snap, stack=None).findings if f.rule == "code-needs-newer-python"]
    assert [(f.severity.value, f.verified) for f in found] == [("warn", False)]
    assert "needs Python 3.8" in found[0].message and "0.0.4 to 0.1.0" in found[0].message
    snap38 = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": {"os": "linux"},
                                 "python": {"version": "3.8"}, "packages": {"auto-gptq": None}})
    assert not [f for f in run_check(snap38, stack=None).findings if f.rule == "code-needs-newer-python"]


def test_a_32_bit_windows_python_installs_only_win32_wheels() -> None:
    assert platform_family("windows", "x86") == platform_family("windows", "i686") == "win32"
    found = wheel_findings({"torch": None}, host={"os": "windows", "arch": "x86"}, python="3.11.4")
    (finding,) = [f for f in found if f.rule == "no-wheel-for-platform"]
    assert (finding.category.value, finding.components, finding.verified) == ("platform", ("torch",), True)
    assert "Windows 32-bit x86" in finding.message
    assert wheel_findings({"numpy": "1.21.6"}, host={"os": "windows", "arch": "x86"}, python="3.8.2") == []
