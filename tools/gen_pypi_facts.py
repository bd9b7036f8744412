"""Regenerate ``matrices/pypi/<name>.json`` from PyPI: release dates, wheels, Requires-Python and Requires-Dist.

Usage: python tools/gen_pypi_facts.py [--only NAME ...] [--out DIR] [--config FILE] [--threads N] [--reuse]

For every package in ``tools/pypi_packages.toml`` (final and post releases at or above its floor):
- ``https://pypi.org/pypi/NAME/json`` gives the release list, each release's files (names, first upload time,
  yanked flags, Requires-Python);
- each release's Requires-Dist comes from the METADATA of one of its wheels, read with HTTP range requests
  (the zip's central directory and the METADATA member only, as pip's lazy wheel does): the manylinux x86_64
  wheel when there is one (torch's Requires-Dist differs per platform), else a pure-Python wheel, else any.
  The PEP 658 ``<wheel URL>.metadata`` file is tried first and used when the index serves it.
- each release's wheel names give its wheel tags and, from the ``manylinux_X_Y`` tags, the lowest glibc its wheels
  need on each Linux architecture (``glibc``).
Lines that apply only to an ``extra`` are kept apart, under ``extras``, when the extra is not a development one
(dev, test, docs...), the line names a package of the tables and has a version range: what a release needs of an
optional package it uses when that is installed. Markers are kept verbatim. A release with only an sdist has
``requires: null`` (unknown): an sdist's ``*.egg-info/requires.txt`` is not read, since a setup.py may compute
its pins on the build machine (axolotl pins the torch it finds there). ``extras = false`` for a package leaves its
extras out (Unsloth's name one install variant per CUDA and torch pair, hundreds of them). ``code_floor = true``:
each release whose Requires-Python admits Python 3.9 or older is read (its pure wheel, else its sdist) for syntax a
newer Python needs, a ``X | None`` annotation run at import (``python_floor``, ``python_floor_from``). Requests run
on a few threads with retries and backoff.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import tomllib
from packaging.utils import canonicalize_name

from envdoctor.pypi_facts import PYPI_JSON_API as INDEX
from envdoctor.pypi_release import (  # the release list and METADATA reading, shared with `check --online`
    Fetch,
    ReleaseFiles,
    http_get,
    kept_versions,
    release_entry,
    release_files,
    wheel_metadata,
)
from envdoctor.python_floor import (  # the code-floor reader, shared with `check --online`
    CODE_FLOOR_KEY,
    code_python_floor,
    python_lower_bound,
    release_code_floor,
    sdist_modules,
    wheel_modules,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tools" / "pypi_packages.toml"
OUT = ROOT / "matrices" / "pypi"
GENERATOR = "tools/gen_pypi_facts.py"


# The code-floor reader lives in envdoctor.python_floor; these names stay importable from here for the tests.
__all__ = ["CODE_FLOOR_KEY", "code_python_floor", "python_lower_bound", "release_code_floor", "sdist_modules",
           "wheel_modules"]


# --- one package ------------------------------------------------------------------------------------


# What a release's METADATA and code gave; ``--reuse`` keeps them for a release already recorded from the same wheel.
READ_KEYS = ("requires", "extras", "requires_python", "requires_from", "python_floor", "python_floor_from")


def generate(name: str, options: dict[str, Any], threads: int, fetch: Fetch = http_get,
             today: str | None = None, tabled: set[str] | None = None,
             previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document for one package. ``tabled``: the normalized names of every package in the tables; the
    extra-only requirements on them are kept under ``extras``. ``previous``: the releases of the existing document;
    a release recorded there from the same wheel keeps what its METADATA and code gave (they never change once
    published) instead of reading them again."""
    index_url = INDEX.format(name=name)
    index = json.loads(fetch(index_url, None))
    floor = options.get("floor")
    requires_only = bool(options.get("requires_only", False))
    versions = kept_versions(index["releases"], floor)
    listed = [release_files(v, index["releases"][v]) for v in versions]

    def recorded(files: ReleaseFiles) -> dict[str, Any] | None:
        entry = (previous or {}).get(files.version)
        wheel = files.metadata_wheel
        if not isinstance(entry, dict) or (wheel is not None and entry.get("requires_from") != wheel["filename"]):
            return None
        return entry

    def read(files: ReleaseFiles) -> tuple[str, str] | None:
        wheel = files.metadata_wheel
        if wheel is None or recorded(files) is not None:
            return None
        return wheel_metadata(urljoin(index_url, wheel["url"]), wheel["size"], fetch), wheel["filename"]

    def code_floor(files: ReleaseFiles) -> dict[str, str] | None:
        if not options.get("code_floor", False) or recorded(files) is not None:
            return None
        return release_code_floor(index["releases"][files.version], files.requires_python, index_url, fetch)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        metadata = list(pool.map(read, listed))
        floors = list(pool.map(code_floor, listed))
    kept = [{key: entry[key] for key in READ_KEYS if key in entry} if (entry := recorded(files)) else {}
            for files in listed]
    return {
        "package": canonicalize_name(name),
        "generator": GENERATOR,
        "generated": today or datetime.date.today().isoformat(),
        "source": {
            "releases": index_url,
            "requires": "Requires-Dist of the METADATA of the wheel named in requires_from (files listed by "
            + index_url + "), lines that apply only to an extra dropped",
            **({"extras": "the same METADATA's lines that apply only to an extra (not dev, test, docs...) and "
                "name a package of tools/pypi_packages.toml"} if tabled else {}),
            "glibc": "the manylinux tags of the release's wheels: the lowest glibc they need per Linux architecture",
            **({"python_floor": "the syntax of the .py files of the release's pure wheel (else its sdist), read "
                "with ast: the lowest Python that can import them, where above Requires-Python"}
               if options.get("code_floor") else {}),
        },
        "floor": floor,
        "requires_only": requires_only,
        "releases": {files.version: _ordered({**release_entry(files, read_from[0] if read_from else None,
                                                              requires_only,
                                                              tabled if options.get("extras", True) else None,
                                                              read_from[1] if read_from else None),
                                               **(floor or {}), **reused})
                     for files, read_from, floor, reused in zip(listed, metadata, floors, kept, strict=True)},
    }


ENTRY_ORDER = ("date", "requires_python", "yanked", "requires", "extras", "requires_from", "wheels", "sdist", "glibc",
               "python_floor", "python_floor_from")


def _ordered(entry: dict[str, Any]) -> dict[str, Any]:
    """A release entry's keys in one order, whether read now or kept (``--reuse``)."""
    return {key: entry[key] for key in (*ENTRY_ORDER, *sorted(entry.keys() - set(ENTRY_ORDER))) if key in entry}


def dump(document: dict[str, Any]) -> str:
    """One release per line: small files with readable diffs."""
    head = {key: value for key, value in document.items() if key != "releases"}
    lines = [json.dumps(head, sort_keys=False)[:-1] + ', "releases": {']
    items = list(document["releases"].items())
    for i, (version, entry) in enumerate(items):
        lines.append(f"  {json.dumps(version)}: {json.dumps(entry, separators=(',', ':'))}"
                     + ("," if i < len(items) - 1 else ""))
    lines.append("}}")
    return "\n".join(lines) + "\n"


def tabled_names(config: Path) -> set[str]:
    """The normalized names of every package the configuration lists."""
    return {canonicalize_name(name) for name in tomllib.loads(config.read_text())["packages"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", nargs="*", default=None, help="regenerate only these packages")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--reuse", action="store_true",
                        help="keep what the existing files recorded from each release's METADATA and code; read "
                             "only the release lists again (and new releases whole)")
    args = parser.parse_args(argv)
    packages = tomllib.loads(args.config.read_text())["packages"]
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for name, options in packages.items():
        if args.only and name not in args.only:
            continue
        began = time.monotonic()
        path = args.out / f"{canonicalize_name(name)}.json"
        previous = json.loads(path.read_text(encoding="utf-8")).get("releases") if args.reuse and path.exists() \
            else None
        document = generate(name, options, args.threads, tabled=tabled_names(args.config), previous=previous)
        path.write_text(dump(document), encoding="utf-8")
        unknown = sum(1 for r in document["releases"].values() if r["requires"] is None)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {len(document['releases'])} "
              f"releases ({unknown} with unknown requirements), {time.monotonic() - began:.1f} s", flush=True)
    print(f"done in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
