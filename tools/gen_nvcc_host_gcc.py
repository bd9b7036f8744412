"""Write matrices/nvcc_host_gcc.json: the newest gcc major each CUDA toolkit's nvcc accepts as its host compiler.

nvcc compiles the host side of every ``.cu`` file with the system gcc (``-ccbin`` or ``NVCC_CCBIN`` name another),
and the toolkit's own ``crt/host_config.h`` stops any newer gcc before compiling: "#error -- unsupported GNU version!
gcc versions later than 13 are not supported!". NVIDIA publishes nvcc on PyPI from CUDA 11.7 on
(``nvidia-cuda-nvcc-cu11``, ``nvidia-cuda-nvcc-cu12``; from 13.0 its headers are ``nvidia-cuda-crt``): for each release
this reads ``host_config.h`` from the manylinux x86_64 wheel with HTTP range requests (the zip's central directory,
then that member alone) and takes the bound of its ``#if __GNUC__ > N`` test. Toolkits older than 11.7 were never
on PyPI; their bounds are the hand-kept ``BEFORE_PYPI`` rows below, with their source. A CUDA minor's row is the
most permissive of its patch releases (11.4.0 stopped at gcc 10, 11.4.1 accepts gcc 11: "11.4" records 11).

    python tools/gen_nvcc_host_gcc.py
"""

from __future__ import annotations

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

OUT = REPO / "matrices" / "nvcc_host_gcc.json"
# From CUDA 13.0 the headers nvcc compiles with moved out of nvidia-cuda-nvcc into nvidia-cuda-crt.
PACKAGES = ("nvidia-cuda-nvcc-cu11", "nvidia-cuda-nvcc-cu12", "nvidia-cuda-crt")
HEADER = "crt/host_config.h"
# "#if __GNUC__ > 13" (and CUDA 8.0's "#if __GNUC__ > 4 || (__GNUC__ == 4 && __GNUC_MINOR__ > 9)"), the test whose
# body is the "unsupported GNU version" error.
GNU_BOUND = re.compile(r"#if __GNUC__ > (\d+)(?: \|\| \(__GNUC__ == \d+ && __GNUC_MINOR__ > \d+\))?\s*\n"
                       r"(?:\s*\n)*\s*#error -- unsupported GNU version")
# Toolkits before the first nvcc on PyPI: the bound of each one's host_config.h as Spack records it from NVIDIA's
# CUDA images (lib/spack/spack/build_systems/cuda.py, the "%gcc@N:" conflicts of spack/spack#25054 and #29076).
BEFORE_PYPI = {"8.0": 5, "9.0": 6, "9.1": 6, "9.2": 7, "10.0": 7, "10.1": 8, "10.2": 8, "11.0": 9, "11.1": 10,
               "11.2": 10, "11.3": 10, "11.4": 11, "11.5": 11, "11.6": 11}
BEFORE_PYPI_SOURCE = ("Spack's CUDA compiler conflicts, read from host_config.h of NVIDIA's CUDA images "
                      "(https://github.com/spack/spack/blob/develop/lib/spack/spack/build_systems/cuda.py; "
                      "spack/spack#25054, #29076)")


def gnu_bound(header: str) -> int | None:
    """The newest gcc major ``host_config.h`` lets through (None when it has no such test)."""
    found = GNU_BOUND.search(header)
    return int(found.group(1)) if found else None


def linux_wheel(files: list[dict]) -> dict | None:
    wheels = [f for f in files if f["filename"].endswith(".whl") and "manylinux" in f["filename"]
              and "x86_64" in f["filename"] and not f.get("yanked")]
    return max(wheels, key=lambda f: f["filename"]) if wheels else None


def read_release(index_url: str, version: str, files: list[dict]) -> dict | None:
    wheel = linux_wheel(files)
    if wheel is None:
        return None
    url = urljoin(index_url, wheel["url"])
    member = next((m for m in central_directory(url, wheel["size"]) if m.name.endswith(HEADER)), None)
    if member is None:
        return None
    bound = gnu_bound(member_bytes(url, member).decode("utf-8", "replace"))
    return {"release": version, "gcc_max": bound, "wheel": wheel["filename"],
            "sha256": wheel["digests"]["sha256"]}


def main() -> int:
    toolkits: dict[str, dict] = {minor: {"gcc_max": bound, "source": BEFORE_PYPI_SOURCE}
                                 for minor, bound in BEFORE_PYPI.items()}
    for package in PACKAGES:
        index_url = f"https://pypi.org/pypi/{package}/json"
        index = json.loads(http_get(index_url))
        for version, files in sorted(index["releases"].items()):
            try:
                parsed = Version(version)
            except InvalidVersion:
                continue
            if parsed.is_prerelease or parsed.is_devrelease or parsed.major < 11:
                continue
            row = read_release(index_url, version, files)
            print(f"{package} {version}: {row and row['gcc_max']}", file=sys.stderr)
            if row is None or row["gcc_max"] is None:
                continue
            minor = f"{parsed.major}.{parsed.minor}"
            kept = toolkits.get(minor)
            if kept is None or "releases" not in kept:
                kept = toolkits[minor] = {"gcc_max": row["gcc_max"], "source": f"{package} on PyPI",
                                          "releases": []}
            kept["releases"].append(row)
            kept["gcc_max"] = max(kept["gcc_max"], row["gcc_max"])
    document = {
        "generator": "tools/gen_nvcc_host_gcc.py",
        "command": "python tools/gen_nvcc_host_gcc.py",
        "generated": datetime.date.today().isoformat(),
        "source": "crt/host_config.h of each nvidia-cuda-nvcc-cu11, nvidia-cuda-nvcc-cu12 and nvidia-cuda-crt "
                  "release's manylinux x86_64 wheel on PyPI, read with HTTP range requests; toolkits before 11.7: "
                  + BEFORE_PYPI_SOURCE,
        "what": "CUDA toolkit minor -> gcc_max: the newest gcc major its nvcc accepts as the host compiler on Linux "
                "(the most permissive of the minor's patch releases)",
        "toolkits": dict(sorted(toolkits.items(), key=lambda item: Version(item[0]))),
    }
    write_atomic(OUT, json.dumps(document, indent=1) + "\n")
    print(f"wrote {OUT} ({len(toolkits)} toolkits)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
