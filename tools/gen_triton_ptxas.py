"""Write matrices/triton_ptxas.json: the CUDA release of the ptxas each Triton release bundles.

Triton compiles its kernels with the ptxas inside its own wheel (``TRITON_PTXAS_PATH`` overrides it), so a GPU
architecture that ptxas's CUDA release does not know fails at the first kernel ("ptxas fatal : Value 'sm_120a' is
not defined for option 'gpu-name'") whatever the driver or the system toolkit. For each release on PyPI this reads
one Linux x86_64 wheel with HTTP range requests (the zip's central directory, then the ptxas member alone, never the
whole wheel) and takes the release from ptxas's own version banner ("Cuda compilation tools, release 12.8, V12.8.93");
some releases bundle a second one for Blackwell GPUs (``ptxas-blackwell``).

    python tools/gen_triton_ptxas.py                 # every release from 2.0.0, rewrites the table
    python tools/gen_triton_ptxas.py --from 3.0.0    # a later floor
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from pathlib import Path
from urllib.parse import urljoin

from packaging.version import InvalidVersion, Version

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from zip_ranges import central_directory, member_bytes  # noqa: E402

from envdoctor.atomic import write_atomic  # noqa: E402
from envdoctor.pypi_release import http_get  # noqa: E402

INDEX = "https://pypi.org/pypi/triton/json"
OUT = REPO / "matrices" / "triton_ptxas.json"
BANNER = re.compile(rb"Cuda compilation tools, release (\d+\.\d+), (V[\d.]+)")


def linux_wheel(files: list[dict]) -> dict | None:
    """One manylinux x86_64 wheel of the release (the newest CPython tag: every tag bundles the same ptxas)."""
    wheels = [f for f in files if f["filename"].endswith(".whl") and "manylinux" in f["filename"]
              and "x86_64" in f["filename"] and not f.get("yanked")]
    return max(wheels, key=lambda f: f["filename"]) if wheels else None


def release_row(version: str, files: list[dict]) -> dict:
    """The CUDA release of each ptxas the release's wheel bundles (``ptxas``; 3.3 and 3.8 add ``ptxas-blackwell``,
    which Triton uses for compute capability 10.0 and newer), and the newest of them."""
    wheel = linux_wheel(files)
    if wheel is None:
        return {"newest": None, "why": "no manylinux x86_64 wheel on PyPI"}
    url = urljoin(INDEX, wheel["url"])
    members = [m for m in central_directory(url, wheel["size"]) if m.name.rsplit("/", 1)[-1].startswith("ptxas")]
    row: dict = {"wheel": wheel["filename"], "sha256": wheel["digests"]["sha256"]}
    bundled = {}
    for member in members:
        found = BANNER.search(member_bytes(url, member))
        if found is not None:
            bundled[member.name.rsplit("/", 1)[-1]] = found.group(1).decode()
    if not bundled:
        return {"newest": None, "why": "the wheel bundles no ptxas with a version banner", **row}
    newest = max(bundled.values(), key=lambda v: tuple(int(p) for p in v.split(".")))
    return {"newest": newest, "ptxas": bundled, **row}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="floor", default="2.0.0", help="the oldest release read (default 2.0.0)")
    args = parser.parse_args()
    index = json.loads(http_get(INDEX))
    releases = {}
    for version, files in index["releases"].items():
        try:
            if Version(version) < Version(args.floor) or Version(version).is_prerelease:
                continue
        except InvalidVersion:
            continue
        releases[version] = release_row(version, files)
        print(f"{version}: {releases[version].get('ptxas') or releases[version].get('why')}", file=sys.stderr)
    document = {
        "generator": "tools/gen_triton_ptxas.py",
        "command": f"python tools/gen_triton_ptxas.py --from {args.floor}",
        "generated": datetime.date.today().isoformat(),
        "source": "each Triton release's manylinux x86_64 wheel on PyPI (https://pypi.org/pypi/triton/json): the "
                  "version banner of the ptxas it bundles, read with HTTP range requests",
        "floor": args.floor,
        "what": "release -> ptxas: the CUDA release of each bundled ptxas binary; newest: the newest of them (null, "
                "with why, when there is none)",
        "releases": dict(sorted(releases.items(), key=lambda item: Version(item[0]))),
    }
    write_atomic(OUT, json.dumps(document, indent=1) + "\n")
    print(f"wrote {OUT} ({len(releases)} releases)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
