"""A driver older than the CUDA major of current builds, for GPU software of unknown build with no torch to judge
by (envdoctor.checks.driver_current_builds): fires on that shape only, as an unverified warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.driver_current_builds import RULE
from envdoctor.facts import cuda_major_minor, default_facts
from envdoctor.findings import Finding, Severity
from envdoctor.snapshot import snapshot_from_dict

FACTS = default_facts()
NEWEST = FACTS.torch(FACTS.torch_versions()[-1])
CURRENT_MAJOR = cuda_major_minor(FACTS.torch_variant(NEWEST.pypi_default).cuda)[0]


def findings(tmp_path: Path, nvidia: dict, packages: dict) -> list[Finding]:
    snap = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"},
                               "nvidia": nvidia, "packages": packages})
    return [f for f in run_check(snap, cwd=tmp_path).findings if f.rule == RULE]


@pytest.mark.parametrize("nvidia", [{"cuda_driver": f"{CURRENT_MAJOR - 1}.2"}, {"driver": "450.80.02"}])
def test_an_app_of_unknown_build_on_an_older_driver(tmp_path: Path, nvidia: dict) -> None:
    [finding] = findings(tmp_path, nvidia, {"text-generation-server": {"version": None}})
    assert finding.severity is Severity.WARN and not finding.verified
    assert finding.components == ("nvidia-driver", "text-generation-server")
    assert f"current builds are CUDA {CURRENT_MAJOR} builds" in finding.message and "(inferred" in finding.message


@pytest.mark.parametrize(("nvidia", "packages"), [
    ({"cuda_driver": f"{CURRENT_MAJOR}.0"}, {"open-webui": {"version": None}}),  # the driver runs current builds
    ({"cuda_driver": f"{CURRENT_MAJOR - 1}.2"}, {"open-webui": {"version": "0.6.5"}}),  # a known build: no guess
    ({"cuda_driver": f"{CURRENT_MAJOR - 1}.2"}, {"torch": {"version": None}, "x": {"version": None}}),  # torch's
    ({}, {"open-webui": {"version": None}}),  # no driver facts
])
def test_quiet_otherwise(tmp_path: Path, nvidia: dict, packages: dict) -> None:
    assert findings(tmp_path, nvidia, packages) == []


def test_a_package_whose_cuda_builds_are_tabled_is_judged_on_its_rows(tmp_path) -> None:
    """paddlepaddle-gpu's PyPI releases have [[builds]] rows (2.6.2 is CUDA 11.8): torch's CUDA 13 says nothing of
    it, so a CUDA 12 driver is not called too old for it."""
    from envdoctor.checker import run_check
    from envdoctor.snapshot import snapshot_from_dict

    nvidia = {"driver": "550.54.14", "cuda_driver": "12.4", "gpus": [{"name": "T4", "compute_capability": "7.5"}]}
    snap = snapshot_from_dict({"host": {"os": "linux"}, "nvidia": nvidia,
                               "packages": {"paddlepaddle-gpu": {"version": None}}})
    assert not [f for f in run_check(snap, cwd=tmp_path).findings if f.rule == "driver-older-than-current-builds"]
