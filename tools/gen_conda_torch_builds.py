"""Regenerate ``matrices/conda_torch_builds.json``: the CUDA builds of each pytorch release on PyTorch's conda channel.

Usage: python tools/gen_conda_torch_builds.py (--page FILE | --git-dir DIR) --commit SHA [--generated DATE]
       [--out FILE]

The input is PyTorch's "Previous PyTorch Versions" page, ``_get_started/previous-versions.md`` of
https://github.com/pytorch/pytorch.github.io: read from a clone (``--git-dir``, the file at ``--commit``) or from a
saved copy of the file at that commit (``--page``; ``tools/data/pytorch_previous_versions.md`` is its part for
versions >= 1.0.0 at commit e3f009bb, copied verbatim). For every ``### vX.Y.Z`` section, the conda commands of its
"Linux and Windows" block give the release's CUDA builds: the CUDA package each installs (``cudatoolkit=X.Y`` up to
1.12, the ``pytorch-cuda=X.Y`` metapackage from 1.13 on, ``cudaNN`` for 1.0.0), the channels it needs (``-c pytorch``
alone, or ``-c conda-forge`` / ``-c nvidia`` beside it), the platform a ``# CUDA X.Y (Linux)`` comment names, and
whether a ``cpuonly`` build exists; the ``# CUDA X.Y`` comments of its wheel block give the CUDA of its wheels. macOS
commands (no CUDA) are skipped. Parsing stops at the page's ``## Commands for Versions < 1.0.0``.

The page has known errors, kept in ``ERRATA`` with their source: pytorch 1.8.1, 1.9.0 and 1.9.1 are listed with
``cudatoolkit=11.3``, but the channel holds CUDA 11.1 builds of them and a ``cudatoolkit=11.3`` install gets the CPU
build. The listed build is replaced by the one that exists, marked ``"from": "errata"``.

The output depends only on the page text, the commit and the date given, so a rerun on the same input rewrites the
file byte for byte.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "matrices" / "conda_torch_builds.json"
GENERATOR = "tools/gen_conda_torch_builds.py"
REPOSITORY = "pytorch/pytorch.github.io"
PAGE_PATH = "_get_started/previous-versions.md"
PAGE_URL = "https://pytorch.org/get-started/previous-versions/"
SOURCE_ID = "pytorch-previous-versions"
ERRATA_SOURCE_ID = "pytorch-previous-versions-errata"

# (pytorch release, CUDA package, CUDA the page lists, CUDA the channel has instead)
ERRATA: tuple[tuple[str, str, str, str], ...] = (
    ("1.8.1", "cudatoolkit", "11.3", "11.1"),
    ("1.9.0", "cudatoolkit", "11.3", "11.1"),
    ("1.9.1", "cudatoolkit", "11.3", "11.1"),
)

RELEASE_HEADING = re.compile(r"^### v(\d+\.\d+\.\d+)\b")
END_HEADING = re.compile(r"^## ")
SECTION = re.compile(r"^#### (\w+)")
SUBSECTION = re.compile(r"^##### +(.+?)\s*$")
CUDA_COMMENT = re.compile(r"^# CUDA (\d+\.\d+)(?: \((Linux|Windows)\))?\s*$")
CUDA_PACKAGE = re.compile(r"^(cudatoolkit|pytorch-cuda)=(\d+\.\d+)$")
CUDA_METAPACKAGE = re.compile(r"^cuda(\d)(\d)$|^cuda(\d\d)(\d)$")  # cuda90 -> 9.0, cuda100 -> 10.0
PYTORCH_PIN = re.compile(r"^pytorch(?:-cpu)?==?(\d+\.\d+\.\d+)$")


class PageError(ValueError):
    """A conda command of the page this generator cannot read; the message names the release and line."""


def _cuda_of(token: str) -> tuple[str, str] | None:
    """(package, CUDA "X.Y") a conda command token installs, or None for any other token."""
    match = CUDA_PACKAGE.match(token)
    if match:
        return match.group(1), match.group(2)
    meta = CUDA_METAPACKAGE.match(token)
    if meta:
        major, minor = (meta.group(1), meta.group(2)) if meta.group(1) else (meta.group(3), meta.group(4))
        return token, f"{int(major)}.{minor}"
    return None


def parse_command(release: str, line: str) -> dict[str, Any]:
    """What one ``conda install ...`` line installs: the CUDA package and version (None for none), whether it is
    the ``cpuonly`` build, and its channels in order."""
    tokens = line.split()
    channels: list[str] = []
    cuda: tuple[str, str] | None = None
    cpuonly = False
    index = 2
    while index < len(tokens):
        token = tokens[index]
        if token == "-c":
            if index + 1 >= len(tokens):
                raise PageError(f"v{release}: '-c' without a channel in {line!r}")
            channels.append(tokens[index + 1])
            index += 2
            continue
        pin = PYTORCH_PIN.match(token)
        if pin and pin.group(1) != release:
            raise PageError(f"v{release}: the command installs pytorch {pin.group(1)}: {line!r}")
        cuda = _cuda_of(token) or cuda
        cpuonly = cpuonly or token == "cpuonly"
        index += 1
    if not channels:
        raise PageError(f"v{release}: no channel in {line!r}")
    return {"cuda": cuda, "cpuonly": cpuonly, "channels": channels}


def parse_page(text: str) -> dict[str, dict[str, Any]]:
    """Every release section of the page: ``{version: {"channel", "cpuonly", "conda": [build, ...],
    "wheel_cuda": [...]}}`` in page order; a build is ``{"package", "cuda", "channels", "platform", "command"}``."""
    releases: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    release = section = subsection = ""
    platform: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        heading = RELEASE_HEADING.match(line)
        if heading:
            release = heading.group(1)
            current = releases.setdefault(release, {"channel": None, "cpuonly": False, "conda": [],
                                                     "wheel_cuda": []})
            section = subsection = ""
            continue
        if current is not None and END_HEADING.match(line):
            break
        if current is None:
            continue
        if match := SECTION.match(line):
            section, subsection, platform = match.group(1).lower(), "", None
            continue
        if match := SUBSECTION.match(line):
            subsection, platform = match.group(1).lower(), None
            continue
        if subsection != "linux and windows":
            continue
        comment = CUDA_COMMENT.match(line)
        if comment:
            platform = comment.group(2).lower() if comment.group(2) else None
            if section == "wheel" and comment.group(1) not in current["wheel_cuda"]:
                current["wheel_cuda"].append(comment.group(1))
            continue
        if section != "conda" or not line.startswith("conda install "):
            continue
        command = parse_command(release, line)
        current["channel"] = current["channel"] or command["channels"][0]
        if command["cpuonly"]:
            current["cpuonly"] = True
        elif command["cuda"] is not None:
            package, cuda = command["cuda"]
            current["conda"].append({"package": package, "cuda": cuda, "channels": command["channels"],
                                     "platform": platform, "command": " ".join(line.split()), "from": "page"})
        platform = None
    for version, entry in releases.items():
        if entry["channel"] is None:
            raise PageError(f"v{version}: no conda command in its Linux and Windows block")
        entry["wheel_cuda"].sort(key=Version)
    return releases


def apply_errata(releases: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """Replace the builds ``ERRATA`` names by the ones the channel has; the errata applied (one whose listed build
    the page no longer shows is left out, with a note on stderr)."""
    applied = []
    for release, package, listed, built in ERRATA:
        builds = releases.get(release, {}).get("conda", [])
        wrong = next((b for b in builds if b["package"] == package and b["cuda"] == listed), None)
        if wrong is None:
            print(f"erratum v{release} {package}={listed} does not apply to this page (fixed?)", file=sys.stderr)
            continue
        wrong.update(cuda=built, command=wrong["command"].replace(f"{package}={listed}", f"{package}={built}"),
                     **{"from": "errata"})
        applied.append({"pytorch": release, "listed": f"{package}={listed}", "built": f"{package}={built}",
                        "source": ERRATA_SOURCE_ID})
    return applied


def document(releases: dict[str, dict[str, Any]], errata: list[dict[str, str]], source: dict[str, str],
             command: str, generated: str) -> dict[str, Any]:
    ordered = sorted(releases.items(), key=lambda item: Version(item[0]), reverse=True)
    for _, entry in ordered:
        entry["conda"].sort(key=lambda b: (b["package"], Version(b["cuda"]), b["platform"] or ""))
    return {
        "generator": GENERATOR,
        "command": command,
        "generated": generated,
        "what": "per pytorch release on PyTorch's conda channel (v1.0.0 on), the CUDA builds its install page lists: "
                "the CUDA package a build is selected by (cudatoolkit=X.Y up to 1.12, pytorch-cuda=X.Y from 1.13 on, "
                "cudaNN for 1.0.0), the channels its command needs (the pytorch channel first), the platform when "
                "the page names one, the page's command ('from': 'errata' where the page lists a build the channel "
                "does not have and the one it has replaces it); cpuonly: a CPU-only build is listed; wheel_cuda: "
                "the CUDA versions of the release's wheels on the same page",
        "source": source,
        "sources": [SOURCE_ID, ERRATA_SOURCE_ID],
        "errata": errata,
        "releases": dict(ordered),
    }


def dump(table: dict[str, Any]) -> str:
    """JSON with each list of plain values and each build on one line: a readable diff when a release is added."""
    text = json.dumps(table, indent=1, ensure_ascii=False) + "\n"
    text = re.sub(r"\[\n\s+([^\[\]{}]*?)\n\s+\]", lambda m: "[" + re.sub(r",\n\s+", ", ", m.group(1)) + "]", text)
    return re.sub(r"\{\n\s+(\"package\"[^{}]*?)\n\s+\}", lambda m: "{" + re.sub(r",\n\s+", ", ", m.group(1)) + "}",
                  text)


def read_page(args: argparse.Namespace) -> tuple[str, str]:
    """The page text and where it came from."""
    if args.page:
        return Path(args.page).read_text(encoding="utf-8"), f"a saved copy of the file at that commit ({args.page})"
    text = subprocess.run(["git", "--git-dir", args.git_dir, "show", f"{args.commit}:{PAGE_PATH}"], check=True,
                          capture_output=True, text=True).stdout
    return text, f"git show {args.commit}:{PAGE_PATH} of a clone"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--page", help="a saved copy of _get_started/previous-versions.md")
    given.add_argument("--git-dir", help="a clone (bare or not) of pytorch/pytorch.github.io")
    parser.add_argument("--commit", required=True, help="the commit the page was read at (40 hex digits)")
    parser.add_argument("--generated", default=datetime.date.today().isoformat(), help="the day it was read")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[0-9a-f]{40}", args.commit):
        parser.error("--commit: expected 40 lowercase hex digits")
    text, how = read_page(args)
    releases = parse_page(text)
    errata = apply_errata(releases)
    page_arg = f"--page {args.page}" if args.page else "--git-dir DIR"
    command = f"python {GENERATOR} {page_arg} --commit {args.commit} --generated {args.generated}"
    source = {
        "url": f"https://github.com/{REPOSITORY}/blob/{args.commit}/{PAGE_PATH}",
        "page": PAGE_URL,
        "repository": REPOSITORY,
        "path": PAGE_PATH,
        "commit": args.commit,
        "read": how,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }
    Path(args.out).write_text(dump(document(releases, errata, source, command, args.generated)), encoding="utf-8")
    print(f"{args.out}: {len(releases)} releases, {sum(len(r['conda']) for r in releases.values())} CUDA builds, "
          f"{len(errata)} errata applied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
