"""Packages that supported a new Python only months after it came out, installed with an unknown version.

For each package of the PyPI tables installed without a version, on a known CPython 3.x: a release supports 3.x
when Requires-Python admits it and, on each platform family of the snapshot (every one when the platform is
unknown) where it has a wheel for 3.(x-1), it has one for 3.x too. When the first release with support after the
last one without came LAG_DAYS or more after 3.x did (``matrices/python_releases.toml``), the package lagged, and
the installed release, being unknown, may be one without support (pip then found no distribution or built from
source): a warning marked inferred, with the release to install. Nothing is said when the environment postdates that
support: another package of the snapshot, of known version, was released after it, or the Python's patch number puts
its release after it (3.x.N came at least N months after 3.x.0); nor when no release supports 3.x yet (the wheel
checks say that).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from envdoctor.checks import CheckContext
from envdoctor.checks.requirements import applicable_requirements, marker_environment
from envdoctor.checks.wheels import Target, cpython_tag, host_target, runs_here
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.pypi_facts import ReleaseFacts, known_packages, newest_known_release, release_facts, releases
from envdoctor.release_dates import days_between
from envdoctor.rules import matches_specifier
from envdoctor.snapshot import normalize_name

TABLE = "python_releases"


@dataclass(frozen=True)
class PythonRelease:
    """The day a CPython feature release (``3.13``) came out."""

    minor: int
    date: str  # YYYY-MM-DD
    sources: tuple[str, ...]


@dataclass(frozen=True)
class SupportLag:
    """The last release of one package without support for a Python, and the first with it."""

    last_without: ReleaseFacts
    supported_from: ReleaseFacts


def load_python_releases(matrices: Matrices) -> dict[int, PythonRelease]:
    """The table by CPython 3 minor, validated; a bad row raises MatrixError naming the file and row."""
    where = matrices.root / f"{TABLE}.toml"
    rows: dict[int, PythonRelease] = {}
    for index, row in enumerate(matrices.table(TABLE).get("release", [])):
        try:
            minor = cpython_tag(row["python"])
            day = date.fromisoformat(row["date"]).isoformat()
            sources = tuple(row["sources"])
            if minor is None or not sources:
                raise ValueError("bad value")
        except (KeyError, TypeError, ValueError) as error:
            raise MatrixError(f"{where}: release[{index}]: needs python (\"3.x\"), date (YYYY-MM-DD) and sources, "
                              f"a list of source ids ({error})") from None
        rows[minor] = PythonRelease(minor, day, sources)
    return rows


def check_python_support_lag(ctx: CheckContext) -> list[Finding]:
    snapshot = ctx.snapshot
    if (snapshot.python.implementation or "cpython").lower() != "cpython":
        return []
    target = host_target(snapshot.host, snapshot.python.version)
    if target is None or target.minor is None:
        return []
    came_out = load_python_releases(ctx.matrices).get(target.minor)
    if came_out is None:
        return []
    root = ctx.matrices.root
    known = set(known_packages(root))
    packages = snapshot.packages or {}
    unknown = sorted(name for name, package in packages.items() if name in known and not package.version)
    if not unknown:
        return []
    postdates = max(filter(None, (newest_known_release(packages, root),
                                  _patch_release_not_before(snapshot.python.version, came_out.date))), default=None)
    environment = marker_environment(snapshot)
    findings = []
    for name in unknown:
        caps = _declared_ranges(ctx, name, environment)
        history = tuple(release for release in releases(name, root)
                        if all(matches_specifier(release.version, spec) for _, spec in caps))
        lag = support_lag(history, target, came_out.date, LAG_DAYS_IN_DECLARED_RANGE if caps else LAG_DAYS)
        if lag is not None and (postdates is None or postdates < lag.supported_from.date):
            findings.append(_lag_finding(name, lag, target, came_out, caps))
    return findings


def _declared_ranges(ctx: CheckContext, name: str, environment: dict[str, str]) -> list[tuple[str, str]]:
    """(owner and version, specifier) for each bounded requirement on ``name`` that the installed packages of known
    version declare: the releases of ``name`` that can be installed beside them."""
    ranges = []
    for owner, package in sorted((ctx.snapshot.packages or {}).items()):
        facts = release_facts(owner, package.version, ctx.matrices.root) if package.version else None
        for requirement in applicable_requirements(facts.requires or (), environment) if facts else ():
            if normalize_name(requirement.name) == name and requirement.specifier:
                ranges.append((f"{owner} {package.version}", requirement.specifier))
    return ranges


def support_lag(history: tuple[ReleaseFacts, ...], target: Target, came_out: str,
                lag_days: int = 60) -> SupportLag | None:
    """The last release without support for the target's Python and the first with it, when that one came at
    least ``lag_days`` after the Python did; None when support came sooner, or no release supports it yet. Where the
    newest releases dropped that Python again, the releases before the last one supporting it are judged, and only a
    wait of ``DROPPED_LAG_DAYS`` or more counts (the Pythons a package has left are old ones, and a short wait for
    them years ago says nothing about an install today)."""
    current = [release for release in history if not release.yanked]  # oldest first, as the tables keep them
    without = [index for index, release in enumerate(current) if not supports(release, target)]
    if without and without[-1] == len(current) - 1:  # support dropped again: the lag before support came
        lacking = set(without)
        last_supported = max((index for index in range(len(current)) if index not in lacking), default=-1)
        without = [index for index in without if index < last_supported]
        lag_days = max(lag_days, DROPPED_LAG_DAYS)
    if not without:
        return None
    fixed = current[without[-1] + 1]
    if days_between(came_out, fixed.date) < lag_days:
        return None
    return SupportLag(current[without[-1]], fixed)


LAG_DAYS = 60  # support this long after the Python came out: users of that Python met a release without it
# Where the package dropped the Python again later, only a long wait for support counts (half a year)
DROPPED_LAG_DAYS = 183
# Within the releases another installed package's requirement allows (transformers 4.45.2: tokenizers<0.21,>=0.20),
# a shorter lag counts: pip chose among those only, and the newest of them lacked support for weeks.
LAG_DAYS_IN_DECLARED_RANGE = 14


def supports(release: ReleaseFacts, target: Target) -> bool:
    """Whether a release admits the target's Python 3.x by Requires-Python and, on each platform family of the
    target where it has a wheel for 3.(x-1), has one for 3.x too (a family it does not build for at all, or built
    only for other Pythons, is a platform question, not this one)."""
    minor = target.minor
    if minor is None:
        return True
    if release.requires_python and not matches_specifier(f"3.{minor}", release.requires_python):
        return False
    tags = release.wheels or ()
    return all(any(runs_here(tag, family, minor) for tag in tags) for family in target.families
               if any(runs_here(tag, family, minor - 1) for tag in tags))


def _patch_release_not_before(python: str | None, came_out: str) -> str | None:
    """A lower bound on the day CPython 3.x.N came out: N months after 3.x.0 (bugfix releases come about every two
    months, PEP 602; expedited ones are rare), so an environment on it is at least that recent. None for 3.x.0 or
    a version without a patch number."""
    parts = (python or "").split(".")
    if len(parts) < 3 or not parts[2].isdigit() or int(parts[2]) == 0:
        return None
    day = date.fromisoformat(came_out)
    months = day.month - 1 + int(parts[2])
    return date(day.year + months // 12, months % 12 + 1, min(day.day, 28)).isoformat()


def _lag_finding(name: str, lag: SupportLag, target: Target, came_out: PythonRelease,
                 caps: list[tuple[str, str]]) -> Finding:
    last, fixed = lag.last_without, lag.supported_from
    within = "".join(f"; {owner} requires {name}{spec}" for owner, spec in caps)
    among = " of those it allows" if caps else ""
    python = f"3.{target.minor}"
    where = "some of its platforms" if target.where == "any platform" else target.where
    how = ("Requires-Python excludes it" if last.requires_python and not matches_specifier(python, last.requires_python)
           else f"no CPython {python} wheel for {where}")
    return Finding(
        rule="python-support-came-later", category=Category.PYTHON, severity=Severity.WARN, components=(name,),
        sources=("pypi-metadata", *came_out.sources), verified=False,
        message=f"{name} is installed (version unknown) on Python {python}{within}: no {name} release{among} "
        f"supported Python {python} until {fixed.version} ({fixed.date}, {_after(came_out.date, fixed.date)} after "
        f"Python {python} came out); {last.version} and older do not ({how}). An older {name} here does not install "
        "from a wheel or fails at import (inferred: the installed version is unknown)",
        fix=f"pip install \"{name}>={fixed.version}\"   # or use a Python that {name} {last.version} supports",
    )


def _after(earlier: str, later: str) -> str:
    days = days_between(earlier, later)
    return f"{days // 30} months" if days >= 60 else f"{days} days"
