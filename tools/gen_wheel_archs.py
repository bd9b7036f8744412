"""Write matrices/wheel_archs.json: the GPU code (compiled kernels and PTX) each release's PyPI wheel holds.

A package's CUDA kernels run on a GPU only where the wheel holds a cubin for the GPU's major version at or below
its minor (sm_80 runs on 8.6 and 8.9, never on 9.0), or PTX at or below its compute capability that the driver
compiles at load. For every release of the packages in ``tools/wheel_arch_packages.toml`` this reads one manylinux
x86_64 wheel from PyPI with HTTP range requests (the zip's central directory, then each shared library), walks the
CUDA fat binaries in the libraries (``tools/fatbin.py``) and records, per library, how many fat binaries (one per
compiled source file) hold which targets: a few sources built with nvcc's default (sm_52 and its PTX) often sit
beside the kernels built for the project's arch list, so a union of targets would run everywhere. It also records
the newest PTX ISA version found, which names the CUDA toolkit that compiled the wheel.

    python tools/gen_wheel_archs.py                      # every package, rewrites the table
    python tools/gen_wheel_archs.py --package lmcache    # one package, the others kept as they are
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin

import tomllib
from fatbin import fat_binaries, ptx_versions
from packaging.version import InvalidVersion, Version
from zip_ranges import central_directory, member_bytes

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from envdoctor.atomic import write_atomic  # noqa: E402
from envdoctor.pypi_release import http_get  # noqa: E402

PACKAGES = REPO / "tools" / "wheel_arch_packages.toml"
OUT = REPO / "matrices" / "wheel_archs.json"
JSON_API = "https://pypi.org/pypi/{}/json"


def linux_wheels(files: list[dict]) -> list[dict]:
    """The release's manylinux x86_64 wheels to read, in order: the smallest (every CPython tag of a release holds
    the same kernels; the smallest is the cheapest to read), then the largest when that is another build (XGBoost
    2.1 to 3.0 ship a CPU-only manylinux2014 wheel beside the manylinux_2_28 one with the CUDA kernels)."""
    wheels = sorted((f for f in files if f["filename"].endswith(".whl") and "manylinux" in f["filename"]
                     and "x86_64" in f["filename"] and not f.get("yanked")), key=lambda f: (f["size"], f["filename"]))
    if len(wheels) > 1 and _platform_tag(wheels[-1]) != _platform_tag(wheels[0]):
        return [wheels[0], wheels[-1]]
    return wheels[:1]


def _platform_tag(wheel: dict) -> str:
    return wheel["filename"].removesuffix(".whl").rsplit("-", 1)[-1]


def _caps(codes: frozenset, kind: str) -> list[str]:
    return [code.capability for code in sorted(codes) if code.kind == kind]


def library_code(blob: bytes) -> list[dict]:
    """The library's fat binaries grouped by the GPU code they hold: [{sass, ptx, fatbins}], most common first."""
    counts: dict[frozenset, int] = {}
    for codes in fat_binaries(blob):
        counts[codes] = counts.get(codes, 0) + 1
    groups = sorted(counts.items(), key=lambda item: (-item[1], sorted(item[0])))
    return [{"sass": _caps(codes, "sass"), "ptx": _caps(codes, "ptx"), "fatbins": n} for codes, n in groups]


def release_row(url_base: str, files: list[dict]) -> dict:
    """The wheel read, and for each of its shared libraries that holds GPU code, its fat binaries grouped by the
    compute capabilities they hold compiled kernels and PTX for."""
    wheels = linux_wheels(files)
    if not wheels:
        return {"why": "no manylinux x86_64 wheel on PyPI"}
    for wheel in wheels:
        row = wheel_row(url_base, wheel)
        if "libraries" in row:
            break
    return row


def wheel_row(url_base: str, wheel: dict) -> dict:
    url = urljoin(url_base, wheel["url"])
    libraries, isas = {}, set()
    for member in central_directory(url, wheel["size"]):
        if ".so" in member.name.rsplit("/", 1)[-1]:
            blob = member_bytes(url, member)
            groups = library_code(blob)
            if groups:
                libraries[member.name] = groups
                isas |= ptx_versions(blob)
    row = {"wheel": wheel["filename"], "sha256": wheel["digests"]["sha256"]}
    if not libraries:
        return {**row, "why": "no CUDA fat binary in its shared libraries"}
    isa = {"ptx_isa": "{}.{}".format(*max(isas))} if isas else {}  # the newest: the toolkit that built the wheel
    return {**row, **isa, "libraries": libraries}


def package_rows(name: str, floor: str) -> dict[str, dict]:
    index = json.loads(http_get(JSON_API.format(name)))
    wanted = {}
    for version, files in index["releases"].items():
        try:
            parsed = Version(version)
        except InvalidVersion:
            continue
        if parsed >= Version(floor) and not parsed.is_prerelease and files:
            wanted[version] = files
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {v: pool.submit(release_row, JSON_API.format(name), files) for v, files in wanted.items()}
        rows = {}
        for version, future in futures.items():
            try:
                rows[version] = future.result()
            except (OSError, ValueError) as exc:
                rows[version] = {"why": f"not read: {exc}"}
            row = rows[version]
            libraries = row.get("libraries", {}).items()
            shown = {lib.rsplit("/", 1)[-1]: [(g["sass"], g["ptx"], g["fatbins"]) for g in groups]
                     for lib, groups in libraries}
            print(f"{name} {version}: {shown or row.get('why')}", file=sys.stderr, flush=True)
    return dict(sorted(rows.items(), key=lambda item: Version(item[0])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", action="append", help="read only these packages (the others are kept)")
    args = parser.parse_args()
    listed = tomllib.loads(PACKAGES.read_text(encoding="utf-8"))["packages"]
    old = json.loads(OUT.read_text(encoding="utf-8"))["packages"] if OUT.exists() else {}
    packages = {}
    for name, spec in listed.items():
        if args.package and name not in args.package:
            if name in old:
                packages[name] = old[name]
            continue
        packages[name] = {"from": spec["from"], "generated": datetime.date.today().isoformat(),
                          "releases": package_rows(name, spec["from"])}
    document = {
        "generator": "tools/gen_wheel_archs.py",
        "command": "python tools/gen_wheel_archs.py",
        "source": "each release's smallest manylinux x86_64 wheel on PyPI (https://pypi.org/pypi/NAME/json): the "
                  "CUDA fat binaries in its shared libraries, read with HTTP range requests",
        "what": "package -> release -> libraries: each shared library holding GPU code -> its fat binaries (nvcc "
                "writes one per compiled source file) grouped by what they hold: sass, the compute capabilities "
                "with compiled kernels (a cubin runs on its major at that minor or above); ptx, those with PTX (the "
                "driver compiles it for that one and newer); fatbins, how many hold exactly that; ptx_isa, the "
                "newest PTX ISA version of the release's PTX (nvcc writes its own toolkit's, so it names the CUDA "
                "toolkit that built the wheel: matrices/cuda.toml [ptx_isa]); why: no GPU code, and why",
        "packages": packages,
    }
    write_atomic(OUT, json.dumps(document, indent=1) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
