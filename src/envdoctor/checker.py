"""``check``: probe (or take) a snapshot, choose a stack, run rules and checks, score the result."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from envdoctor import finding_ids, table_cache
from envdoctor.checks import CheckContext
from envdoctor.checks.runner import run_checks
from envdoctor.facts import facts_at
from envdoctor.findings import Finding, Report
from envdoctor.gpu_names import with_named_capabilities
from envdoctor.matrices import Matrices, MatrixError, Stack, StackNotFoundError, load_matrices
from envdoctor.rules import evaluate, fact, has_no_gpu, parse_version, torch_variant
from envdoctor.score import score_findings
from envdoctor.snapshot import Snapshot
from envdoctor.untrusted import safe_fix

PROJECT_FILE = "envdoctor.toml"
PROJECT_FILE_MAX_BYTES = 1024 * 1024


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
    judged, named_gpus = with_named_capabilities(snapshot, matrices)  # a GPU's capability from its model name
    ctx = CheckContext(snapshot=judged, matrices=matrices, facts=facts_at(Path(matrices.root)), stack=chosen,
                       model=model, named_gpus=named_gpus)
    found = [_with_safe_fix(f) for f in evaluate(matrices.rules, judged) + run_checks(ctx)]
    findings = _ordered(drop_superseded(found, finding_ids.supersedes()))
    return Report(
        stack=chosen.name if chosen else None,
        stack_reason=reason,
        findings=tuple(findings),
        score=score_findings(findings, matrices.policy),
        snapshot=snapshot,
    )


def _with_safe_fix(finding: Finding) -> Finding:
    """No consumer (table, JSON, the trainer's gate) ever gets a fix holding a control character or a newline."""
    fix = safe_fix(finding.fix)
    return finding if fix == finding.fix else dataclasses.replace(finding, fix=fix)


def drop_superseded(findings: list[Finding], supersedes: dict[str, tuple[str, ...]]) -> list[Finding]:
    """One cause, one finding: drop a finding that a verified finding at least as severe supersedes.

    ``supersedes`` (the registry's, ``finding_ids.supersedes()``) maps a finding id to the ids it makes redundant
    when the redundant finding's components are all among its own (trl-undeclared-rich on (trl, rich) supersedes
    stack-missing on (rich)).
    Linear in the number of findings: superseding findings are indexed by (superseded rule, component), so each
    finding is compared only with those that share its rule's superseders and its first component.
    """
    by_rule: dict[str, list[Finding]] = {}  # superseded rule -> verified findings that supersede it
    by_component: dict[tuple[str, str], list[Finding]] = {}  # (superseded rule, component) -> the same
    for other in findings:
        if not other.verified:
            continue
        for rule in supersedes.get(other.rule, ()):
            by_rule.setdefault(rule, []).append(other)
            for component in dict.fromkeys(other.components):
                by_component.setdefault((rule, component), []).append(other)

    def redundant(finding: Finding) -> bool:
        if finding.rule not in by_rule:
            return False
        if finding.components:
            candidates = by_component.get((finding.rule, finding.components[0]), ())
        else:
            candidates = by_rule[finding.rule]
        components = set(finding.components)
        return any(
            other is not finding and other.severity.rank >= finding.severity.rank
            and components <= set(other.components)
            for other in candidates
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
        try:
            return matrices.stack(declared), f"stack = {declared!r} in {project}"
        except StackNotFoundError as exc:
            raise StackNotFoundError(f"{project}: stack: {exc}") from None
    if os.path.lexists(project):  # read, valid, but without a stack key
        return None, no_stack_reason(snapshot, matrices, f"{project} has no 'stack' key; add stack = \"NAME\"")
    return None, no_stack_reason(snapshot, matrices)


def no_stack_reason(snapshot: Snapshot, matrices: Matrices, why: str = f"no --stack and no {PROJECT_FILE}") -> str:
    """Without a chosen stack the environment is checked on its own terms; the closest stack is only named."""
    closest, _ = closest_stack(snapshot, matrices)
    hint = f"; the closest bundled stack is {closest.name} (envdoctor check --stack {closest.name})" if closest else ""
    return f"no stack chosen ({why}): checked on its own terms{hint}"


def read_project_stack(path: Path) -> str | None:
    """The ``stack`` named in an ``envdoctor.toml``; None when there is no such file or it has no ``stack`` key.
    Raises MatrixError (exit 2) when the path is a directory or other non-file, unreadable, over 1 MiB, or not
    valid TOML."""
    if not os.path.lexists(path):
        return None
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise MatrixError(f"{path}: is {kind}; {PROJECT_FILE} should be a TOML file with stack = \"NAME\"")
    try:
        with path.open("rb") as file:
            raw = file.read(PROJECT_FILE_MAX_BYTES + 1)
        if len(raw) > PROJECT_FILE_MAX_BYTES:
            raise MatrixError(f"{path}: larger than 1 MiB; {PROJECT_FILE} holds one line: stack = \"NAME\"")
        data = table_cache.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise MatrixError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise MatrixError(f"{path}: not UTF-8 text; {PROJECT_FILE} should be TOML with stack = \"NAME\"") from None
    except table_cache.TOMLDecodeError as exc:
        raise MatrixError(f"{path}: invalid TOML: {exc}") from None
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
