"""pypi_facts.releases_where reads only the releases a check asks for, and gives exactly what filtering every
release would give."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from packaging.version import Version

from envdoctor.checks.later_caps import _later_in_series
from envdoctor.pypi_facts import known_packages, releases, releases_where


def test_a_series_gives_what_filtering_every_release_gives() -> None:
    for package in known_packages():
        history = releases(package)
        for installed in history[::9]:
            mine = Version(installed.version)
            keep = functools.partial(_later_in_series, mine)
            expected = tuple(r for r in history if keep(Version(r.version)))
            assert releases_where(package, keep) == expected, (package, installed.version)
            assert releases_where(package, keep, series=(mine.release + (0,))[:2]) == expected, \
                (package, installed.version)


def test_versions_of_one_part_and_unusual_spellings_are_not_passed_over(tmp_path: Path) -> None:
    folder = tmp_path / "pypi"
    folder.mkdir()
    (tmp_path / "rules").mkdir()
    entry = {"date": "2024-01-01", "requires_python": None, "yanked": False, "requires": [], "wheels": None}
    keys = ["2", "2.post1", "2.0", "2.0.1", "02.01", "2.1", "v2.0.2", "1!2.0.3", "2.0rc1", "3.0"]
    (folder / "demo.json").write_text(json.dumps({
        "package": "demo", "generator": "test", "generated": "2024-01-02", "source": {"releases": "x"},
        "releases": {key: entry for key in keys}}))
    for installed in keys:
        mine = Version(installed)
        keep = functools.partial(_later_in_series, mine)
        expected = tuple(r.version for r in releases("demo", tmp_path) if keep(Version(r.version)))
        found = releases_where("demo", keep, tmp_path, series=(mine.release + (0,))[:2])
        assert tuple(r.version for r in found) == expected, installed
