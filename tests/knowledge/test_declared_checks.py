"""Declared requirements from the bundled PyPI metadata, on snapshots that carry versions only (as issue threads do)."""

from __future__ import annotations

from packaging.requirements import Requirement

from envdoctor.checker import run_check
from envdoctor.checks import CheckContext
from envdoctor.checks.requirements import check_declared
from envdoctor.facts import Facts
from envdoctor.findings import Finding
from envdoctor.matrices import load_matrices
from envdoctor.pypi_facts import release_facts
from envdoctor.snapshot import Snapshot, snapshot_from_dict

LINUX = {"os": "linux", "arch": "x86_64"}
MATRICES = load_matrices()


def snapshot(packages: dict, host: dict = LINUX, python: str | None = "3.11.9") -> Snapshot:
    return snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": host,
                               "python": {"version": python} if python else {}, "packages": packages})


def declared(snap: Snapshot) -> list[Finding]:
    """The declared-requirements check alone (no other check can supersede its findings)."""
    return check_declared(CheckContext(snapshot=snap, matrices=MATRICES, facts=Facts(MATRICES.root)))


def found(findings: list[Finding], rule: str) -> list[tuple[tuple[str, ...], str]]:
    return [(f.components, f.severity.value) for f in findings if f.rule == rule]


def test_torchvision_pairs_with_one_torch() -> None:
    snap = snapshot({"torch": "2.4.0", "torchvision": "0.18.1"})
    assert found(declared(snap), "declared-requirement-conflict") == [(("torch", "torchvision"), "fail")]
    assert found(declared(snapshot({"torch": "2.3.1", "torchvision": "0.18.1"})), "declared-requirement-conflict") == []
    # Through the whole checker, without a stack, the pairing is reported on both packages.
    report = run_check(snap, stack=None)
    assert [f for f in report.findings if {"torch", "torchvision"} <= set(f.components) and f.severity.value == "fail"]


def test_pairings_come_from_every_release_not_a_table() -> None:
    pairs = [("torchaudio", "2.1.0", "2.3.1"), ("xformers", "0.0.27.post2", "2.5.1"), ("torch", "2.4.0", None)]
    for owner, version, torch in pairs:
        if torch is None:  # torch pins triton on Linux x86_64
            snap = snapshot({"torch": version, "triton": "2.3.1"})
            assert found(declared(snap), "declared-requirement-conflict") == [(("triton", "torch"), "fail")]
            continue
        snap = snapshot({owner: version, "torch": torch})
        assert found(declared(snap), "declared-requirement-conflict") == [(("torch", owner), "fail")], owner


def test_markers_are_evaluated_for_the_snapshot_platform() -> None:
    mac = {"os": "darwin", "arch": "arm64"}
    assert declared(snapshot({"torch": "2.4.0", "triton": "2.3.1"}, host=mac)) == []
    # torch 2.4.0 pins triton only below Python 3.13
    assert found(declared(snapshot({"torch": "2.4.0", "triton": "2.3.1"}, python="3.13.0")),
                 "declared-requirement-conflict") == []


def test_cuda_runtime_pins_hold_only_for_the_pypi_build() -> None:
    old_cudnn = {"nvidia-cudnn-cu12": "8.9.2.26"}
    assert found(declared(snapshot({"torch": "2.4.0", **old_cudnn})), "declared-requirement-conflict") == [
        (("nvidia-cudnn-cu12", "torch"), "fail")]
    assert declared(snapshot({"torch": "2.4.0+cu118", **old_cudnn})) == []  # another index, other CUDA libraries
    assert declared(snapshot({"torch": "2.4.0", **old_cudnn}, host={"os": "linux", "arch": "aarch64"})) == []


def test_snapshot_requires_take_precedence() -> None:
    snap = snapshot({"torch": "2.4.0", "torchvision": {"version": "0.18.1", "requires": ["torch==2.4.0"]}})
    assert declared(snap) == []


def test_absent_requirements_only_from_the_package_metadata() -> None:
    # A version-only listing (from an issue thread) is partial: torch's sympy may be installed all the same.
    assert found(declared(snapshot({"torch": "2.3.1"})), "declared-requirement-missing") == []
    own = snapshot({"torch": "2.3.1", "torchvision": {"version": "0.18.1", "requires": ["torch==2.3.1", "pillow"]}})
    assert found(declared(own), "declared-requirement-missing") == [(("pillow", "torchvision"), "warn")]


def test_unknown_versions() -> None:
    snap = snapshot({"torch": None, "torchvision": "0.18.1", "torchaudio": "2.3.1", "peft": None})
    findings = declared(snap)
    (info,) = [f for f in findings if f.rule == "declared-requirement-unverified"]
    assert info.components == ("torch",) and info.verified is False and info.severity.value == "info"
    assert "torchvision 0.18.1 requires torch==2.3.1" in info.message and "torchaudio 2.3.1" in info.message
    # torchvision and torchaudio pin the torch of their own release: that unknown version decides whether they
    # import (a warning each).
    others = [(f.rule, f.components) for f in findings if f.rule != "declared-requirement-unverified"]
    assert others == [("lockstep-pair-unverified", ("torch", "torchaudio")),
                      ("lockstep-pair-unverified", ("torch", "torchvision"))]  # peft's own needs: unknown


def test_fix_changes_the_side_fewer_packages_rely_on() -> None:
    snap = snapshot({"torch": "2.4.0", "torchvision": "0.18.1", "torchaudio": "2.4.0", "xformers": "0.0.27.post2"})
    (finding,) = [f for f in declared(snap) if f.rule == "declared-requirement-conflict"]
    assert finding.fix.startswith('pip install "torchvision==0.19.0"'), finding.fix
    snap = snapshot({"torch": "2.4.0", "triton": "2.3.1", "xformers": "0.0.27.post2"})
    (finding,) = [f for f in declared(snap) if f.rule == "declared-requirement-conflict"]
    assert finding.fix.startswith('pip install "triton==3.0.0"'), finding.fix


def test_fix_release_accepts_the_installed_version() -> None:
    snap = snapshot({"transformers": "4.40.0", "tokenizers": "0.21.0", "peft": "0.10.0", "trl": "0.8.6"})
    (finding,) = [f for f in declared(snap) if f.rule == "declared-requirement-conflict"]
    assert finding.components == ("tokenizers", "transformers")
    first, alternative = finding.fix.split("   # or: ")
    assert first == 'pip install "tokenizers<0.20,>=0.19"'  # peft and trl rely on transformers: it stays
    version = alternative.removeprefix('pip install "transformers==').rstrip('"')
    wanted = [Requirement(line) for line in release_facts("transformers", version).requires]
    (tokenizers,) = [r for r in wanted if r.name == "tokenizers"]
    assert tokenizers.specifier.contains("0.21.0") and version != "4.40.0"


def test_conflict_outside_the_stack_never_uninstalls_envdoctor_dependencies(tmp_path) -> None:
    rich = {"version": "13.7.1", "requires": ["pygments<3.0.0,>=2.13.0"]}
    snap = snapshot({"torch": "2.11.0+cu130", "rich": rich, "pygments": "2.10.0"})
    report = run_check(snap, stack="lora-cu130-2026.11", cwd=tmp_path)
    (finding,) = [f for f in report.findings if f.rule == "declared-requirement-conflict-outside-stack"]
    assert "uninstall" not in finding.fix and finding.fix == 'pip install "pygments<3.0.0,>=2.13.0"'


def test_a_version_pypi_lacks_is_judged_on_the_nearest_release_before_it() -> None:
    # llamafactory 0.9.4.dev0 (a build from git) stands on 0.9.3, which requires transformers<=4.52.4.
    findings = declared(snapshot({"llamafactory": "0.9.4.dev0", "transformers": "4.56.1"}))
    inferred = [f for f in findings if f.rule == "declared-requirement-conflict-inferred"]
    assert [(f.components, f.severity.value, f.verified) for f in inferred] == [
        (("transformers", "llamafactory"), "warn", False)]
    assert "not on PyPI" in inferred[0].message and "0.9.3" in inferred[0].message
    assert not [f for f in findings if f.rule == "declared-requirement-conflict"]
    # A transformers inside 0.9.3's range: nothing.
    assert not declared(snapshot({"llamafactory": "0.9.4.dev0", "transformers": "4.51.3"}))


def test_a_development_build_is_also_judged_on_the_release_it_leads_to() -> None:
    # trl 0.12.0.dev0 (from git): 0.11.4 before it requires transformers>=4.40.0, 0.12.0 requires >=4.46.0
    findings = declared(snapshot({"trl": "0.12.0.dev0", "transformers": "4.45.2"}))
    inferred = [f for f in findings if f.rule == "declared-requirement-conflict-inferred"]
    assert [(f.components, f.severity.value, f.verified) for f in inferred] == [
        (("transformers", "trl"), "warn", False)]
    assert "0.12.0, the release it leads to" in inferred[0].message and ">=4.46.0" in inferred[0].message
    assert not declared(snapshot({"trl": "0.12.0.dev0", "transformers": "4.46.3"}))


def test_installed_optional_package_outside_every_extra_range() -> None:
    # diffusers 0.35.1 declares peft>=0.17.0 for its [training] extra; it uses peft whenever peft is installed.
    rule = "optional-requirement-conflict"
    findings = [f for f in declared(snapshot({"diffusers": "0.35.1", "peft": "0.14.0"})) if f.rule == rule]
    assert [(f.components, f.severity.value, f.verified) for f in findings] == [(("peft", "diffusers"), "warn", True)]
    assert findings[0].fix == 'pip install "peft>=0.17.0"'
    assert not [f for f in declared(snapshot({"diffusers": "0.35.1", "peft": "0.17.0"})) if f.rule == rule]
    assert not [f for f in declared(snapshot({"diffusers": "0.35.1"})) if f.rule == rule]  # not installed: fine
    # diffusers of unknown version: judged on its newest release, inferred.
    findings = [f for f in declared(snapshot({"diffusers": None, "peft": "0.14.0"})) if f.rule == rule]
    assert [(f.components, f.severity.value, f.verified) for f in findings] == [(("peft", "diffusers"), "warn", False)]
    assert "newest release" in findings[0].message


def test_optional_ranges_come_from_every_release_not_a_list() -> None:
    """For every release that declares a ranged extra requirement on an optional package (not one it requires
    unconditionally), an installed version below every range warns."""
    from envdoctor.checks.requirements import _extra_needs, applicable_requirements, marker_environment
    from envdoctor.pypi_facts import releases

    checked = 0
    for owner in ("diffusers", "transformers", "peft", "trl", "sentence-transformers"):
        for release in releases(owner)[-5:]:
            environment = marker_environment(snapshot({owner: release.version}))
            required = {r.name.lower().replace("_", "-") for r in applicable_requirements(release.requires,
                                                                                            environment)}
            for name, needs in _extra_needs(release.extras, environment).items():
                lows = [spec[2:] for _, spec in needs if spec.startswith(">=") and "," not in spec]
                if len(lows) != len(needs) or name in (owner, *required):
                    continue
                below = f"{max(lows, key=lambda v: tuple(int(p) for p in v.split('.') if p.isdigit()))}.dev0"
                findings = declared(snapshot({owner: release.version, name: below}))
                assert [f for f in findings if f.rule == "optional-requirement-conflict"
                        and f.components == (name, owner)], (owner, release.version, name)
                checked += 1
    assert checked >= 10


def test_lockstep_pairs_with_an_unknown_version_warn_unverified() -> None:
    rule = "lockstep-pair-unverified"
    # unsloth requires the unsloth-zoo of its own release: both unknown, whether they match decides the import.
    findings = [f for f in declared(snapshot({"unsloth": None, "unsloth-zoo": None})) if f.rule == rule]
    assert [(f.components, f.severity.value, f.verified) for f in findings] == [
        (("unsloth-zoo", "unsloth"), "warn", False)]
    assert findings[0].fix == "pip install -U unsloth unsloth-zoo   # upgrades the pair together"
    # torchvision pins torch: the known side's pin is the fix.
    findings = [f for f in declared(snapshot({"torchvision": "0.18.1", "torch": None})) if f.rule == rule]
    assert [f.components for f in findings] == [("torch", "torchvision")]
    assert findings[0].fix.startswith('pip install "torch==2.3.1"')
    # jax 0.4.6 is known but older than the tables: its own requirement is not recorded, and the message says so
    # instead of calling its version unknown.
    findings = [f for f in declared(snapshot({"jax": "0.4.6", "jaxlib": None})) if f.rule == rule]
    assert [f.components for f in findings] == [("jaxlib", "jax")]
    assert "what jax 0.4.6 requires of jaxlib is not recorded" in findings[0].message
    assert "unknown version too" not in findings[0].message
    # torchaudio 2.11.0's wheels declare no requirement at all; the releases around it pin torch: still a pair.
    findings = [f for f in declared(snapshot({"torchaudio": None, "torch": None})) if f.rule == rule]
    assert [f.components for f in findings] == [("torch", "torchaudio")]
    # Both known, or a pair whose requirement rarely moves (peft -> transformers): nothing of this kind.
    assert not [f for f in declared(snapshot({"torchvision": "0.18.1", "torch": "2.3.1"})) if f.rule == rule]
    assert not [f for f in declared(snapshot({"peft": None, "transformers": None})) if f.rule == rule]


def test_lockstep_is_read_from_the_release_history() -> None:
    from envdoctor.checks.requirements import LOCKSTEP_WINDOW, lockstep_requirement, marker_environment
    from envdoctor.pypi_facts import releases

    ctx = CheckContext(snapshot=snapshot({}), matrices=MATRICES, facts=Facts(MATRICES.root))
    environment = marker_environment(ctx.snapshot)
    changed, looked = lockstep_requirement(ctx, "unsloth", "unsloth-zoo", environment)
    recent = [r for r in releases("unsloth") if r.requires and not r.yanked][-LOCKSTEP_WINDOW:]
    floors = {line for r in recent for line in r.requires if line.replace("_", "-").startswith("unsloth-zoo")}
    assert looked == len(recent) and changed == len(floors) and changed * 2 >= looked
    assert lockstep_requirement(ctx, "peft", "transformers", environment)[0] == 0  # peft: "transformers", no bound


def test_only_an_extras_lower_bound_is_checked() -> None:
    from envdoctor.checks.requirements import lower_bound

    assert lower_bound(">=0.17.0") == ">=0.17.0" and lower_bound("==0.8.4") == ">=0.8.4"
    assert lower_bound("<=0.41.1") == "" and lower_bound("!=1.0,<2,>=1.5") == ">=1.5" and lower_bound("==2.*") == ""
    # trl 0.9.6 caps bitsandbytes<=0.41.1 for [quantization]; a later bitsandbytes is not a finding.
    findings = declared(snapshot({"trl": "0.9.6", "bitsandbytes": "0.43.1"}))
    assert not [f for f in findings if f.rule == "optional-requirement-conflict"]
