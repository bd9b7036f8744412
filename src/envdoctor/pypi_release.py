"""One PyPI release list and its wheels' METADATA, read into the release entries of ``matrices/pypi/<name>.json``.

Shared by ``tools/gen_pypi_facts.py`` (the bundled tables) and ``envdoctor.pypi_online`` (facts fetched when a
checked environment holds a package the tables lack). ``https://pypi.org/pypi/NAME/json`` gives every release's
files (names, first upload time, yanked flags, Requires-Python); a release's Requires-Dist comes from the METADATA of
one of its wheels, read with HTTP range requests (the zip's central directory and the METADATA member only, as pip's
lazy wheel does), or from its PEP 658 ``.metadata`` file when the index serves one.
"""

from __future__ import annotations

import email.parser
import re
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from packaging.markers import Marker
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

USER_AGENT = "envdoctor (python-urllib)"
TAIL_BYTES = 256 * 1024
READ_AHEAD = 64 * 1024

Fetch = Callable[[str, "tuple[int, int] | None"], bytes]


def http_get(url: str, byte_range: tuple[int, int] | None = None, tries: int = 5, timeout: float = 60.0,
             user_agent: str = USER_AGENT) -> bytes:
    """GET ``url`` (bytes ``byte_range`` inclusive when given), retrying 429/5xx and network errors with backoff."""
    headers = {"User-Agent": user_agent}
    if byte_range is not None:
        headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
                body = response.read()
            if byte_range is not None and response.status != 206:  # the server ignored Range: cut it ourselves
                body = body[byte_range[0]:byte_range[1] + 1]
            return body
        except urllib.error.HTTPError as exc:
            if exc.code not in (429, 500, 502, 503, 504) or attempt == tries - 1:
                raise
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            if attempt == tries - 1:
                raise
        time.sleep(min(2 ** attempt, timeout))
    raise AssertionError("unreachable")


class RangeFile:
    """A read-only, seekable view of a remote file that fetches only the byte ranges that are read."""

    def __init__(self, url: str, size: int, fetch: Fetch) -> None:
        self.url, self.size, self.fetch, self.position = url, size, fetch, 0
        start = max(0, size - TAIL_BYTES)
        self.chunks: list[tuple[int, bytes]] = [(start, fetch(url, (start, size - 1)))]

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.size}[whence]
        self.position = base + offset
        return self.position

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.position + n)
        if end <= self.position:
            return b""
        for start, data in self.chunks:
            if start <= self.position and end <= start + len(data):
                out = data[self.position - start:end - start]
                self.position = end
                return out
        stop = min(self.size, max(end, self.position + READ_AHEAD))
        data = self.fetch(self.url, (self.position, stop - 1))
        self.chunks.append((self.position, data))
        out = data[:end - self.position]
        self.position = end
        return out


def wheel_metadata(url: str, size: int, fetch: Fetch = http_get) -> str:
    """The METADATA text of the wheel at ``url``: its PEP 658 file when served, else read from the zip by range."""
    try:
        return fetch(url + ".metadata", None).decode("utf-8")
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
    with zipfile.ZipFile(RangeFile(url, size, fetch)) as wheel:  # type: ignore[arg-type]
        names = [n for n in wheel.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(names) != 1:
            raise ValueError(f"{url}: expected one .dist-info/METADATA, found {names}")
        return wheel.read(names[0]).decode("utf-8")


# --- parsing (no network) ---------------------------------------------------------------------------

WHEEL_NAME = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$"
)
LINUX = re.compile(r"^(?:many|)linux(?:1|2010|2014|_\d+_\d+)?_(?P<arch>.+)$")
MUSL = re.compile(r"^musllinux_\d+_\d+_(?P<arch>.+)$")
MACOS = re.compile(r"^macosx_\d+_\d+_(?P<arch>.+)$")
MAC_ARCHS = {"universal2": ("arm64", "x86_64"), "intel": ("x86_64",), "universal": ("x86_64",)}


def platform_families(platform_tag: str) -> set[str]:
    """``manylinux_2_17_x86_64.manylinux2014_x86_64`` -> {"linux_x86_64"}; ``macosx_10_9_universal2`` -> both macs."""
    out = set()
    for tag in platform_tag.split("."):
        if tag == "any" or tag.startswith("win"):
            out.add(tag)
        elif match := LINUX.match(tag):
            out.add(f"linux_{match.group('arch')}")
        elif match := MUSL.match(tag):
            out.add(f"musllinux_{match.group('arch')}")
        elif match := MACOS.match(tag):
            out.update(f"macosx_{arch}" for arch in MAC_ARCHS.get(match.group("arch"), (match.group("arch"),)))
        else:
            out.add(tag)
    return out


MANYLINUX_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
MANYLINUX = re.compile(r"^(?:(?P<legacy>manylinux1|manylinux2010|manylinux2014)"
                       r"|manylinux_(?P<major>\d+)_(?P<minor>\d+))_(?P<arch>.+)$")


def glibc_floors(filenames: list[str]) -> dict[str, str]:
    """The lowest glibc one of these wheels needs on each Linux architecture (``manylinux_2_28_x86_64`` needs
    2.28; a wheel tagged ``manylinux_2_17_x86_64.manylinux2014_x86_64`` 2.17): ``{"x86_64": "2.17"}``. Empty when a
    pure-Python wheel is among them (it installs on any glibc)."""
    floors: dict[str, tuple[int, int]] = {}
    for filename in filenames:
        match = WHEEL_NAME.match(filename)
        if match is None:
            continue
        if match.group("plat") == "any":
            return {}
        for tag in match.group("plat").split("."):
            found = MANYLINUX.match(tag)
            if found is None:
                continue
            glibc = MANYLINUX_LEGACY[found["legacy"]] if found["legacy"] else (int(found["major"]), int(found["minor"]))
            floors[found["arch"]] = min(floors.get(found["arch"], glibc), glibc)
    return {arch: f"{major}.{minor}" for arch, (major, minor) in sorted(floors.items())}


def wheel_tags(filename: str) -> set[str]:
    """Compact tags of one wheel: ``cp311-linux_x86_64``, ``cp38-abi3-linux_x86_64``, ``py3-any``.

    CPython and generic Python 3 tags only (PyPy and Python 2 tags are left out)."""
    match = WHEEL_NAME.match(filename)
    if match is None:
        return set()
    pythons = [p for p in match.group("py").split(".") if re.fullmatch(r"cp3\d+|py3\d*", p)]
    abi3 = "abi3" in match.group("abi").split(".")
    return {f"{python}{'-abi3' if abi3 else ''}-{family}"
            for python in pythons for family in platform_families(match.group("plat"))}


def applies_only_to_extra(marker_text: str | None) -> bool:
    """Whether a Requires-Dist marker holds only when an extra is requested (``extra == "x"`` in every branch)."""
    if not marker_text:
        return False
    return _only_extra(Marker(marker_text)._markers)  # the parsed marker tree (packaging's own structure)


def _only_extra(markers: list[Any]) -> bool:
    groups: list[list[Any]] = [[]]
    for item in markers:
        if item == "or":
            groups.append([])
        elif item != "and":
            groups[-1].append(item)
    return all(any(_is_extra_term(item) for item in group) for group in groups)


def _is_extra_term(item: Any) -> bool:
    if isinstance(item, list):
        return _only_extra(item)
    if isinstance(item, tuple):
        return any(type(side).__name__ == "Variable" and side.value == "extra" for side in (item[0], item[2]))
    return False


def requires_dist(metadata: str) -> list[str]:
    """The Requires-Dist lines of a METADATA text that apply without extras, as written (markers kept)."""
    message = email.parser.HeaderParser().parsestr(metadata)
    lines = [" ".join(line.split()) for line in message.get_all("Requires-Dist") or []]
    return [line for line in lines if not applies_only_to_extra(line.partition(";")[2].strip() or None)]


# Extras for the project's own development (tests, docs, linters): they pin tools, not what the library uses.
DEVELOPMENT_EXTRA = re.compile(r"^(dev|test|tests|testing|docs?|quality|style|lint|benchmarks?|ci)([-_].*)?$")
EXTRA_NAME = re.compile(r"""\bextra\s*==\s*['"]([^'"]+)['"]""")


def extra_requires(metadata: str, wanted: set[str]) -> list[str]:
    """The Requires-Dist lines that apply only to an extra other than a development one (dev, test, docs...) and
    name a package in ``wanted`` (normalized names), as written (markers kept), each once: what a release needs of
    the optional packages it uses when they are installed."""
    message = email.parser.HeaderParser().parsestr(metadata)
    lines = [" ".join(line.split()) for line in message.get_all("Requires-Dist") or []]
    kept = []
    for line in lines:
        marker = line.partition(";")[2].strip() or None
        if not applies_only_to_extra(marker) or \
                canonicalize_name(re.split(r"[\s\[(;<>=!~@]", line, maxsplit=1)[0]) not in wanted:
            continue
        extras = {canonicalize_name(name) for name in EXTRA_NAME.findall(marker or "")}
        if extras and all(DEVELOPMENT_EXTRA.match(name) for name in extras):
            continue
        if not re.search(r"[<>=!~]=?|===", line.partition(";")[0]):  # no version range: nothing to check
            continue
        if line not in kept:
            kept.append(line)
    return kept


def requires_python_of(metadata: str) -> str | None:
    value = email.parser.HeaderParser().parsestr(metadata).get("Requires-Python")
    return " ".join(value.split()) if value else None


def kept_versions(releases: dict[str, list[dict[str, Any]]], floor: str | None) -> list[str]:
    """Final and post releases with at least one file, at or above ``floor``, oldest first."""
    out = []
    for text, files in releases.items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if files and not version.is_prerelease and (floor is None or version >= Version(floor)):
            out.append(text)
    return sorted(out, key=Version)


def metadata_wheel(files: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The wheel whose METADATA stands for the release: manylinux x86_64 (newest CPython), else pure, else any."""
    wheels = [f for f in files if f["filename"].endswith(".whl") and not f.get("yanked")] or \
        [f for f in files if f["filename"].endswith(".whl")]

    def rank(entry: dict[str, Any]) -> tuple[int, int]:
        tags = wheel_tags(entry["filename"])
        families = {tag.rsplit("-", 1)[1] for tag in tags}
        cpython = max((int(t[3:].split("-")[0]) for t in tags if t.startswith("cp3")), default=0)
        return (2 if "linux_x86_64" in families else 1 if "any" in families else 0, cpython)

    return max(wheels, key=rank) if wheels else None


@dataclass(frozen=True)
class ReleaseFiles:
    """What the release list says about one release (no METADATA read yet)."""

    version: str
    date: str
    requires_python: str | None
    yanked: bool
    wheels: list[str]
    sdist: bool
    metadata_wheel: dict[str, Any] | None
    glibc: dict[str, str]  # architecture -> the lowest glibc its manylinux wheels need ({} with a pure wheel)


def release_files(version: str, files: list[dict[str, Any]]) -> ReleaseFiles:
    uploads = sorted(f.get("upload_time_iso_8601") or f["upload_time"] for f in files)
    wheel = metadata_wheel(files)
    pythons = [f.get("requires_python") for f in ([wheel] if wheel else []) + files if f.get("requires_python")]
    return ReleaseFiles(
        version=version,
        date=uploads[0][:10],
        requires_python=pythons[0] if pythons else None,
        yanked=all(f.get("yanked") for f in files),
        wheels=sorted({tag for f in files if f["filename"].endswith(".whl") for tag in wheel_tags(f["filename"])}),
        sdist=any(f.get("packagetype") == "sdist" for f in files),
        metadata_wheel=wheel,
        glibc=glibc_floors([f["filename"] for f in files if f["filename"].endswith(".whl") and not f.get("yanked")]),
    )


def release_entry(files: ReleaseFiles, metadata: str | None, requires_only: bool,
                  tabled: set[str] | None = None, requires_from: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "date": files.date,
        "requires_python": (requires_python_of(metadata) if metadata else None) or files.requires_python,
        "yanked": files.yanked,
        "requires": requires_dist(metadata) if metadata is not None else None,
    }
    extras = extra_requires(metadata, tabled) if metadata is not None and tabled else []
    if extras:
        entry["extras"] = extras
    if requires_from is not None or files.metadata_wheel is not None:
        entry["requires_from"] = requires_from or files.metadata_wheel["filename"]
    if not requires_only:
        entry["wheels"] = files.wheels
        entry["sdist"] = files.sdist
        if files.glibc:
            entry["glibc"] = files.glibc
    return entry
