"""NumPy 2 and the compiled packages an installed package requires but the snapshot does not list.

A thread often lists the packages it is about (transformers, sentence-transformers) and not the compiled ones they
pull in (scipy, scikit-learn), which are what fails under NumPy 2 ("numpy.dtype size changed"). For every installed
package of known version, its Requires-Dist (``matrices/pypi``) names such dependencies; for each one of the NumPy
table (``matrices/numpy_abi.toml``) that the snapshot lacks, the releases that could be installed beside this NumPy
are those its requirement allows, with a wheel for this Python and OS, whose own Requires-Dist admits the installed
NumPy. When most of them were built against NumPy 1.x, a warning says so, as an inference over that range.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.declared import marker_applies, parse_declared
from envdoctor.checks.requirements import marker_environment
from envdoctor.findings import Category, Finding, Severity
from envdoctor.numpy_abi import NumpyAbiTable
from envdoctor.pypi_facts import ReleaseFacts, release_facts, releases
from envdoctor.rules import parse_version
from envdoctor.snapshot import normalize_name

NUMPY2 = Version("2.0.0rc1")
OS_TAG = {"linux": "linux_", "windows": "win_", "darwin": "macosx_"}


@dataclass(frozen=True)
class AbsentDependency:
    name: str
    required_by: str  # "sentence-transformers 3.4.1"
    owner: str  # "sentence-transformers"
    candidates: tuple[Version, ...]  # releases that could be installed here beside this NumPy
    numpy1: tuple[Version, ...]  # those of them built against NumPy 1.x


def _specifier(text: str) -> SpecifierSet | None:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None


def _admits_numpy(release: ReleaseFacts, numpy: Version, environment: dict[str, str]) -> bool:
    for line in release.requires or ():
        declared = parse_declared(line)
        if declared is None or normalize_name(declared.name) != "numpy" or not declared.specifier:
            continue
        if not marker_applies(declared.marker, environment):
            continue
        spec = _specifier(declared.specifier)
        if spec is not None and not spec.contains(numpy, prereleases=True):
            return False
    return True


def _runs_here(release: ReleaseFacts, ctx: CheckContext) -> bool:
    """A wheel for this Python (when known) and OS (when known); abi3 and pure wheels count."""
    python, os_tag = ctx.snapshot.python.version, OS_TAG.get(ctx.snapshot.host.os or "")
    cp = "cp" + "".join(python.split(".")[:2]) if python else None
    for tag in release.wheels or ():
        interpreter, _, platform = tag.partition("-")
        if os_tag and not (platform.startswith(os_tag) or platform.endswith("any") or os_tag in platform):
            continue
        if cp and not (interpreter == cp or "abi3" in tag or interpreter.startswith("py3")):
            continue
        return True
    return False


def absent_dependencies(ctx: CheckContext, numpy: Version, table: NumpyAbiTable) -> list[AbsentDependency]:
    packages = ctx.snapshot.packages or {}
    environment = marker_environment(ctx.snapshot)
    found: dict[str, AbsentDependency] = {}
    for name, package in sorted(packages.items()):
        parsed = parse_version(package.version) if package.version else None
        release = release_facts(name, parsed.public) if parsed else None
        for line in (release.requires or ()) if release else ():
            declared = parse_declared(line)
            if declared is None or not marker_applies(declared.marker, environment):
                continue
            dependency = normalize_name(declared.name)
            rows = [r for r in table.rows_for(dependency) if r.os in (None, ctx.snapshot.host.os)]
            listed = packages.get(dependency)
            if (listed is not None and listed.version is not None) or dependency in found or dependency == "numpy" \
                    or not rows:
                continue  # a dependency listed with its version is judged by the table itself
            spec = _specifier(declared.specifier or "")
            candidates = []
            for candidate in releases(dependency):
                try:
                    version = Version(candidate.version)
                except InvalidVersion:
                    continue
                if version.is_prerelease or candidate.yanked or (spec is not None and version not in spec):
                    continue
                if _runs_here(candidate, ctx) and _admits_numpy(candidate, numpy, environment):
                    candidates.append(version)
            row = max(rows, key=lambda r: r.numpy2_from)
            old = tuple(v for v in candidates if v < row.numpy2_from)
            found[dependency] = AbsentDependency(dependency, f"{name} {package.version}", name, tuple(candidates),
                                                 old)
    return list(found.values())


def check_numpy_dependencies(ctx: CheckContext, numpy_text: str, numpy: Version,
                             table: NumpyAbiTable) -> list[Finding]:
    if numpy < NUMPY2:
        return []
    findings = []
    for dependency in absent_dependencies(ctx, numpy, table):
        total, old = len(dependency.candidates), len(dependency.numpy1)
        if total == 0 or 2 * old <= total:  # one admitted release (an exact pin) decides it alone
            continue
        fitting = sorted(set(dependency.candidates) - set(dependency.numpy1))
        upgrade = f'pip install --upgrade "{dependency.name}>={fitting[0]}"' if fitting else 'pip install "numpy<2"'
        findings.append(Finding(
            rule="numpy2-dependency-numpy1-build", category=Category.NUMPY, severity=Severity.WARN,
            components=(dependency.name, dependency.owner, "numpy"), sources=("pypi-metadata", "numpy-26191"),
            message=f"{dependency.required_by} requires {dependency.name}, {_listed(ctx, dependency.name)}: {old} of "
            f"the {total} {dependency.name} releases that can sit beside NumPy {numpy_text} here (its requirement "
            "allows them, they have a wheel for this Python and OS, and they do not exclude this NumPy) were built "
            "against NumPy 1.x: unless a newer one is installed, it fails under this NumPy ('numpy.dtype size "
            "changed', '_ARRAY_API not found') (inferred: its version is not known)",
            fix=upgrade + ('   # or: pip install "numpy<2"' if fitting else ""),
        ))
    return findings


def _listed(ctx: CheckContext, name: str) -> str:
    return ("listed with an unknown version" if name in (ctx.snapshot.packages or {})
            else "which the snapshot does not list")


def check_numpy_unknown_dependencies(ctx: CheckContext, table: NumpyAbiTable) -> list[Finding]:
    """NumPy's version unknown: a package whose requirement admits only releases of a compiled dependency that were
    built against NumPy 1.x (spaCy 3.7 and thinc 8.2), while neither caps NumPy below 2, fails under the NumPy 2.x
    that pip installs since June 2024 (inferred: NumPy's version is not known)."""
    environment = marker_environment(ctx.snapshot)
    findings = []
    for dependency in absent_dependencies(ctx, Version("2.0.0"), table):
        total, old = len(dependency.candidates), len(dependency.numpy1)
        owner = ctx.snapshot.packages[dependency.owner] if ctx.snapshot.packages else None
        release = release_facts(dependency.owner, str(parse_version(owner.version).public)) \
            if owner and owner.version and parse_version(owner.version) else None
        if total == 0 or old < total or release is None or not _admits_numpy(release, Version("2.0.0"), environment):
            continue
        findings.append(Finding(
            rule="numpy2-dependency-numpy1-build", category=Category.NUMPY, severity=Severity.WARN, verified=False,
            components=(dependency.name, dependency.owner, "numpy"), sources=("pypi-metadata", "numpy-26191"),
            message=f"{dependency.required_by} requires {dependency.name}, {_listed(ctx, dependency.name)}, and every "
            f"{dependency.name} release its requirement admits here ({', '.join(map(str, dependency.numpy1[-3:]))}"
            f"{'...' if old > 3 else ''}) was built against NumPy 1.x, while it does not cap NumPy below 2: under "
            "a NumPy installed since 2.0 (June 2024) importing it fails with 'numpy.dtype size changed' (inferred: "
            "NumPy's version is not known)",
            fix=f'pip install --upgrade {dependency.owner}   # a release whose {dependency.name} is built for NumPy 2; '
            'or: pip install "numpy<2"',
        ))
    return findings
