"""Declared requirements (Requires-Dist) of installed packages, as ``pip check`` reads them.

A package's requirements come from the snapshot when it carries them (the probe reads each METADATA); else from
the bundled PyPI metadata of the installed release (``matrices/pypi``); else from the hand-recorded
``matrices/declared`` tables. So a snapshot written from an issue thread, which lists versions only, is still
checked: torchvision 0.18.1 requires torch==2.3.1, whatever the stack or GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import requirement_install
from envdoctor.checks.declared import Declared, marker_applies, parse_declared
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import matches_specifier
from envdoctor.snapshot import Package, Snapshot, normalize_name

EXTRA_MARKER = re.compile(r";.*\bextra\s*==")
# A fix never removes what envdoctor itself runs on.
ENVDOCTOR_RUNS_ON = frozenset({"envdoctor", "packaging", "rich", "nvidia-ml-py", "tomli"})
# The bundled Requires-Dist of a release is read from its manylinux x86_64 wheel, which pins the CUDA runtime
# packages of PyPI's own build (torch 2.3.1 -> nvidia-*-cu12). An install with a local tag (+cu118, +cpu,
# +rocm6.1) came from another index, built with other (or no) ones, and other platforms' wheels have none
# (older torch marks them only `platform_system == "Linux"`): those lines hold only for PyPI's Linux x86_64 build.
PYPI_BUILD_ONLY = re.compile(r"^nvidia-")


@dataclass(frozen=True)
class DeclaredBy:
    """The requirements one installed package declares, and where envdoctor read them."""

    owner: str
    version: str | None
    lines: tuple[str, ...]
    origin: str  # "snapshot" (its own METADATA), "pypi" (bundled PyPI metadata) or "recorded" (declared/*.toml)
    source: str  # for messages: "its METADATA", "PyPI metadata, https://pypi.org/pypi/x/json (2026-12-06)"

    @property
    def label(self) -> str:
        return f"{self.owner} {self.version}" if self.version else self.owner

    @property
    def sources(self) -> tuple[str, ...]:
        return {"snapshot": ("pip-check",), "pypi": ("pypi-metadata",)}.get(self.origin, ("recorded-metadata",))


def marker_environment(snapshot: Snapshot) -> dict[str, str]:
    """The PEP 508 marker environment as far as the snapshot knows it (Linux x86_64 by default)."""
    version = snapshot.python.version or "3.11.0"
    system = (snapshot.host.os or "linux").lower()
    return {
        "python_version": ".".join(version.split(".")[:2]),
        "python_full_version": version,
        "sys_platform": {"windows": "win32", "macos": "darwin"}.get(system, system),
        "platform_system": {"windows": "Windows", "macos": "Darwin"}.get(system, system.capitalize()),
        "platform_machine": snapshot.host.arch or "x86_64",
        "implementation_name": snapshot.python.implementation or "cpython",
        "os_name": "nt" if system == "windows" else "posix",
        "extra": "",
    }


def declared_requirements(ctx: CheckContext, owner: str, package: Package) -> DeclaredBy | None:
    """What ``owner`` requires: the snapshot's Requires-Dist, else the bundled PyPI metadata of the installed
    release, else the recorded tables; None when unknown (no version, or a release no table has)."""
    if package.requires is not None:
        return DeclaredBy(owner, package.version, package.requires, "snapshot", "its METADATA")
    if not package.version:
        return None
    from envdoctor.pypi_facts import release_facts, table_source

    release = release_facts(owner, package.version, ctx.matrices.root)
    if release is not None and release.requires is not None:
        lines = release.requires
        if "+" in package.version or not _pypi_build_platform(ctx.snapshot):
            lines = tuple(line for line in lines if not PYPI_BUILD_ONLY.match(normalize_name(_name(line))))
        source = f"PyPI metadata of {owner} {release.version}, {table_source(owner, ctx.matrices.root)}"
        return DeclaredBy(owner, package.version, lines, "pypi", source)
    recorded = ctx.matrices.declared.get((owner, package.version.split("+")[0]))
    if recorded is not None:
        return DeclaredBy(owner, package.version, recorded.requires, "recorded", recorded.source)
    return None


def check_declared(ctx: CheckContext) -> list[Finding]:
    """Requires-Dist conflicts, as pip check finds them, for every installed package whose requirements are
    known. A conflict that breaks a package the stack uses (its dependency closure), or any conflict when no
    stack is chosen, fails; conflicts of packages outside the closure are one warning per required package,
    since they break only those packages (e.g. jax wanting NumPy 2 beside a NumPy-1 training stack). A
    requirement on a package installed with an unknown version cannot be verified: one info per package."""
    packages = ctx.snapshot.packages or {}
    environment = marker_environment(ctx.snapshot)
    declared = [d for owner, package in sorted(packages.items())
                if (d := declared_requirements(ctx, owner, package)) is not None]
    needs = {d.owner: applicable_requirements(d.lines, environment) for d in declared}
    used = stack_closure(ctx, environment, declared)
    dependents = _dependents(needs)
    findings: list[Finding] = []
    outside: dict[str, list[tuple[DeclaredBy, str]]] = {}
    unverifiable: dict[str, list[str]] = {}
    for owner in declared:
        for requirement in needs[owner.owner]:
            name, spec = normalize_name(requirement.name), requirement.specifier
            installed = packages.get(name)
            if installed is None:
                # Only the package's own METADATA (the probe's snapshot, which lists every installed package)
                # makes an absence a fact; a snapshot written from an issue thread names a few packages.
                if owner.origin == "snapshot":
                    findings.append(_missing(ctx, owner, requirement, name))
            elif installed.version is None:
                if spec:
                    unverifiable.setdefault(name, []).append(f"{owner.label} requires {name}{spec}")
            elif spec and not matches_specifier(installed.version, spec):
                if used is None or owner.owner in used:
                    findings.append(_conflict(ctx, owner, requirement, name, installed.version, dependents))
                else:
                    outside.setdefault(name, []).append((owner, spec))
    findings += [_outside_conflicts(ctx, name, owners) for name, owners in sorted(outside.items())]
    return findings + [_unverifiable(name, lines) for name, lines in sorted(unverifiable.items())]


def _dependents(needs: dict[str, list[Declared]]) -> dict[str, int]:
    """How many installed packages require each package: the one more of the environment relies on stays."""
    counts: dict[str, int] = {}
    for requirements in needs.values():
        for name in {normalize_name(r.name) for r in requirements}:
            counts[name] = counts.get(name, 0) + 1
    return counts


def applicable_requirements(lines: tuple[str, ...], environment: dict[str, str]) -> list[Declared]:
    """The Requires-Dist lines that apply here: no optional extras, markers evaluated."""
    found = []
    for line in lines:
        if EXTRA_MARKER.search(line):  # optional extras are not installed requirements; skip parsing them
            continue
        requirement = parse_declared(line)
        if requirement is not None and marker_applies(requirement.marker, environment):
            found.append(requirement)
    return found


def stack_closure(ctx: CheckContext, environment: dict[str, str],
                  declared: list[DeclaredBy] | None = None) -> set[str] | None:
    """Installed packages the stack uses: its pins, requires and variant packages plus everything they need.
    None when there is no stack (then every conflict counts)."""
    if ctx.stack is None:
        return None
    stack = ctx.stack
    names = set(stack.pins) | set(stack.requires) | set(stack.vcs) | {"torch"}
    for variant in stack.variants:
        names |= set(variant.pins())
    packages = ctx.snapshot.packages or {}
    if declared is None:
        declared = [d for owner, package in packages.items()
                    if (d := declared_requirements(ctx, owner, package)) is not None]
    lines = {d.owner: d.lines for d in declared}
    todo, seen = [normalize_name(n) for n in names], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in packages:
            continue
        seen.add(name)
        todo.extend(normalize_name(r.name) for r in applicable_requirements(lines.get(name, ()), environment))
    return seen


def _pypi_build_platform(snapshot: Snapshot) -> bool:
    """Linux x86_64, or unknown (read as Linux x86_64, as marker_environment does)."""
    system = (snapshot.host.os or "linux").lower()
    machine = (snapshot.host.arch or "x86_64").lower()
    return system == "linux" and machine in ("x86_64", "amd64")


def _name(line: str) -> str:
    requirement = parse_declared(line)
    return requirement.name if requirement else line


def _missing(ctx: CheckContext, owner: DeclaredBy, requirement: Declared, name: str) -> Finding:
    where = "" if owner.origin == "snapshot" else f" ({owner.source})"
    return Finding(
        rule="declared-requirement-missing", category=Category.MISSING, severity=Severity.WARN,
        components=(name, owner.owner), sources=owner.sources,
        message=f"{owner.label} requires {requirement.name}{requirement.specifier}{where}, which is not installed",
        fix=requirement_install(ctx, name, requirement.specifier),
    )


def _conflict(ctx: CheckContext, owner: DeclaredBy, requirement: Declared, name: str, installed: str,
              dependents: dict[str, int]) -> Finding:
    """The fix changes the side fewer installed packages rely on: torchvision, not the torch it was built for;
    triton, not the torch that pins it; scipy, not the NumPy the rest of the stack runs on."""
    where = "" if owner.origin == "snapshot" else f" ({owner.source})"
    fixes = [requirement_install(ctx, name, requirement.specifier)]
    other = _owner_release_accepting(ctx, owner, name, installed)
    if other is not None:
        change_owner = requirement_install(ctx, owner.owner, f"=={other}")
        if dependents.get(name, 0) > dependents.get(owner.owner, 0):
            fixes.insert(0, change_owner)
        else:
            fixes.append(change_owner)
    return Finding(
        rule="declared-requirement-conflict",
        category=ctx.matrices.policy.requirement_category.get(name, Category.VERSION), severity=Severity.FAIL,
        components=(name, owner.owner), sources=owner.sources,
        message=f"{owner.label} requires {requirement.name}{requirement.specifier}{where}, but {name} {installed} "
        f"is installed: {owner.owner} refuses or breaks with it",
        fix="   # or: ".join(fixes),
    )


def _owner_release_accepting(ctx: CheckContext, owner: DeclaredBy, name: str, installed: str) -> str | None:
    """The newest release of the owner in the bundled PyPI tables (not yanked, for this Python) whose
    requirements on ``name`` accept the installed ``name`` version: installing it resolves the conflict without
    touching ``name`` (the torchvision made for the installed torch, a scipy built for the installed NumPy)."""
    from envdoctor.pypi_facts import releases

    environment = marker_environment(ctx.snapshot)
    python = ctx.snapshot.python.version
    for release in reversed(releases(owner.owner, ctx.matrices.root)):
        if release.yanked or release.requires is None or release.version == (owner.version or "").split("+")[0]:
            continue
        if python and release.requires_python and not matches_specifier(python, release.requires_python):
            continue
        needs = [r for r in applicable_requirements(release.requires, environment) if normalize_name(r.name) == name]
        if needs and all(not r.specifier or matches_specifier(installed, r.specifier) for r in needs):
            return release.version
    return None


def _outside_conflicts(ctx: CheckContext, name: str, owners: list[tuple[DeclaredBy, str]]) -> Finding:
    installed = (ctx.snapshot.packages or {})[name].version
    stack = ctx.stack.name if ctx.stack else "the stack"
    removable = [o.owner for o, _ in owners if o.owner not in ENVDOCTOR_RUNS_ON]
    kept = [spec for o, spec in owners if o.owner in ENVDOCTOR_RUNS_ON]  # never uninstalled: satisfy them
    fix = (f"pip uninstall -y {' '.join(removable)}   # if unused; or keep them in a separate venv" if removable
           else requirement_install(ctx, name, ",".join(kept)))
    return Finding(
        rule="declared-requirement-conflict-outside-stack", category=Category.VERSION, severity=Severity.WARN,
        components=(name,), sources=tuple(dict.fromkeys(s for o, _ in owners for s in o.sources)),
        message=f"{len(owners)} installed package(s) outside {stack} declare a {name} other than {installed}: "
        f"{', '.join(o.label for o, _ in owners)}. They will fail to import here; {stack} itself does not use them",
        fix=fix,
    )


def _unverifiable(name: str, needs: list[str]) -> Finding:
    return Finding(
        rule="declared-requirement-unverified", category=Category.VERSION, severity=Severity.INFO,
        components=(name,), sources=("pip-check",), verified=False,
        message=f"{name} is installed with an unknown version, so these requirements on it cannot be checked: "
        f"{'; '.join(needs)}",
        fix=f"pip show {name}   # prints its version; re-run envdoctor check with it",
    )
