"""--verify: ask a resolver (uv pip compile, else pip's), without installing, whether each step of a plan resolves.

Only sources this machine can reach are asked. The configured index (PIP_INDEX_URL, UV_INDEX_URL, pip.conf; PyPI
when none is set) answers for the PyPI steps, and its torch build of the same version stands in for the
PyTorch-index build when download.pytorch.org is unreachable: the other steps are then verified against it, but the
torch step itself is "not verified (offline)", since the build it installs was not seen. A source that cannot be
reached is reported as "not verified (offline)": never a failure, never a pretend pass.
"""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from packaging.utils import canonicalize_name

from envdoctor.plan.indexes import IndexConfig, configured_indexes
from envdoctor.plan.model import Plan, Source, Step, StepKind
from envdoctor.plan.resolvers import (
    RESOLVE_TIMEOUT_S,
    Resolver,
    choose_resolver,
    failure_cause,
    resolve,
    tool_failure,
)

VERIFY_SCHEMA = "envdoctor.plan-verify/1"
PYPI_PROBE_URL = "https://pypi.org/simple/pip/"
REACH_TIMEOUT_S = 8.0


class Verdict(str, Enum):
    RESOLVED = "resolved"
    CONFLICT = "conflict"
    OFFLINE = "not verified (offline)"
    FAILED = "not verified (resolver failed)"  # the tool itself failed (full disk, bad option): no answer


@dataclass(frozen=True)
class StepCheck:
    step: str
    verdict: Verdict
    detail: str


Reach = Callable[[str], "int | None"]  # URL -> HTTP status, None when unreachable


def reach(url: str) -> int | None:
    """HTTP status of a HEAD request to ``url`` (200 for an existing file:// path); None when it cannot be reached."""
    if url.startswith("file:"):
        return 200 if Path(urllib.request.url2pathname(url.split(":", 1)[1].removeprefix("//"))).exists() else None
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "envdoctor-plan-verify"})
    try:
        with urllib.request.urlopen(request, timeout=REACH_TIMEOUT_S) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class _Ask:
    """What every resolution of one verify run shares."""

    plan: Plan
    constraints: Path
    resolver: Resolver
    indexes: IndexConfig
    reach_url: Reach


def verify_plan(
    plan: Plan, reach_url: Reach | None = None, resolver: Resolver | None = None, indexes: IndexConfig | None = None
) -> tuple[StepCheck, ...]:
    """One StepCheck per install step, in plan order.

    All index-answerable steps (the torch step through the index's public build, the packages step) are resolved
    together in one call, which also proves they resolve with each other. Only when that call fails is each step
    resolved on its own, to say which step the conflict is in. ``resolver``: uv when found, else pip
    (``choose_resolver``); ``indexes``: the configured ones (``configured_indexes``).
    """
    reach_url = reach_url or reach
    resolver = resolver or choose_resolver(None)
    indexes = indexes or configured_indexes()
    installs = [step for step in plan.steps if step.kind is StepKind.INSTALL]
    index_steps = tuple(step for step in installs if step.source in (Source.PYPI, Source.TORCH_INDEX))
    index_up = bool(index_steps) and reach_url(indexes.index_url) is not None
    with tempfile.TemporaryDirectory(prefix="envdoctor-verify-") as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("\n".join(_public_constraints(plan)) + "\n", encoding="utf-8")
        ask = _Ask(plan, constraints, resolver, indexes, reach_url)
        resolved = _resolve_steps(index_steps, ask) if index_up else {}
    down = f"the index {indexes.host} ({indexes.origin}) is not reachable from this machine"
    return tuple(_verify_step(step, resolved, down if not index_up else "", reach_url) for step in installs)


def _verify_step(step: Step, resolved: dict[str, StepCheck], index_down: str, reach_url: Reach) -> StepCheck:
    if step.source is Source.URL:
        return _verify_urls(step, reach_url)
    if step.source is Source.VCS:
        return StepCheck(step.id, Verdict.OFFLINE, "git sources are not resolved by --verify")
    if index_down:
        return StepCheck(step.id, Verdict.OFFLINE, index_down)
    return resolved[step.id]


def _resolve_steps(steps: tuple[Step, ...], ask: _Ask) -> dict[str, StepCheck]:
    """StepCheck per step id: one resolution for all steps; one per step only to place a conflict."""
    asked = {step.id: _public_requirements(step, ask.plan) for step in steps}
    together = tuple(dict.fromkeys(r for requirements in asked.values() for r in requirements))
    joint = _resolve_one("", together, ask)
    if joint.verdict is not Verdict.CONFLICT or len(steps) == 1:  # only a conflict is placed step by step
        return {step.id: _for_step(step, joint, asked[step.id], ask) for step in steps}
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:  # resolvers wait on the network: ask in parallel
        futures = {s.id: pool.submit(_resolve_one, s.id, asked[s.id], ask) for s in steps}
        alone = {s.id: _for_step(s, futures[s.id].result(), asked[s.id], ask) for s in steps}
    if any(check.verdict is not Verdict.RESOLVED for check in alone.values()):
        return alone
    others = ", ".join(alone)  # each resolves alone, not together: the steps conflict with each other
    return {sid: StepCheck(sid, joint.verdict, f"only together with {others}: {joint.detail}") for sid in alone}


@dataclass(frozen=True)
class _Outcome(StepCheck):
    """A StepCheck that also carries the resolved versions, so each step can name its own pins."""

    versions: tuple[tuple[str, str], ...] = ()


def _resolve_one(step_id: str, requirements: tuple[str, ...], ask: _Ask) -> _Outcome:
    done = resolve(ask.resolver, requirements, ask.plan, ask.constraints, ask.indexes)
    if done.returncode is None:
        return _Outcome(step_id, Verdict.OFFLINE, f"{ask.resolver.label} did not answer within"
                        f" {RESOLVE_TIMEOUT_S:.0f} s")
    if done.unreachable:
        return _Outcome(step_id, Verdict.OFFLINE, f"{ask.resolver.label} could not reach its index")
    if done.returncode != 0 and not done.no_solution:
        return _Outcome(step_id, Verdict.FAILED, f"{ask.resolver.label} exited with {done.returncode} without"
                        f" finding a conflict: {tool_failure(done.output)}")
    if done.returncode != 0:
        return _Outcome(step_id, Verdict.CONFLICT, failure_cause(ask.resolver, done.output))
    return _Outcome(step_id, Verdict.RESOLVED, "", tuple(sorted(done.versions.items())))


def _for_step(step: Step, outcome: _Outcome, requirements: tuple[str, ...], ask: _Ask) -> StepCheck:
    if outcome.verdict is not Verdict.RESOLVED:
        return StepCheck(step.id, outcome.verdict, outcome.detail)
    summary = _resolved_summary(dict(outcome.versions), requirements)
    if step.source is Source.TORCH_INDEX and ask.reach_url(step.index_url or "") is None:
        return StepCheck(step.id, Verdict.OFFLINE, f"{step.index_url} is not reachable, so the"
                         f" {ask.plan.torch.variant} build is not verified; the index's public build of the same"
                         f" version {summary}")
    return StepCheck(step.id, Verdict.RESOLVED, summary)


def _public_requirements(step: Step, plan: Plan) -> tuple[str, ...]:
    if step.source is Source.TORCH_INDEX:
        return tuple(_public(r) for r in step.requirements)
    return (_public(plan.torch.pin), *step.requirements)


def _verify_urls(step: Step, reach_url: Reach) -> StepCheck:
    url = step.requirements[0].split(" @ ", 1)[-1]
    status = reach_url(url)
    if status is None:
        return StepCheck(step.id, Verdict.OFFLINE, f"{url.split('/')[2]} is not reachable from this machine")
    if status >= 400:
        return StepCheck(step.id, Verdict.CONFLICT, f"HTTP {status} for {url}: the release has no such wheel")
    return StepCheck(step.id, Verdict.RESOLVED, f"wheel exists (HTTP {status})")


def _public(requirement: str) -> str:
    """``torch==2.3.1+cu121`` -> ``torch==2.3.1``: PyPI's build of that version."""
    return requirement.split("+", 1)[0] if "==" in requirement else requirement


def _public_constraints(plan: Plan) -> list[str]:
    return [_public(line) for line in plan.constraints]


def _resolved_summary(versions: dict[str, str], requirements: tuple[str, ...]) -> str:
    asked = [canonicalize_name(r.split("==")[0].split("[")[0].split(" @ ")[0].strip()) for r in requirements]
    shown = [f"{name}=={versions[name]}" for name in asked if name in versions]
    return f"resolved {len(versions)} distributions: " + ", ".join(shown)


def render_checks(checks: tuple[StepCheck, ...]) -> str:
    """One line per step: ``<step>: <verdict>: <detail>``."""
    return "".join(f"{c.step}: {c.verdict.value}: {c.detail}\n" for c in checks)


def render_checks_json(plan: Plan, checks: tuple[StepCheck, ...], resolver: Resolver | None = None) -> str:
    """``envdoctor.plan-verify/1``: the stack, the target, the resolver and one ``{step, status, detail}`` per
    install step."""
    data = {
        "schema": VERIFY_SCHEMA,
        "stack": plan.stack,
        "resolver": resolver.kind.value if resolver else None,
        "target": {"cuda": plan.target.cuda, "python": plan.target.python, "platform": plan.target.platform},
        "steps": [{"step": c.step, "status": c.verdict.value, "detail": c.detail} for c in checks],
    }
    return json.dumps(data, indent=2) + "\n"
