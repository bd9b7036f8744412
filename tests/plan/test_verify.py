"""--verify: offline sources are reported, never failed; PyPI resolution reports resolved or the conflict.

The network tests share one module-scoped run: every plan below is verified once, uv's runs concurrently and
pip's one after another (an older pip downloads whole wheels), and each test asserts on its own plan's result.
Nothing is cached across runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from envdoctor.matrices import load_matrices
from envdoctor.plan.build import build_plan
from envdoctor.plan.indexes import PYPI_SIMPLE, IndexConfig, configured_indexes
from envdoctor.plan.installer import find_uv
from envdoctor.plan.model import Installer, Plan, Source, Step, StepKind, Target
from envdoctor.plan.resolvers import Resolver, choose_resolver
from envdoctor.plan.verify import PYPI_PROBE_URL, StepCheck, Verdict, reach, verify_plan

RESOLVING = [("phase1a-2.0", "12.4", "3.10"), ("lora-cu128-2026.11", "12.8", "3.11")]  # cu118: offline goldens


def _plan(stack: str, cuda: str, python: str) -> Plan:
    return build_plan(load_matrices().stack(stack), Target(cuda=cuda, python=python))


def _numpy2_plan() -> Plan:
    """phase1a's packages step with its numpy pin dropped and numpy==2.0.2 forced by the constraints.

    Nothing asks for numpy 1.26.4 any more, so the only cause of a conflict is trl 0.9.6's numpy<2.
    """
    plan = _plan("phase1a-2.0", "12.4", "3.10").only_steps(("packages",))
    (packages,) = plan.steps
    requirements = tuple(r for r in packages.requirements if not r.startswith("numpy"))
    constraints = tuple("numpy==2.0.2" if line.startswith("numpy") else line for line in plan.constraints)
    steps = (dataclasses.replace(packages, requirements=requirements),)
    return dataclasses.replace(plan, constraints=constraints, steps=steps)


def test_everything_offline_is_reported_not_failed():
    checks = verify_plan(_plan("phase1a-2.0", "12.4", "3.10"), reach_url=lambda url: None)
    assert [c.step for c in checks] == ["torch", "flash-attn", "packages"]
    assert all(c.verdict is Verdict.OFFLINE for c in checks)


def test_only_install_steps_are_checked_and_vcs_is_not_pretended():
    plan = _plan("phase1a-2.0", "12.4", "3.10")
    vcs = Step("vcs-x", StepKind.INSTALL, "x from git", ("x @ git+https://example.invalid/x.git@v1",), Source.VCS)
    checks = verify_plan(dataclasses.replace(plan, steps=(plan.steps[0], vcs, plan.steps[-1])), lambda url: None)
    assert [(c.step, c.verdict) for c in checks] == [("vcs-x", Verdict.OFFLINE)]


RESOLVERS = ("pip", "uv")


@pytest.fixture(scope="module")
def verified() -> dict[str, tuple[StepCheck, ...]]:
    """One verify run per plan and resolver, all run concurrently; keyed by 'stack-cuda-python/resolver' and
    'numpy2/resolver'. uv's runs are left out when uv is not installed (its tests then skip)."""
    if reach(PYPI_PROBE_URL) is None:
        pytest.skip("PyPI not reachable")
    plans = {"-".join(case): _plan(*case) for case in RESOLVING}
    plans["numpy2"] = _numpy2_plan()
    resolvers = {"pip": choose_resolver(Installer.PIP)}
    if find_uv() is not None:
        resolvers["uv"] = choose_resolver(None)
    # a pip before 25.3 downloads each resolved set whole (about 3 GB with a CUDA torch): one pip run at a time
    with ThreadPoolExecutor(max_workers=len(plans)) as pool, ThreadPoolExecutor(max_workers=1) as one_at_a_time:
        futures = {f"{key}/{name}": (one_at_a_time if name == "pip" else pool).submit(verify_plan, plan,
                                                                                         resolver=resolver)
                   for key, plan in plans.items() for name, resolver in resolvers.items()}
        return {key: future.result() for key, future in futures.items()}


def _checks(verified: dict[str, tuple[StepCheck, ...]], key: str) -> tuple[StepCheck, ...]:
    if key not in verified:
        pytest.skip("uv not installed")
    return verified[key]


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("resolver", RESOLVERS)
@pytest.mark.parametrize("stack,cuda,python", RESOLVING)
def test_bundled_stack_resolves_on_pypi(verified, stack, cuda, python, resolver):
    checks = {c.step: c for c in _checks(verified, f"{stack}-{cuda}-{python}/{resolver}")}
    assert checks["packages"].verdict is Verdict.RESOLVED, checks["packages"].detail
    plan = _plan(stack, cuda, python)
    index_up = reach(plan.torch.index_url) is not None  # else PyPI's build resolved, the variant's is unseen
    assert checks["torch"].verdict is (Verdict.RESOLVED if index_up else Verdict.OFFLINE), checks["torch"].detail
    assert f"torch=={plan.torch.version}" in checks["torch"].detail
    packages = next(step for step in plan.steps if step.id == "packages")
    for requirement in packages.requirements:  # every pin resolved to exactly its version
        if "==" in requirement:
            assert requirement in checks["packages"].detail
    assert checks["flash-attn"].verdict in (Verdict.RESOLVED, Verdict.OFFLINE)


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("resolver", RESOLVERS)
def test_conflict_is_reported_with_the_resolvers_reason(verified, resolver):
    (packages,) = _checks(verified, f"numpy2/{resolver}")
    assert packages.step == "packages"
    assert packages.verdict is Verdict.CONFLICT
    assert "numpy" in packages.detail and "trl" in packages.detail, packages.detail


# --- resolver choice, configured indexes, unreachable indexes ----------------------------------------------------

UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"  # the discard port: nothing listens, the connection is refused


def test_a_missing_uv_falls_back_to_pip(tmp_path):
    resolver = choose_resolver(None, search_path=str(tmp_path))  # a PATH without uv
    assert resolver.kind is Installer.PIP and "uv was not found" in resolver.reason


def test_uv_is_the_resolver_when_found_unless_pip_is_asked():
    uv = find_uv()
    if uv is None:
        pytest.skip("uv not installed")
    assert choose_resolver(None).kind is Installer.UV
    assert choose_resolver(Installer.PIP).kind is Installer.PIP


def test_an_unreachable_configured_index_is_not_verified_offline():
    plan = _plan("phase1a-2.0", "12.4", "3.10")
    checks = verify_plan(plan, indexes=IndexConfig(index_url=UNREACHABLE_INDEX, origin="PIP_INDEX_URL"))
    by_step = {c.step: c for c in checks}
    for step in ("torch", "packages"):
        assert by_step[step].verdict is Verdict.OFFLINE
        assert "127.0.0.1:9 (PIP_INDEX_URL) is not reachable" in by_step[step].detail


@pytest.mark.parametrize("kind", [Installer.PIP, Installer.UV])
def test_a_resolver_that_cannot_reach_the_index_is_offline_not_a_conflict(monkeypatch, kind):
    """The probe said the index is up, the resolver then cannot connect: its own error is read as offline."""
    uv = find_uv()
    if kind is Installer.UV and uv is None:
        pytest.skip("uv not installed")
    for variable in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_INDEX", "UV_EXTRA_INDEX_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", UNREACHABLE_INDEX)
    monkeypatch.setenv("PIP_RETRIES", "1")  # pip names the refused connection only when it retries
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    monkeypatch.setenv("UV_NO_CACHE", "1")  # a cached answer would hide the refused connection
    plan = _plan("phase1a-2.0", "12.4", "3.10").only_steps(("packages",))
    resolver = choose_resolver(Installer.PIP) if kind is Installer.PIP else Resolver(Installer.UV, uv, "test")
    indexes = configured_indexes()
    assert indexes.index_url == UNREACHABLE_INDEX and indexes.extra_index_urls == () and indexes.find_links == ()
    (packages,) = verify_plan(plan, reach_url=lambda url: 200, resolver=resolver, indexes=indexes)
    assert packages.verdict is Verdict.OFFLINE, packages.detail
    assert "could not reach its index" in packages.detail


def test_configured_indexes_follow_pip_conf_then_the_environment(tmp_path):
    system, user = tmp_path / "system.conf", tmp_path / "user.conf"
    system.write_text("[global]\nindex-url = https://mirror.example/simple\nextra-index-url = https://a.example/s\n")
    user.write_text("[install]\nextra-index-url =\n  https://b.example/s\n  https://c.example/s\n")
    from_files = configured_indexes(environ={}, files=[system, user, tmp_path / "missing.conf"])
    assert from_files.index_url == "https://mirror.example/simple" and from_files.origin == str(system)
    assert from_files.extra_index_urls == ("https://b.example/s", "https://c.example/s")
    assert from_files.host == "mirror.example"
    env = {"UV_INDEX_URL": "https://uv.example/simple", "PIP_FIND_LINKS": "/wheels"}
    from_env = configured_indexes(environ=env, files=[system])
    assert from_env.index_url == "https://uv.example/simple" and from_env.origin == "UV_INDEX_URL"
    assert from_env.find_links == ("/wheels",)
    assert configured_indexes(environ={}, files=[]) == IndexConfig()  # nothing configured: PyPI


def test_an_unreadable_pip_conf_is_skipped(tmp_path):
    broken = tmp_path / "pip.conf"
    broken.write_text("[global\nindex-url = https://x.example/simple\n")
    assert configured_indexes(environ={}, files=[broken, tmp_path]).index_url == PYPI_SIMPLE
    assert configured_indexes(environ={"PIP_CONFIG_FILE": os.devnull}, files=None).extra_index_urls == ()


def test_resolved_versions_are_read_from_the_machine_readable_outputs():
    from envdoctor.plan.resolvers import _pylock_versions, _report_versions

    pylock = 'lock-version = "1.0"\n[[packages]]\nname = "huggingface-hub"\nversion = "0.36.2"\n'
    report = json.dumps({"install": [{"metadata": {"name": "huggingface_hub", "version": "0.36.2"}}]})
    assert _pylock_versions(pylock) == _report_versions(report) == {"huggingface-hub": "0.36.2"}
    assert _pylock_versions("not toml [") == {} and _report_versions("{") == {}


UV_CONFLICT = """\
error: No solution found when resolving dependencies
  cause: Because trl==0.9.6 depends on numpy>=1.18.2,<2.0.0 and you require trl==0.9.6, we can conclude that you \
require numpy>=1.18.2,<2.0.0.
         And because you require numpy==2.0.2, we can conclude that your requirements are unsatisfiable.
"""


def test_a_uv_conflict_keeps_its_cause_and_a_warning_is_not_an_outage():
    from envdoctor.plan.resolvers import _unreachable, failure_cause

    uv = Resolver(Installer.UV, "uv", "test")
    cause = failure_cause(uv, UV_CONFLICT)
    assert cause.startswith("Because trl==0.9.6 depends on numpy>=1.18.2,<2.0.0") and "numpy==2.0.2" in cause
    warned = "warning: A managed Python download failed\n  cause: dns error\n" + UV_CONFLICT
    assert not _unreachable(Installer.UV, warned)
    assert _unreachable(Installer.UV, "error: Failed to fetch: `http://127.0.0.1:9/simple/trl/`\n")


def test_torch_step_is_offline_when_its_index_is_unreachable_though_the_public_build_resolved(tmp_path):
    from envdoctor.plan.verify import _Ask, _for_step, _Outcome

    plan = _plan("phase1a-2.0", "12.4", "3.10")
    torch = next(step for step in plan.steps if step.id == "torch")
    resolved = _Outcome("", Verdict.RESOLVED, "", (("torch", plan.torch.version),))
    ask = _Ask(plan, tmp_path / "c.txt", choose_resolver(Installer.PIP), IndexConfig(), reach_url=lambda url: None)
    check = _for_step(torch, resolved, (f"torch=={plan.torch.version}",), ask)
    assert check.verdict is Verdict.OFFLINE and "not verified" in check.detail
    assert f"torch=={plan.torch.version}" in check.detail
    reachable = _Ask(plan, tmp_path / "c.txt", choose_resolver(Installer.PIP), IndexConfig(), reach_url=lambda u: 200)
    assert _for_step(torch, resolved, (f"torch=={plan.torch.version}",), reachable).verdict is Verdict.RESOLVED


# --- a resolver that fails on its own says nothing about the plan --------------------------------------------------

@pytest.mark.parametrize("kind", [Installer.PIP, Installer.UV])
def test_a_resolver_failing_on_its_own_is_not_verified_rather_than_a_conflict(monkeypatch, kind):
    """A real resolver run that stops at its own configuration (as it would on a full disk) before resolving."""
    uv = find_uv()
    if kind is Installer.UV and uv is None:
        pytest.skip("uv not installed")
    monkeypatch.setenv("PIP_PROGRESS_BAR", "bogus")
    monkeypatch.setenv("UV_CONCURRENT_DOWNLOADS", "bogus")
    plan = _plan("phase1a-2.0", "12.4", "3.10").only_steps(("packages",))
    resolver = choose_resolver(Installer.PIP) if kind is Installer.PIP else Resolver(Installer.UV, uv, "test")
    (packages,) = verify_plan(plan, reach_url=lambda url: 200, resolver=resolver, indexes=IndexConfig())
    assert packages.verdict is Verdict.FAILED, packages.detail
    assert "without finding a conflict" in packages.detail and "bogus" in packages.detail


PIP_CRASH = """\
ERROR: Exception:
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/pip/_internal/cli/base_command.py", line 180, in exc_logging_wrapper
    status = run_func(*args)
OSError: [Errno 28] No space left on device
"""


def test_a_pip_crash_is_named_by_its_exception_and_is_no_conflict():
    from envdoctor.plan.resolvers import _no_solution, tool_failure

    assert tool_failure(PIP_CRASH) == "OSError: [Errno 28] No space left on device"
    assert not _no_solution(Installer.PIP, PIP_CRASH)
    assert _no_solution(Installer.UV, UV_CONFLICT)


def test_pips_usage_error_for_an_unknown_feature_is_recognized():
    """The wording comes from a real pip: a pip without fast-deps would answer the same way for it."""
    import subprocess
    import sys

    from envdoctor.plan.resolvers import PIP_FAST_DEPS, pip_command, rejects_feature

    done = subprocess.run([sys.executable, "-m", "pip", "install", "--use-feature=no-such-feature", "x"],
                          capture_output=True, text=True, check=False)
    assert rejects_feature(done.stderr, "--use-feature=no-such-feature")
    assert not rejects_feature(done.stderr, PIP_FAST_DEPS)
    plan = _plan("phase1a-2.0", "12.4", "3.10")
    assert PIP_FAST_DEPS in pip_command(plan, Path("c.txt"), Path("t"), Path("r.json"), ("trl",))


def test_a_pip_that_downloads_whole_wheels_is_named_before_it_resolves():
    from envdoctor.plan.resolvers import _pip_download_note

    assert "pip 23.2.1 downloads every wheel" in _pip_download_note("23.2.1")
    assert _pip_download_note("25.3") == _pip_download_note("26.0") == _pip_download_note(None) == ""
    assert _pip_download_note("not a version") == ""
