"""--verify: ask pip's resolver, without installing, whether each step of a plan resolves for the target.

Only sources this machine can reach are asked. PyPI answers for the PyPI steps, and PyPI's torch build of
the same version stands in for the PyTorch-index build when download.pytorch.org is unreachable: the other steps
are then verified against it, but the torch step itself is "not verified (offline)", since the build it installs
was not seen. A source that cannot be reached is reported as "not verified (offline)": never a failure, never a
pretend pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from envdoctor.plan.model import Plan, Source, Step, StepKind

VERIFY_SCHEMA = "envdoctor.plan-verify/1"
PYPI_PROBE_URL = "https://pypi.org/simple/pip/"
PIP_TIMEOUT_S = 300.0
REACH_TIMEOUT_S = 8.0
# pip does not widen --platform to older manylinux tags, so name them all (glibc 2.28 host and older).
MANYLINUX = ("manylinux_2_28", "manylinux_2_27", "manylinux_2_24", "manylinux_2_17", "manylinux2014",
             "manylinux_2_12", "manylinux2010", "manylinux_2_5", "manylinux1")


class Verdict(str, Enum):
    RESOLVED = "resolved"
    CONFLICT = "conflict"
    OFFLINE = "not verified (offline)"


@dataclass(frozen=True)
class StepCheck:
    step: str
    verdict: Verdict
    detail: str


Reach = Callable[[str], "int | None"]  # URL -> HTTP status, None when unreachable


def reach(url: str) -> int | None:
    """HTTP status of a HEAD request to ``url``; None when the host cannot be reached."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "envdoctor-plan-verify"})
    try:
        with urllib.request.urlopen(request, timeout=REACH_TIMEOUT_S) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError, ValueError):
        return None


def verify_plan(plan: Plan, reach_url: Reach | None = None) -> tuple[StepCheck, ...]:
    """One StepCheck per install step, in plan order.

    All PyPI-answerable steps (the torch step through PyPI's build, the packages step) are resolved together
    in one pip call, which also proves they resolve with each other. Only when that call fails is each step
    resolved on its own, to say which step the conflict is in.
    """
    reach_url = reach_url or reach
    installs = [step for step in plan.steps if step.kind is StepKind.INSTALL]
    pypi_steps = tuple(step for step in installs if step.source in (Source.PYPI, Source.TORCH_INDEX))
    pypi_up = bool(pypi_steps) and reach_url(PYPI_PROBE_URL) is not None
    with tempfile.TemporaryDirectory(prefix="envdoctor-verify-") as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("\n".join(_pypi_constraints(plan)) + "\n", encoding="utf-8")
        resolved = _resolve_steps(pypi_steps, plan, constraints, reach_url) if pypi_up else {}
    return tuple(_verify_step(step, resolved, pypi_up, reach_url) for step in installs)


def _verify_step(step: Step, resolved: dict[str, StepCheck], pypi_up: bool, reach_url: Reach) -> StepCheck:
    if step.source is Source.URL:
        return _verify_urls(step, reach_url)
    if step.source is Source.VCS:
        return StepCheck(step.id, Verdict.OFFLINE, "git sources are not resolved by --verify")
    if not pypi_up:
        return StepCheck(step.id, Verdict.OFFLINE, "PyPI is not reachable from this machine")
    return resolved[step.id]


def _resolve_steps(steps: tuple[Step, ...], plan: Plan, constraints: Path, reach_url: Reach) -> dict[str, StepCheck]:
    """StepCheck per step id: one pip call for all steps; one call per step only to place a conflict."""
    asked = {step.id: _public_requirements(step, plan) for step in steps}
    together = tuple(dict.fromkeys(r for requirements in asked.values() for r in requirements))
    done = _run_pip(together, plan, constraints)
    if isinstance(done, StepCheck):  # pip did not answer: asking again per step would not help
        return {step.id: replace(done, step=step.id) for step in steps}
    if done.returncode == 0:
        return {step.id: _resolved(step, asked[step.id], done.report, plan, reach_url) for step in steps}
    joint = _failure("", done.output)
    if len(steps) == 1 or joint.verdict is Verdict.OFFLINE:
        return {step.id: replace(joint, step=step.id) for step in steps}
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:  # pip waits on the network: ask in parallel
        futures = {s.id: pool.submit(_resolve_one, s, asked[s.id], plan, constraints, reach_url) for s in steps}
        alone = {step_id: future.result() for step_id, future in futures.items()}
    if any(check.verdict is not Verdict.RESOLVED for check in alone.values()):
        return alone
    others = ", ".join(alone)  # each resolves alone, not together: the steps conflict with each other
    return {sid: replace(joint, step=sid, detail=f"only together with {others}: {joint.detail}") for sid in alone}


def _public_requirements(step: Step, plan: Plan) -> tuple[str, ...]:
    if step.source is Source.TORCH_INDEX:
        return tuple(_public(r) for r in step.requirements)
    return (_public(plan.torch.pin), *step.requirements)


def _resolve_one(
    step: Step, requirements: tuple[str, ...], plan: Plan, constraints: Path, reach_url: Reach
) -> StepCheck:
    done = _run_pip(requirements, plan, constraints)
    if isinstance(done, StepCheck):
        return StepCheck(step.id, done.verdict, done.detail)
    if done.returncode != 0:
        return _failure(step.id, done.output)
    return _resolved(step, requirements, done.report, plan, reach_url)


def _resolved(step: Step, requirements: tuple[str, ...], report: str, plan: Plan, reach_url: Reach) -> StepCheck:
    summary = _resolved_summary(report, requirements)
    if step.source is Source.TORCH_INDEX and reach_url(step.index_url or "") is None:
        return StepCheck(step.id, Verdict.OFFLINE, f"{step.index_url} is not reachable, so the {plan.torch.variant}"
                         f" build is not verified; PyPI's build of the same version {summary}")
    return StepCheck(step.id, Verdict.RESOLVED, summary)


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


def _pypi_constraints(plan: Plan) -> list[str]:
    return [_public(line) for line in plan.constraints]


@dataclass(frozen=True)
class PipRun:
    """One dry-run resolution: pip's exit status, its JSON report (on success) and everything it printed."""

    returncode: int
    report: str
    output: str


def _run_pip(requirements: tuple[str, ...], plan: Plan, constraints: Path) -> PipRun | StepCheck:
    """pip's dry-run resolution, or an OFFLINE StepCheck when pip does not answer in time.

    Not --quiet: pip prints the cause of a conflict ("The conflict is caused by: ...") at info level.
    """
    with tempfile.TemporaryDirectory(prefix="envdoctor-target-") as work_dir:
        report = Path(work_dir) / "report.json"
        command = _pip_command(plan, constraints, Path(work_dir) / "target", report, requirements)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return StepCheck("", Verdict.OFFLINE, f"pip did not answer within {PIP_TIMEOUT_S:.0f} s")
        report_text = report.read_text(encoding="utf-8") if report.is_file() else ""
        return PipRun(done.returncode, report_text, done.stdout + "\n" + done.stderr)


def _pip_command(
    plan: Plan, constraints: Path, target_dir: Path, report: Path, requirements: tuple[str, ...]
) -> list[str]:
    arch = plan.target.platform.split("_", 1)[1]
    platforms = [arg for tag in MANYLINUX for arg in ("--platform", f"{tag}_{arch}")]
    return [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--report", str(report),
        "--no-color", "--disable-pip-version-check", "--no-input", "--python-version", plan.target.python, *platforms,
        "--only-binary=:all:", "--target", str(target_dir), "-c", str(constraints), *requirements,
    ]


def _resolved_summary(report_text: str, requirements: tuple[str, ...]) -> str:
    try:
        installs = json.loads(report_text).get("install", [])
    except json.JSONDecodeError:
        return "resolved"
    versions = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in installs}
    asked = [r.split("==")[0].split("[")[0].lower() for r in requirements]
    shown = [f"{name}=={versions[name]}" for name in asked if name in versions]
    return f"resolved {len(installs)} distributions: " + ", ".join(shown)


def _failure(step_id: str, output: str) -> StepCheck:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if any("Failed to establish a new connection" in line or "NewConnectionError" in line for line in lines):
        return StepCheck(step_id, Verdict.OFFLINE, "pip could not reach its index")
    cause = _conflict_block(lines) or [line for line in lines if line.startswith("ERROR:")][:3]
    return StepCheck(step_id, Verdict.CONFLICT, " | ".join(cause) or "pip failed without an error message")


def _conflict_block(lines: list[str]) -> list[str]:
    """The 'The conflict is caused by:' lines pip prints for ResolutionImpossible."""
    if "The conflict is caused by:" not in lines:
        return []
    start = lines.index("The conflict is caused by:")
    block = []
    for line in lines[start + 1:]:
        if line.startswith(("To fix", "Additionally", "ERROR:")):
            break
        block.append(line)
    return block


def render_checks(checks: tuple[StepCheck, ...]) -> str:
    """One line per step: ``<step>: <verdict>: <detail>``."""
    return "".join(f"{c.step}: {c.verdict.value}: {c.detail}\n" for c in checks)


def render_checks_json(plan: Plan, checks: tuple[StepCheck, ...]) -> str:
    """``envdoctor.plan-verify/1``: the stack, the target and one ``{step, status, detail}`` per install step."""
    data = {
        "schema": VERIFY_SCHEMA,
        "stack": plan.stack,
        "target": {"cuda": plan.target.cuda, "python": plan.target.python, "platform": plan.target.platform},
        "steps": [{"step": c.step, "status": c.verdict.value, "detail": c.detail} for c in checks],
    }
    return json.dumps(data, indent=2) + "\n"
