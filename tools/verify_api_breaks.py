"""Re-check every entry of matrices/api_breaks.toml against the primary sources; print OK or DIFFERS per entry.

Each piece of evidence is read again: the file at a git tag of a fetched repository mirror (a bare git dir at
``<mirror>/<owner>+<name>/repo``), or the file inside the package's PyPI wheel (downloaded with
``pip download --no-deps``; ``wheel_platform`` picks a platform wheel, for torch, of Python ``wheel_python``,
3.10 when not given). For each entry it checks

- the pattern matches (or not) as the evidence says;
- the evidence's version is inside (or outside) the entry's range for that package, as it says;
- around each change of in/out the two versions are consecutive releases (the bundled PyPI tables, else the
  repository's tags), so the range's bound sits exactly there;
- every bound of both ranges lies between such a consecutive pair.

    python tools/verify_api_breaks.py                           # mirrors under /work/.mirror, wheels cached
    python tools/verify_api_breaks.py --mirror DIR --wheels DIR --no-download

Exit status: 0 all OK, 1 an entry DIFFERS or its sources are unavailable, 2 the table itself is malformed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from envdoctor.api_breaks import FILE, ApiBreak, Evidence, parse_api_breaks  # noqa: E402
from envdoctor.pypi_facts import releases  # noqa: E402
from envdoctor.rules import matches_specifier  # noqa: E402

TAG_PREFIX = re.compile(r"^(v|apache-arrow-)")


class Unavailable(Exception):
    """A source the evidence names cannot be read here (no mirror, no tag, no wheel)."""


class Reader:
    """Reads one file of one release, from a git mirror or a PyPI wheel; caches the wheels it downloads."""

    def __init__(self, mirror: Path, wheels: Path, download: bool) -> None:
        self.mirror, self.wheels, self.download = mirror, wheels, download

    def text(self, evidence: Evidence) -> str | None:
        """The file's text; None when that release has no such file."""
        return self._git(evidence) if evidence.repo else self._wheel(evidence)

    def git_dir(self, repo: str) -> Path:
        return self.mirror / repo.replace("/", "+") / "repo"

    def _git(self, evidence: Evidence) -> str | None:
        git_dir = self.git_dir(evidence.repo or "")
        if not git_dir.is_dir():
            raise Unavailable(f"no mirror of {evidence.repo} at {git_dir}")
        tag = subprocess.run(["git", "--git-dir", str(git_dir), "rev-parse", "--verify", "-q", f"{evidence.ref}^{{}}"],
                             capture_output=True, text=True)
        if tag.returncode != 0:
            raise Unavailable(f"{evidence.repo} has no tag {evidence.ref}")
        shown = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{evidence.ref}:{evidence.path}"],
                               capture_output=True, text=True, errors="replace")
        return shown.stdout if shown.returncode == 0 else None

    def _wheel(self, evidence: Evidence) -> str | None:
        wheel = self._find_wheel(evidence)
        if wheel is None and self.download:
            self._download(evidence)
            wheel = self._find_wheel(evidence)
        if wheel is None:
            raise Unavailable(f"no wheel of {evidence.package} {evidence.version} in {self.wheels}")
        with zipfile.ZipFile(wheel) as archive:
            try:
                return archive.read(evidence.path).decode("utf-8", errors="replace")
            except KeyError:
                return None

    def _find_wheel(self, evidence: Evidence) -> Path | None:
        stem = f"{evidence.package.replace('-', '_')}-{evidence.version}-"
        platform = evidence.wheel_platform or "any"
        python = f"-cp{(evidence.wheel_python or '').replace('.', '')}-" if evidence.wheel_python else ""
        found = sorted(p for p in self.wheels.glob(f"{stem}*.whl") if platform in p.name and python in p.name)
        return found[0] if found else None

    def _download(self, evidence: Evidence) -> None:
        self.wheels.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                   f"{evidence.package}=={evidence.version}", "-d", str(self.wheels)]
        if evidence.wheel_platform:
            command += ["--platform", evidence.wheel_platform, "--python-version", evidence.wheel_python or "3.10"]
        subprocess.run(command, capture_output=True, text=True)


def verify(entry: ApiBreak, reader: Reader) -> list[str]:
    """The disagreements between the entry and its sources ([] when it holds)."""
    problems = []
    for evidence in entry.evidence:
        label = f"{evidence.package} {evidence.version} {evidence.path}"
        text = reader.text(evidence)
        matched = text is not None and re.search(evidence.pattern, text, re.M) is not None
        if matched != evidence.found:
            problems.append(f"{label}: pattern {'matches' if matched else 'does not match'}, evidence says "
                            f"found={str(evidence.found).lower()}")
        within = entry.range_of(evidence.package)
        inside = matches_specifier(evidence.version, within)
        if inside != evidence.in_range:
            problems.append(f"{label}: {evidence.version} is {'inside' if inside else 'outside'} {within}, evidence "
                            f"says in_range={str(evidence.in_range).lower()}")
    for package in (entry.importer, entry.provider):
        problems += _boundaries(entry, package, reader)
    return problems


def _boundaries(entry: ApiBreak, package: str, reader: Reader) -> list[str]:
    """Each in/out change between neighbouring evidence versions is between consecutive releases, and every bound
    of the package's range lies inside such a pair."""
    points = sorted({(Version(e.version), e.in_range, e.repo) for e in entry.evidence if e.package == package})
    pairs = [(a, b) for a, b in zip(points, points[1:], strict=False) if a[1] != b[1]]
    problems = []
    for (low, _, repo_low), (high, _, repo_high) in pairs:
        between = _releases_between(package, low, high, repo_low or repo_high, reader)
        if between is None:
            problems.append(f"{package}: cannot list releases between {low} and {high} (no PyPI table, no tags)")
        elif between:
            problems.append(f"{package}: {low} and {high} are not consecutive releases "
                            f"({', '.join(str(v) for v in between[:5])} lie between)")
    for specifier in SpecifierSet(entry.range_of(package)):
        bound = Version(specifier.version)
        if not any(low[0] <= bound <= high[0] for low, high in pairs):
            problems.append(f"{package}: no evidence on both sides of the bound {specifier}")
    return problems


def _releases_between(package: str, low: Version, high: Version, repo: str | None,
                      reader: Reader) -> list[Version] | None:
    """Final releases strictly between ``low`` and ``high``: from the bundled PyPI table when it holds both, else
    from the repository's tags; None when neither can tell."""
    recorded = {Version(r.version) for r in releases(package)}  # yanked ones too: they were installable
    if low in recorded and high in recorded:
        known = recorded
    elif repo and reader.git_dir(repo).is_dir():
        tags = subprocess.run(["git", "--git-dir", str(reader.git_dir(repo)), "tag"], capture_output=True, text=True)
        known = {v for tag in tags.stdout.split() if (v := _tag_version(tag)) is not None}
        if low not in known or high not in known:
            return None
    else:
        return None
    return sorted(v for v in known if low < v < high and not v.is_prerelease and not v.is_devrelease)


def _tag_version(tag: str) -> Version | None:
    try:
        return Version(TAG_PREFIX.sub("", tag))
    except InvalidVersion:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=REPO / "matrices" / FILE)
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror"), help="folder of fetched git mirrors")
    parser.add_argument("--wheels", type=Path, default=Path("/tmp/envdoctor-api-wheels"), help="wheel cache")
    parser.add_argument("--no-download", action="store_true", help="use only wheels already in --wheels")
    args = parser.parse_args(argv)
    errors: list[str] = []
    entries = parse_api_breaks(args.table, errors)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 2
    reader = Reader(args.mirror, args.wheels, not args.no_download)
    status = 0
    for entry in entries:
        try:
            problems = verify(entry, reader)
        except Unavailable as missing:
            print(f"UNAVAILABLE {entry.id}: {missing}")
            status = 1
            continue
        print(f"{'OK' if not problems else 'DIFFERS'} {entry.id} ({len(entry.evidence)} readings)")
        for problem in problems:
            print(f"    {problem}")
        status |= bool(problems)
    return status


if __name__ == "__main__":
    sys.exit(main())
