"""``check``: probe (or take) a snapshot, choose a stack, run rules and checks, score the result."""

from __future__ import annotations

import sys
from pathlib import Path

from envdoctor.checks import CheckContext, run_checks
from envdoctor.facts import Facts
from envdoctor.findings import Finding, Report
from envdoctor.matrices import Matrices, MatrixError, Stack, load_matrices
from envdoctor.rules import evaluate, fact, has_no_gpu, parse_version, torch_variant
from envdoctor.score import score_findings
from envdoctor.snapshot import Snapshot

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PROJECT_FILE = "envdoctor.toml"


def run_check(
    snapshot: Snapshot | None = None,
    stack: str | None = None,
    model: str | None = None,
    cwd: Path | None = None,
    matrices: Matrices | None = None,
) -> Report:
    """Check ``snapshot`` (default: probe this machine) against ``stack`` and the rules.

    Stack: ``stack``, else ``stack = "name"`` in ``envdoctor.toml`` in ``cwd``, else the closest bundled one.
    Raises StackNotFoundError for an unknown stack name, MatrixError for broken matrix or project files.
    """
    if snapshot is None:
        from envdoctor.probe import probe

        snapshot = probe()
    matrices = matrices or load_matrices()
    chosen, reason = choose_stack(snapshot, matrices, stack, cwd)
    ctx = CheckContext(snapshot=snapshot, matrices=matrices, facts=Facts(matrices.root), stack=chosen, model=model)
    supersedes = {**matrices.policy.supersedes, **{r.id: r.supersedes for r in matrices.rules if r.supersedes}}
    findings = _ordered(drop_superseded(evaluate(matrices.rules, snapshot) + run_checks(ctx), supersedes))
    return Report(
        stack=chosen.name if chosen else None,
        stack_reason=reason,
        findings=tuple(findings),
        score=score_findings(findings, matrices.policy),
        snapshot=snapshot.to_dict(),
    )


def drop_superseded(findings: list[Finding], supersedes: dict[str, tuple[str, ...]]) -> list[Finding]:
    """One cause, one finding: drop a finding that a verified finding at least as severe supersedes.

    ``supersedes`` maps a rule id to the rule ids it makes redundant when the redundant finding's components
    are all among its own (trl-undeclared-rich on (trl, rich) supersedes stack-missing on (rich)).
    """
    def redundant(finding: Finding) -> bool:
        return any(
            finding.rule in supersedes.get(other.rule, ()) and other.verified
            and other.severity.rank >= finding.severity.rank and set(finding.components) <= set(other.components)
            for other in findings if other is not finding
        )

    return [f for f in findings if not redundant(f)]


def _ordered(findings: list[Finding]) -> list[Finding]:
    """Worst first, stable, without exact duplicates."""
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: (-f.severity.rank, f.category.value, f.rule, f.components))


def choose_stack(
    snapshot: Snapshot, matrices: Matrices, name: str | None, cwd: Path | None
) -> tuple[Stack | None, str]:
    """(stack, why it was chosen)."""
    if name:
        return matrices.stack(name), f"--stack {name}"
    project = Path(cwd or Path.cwd()) / PROJECT_FILE
    declared = read_project_stack(project)
    if declared:
        return matrices.stack(declared), f"stack = {declared!r} in {project}"
    return closest_stack(snapshot, matrices)


def read_project_stack(path: Path) -> str | None:
    """The ``stack`` named in an ``envdoctor.toml``; None when the file is absent. Raises MatrixError."""
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MatrixError(f"{path}: cannot read: {exc}") from None
    value = data.get("stack")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise MatrixError(f"{path}: stack: should be a stack name string like \"phase1a-2.0\"")
    return value


def closest_stack(snapshot: Snapshot, matrices: Matrices) -> tuple[Stack | None, str]:
    """The bundled stack that most installed versions agree with (GPU stacks first on a GPU machine)."""
    stacks = matrices.stacks()
    if not stacks:
        return None, "no bundled stacks"
    ranked = sorted(stacks, key=lambda s: (-_closeness(snapshot, s)[0], s.name))
    best = ranked[0]
    points, matched, total = _closeness(snapshot, best)
    return best, (f"closest bundled stack to what is installed: {matched} of {total} pinned versions match"
                  f" (no --stack and no {PROJECT_FILE})")


def _closeness(snapshot: Snapshot, stack: Stack) -> tuple[int, int, int]:
    """(points, exact matches, pins): 2 per exact pin, 1 per same major.minor, +-3 for GPU fit."""
    variant = torch_variant(snapshot)
    chosen = stack.variant(variant if isinstance(variant, str) else None)
    pins = {**stack.pins, **(chosen.pins() if chosen else {})}
    points = matched = 0
    for package, pin in pins.items():
        installed = parse_version(fact(snapshot, f"packages.{package}"))
        wanted = parse_version(pin)
        if installed is None or wanted is None:
            continue
        if installed.public == wanted.public:
            points, matched = points + 2, matched + 1
        elif installed.release[:2] == wanted.release[:2]:
            points += 1
    no_gpu = has_no_gpu(snapshot) or variant == "cpu"
    points += 3 if stack.cpu_ok == no_gpu else -3
    return points, matched, len(pins)
