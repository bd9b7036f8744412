"""Version checks that libraries run themselves at import or first use (``envdoctor.runtime_floors``).

For every installed library whose release the table covers, each requirement it checks at run time is compared
with the installed version of the required package: ``import transformers`` (4.39.3) raises when tokenizers
0.19.1 is installed, though pip accepts the pair. A check that runs at import or whenever its function is
called fails; one that runs only under a feature's condition (DeepSpeed in use, a trainer option) is
information. When either version is unknown nothing is said here: the declared-requirements and unknown-facts
checks report unknown versions.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.requirements import marker_environment
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import matches_specifier
from envdoctor.runtime_floors import RuntimeFloor, floors_of, table_source
from envdoctor.snapshot import normalize_name

SOURCE = "runtime-floors"
WHEN_TEXT = {"import": "at import", "first use": "when {function} runs",
             "feature": "when {function} runs with {condition}"}
# What users do that runs a function of the table, where its name does not say it.
CALLED_WHEN = {"check_torch_load_is_safe": "check_torch_load_is_safe (at every torch.load: .bin weights, a Trainer "
               "resuming from its checkpoint)"}


@dataclass(frozen=True)
class Broken:
    """One run-time check that fails here: ``owner`` (a library release) refuses the installed ``dependency``."""

    owner: str
    owner_version: str
    dependency: str
    installed: str
    floors: tuple[RuntimeFloor, ...]  # same requirement and timing, possibly from several files


def check_runtime_floors(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    environment = marker_environment(ctx.snapshot)
    broken: dict[tuple[str, str, str], list[RuntimeFloor]] = {}
    for owner, package in sorted(packages.items()):
        floors = floors_of(owner, package.version, ctx.matrices.root) if package.version else None
        for floor in floors or ():
            requirement = _requirement(floor)
            if requirement is None or (requirement.marker and not requirement.marker.evaluate(environment)):
                continue
            dependency = normalize_name(requirement.name)
            installed = packages.get(dependency)
            if installed is None or not installed.version or not requirement.specifier:
                continue
            if not matches_specifier(installed.version, str(requirement.specifier)):
                broken.setdefault((owner, dependency, floor.requires), []).append(floor)
    findings = []
    for (owner, dependency, _), floors in broken.items():
        version = packages[owner].version or ""
        installed = packages[dependency].version or ""
        findings.append(_finding(ctx, Broken(owner, version, dependency, installed, tuple(floors))))
    return findings


def _requirement(floor: RuntimeFloor) -> Requirement | None:
    try:
        return Requirement(floor.requires)
    except InvalidRequirement:
        return None


def _finding(ctx: CheckContext, broken: Broken) -> Finding:
    first = min(broken.floors, key=lambda f: ("import", "first use", "feature").index(f.when))
    requirement = Requirement(first.requires)
    specifier = str(requirement.specifier)
    written = first.requires.split(";", 1)[0].strip()  # as the library writes it: "numpy>=1.17,<2.0"
    files = ", ".join(dict.fromkeys(f.file for f in broken.floors))
    condition = first.condition if len(first.condition) <= 160 else first.condition[:157] + "..."
    function = CALLED_WHEN.get(first.function or "", first.function or "it")
    when = WHEN_TEXT[first.when].format(function=function, condition=condition)
    error = first.error.replace("{installed}", broken.installed)
    fixes = [requirement_install(ctx, broken.dependency, specifier)]
    other = _owner_release_accepting(ctx, broken)
    if other is not None:
        fixes.append(requirement_install(ctx, broken.owner, f"=={other}"))
    source = table_source(broken.owner, ctx.matrices.root) or "matrices/runtime_floors.json"
    return Finding(
        rule="runtime-version-check", category=Category.VERSION,
        severity=Severity.INFO if first.when == "feature" else Severity.FAIL,
        components=(broken.dependency, broken.owner), sources=(SOURCE,),
        message=f"{broken.owner} {broken.owner_version} checks {written} {when} ({files}; read from {source}), "
        f"but {broken.dependency} {broken.installed} is installed. It raises: {error}",
        fix="   # or: ".join(fix for fix in fixes if fix) or None,
    )


def _owner_release_accepting(ctx: CheckContext, broken: Broken) -> str | None:
    """The release of the owner nearest to the installed one (the next newer one first, else the newest older
    one) whose run-time checks on the dependency accept the installed version, and that checks it at all, so
    the answer is a fact, not an absence of knowledge."""
    from packaging.version import InvalidVersion, Version

    from envdoctor.runtime_floors import releases_of

    def parsed(text: str) -> Version | None:
        try:
            return Version(text.split("+", 1)[0])
        except InvalidVersion:
            return None

    current = parsed(broken.owner_version)
    if current is None:
        return None
    accepting = []
    for version in releases_of(broken.owner, ctx.matrices.root):
        candidate = parsed(version)
        floors = [r for f in floors_of(broken.owner, version, ctx.matrices.root) or ()
                  if f.when != "feature" and (r := _requirement(f)) is not None
                  and normalize_name(r.name) == broken.dependency]
        if candidate is not None and candidate != current and floors and \
                all(matches_specifier(broken.installed, str(r.specifier)) for r in floors):
            accepting.append(candidate)
    newer = [v for v in accepting if v > current]
    older = [v for v in accepting if v < current]
    chosen = min(newer) if newer else max(older) if older else None
    return str(chosen) if chosen is not None else None
