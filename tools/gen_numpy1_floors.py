"""Regenerate ``matrices/numpy1_floors.json``: releases whose wheels need a newer NumPy 1.x than they declare.

Usage: python tools/gen_numpy1_floors.py [--only NAME ...] [--threads N] [--cache FILE] [--out FILE]

A compiled module carries the NumPy it was built against in two places that fail at import under an older NumPy:
- Cython's type check of ``numpy.ndarray`` passes ``sizeof(PyArrayObject)`` as an immediate: 80 bytes with the
  headers of NumPy <= 1.19, 88 with 1.20-1.21 (``_buffer_info`` added), 96 from 1.22 on (``mem_handler`` added;
  numpy/core/include/numpy/ndarraytypes.h at each tag). Under a NumPy whose ndarray is smaller the import fails:
  "numpy.ndarray size changed, may indicate binary incompatibility. Expected 88 from C header, got 80 from PyObject".
- numpy/__multiarray_api.h's ``_import_array`` compares ``NPY_FEATURE_VERSION`` (an immediate) with the running
  NumPy's C-API version and fails with "module compiled against API version 0xf but this version of numpy is 0xe".
  The first NumPy of each C-API version is read from numpy/core/code_generators/cversions.txt (``API_VERSIONS``).

For each package the script lists the final releases first uploaded on PyPI from ``DATE_FLOOR`` (NumPy 1.20.0) on
and, for each manylinux x86_64 wheel of CPython 3.6-3.11 (the Pythons NumPy 1.x serves), reads by HTTP range (as
pip's lazy wheel does) the METADATA and the extension modules, smallest first, until one holds a check; that module
is disassembled with binutils' ``objdump -d`` and the immediates set up for the call that references the
``"ndarray"`` type name or the API-version message are read. A release declaring a NumPy floor at or above the
newest floor a binary can carry (1.23) is not read further. A release is kept when the NumPy a wheel needs is newer
than the floor its METADATA declares. Scan results are cached per wheel (``--cache``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import struct
import subprocess
import sys
import tempfile
import threading
import urllib.error
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from envdoctor.pypi_release import RangeFile, http_get, requires_dist

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "matrices" / "numpy1_floors.json"
CACHE = Path.home() / ".cache" / "envdoctor-numpy1-floor-scan.json"
INDEX = "https://pypi.org/pypi/{name}/json"
DATE_FLOOR = "2021-01-30"  # NumPy 1.20.0, the first release whose headers raise the floor
HIGHEST_FLOOR = Version("1.23")  # the newest floor a binary can carry (C-API 0x10; from 1.25 on builds target 1.19)
NEWEST_PYTHON = 11  # CPython 3.11: the newest Python with wheels of NumPy < 1.25
MODULES_READ = 12  # extension modules read per wheel, smallest first, before giving up
MODULE_BYTES = 48 * 1024 * 1024  # larger modules are not read (OpenCV's single cv2.so, TensorFlow's core library)
SCAN_RULE = 2  # bump when the reading changes: cached scans are then read again
EXTENSION = re.compile(r"\.(so)(\.[0-9.]+)?$")
API_MESSAGE = b"API version 0x%x but this version of numpy is 0x%x"

# sizeof(PyArrayObject) on 64-bit platforms -> the first NumPy whose ndarray is that large (ndarraytypes.h).
NDARRAY_SIZES = {0x50: None, 0x58: "1.20", 0x60: "1.22"}
# NumPy C-API version -> its first NumPy release (cversions.txt). From 1.25 on NPY_FEATURE_VERSION defaults to
# the 1.19 API (0xd) whatever the headers, so 0x11 never reaches a binary unless asked for.
API_VERSIONS = {0xc: "1.14", 0xd: "1.16", 0xe: "1.20", 0xf: "1.22", 0x10: "1.23", 0x11: "1.25"}

# Compiled packages that call NumPy's C API from Cython or C. Not read: TensorFlow (its NumPy bridge sits in its core
# library, over MODULE_BYTES) and torch (libtorch_python.so is read in about 20 s per wheel; the Linux wheels of
# 1.8-1.11 that were read target NumPy 1.14's C API).
PACKAGES = (
    "pandas", "scipy", "scikit-learn", "scikit-image", "matplotlib", "numba", "pyarrow", "h5py", "gensim", "thinc",
    "spacy", "blis", "shapely", "statsmodels", "numexpr", "bottleneck", "pywavelets", "astropy", "pyerfa", "tables",
    "pycocotools", "xtcocotools", "fastmat", "hdbscan", "pmdarima", "scikit-survival", "dipy", "pykdtree",
    "healpy", "photutils", "sep", "cvxpy", "ecos", "scs", "osqp", "lap", "lapx", "numpy-quaternion", "pyworld",
    "pesq", "mahotas", "pot", "scikit-fmm", "pysptk", "pyemd", "cython-bbox", "pygeos", "pycuda", "pyopencl",
    "cftime", "netcdf4", "fastparquet", "pyfftw", "mkl-fft", "hnswlib", "faiss-cpu", "cornac", "pyfhel",
    "madmom", "pyepr", "fastremap", "fill-voids", "edt", "connected-components-3d", "kornia-rs", "pynndescent",
    "implicit", "lightfm", "surprise", "scikit-surprise", "annoy", "nmslib", "pyrender", "trimesh", "open3d",
    "opencv-python", "opencv-python-headless", "pymatting", "pyamg", "quadprog", "cvxopt", "pystan", "prophet",
    "tslearn", "sktime", "pyts", "pykalman", "librosa", "resampy", "soxr", "python-speech-features", "pydensecrf",
)


def declared_floor(requires: list[str]) -> Version | None:
    """The lowest NumPy the Requires-Dist lines allow (markers ignored); None when NumPy is not bounded below."""
    floors = []
    for line in requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.name.lower() != "numpy":
            continue
        for spec in requirement.specifier:
            if spec.operator in (">=", "~=", "==", ">"):
                try:
                    floors.append(Version(spec.version.rstrip(".*")))
                except InvalidVersion:
                    continue
    return min(floors) if floors else None


@dataclass(frozen=True)
class Wheel:
    filename: str
    url: str
    size: int


@dataclass(frozen=True)
class Candidate:
    version: Version
    wheels: dict[str, Wheel]  # CPython tag (cp36 ... cp311) -> its manylinux x86_64 wheel
    uploaded: str


def candidate_releases(name: str) -> list[Candidate]:
    """The releases first uploaded from ``DATE_FLOOR`` on with manylinux x86_64 wheels for CPython <= 3.11 (the
    Pythons NumPy 1.x serves), by version."""
    out = []
    for text, files in json.loads(http_get(INDEX.format(name=name)))["releases"].items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if version.is_prerelease or version.is_devrelease or not files:
            continue
        uploaded = min(f["upload_time"][:10] for f in files)
        wheels = {}
        for f in files:
            tag = f["filename"].split("-")[-3] if f["filename"].endswith(".whl") else ""
            if (not f.get("yanked") and re.search(r"manylinux.*x86_64", f["filename"])
                    and re.fullmatch(r"cp3\d+", tag) and int(tag[3:]) <= NEWEST_PYTHON):
                # a mirror may answer with relative file URLs
                wheels.setdefault(tag, Wheel(f["filename"], urljoin(INDEX.format(name=name), f["url"]), f["size"]))
        if uploaded >= DATE_FLOOR and wheels:
            out.append(Candidate(version, wheels, uploaded))
    return sorted(out, key=lambda candidate: candidate.version)


def elf_sections(data: bytes) -> list[tuple[int, int, int]]:
    """(address, file offset, size) of each allocated section of a 64-bit little-endian ELF file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = []
    for index in range(shnum):
        base = shoff + index * shentsize
        _, kind, flags, address, offset, size = struct.unpack_from("<IIQQQQ", data, base)
        if flags & 0x2 and kind != 8:  # SHF_ALLOC, not NOBITS
            sections.append((address, offset, size))
    return sections


def string_at(data: bytes, sections: list[tuple[int, int, int]], address: int) -> bytes | None:
    for start, offset, size in sections:
        if start <= address < start + size:
            position = offset + address - start
            end = data.find(b"\0", position, position + 200)
            return data[position:end] if end >= 0 else None
    return None


LEA = re.compile(r"\blea\s+-?0x[0-9a-f]+\(%rip\),%\w+\s+#\s+([0-9a-f]+)")
IMMEDIATE = re.compile(r"\bmov\s+\$0x([0-9a-f]+),%(e[a-z]{2}|r\d+d)\b")


def module_floors(data: bytes, path: Path) -> dict[str, int]:
    """{"ndarray_size": bytes, "api_version": n} read from one extension module's machine code (absent: not found)."""
    sections = elf_sections(data)
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(path)], capture_output=True, text=True,
                             check=True, timeout=600).stdout
    found: dict[str, int] = {}
    window: list[str] = []
    for line in listing.splitlines():
        if "\tcall" not in line and "\tjmp" not in line:
            window.append(line)
            continue
        targets = {string_at(data, sections, int(m.group(1), 16)) for m in map(LEA.search, window) if m}
        immediates = [int(m.group(1), 16) for m in map(IMMEDIATE.search, window) if m]
        if b"ndarray" in targets and b"numpy" in targets:
            sizes = [i for i in immediates if i in NDARRAY_SIZES]
            if sizes:
                found["ndarray_size"] = max(found.get("ndarray_size", 0), max(sizes))
        if any(t and API_MESSAGE.replace(b"%x", b"") in t.replace(b"%x", b"") for t in targets):
            versions = [i for i in immediates if i in API_VERSIONS]
            if versions:
                found["api_version"] = max(found.get("api_version", 0), max(versions))
        window = []
    return found


def scan_wheel(wheel: Wheel) -> dict[str, Any]:
    """The NumPy floor of one remote wheel (read by HTTP range) and the NumPy floor its METADATA declares.

    Extension modules are read in ``_reading_order`` until one carries a check: one build uses one NumPy for all its
    modules, so the first module read stands for the wheel.
    """
    with zipfile.ZipFile(RangeFile(wheel.url, wheel.size, http_get)) as archive:  # type: ignore[arg-type]
        names = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        metadata = archive.read(names[0]).decode("utf-8") if names else ""
        declared = declared_floor([r for r in requires_dist(metadata) if re.match(r"numpy\b", r, re.I)])
        modules = sorted((i for i in archive.infolist()
                          if EXTENSION.search(i.filename) and i.file_size <= MODULE_BYTES), key=_reading_order)
        for info in modules[:MODULES_READ]:
            data = archive.read(info)
            if not ((b"ndarray\0" in data and b"numpy\0" in data) or API_MESSAGE in data):
                continue
            with tempfile.TemporaryDirectory(prefix="numpy1-floor-") as folder:
                path = Path(folder) / "module.so"
                path.write_bytes(data)
                found = module_floors(data, path)
            if found:
                needs = [NDARRAY_SIZES.get(v) if k == "ndarray_size" else API_VERSIONS.get(v) for k, v in found.items()]
                floor = max((Version(f) for f in needs if f), default=None)
                what = ", ".join(f"ndarray size {v}" if k == "ndarray_size" else f"C-API version {v:#x}"
                                 for k, v in sorted(found.items()))
                return {"numpy_floor": floor and str(floor), "declared": declared and str(declared),
                        "evidence": f"{info.filename}: {what}", "scan_rule": SCAN_RULE}
    return {"numpy_floor": None, "declared": declared and str(declared), "evidence": "", "scan_rule": SCAN_RULE}


def _reading_order(info: zipfile.ZipInfo) -> tuple[bool, int]:
    """Python's own extension modules (``x.cpython-38-x86_64-linux-gnu.so``, torch's ``libtorch_python.so``) first,
    where NumPy's C API is called, then the bundled libraries (CUDA runtimes and the like); smallest first in each."""
    return "python" not in info.filename.rsplit("/", 1)[-1], info.file_size


class Scanner:
    def __init__(self, cache_path: Path) -> None:
        self.cache_path = cache_path
        self.cache: dict[str, dict[str, Any]] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
        self.lock = threading.Lock()

    def scan(self, wheel: Wheel) -> dict[str, Any]:
        cached = self.cache.get(wheel.filename, {})
        # a wheel whose check was found keeps its reading: what changed between rules is where the search looks
        if cached.get("scan_rule") != SCAN_RULE and not cached.get("evidence"):
            scanned = scan_wheel(wheel)
            with self.lock:
                self.cache[wheel.filename] = scanned
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                self.cache_path.write_text(json.dumps(self.cache, indent=1, sort_keys=True))
        return self.cache[wheel.filename]


def study(name: str, scanner: Scanner) -> list[dict[str, Any]]:
    """The releases of ``name`` whose wheel for some Python needs a newer NumPy than it declares."""
    rows = []
    for candidate in candidate_releases(name):
        floors: dict[str, str] = {}
        scanned: list[str] = []
        evidence = ""
        for tag, wheel in sorted(candidate.wheels.items(), key=lambda item: int(item[0][3:])):
            scan = scanner.scan(wheel)
            declared = Version(scan["declared"]) if scan["declared"] else None
            if declared is not None and declared >= HIGHEST_FLOOR:
                break  # a release declares one floor for all its wheels
            scanned.append(tag)
            if scan["numpy_floor"] and (declared is None or Version(scan["numpy_floor"]) > declared):
                floors[tag] = scan["numpy_floor"]
                evidence = evidence or f"{wheel.filename}: {scan['evidence']}"
        if floors:
            rows.append({"release": str(candidate.version), "numpy_floor": floors, "scanned": scanned,
                         "declared": scan["declared"], "uploaded": candidate.uploaded, "evidence": evidence})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="scan only these packages (the other rows are kept)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    names = args.only or list(PACKAGES)
    packages = {n: rows for n, rows in existing.get("packages", {}).items() if args.only and n not in names}
    scanner = Scanner(args.cache)
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        for name, rows in zip(names, pool.map(lambda n: _study_logged(n, scanner), names), strict=True):
            if rows:
                packages[name] = rows
    document = {
        "generator": "tools/gen_numpy1_floors.py",
        "command": "python tools/gen_numpy1_floors.py",
        "generated": datetime.date.today().isoformat(),
        "what": "releases whose manylinux x86_64 wheels need a newer NumPy 1.x at import than their Requires-Dist "
                "allows: numpy_floor per CPython tag, from the Cython ndarray size check or the C-API version check "
                "compiled into the extension modules (see the script); scanned: the CPython tags whose wheels were "
                "read (a tag scanned and absent from numpy_floor needs no more than declared); declared: the NumPy "
                "floor the METADATA declares",
        "sources": [
            {"title": "numpy/core/include/numpy/ndarraytypes.h at v1.19.0, v1.20.0, v1.22.0 (PyArrayObject_fields)",
             "url": "https://github.com/numpy/numpy/blob/v1.22.0/numpy/core/include/numpy/ndarraytypes.h"},
            {"title": "numpy/core/code_generators/cversions.txt at v1.26.0 (C-API version per NumPy release)",
             "url": "https://github.com/numpy/numpy/blob/v1.26.0/numpy/core/code_generators/cversions.txt"},
            {"title": "PyPI JSON API and each release's wheel (pip download --no-deps)", "url": "https://pypi.org/pypi/"},
        ],
        "ndarray_sizes": {str(k): v for k, v in NDARRAY_SIZES.items()},
        "api_versions": {f"{k:#x}": v for k, v in API_VERSIONS.items()},
        "packages": dict(sorted(packages.items())),
    }
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}: {sum(map(len, packages.values()))} releases of {len(packages)} packages",
          file=sys.stderr)
    return 0


def _study_logged(name: str, scanner: Scanner) -> list[dict[str, Any]]:
    try:
        rows = study(name, scanner)
    except (subprocess.SubprocessError, urllib.error.URLError, ValueError, OSError, KeyError) as exc:
        print(f"{name}: scan failed: {exc}", file=sys.stderr, flush=True)
        return []
    print(f"{name}: {[(r['release'], r['numpy_floor']) for r in rows]}", file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
