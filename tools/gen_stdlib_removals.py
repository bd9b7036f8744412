"""Regenerate ``matrices/stdlib_removals.json``: which releases of libraries import standard-library modules that
CPython removed (``distutils``, ``imp``, ``asyncore`` ... in 3.12; ``cgi``, ``imghdr``, ``pipes``, ``lib2to3`` ... in
3.13) or modules another distribution stopped providing (``pkg_resources``, gone from setuptools 82.0.0), and
whether an import runs when the package is imported or only when a function is called.

Usage:
    python tools/gen_stdlib_removals.py [--only NAME ...] [--threads N] [--out FILE]

The packages and their floors are listed in ``tools/stdlib_removal_packages.toml``. Each release is read as
``tools/gen_numpy_aliases.py`` reads it (its wheel, else its sdist; every shipped ``.py`` file parsed with ``ast``,
nothing executed). A use is ``import X``, ``import X.sub`` or ``from X[.sub] import ...`` with ``X`` a removed
module. It runs at import when it is reached without calling a function; guarded imports are left out (in a
``try`` catching ``ImportError``/``Exception``, under an ``if`` looking at a version, ``TYPE_CHECKING`` or
``__main__``). ``--only NAME`` re-reads those packages and keeps the others of the existing file.

For a module a distribution provided (``PROVIDED``), the generator checks from that distribution's wheels on PyPI
that its last release before the removal ships the module and the removing release does not, and records each
release's own requirements on the provider (the Requires-Dist of its wheel's METADATA, else of its sdist's
PKG-INFO): a requirement capped below the removal keeps the module installed.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import tomllib
from gen_numpy_aliases import (
    ROOT,
    Archive,
    Generator,
    archive_files,
    archives,
    package_rows,
    read_releases,
    regenerate,
    source_entry,
)
from packaging.utils import canonicalize_name

from envdoctor import pypi_release
from envdoctor.numpy_name_scan import ReleaseScan, scan_files, shipped_code
from envdoctor.probe.packages import parse_metadata_headers
from envdoctor.stdlib_scan import (
    PROVIDED,
    REMOVED,
    REMOVED_NAMES,
    Provided,
    scan_if_it_may_import,
)

OUT = ROOT / "matrices" / "stdlib_removals.json"
PACKAGES = ROOT / "tools" / "stdlib_removal_packages.toml"
GENERATOR = "tools/gen_stdlib_removals.py"
SCAN_SOURCE = "stdlib-removals-scan"
SETUP_SCRIPT = "setup.py"

SOURCES = [
    {"title": "What's New In Python 3.12: removed distutils (PEP 632; setuptools still provides it), imp, asynchat, "
              "asyncore and smtpd", "url": "https://docs.python.org/3/whatsnew/3.12.html"},
    {"title": "PEP 632: Deprecate distutils module (removed in 3.12)", "url": "https://peps.python.org/pep-0632/"},
    {"title": "What's New In Python 3.13: PEP 594 dead batteries removed (19 modules) and lib2to3",
     "url": "https://docs.python.org/3/whatsnew/3.13.html"},
    {"title": "PEP 594: Removing dead batteries from the standard library", "url": "https://peps.python.org/pep-0594/"},
    {"title": "setuptools changelog: v82.0.0 removed pkg_resources",
     "url": "https://setuptools.pypa.io/en/stable/history.html"},
    {"title": "What's New In Python 3.10: the aliases to Collections Abstract Base Classes removed from the "
              "collections module", "url": "https://docs.python.org/3/whatsnew/3.10.html"},
    {"title": "What's New In Python 3.11: inspect.getargspec, inspect.formatargspec and @asyncio.coroutine removed",
     "url": "https://docs.python.org/3/whatsnew/3.11.html"},
    {"title": "What's New In Python 3.12: pkgutil.ImpImporter/ImpLoader, configparser.SafeConfigParser, "
              "ssl.wrap_socket/match_hostname and locale.format removed", "url": "https://docs.python.org/3/whatsnew/3.12.html"},
    {"title": "What's New In Python 3.13: locale.resetlocale and unittest.makeSuite/findTestCases/getTestCaseNames "
              "removed", "url": "https://docs.python.org/3/whatsnew/3.13.html"},
    {"title": "What's New In Python 3.14: ast.Num/Str/Bytes/NameConstant/Ellipsis and pkgutil.find_loader/get_loader "
              "removed", "url": "https://docs.python.org/3/whatsnew/3.14.html"},
    {"title": "PyPI JSON API and each release's wheel or sdist (the packages' code)", "url": "https://pypi.org/pypi/"},
]
METADATA_FILES = re.compile(r"^(?:[^/]+\.dist-info/METADATA|PKG-INFO)$")


def _read_files(path: str) -> bool:
    return shipped_code(path) or path == SETUP_SCRIPT or bool(METADATA_FILES.match(path))


def provider_requirements(metadata: str) -> list[str]:
    """The Requires-Dist lines of a METADATA or PKG-INFO text that name a distribution of ``PROVIDED``."""
    providers = {canonicalize_name(p.provider) for p in PROVIDED.values()}
    return [line for line in parse_metadata_headers(metadata).get("Requires-Dist", [])
            if canonicalize_name(re.split(r"[^A-Za-z0-9._-]", line.strip(), maxsplit=1)[0]) in providers]


@dataclass(frozen=True)
class ReleaseRead:
    """One release: the scan of its shipped code, that of its ``setup.py`` (releases without a wheel: pip runs it
    to build the release), and its requirements on the distributions of ``PROVIDED``."""

    code: ReleaseScan
    build: ReleaseScan
    provider_requires: list[str]


def read_release(archive: Archive) -> ReleaseRead:
    """Left out of the build scan: ``distutils``, which setuptools, installed for the build, provides, and the
    modules of ``PROVIDED``, which are not judged there (whether the build's setuptools has them depends on the
    package's pyproject.toml and on pip's build isolation)."""
    files = list(archive_files(archive.filename, pypi_release.http_get(archive.url), _read_files))
    build = scan_files([f for f in files if f[0] == SETUP_SCRIPT and not archive.filename.endswith(".whl")],
                       scan_if_it_may_import)
    build_uses = {m: use for m, use in build.uses.items() if m != "distutils" and m not in PROVIDED}
    metadata = next((text for path, text in files if METADATA_FILES.match(path)), "")
    return ReleaseRead(scan_files([f for f in files if f[0] != SETUP_SCRIPT and not METADATA_FILES.match(f[0])],
                                  scan_if_it_may_import),
                       ReleaseScan(build_uses, build.files, build.unparsed), provider_requirements(metadata))


def provider_evidence(module: str, provided: Provided) -> dict[str, Any]:
    """The wheels on PyPI showing that ``provided.removed_in`` removed ``module``: the release before it ships
    ``<module>/__init__.py`` (or ``<module>.py``) and it does not; raises RuntimeError when that is not so."""
    url = f"https://pypi.org/pypi/{provided.provider}/json"
    releases = json.loads(pypi_release.http_get(url))["releases"]
    versions = pypi_release.kept_versions(releases, None)
    removing = versions.index(provided.removed_in)
    evidence = {}
    for version, expected in ((versions[removing - 1], True), (versions[removing], False)):
        wheel = pypi_release.metadata_wheel(releases[version])
        if wheel is None:
            raise RuntimeError(f"{provided.provider} {version}: no wheel to read")
        shipped = list(archive_files(wheel["filename"], pypi_release.http_get(urljoin(url, wheel["url"])),
                                     lambda path: path in (f"{module}/__init__.py", f"{module}.py")))
        if bool(shipped) != expected:
            raise RuntimeError(f"{wheel['filename']}: {module} {'missing' if expected else 'still shipped'}")
        evidence["last_with" if expected else "first_without"] = {
            "version": version, "page": f"https://pypi.org/project/{provided.provider}/{version}/",
            "wheel": wheel["filename"], "sha256": wheel["digests"]["sha256"],
            "uploaded": (wheel.get("upload_time_iso_8601") or wheel["upload_time"])[:10],
            "ships": f"{module}/__init__.py" if expected else None}
    return evidence


# --- the table ----------------------------------------------------------------------------------------


def skipped_modules(name: str, path: Path = PACKAGES) -> set[str]:
    """``skip`` of the package's entry in ``tools/stdlib_removal_packages.toml``: removed modules it provides itself,
    or imports only on the Pythons that have them, which its code's imports alone do not show."""
    with path.open("rb") as handle:
        entry = tomllib.load(handle)["packages"].get(name) or {}
    return set(entry.get("skip", ()))


def study(name: str, since: str | None, threads: int) -> dict[str, Any]:
    url, found = archives(name, since)
    read = read_releases(found, read_release, threads)
    skip = skipped_modules(name)
    if skip:
        read = {version: ReleaseRead(*(ReleaseScan({m: u for m, u in scan.uses.items() if m not in skip}, scan.files,
                                                   scan.unparsed) for scan in (release.code, release.build)),
                                     release.provider_requires)
                for version, release in read.items()}
    scans = {version: release.code for version, release in read.items()}
    versions = [a.version for a in found]
    removals = {**{m: removed_in for m, (removed_in, _) in {**REMOVED, **REMOVED_NAMES}.items()},
                **{m: p.removed_in for m, p in PROVIDED.items()}}
    print(f"{name}: {len(versions)} releases, {sum(1 for s in scans.values() if s.uses)} importing removed modules",
          file=sys.stderr, flush=True)
    return {
        "source": source_entry(url, "each release's wheel (else sdist), every shipped .py file", found),
        "releases": versions,
        "unparsed_files": {v: s.unparsed for v, s in scans.items() if s.unparsed},
        "rows": package_rows(versions, scans, removals, "modules"),
        "build_rows": package_rows(versions, {v: release.build for v, release in read.items()}, removals, "modules"),
        "provider_requires": {v: release.provider_requires for v, release in read.items()
                              if release.provider_requires},
    }


WHAT = ("releases of libraries whose code imports standard-library modules that CPython removed (or uses names it "
        "removed from modules that remain: pkgutil.ImpImporter, collections.Mapping), or modules a "
        "distribution stopped providing (removed: provider python or that distribution; removed_in: a release of "
        "the provider), per removal; at_import: those imported when a module of the package is imported (the "
        "others only inside functions); where: file:line of imports in the run's last release; build_rows: the "
        "same for setup.py of releases without a wheel (distutils and pkg_resources left out: setuptools provides "
        "them to the build); provider_requires: each release's Requires-Dist lines naming a provider (its wheel's "
        "METADATA, else its sdist's PKG-INFO); read with ast")


def document(packages: dict[str, dict[str, Any]], command: str, today: str | None = None) -> dict[str, Any]:
    removed = {module: {"provider": "python", "removed_in": removed_in, "source": source}
               for module, (removed_in, source) in {**REMOVED, **REMOVED_NAMES}.items()}
    removed |= {module: {"provider": p.provider, "removed_in": p.removed_in, "source": p.source,
                         "wheels_source": p.wheels_source, **provider_evidence(module, p)}
                for module, p in PROVIDED.items()}
    generated, listed = today or datetime.date.today().isoformat(), dict(sorted(packages.items()))
    return {"generator": GENERATOR, "command": command, "generated": generated, "what": WHAT,
            "scan_source": SCAN_SOURCE, "sources": SOURCES, "removed": removed, "packages": listed}


def main(argv: list[str] | None = None) -> int:
    return regenerate(Generator(__doc__.splitlines()[0], GENERATOR, PACKAGES, OUT, study, document), argv)


if __name__ == "__main__":
    sys.exit(main())
