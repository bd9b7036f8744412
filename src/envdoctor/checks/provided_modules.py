"""Packages whose code imports a module that another distribution stopped installing: ``pkg_resources``, which
setuptools removed in 82.0.0 (``removed`` entries of ``matrices/stdlib_removals.json`` whose provider is a
distribution; the releases that import it are read from their wheels by ``tools/gen_stdlib_removals.py``).

An installed release that imports the module fails with ``ModuleNotFoundError: No module named 'pkg_resources'``
when the provider's installed release is at or past the removal, or when the provider is not installed and the
snapshot is a probe's full listing (a fail when the import runs at module level, a verified warning when only
functions import it). When the provider's version is unknown, or it is absent from a snapshot that lists only some
packages (one written from an issue) on a Python whose venvs do not install setuptools (3.12 on), the failure is
possible and unverified (a warning, verified: false), unless the release's own Requires-Dist caps the provider below
the removal, which keeps pip from installing a release without the module. A package of unknown version gives an
inferred warning when most of its releases read import the module.

The fix is the provider's last release with the module (``pip install "setuptools<82"``), or the package's first
later release free of the module when pinning the provider back would break a requirement of another installed
package; each is offered only when no installed package's Requires-Dist excludes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import pip_install, requirement_install
from envdoctor.checks.requirements import applicable_requirements, marker_environment
from envdoctor.checks.stdlib_removals import ProvidedModule, StdlibRemovalTable, load_stdlib_removals
from envdoctor.checks.wheels import cpython_tag
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import parse_version
from envdoctor.snapshot import Snapshot, normalize_name

# The first CPython whose venvs (ensurepip) install no setuptools.
VENV_WITHOUT_SETUPTOOLS = 12


class ProviderState(Enum):
    HAS = "has"  # the installed provider ships the module
    LACKS = "lacks"  # a release at or past the removal is installed, or (full listing) none is
    UNKNOWN = "unknown"  # version unknown, or absent from a partial snapshot where it may be missing


@dataclass(frozen=True)
class Provider:
    """What the snapshot says of one module's provider: its state and the words for it."""

    state: ProviderState
    said: str  # "setuptools 82.0.1 is installed"


def full_listing(snapshot: Snapshot) -> bool:
    """A probe's snapshot: it names the interpreter and gives every distribution's Requires-Dist, so a distribution
    it does not list is not installed. A snapshot written from an issue thread names a few packages and no
    requirements, and an absence there says nothing."""
    packages = snapshot.packages or {}
    return snapshot.python.executable is not None and bool(packages) \
        and all(package.requires is not None for package in packages.values())


def _provider(snapshot: Snapshot, module: ProvidedModule, full: bool) -> Provider | None:
    """The provider's state, or None when an absence is expected to be harmless (a partial snapshot on a Python
    whose venvs install setuptools, older than the removal)."""
    name = module.provider
    package = (snapshot.packages or {}).get(name)
    if package is not None:
        installed = parse_version(package.version) if package.version else None
        if installed is None:
            return Provider(ProviderState.UNKNOWN, f"{name} is installed with an unknown version")
        if installed >= module.removed_in:
            return Provider(ProviderState.LACKS, f"{name} {installed} is installed")
        return Provider(ProviderState.HAS, f"{name} {installed} is installed")
    if full:
        return Provider(ProviderState.LACKS, f"{name} is not installed (the probe lists every distribution)")
    minor = cpython_tag(snapshot.python.version)
    if minor is not None and minor < VENV_WITHOUT_SETUPTOOLS:
        return None
    python = f"Python 3.{minor}" if minor is not None else "a Python of unknown version"
    return Provider(ProviderState.UNKNOWN, f"{name} is not listed in the snapshot (which lists only some packages), "
                                           f"and venvs of {python} do not get it")


def caps_below(spec: str, bound: Version) -> bool:
    """Whether specifier ``spec`` excludes every version at or past ``bound`` (``<82``, ``<=81.0.0``, ``==80.*``,
    ``~=70.1``)."""
    try:
        specifiers = SpecifierSet(spec)
    except InvalidSpecifier:
        return False
    return any(upper <= bound for upper in map(_upper, specifiers) if upper is not None)


def _upper(specifier: Specifier) -> Version | None:
    """The lowest version ``specifier`` excludes together with everything above it; None when it has no cap."""
    text, operator = specifier.version, specifier.operator
    try:
        if operator == "<":
            return Version(text)
        if operator in ("<=", "==", "===") and not text.endswith(".*"):
            return Version(f"{Version(text).public}.post999999")
        release = Version(text[:-2] if text.endswith(".*") else text).release
        if operator == "==":
            return Version(".".join(map(str, (*release[:-1], release[-1] + 1))))
        if operator == "~=" and len(release) >= 2:
            return Version(".".join(map(str, (*release[:-2], release[-2] + 1))))
    except InvalidVersion:
        return None
    return None


def _declared(ctx: CheckContext, table: StdlibRemovalTable, name: str, release: Version | None,
              provider: str) -> list[str]:
    """The specifiers of the release's requirements on ``provider`` that apply here (its METADATA from the probe,
    else the table's reading of its wheel); ``[""]`` for a requirement with no specifier."""
    package = (ctx.snapshot.packages or {}).get(name)
    lines: tuple[str, ...] = ()
    if package is not None and package.requires is not None:
        lines = package.requires
    elif release is not None:
        lines = next((found for text, found in table.provider_requires.get(name, {}).items()
                      if parse_version(text) == release), ())
    return [r.specifier for r in applicable_requirements(lines, marker_environment(ctx.snapshot))
            if normalize_name(r.name) == provider]


def _excluded_by(ctx: CheckContext, target: str, version: str) -> list[str]:
    """``"mmcv requires setuptools>=82"`` for each installed package whose Requires-Dist (as probed) excludes
    ``target`` ``version``."""
    environment = marker_environment(ctx.snapshot)
    found = []
    for owner, package in sorted((ctx.snapshot.packages or {}).items()):
        for requirement in applicable_requirements(package.requires or (), environment):
            if normalize_name(requirement.name) != target or not requirement.specifier:
                continue
            try:
                allowed = SpecifierSet(requirement.specifier).contains(version, prereleases=True)
            except InvalidSpecifier:
                continue
            if not allowed:
                found.append(f"{owner} requires {target}{requirement.specifier}")
    return found


def _first_free(table: StdlibRemovalTable, name: str, after: Version, modules: set[str]) -> str | None:
    for text in table.releases.get(name, ()):
        release = parse_version(text)
        if release is not None and release > after and not table.provided_imports(name, release)[0] & modules:
            return text
    return None


def _short(version: Version) -> str:
    """``82`` for ``82.0.0``: the cap as people write it (``setuptools<82``)."""
    if version.pre or version.post is not None or version.dev is not None or version.local:
        return str(version)
    release = list(version.release)
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    return ".".join(map(str, release))


def _fix(ctx: CheckContext, module: ProvidedModule, name: str, free: str | None) -> tuple[str, str]:
    """(the command, why it is the one): the provider capped below the removal when nothing installed excludes its
    last release with the module, else the package's first release free of it, when nothing excludes that."""
    pin = pip_install(module.provider, f"<{_short(module.removed_in)}")
    pin_blocked = _excluded_by(ctx, module.provider, module.last_with)
    upgrade = requirement_install(ctx, name, f">={free}") if free else None
    upgrade_blocked = _excluded_by(ctx, name, free) if free else []
    if not pin_blocked:
        why = f"{pin} brings the module back ({module.provider} {module.last_with} ships it) without changing {name}"
        if upgrade and not upgrade_blocked:
            return f"{pin}   # or: {upgrade}", f"{why}; {name} {free} is the first later release that does not " \
                                                 f"import it"
        later = f"{name} {free} no longer imports it but {'; '.join(upgrade_blocked)}" if free else \
            f"no later release of {name} read is free of it"
        return pin, f"{why}; {later}"
    if upgrade and not upgrade_blocked:
        return upgrade, f"{'; '.join(pin_blocked)}, so {module.provider} stays; {name} {free} is the first later " \
                        f"release that does not import it"
    return pin, f"{pin} brings the module back, though {'; '.join(pin_blocked)}" + \
        (f", and {name} {free}, the first release without it, is excluded too: {'; '.join(upgrade_blocked)}"
         if free else f", and no later release of {name} read is free of it")


def _error(module: str) -> str:
    return f"ModuleNotFoundError: No module named '{module}'"


def _removal(module_name: str, module: ProvidedModule) -> str:
    return f"{module.provider} {module.removed_in} removed {module_name} ({module.last_with} is the last release " \
           f"that ships it)"


def _protection(specs: list[str], module: ProvidedModule) -> str | None:
    """None when the release's own requirement caps the provider below the removal; else what it declares."""
    if any(caps_below(spec, module.removed_in) for spec in specs):
        return None
    if specs:
        shown = ", ".join(f"{module.provider}{spec}" for spec in specs)
        return f"its Requires-Dist asks for {shown}, with no cap below {module.removed_in}, so pip may install " \
               f"the newest {module.provider}"
    return f"its Requires-Dist does not ask for {module.provider}"


def _known(ctx: CheckContext, table: StdlibRemovalTable, name: str, release: Version, full: bool) -> list[Finding]:
    used, at_import, where = table.provided_imports(name, release)
    findings = []
    for module_name in sorted(used):
        module = table.provided[module_name]
        provider = _provider(ctx.snapshot, module, full)
        if provider is None or provider.state is ProviderState.HAS:
            continue
        specs = _declared(ctx, table, name, release, module.provider)
        declared = _protection(specs, module)
        if provider.state is ProviderState.UNKNOWN and declared is None:
            continue  # pip installed the provider within the release's own cap
        free = _first_free(table, name, release, {module_name})
        fix, why = _fix(ctx, module, name, free)
        when = f"it imports {module_name} at module level, so importing the modules of {name} that do fails " \
            f"with {_error(module_name)}" if module_name in at_import else \
            f"it imports {module_name} only inside functions: calling them fails with {_error(module_name)}"
        lacks = provider.state is ProviderState.LACKS
        capped = "" if declared is not None or not lacks else \
            f" (its Requires-Dist caps {module.provider} at {', '.join(specs)}; pip check reports the conflict)"
        components, sources = (name, module.provider), (*module.sources, table.scan_source)
        told = f"{name} {release} imports {module_name} (e.g. {', '.join(where)}) and {provider.said}; " \
            f"{_removal(module_name, module)}: "
        if lacks:
            # certain to fail at `import name` only where the package's own __init__ imports it; other modules may be
            # entry points that plain imports never load (tensorboard/default.py serves only the CLI)
            certain = module_name in at_import and any(_is_top_level_init(place) for place in where)
            findings.append(Finding(
                rule="provided-module-imported", category=Category.VERSION,
                severity=Severity.FAIL if certain else Severity.WARN, components=components,
                sources=sources, verified=True, message=f"{told}{when}{capped}. Fix: {why}", fix=fix))
        else:
            findings.append(Finding(
                rule="provided-module-unverified", category=Category.VERSION, severity=Severity.WARN,
                components=components, sources=sources, verified=False,
                message=f"{told}if it is missing, {when}; {declared}. Fix: {why}", fix=fix))
    return findings


def _is_top_level_init(place: str) -> bool:
    """``tensorboard/__init__.py:12``: the package's own __init__, which every import of the package runs."""
    path = place.rsplit(":", 1)[0]
    return path.count("/") == 1 and path.endswith("/__init__.py")


def _unknown_version(ctx: CheckContext, table: StdlibRemovalTable, name: str, full: bool) -> list[Finding]:
    releases = [r for text in table.releases.get(name, ()) if (r := parse_version(text)) is not None]
    findings = []
    for module_name, module in sorted(table.provided.items()):
        using = [r for r in releases if module_name in table.provided_imports(name, r)[0]]
        provider = _provider(ctx.snapshot, module, full)
        if provider is None or provider.state is ProviderState.HAS or len(using) * 2 <= len(releases):
            continue
        free = _first_free(table, name, using[-1], {module_name})
        fix, why = _fix(ctx, module, name, free)
        findings.append(Finding(
            rule="provided-module-unknown-version", category=Category.VERSION, severity=Severity.WARN,
            components=(name, module.provider), sources=(*module.sources, table.scan_source), verified=False,
            message=f"{name} is installed (version unknown) and {provider.said}; {len(using)} of the "
                    f"{len(releases)} releases of {name} read ({using[0]} to {using[-1]}) import {module_name}, and "
                    f"{_removal(module_name, module)}: with such a release, importing {name} or calling its "
                    f"functions that import it fails with {_error(module_name)}. Fix: {why}",
            fix=fix,
        ))
    return findings


def check_provided_modules(ctx: CheckContext) -> list[Finding]:
    packages = ctx.snapshot.packages or {}
    table = load_stdlib_removals(ctx.matrices) if packages else None
    if table is None or not table.provided:
        return []
    full = full_listing(ctx.snapshot)
    findings = []
    for name in sorted(set(table.rows) & set(packages)):
        version = packages[name].version
        release = parse_version(version) if version else None
        findings += _known(ctx, table, name, Version(release.public), full) if release is not None else \
            _unknown_version(ctx, table, name, full)
    return findings
