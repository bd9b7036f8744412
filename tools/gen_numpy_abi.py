"""Regenerate the wheel-scanned rows of ``matrices/numpy_abi.toml``: the NumPy C API each release was built against.

Usage: python tools/gen_numpy_abi.py [--only NAME ...] [--threads N] [--cache FILE] [--out FILE]

A compiled module built with NumPy 2 headers imports ``numpy._core._multiarray_umath`` (numpy/__multiarray_api.h,
NumPy >= 2.0; pybind11 >= 2.12 builds ``numpy._core``); one built with NumPy 1.x headers imports
``numpy.core._multiarray_umath`` (or ``numpy.core.multiarray``) and fails under NumPy 2 with
"_ARRAY_API not found". NumPy 2 headers also embed the oldest NumPy the module accepts at run time in the error
text "... C-API version 0x%x (NumPy X.Y) but the running NumPy ...": X.Y >= 2.0 means it fails under NumPy 1.x.

For every package in ``PACKAGES`` the script lists final releases from ``https://pypi.org/pypi/NAME/json`` (at or
above the package's version floor, or else those uploaded from ``DATE_FLOOR`` on and the one before), downloads
one manylinux x86_64 CPython wheel per probed release with ``pip download --no-deps`` and reads its extension
modules for those strings. Releases are ordered by version and
searched by bisection for
- ``numpy2_from``: the first release built against NumPy 2 (``last_numpy1_build`` is the release before it, scanned);
- ``numpy2_only_from``: the first release that needs NumPy 2 at run time, by its binary (C-API target >= 2.0) or
  by its declared ``Requires-Dist`` (the wheel's METADATA).
Rows with ``method = "hand"`` in the output file are kept as they are. Scan results are cached (``--cache``), so a
rerun downloads only releases it has not seen.
"""

from __future__ import annotations

import argparse
import datetime
import email.parser
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from envdoctor.pypi_release import http_get

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "matrices" / "numpy_abi.toml"
CACHE = Path.home() / ".cache" / "envdoctor-numpy-abi-scan.json"
INDEX = "https://pypi.org/pypi/{name}/json"
SOURCE_ID = "numpy-abi-wheel-scan"
PYTHON_PREFERENCE = ("cp311", "cp312", "cp310", "cp313", "cp39", "cp314")
EXTENSION = re.compile(r"\.(so|pyd)(\.[0-9.]+)?$")
DATE_FLOOR = "2023-06-01"  # the first NumPy 2 builds appeared from 2024-03 on
IMPORT_TIME_MARKERS = (b"module compiled against ABI version", b"size changed, may indicate binary incompatibility")
BINDING_RULE = 2  # bump when the binding test changes: cached NumPy 1.x scans are then read again
FEATURE = re.compile(rb"\(NumPy ([0-9]+\.[0-9]+)\) but the running NumPy")

# package -> oldest release searched (the first NumPy 2 builds appeared from 2024-03 on; the floor sits below).
# Not listed: tokenizers and other rust-numpy bindings, which load the NumPy C API at their first array call rather
# than at import, so an old release still imports and works under NumPy 2 unless it is handed an ndarray.
PACKAGES: dict[str, str | None] = {
    "pandas": "2.1.0", "scipy": "1.11.0", "scikit-learn": "1.3.0", "scikit-image": "0.21.0",
    "matplotlib": "3.7.0", "numba": "0.58.0", "pyarrow": "14.0.0", "h5py": "3.9.0",
    "opencv-python": "4.8.0.74", "opencv-python-headless": "4.8.0.74", "opencv-contrib-python": "4.8.0.74",
    "opencv-contrib-python-headless": "4.8.0.74", "onnxruntime": "1.16.0", "jaxlib": "0.4.20",
    "ml-dtypes": "0.2.0", "gensim": "4.3.0", "thinc": "8.2.0", "spacy": "3.7.0", "faiss-cpu": "1.7.4",
    "shapely": "2.0.0", "statsmodels": "0.14.0", "numexpr": "2.8.5", "bottleneck": "1.3.7", "pywavelets": "1.4.0",
    "astropy": "5.3", "pyerfa": "2.0.0", "tables": "3.8.0", "pycocotools": "2.0.7", "contourpy": "1.1.0",
    "blis": "0.7.10", "torchvision": "0.16.0", "torchaudio": "2.1.0", "xgboost": "2.0.0", "lightgbm": "4.1.0",
    "bitsandbytes": "0.42.0", "sentencepiece": "0.1.99", "safetensors": "0.4.0",
    "fasttext-wheel": "0.9.2", "hnswlib": "0.8.0", "pyproj": "3.6.0", "netcdf4": "1.6.4", "rasterio": "1.3.8",
    "imagecodecs": "2023.9.18", "numcodecs": "0.12.0", "tiktoken": "0.5.0", "soxr": "0.3.6",
    # spaCy's compiled dependencies beside thinc and blis; onnx (pybind11)
    "cymem": "2.0.7", "preshed": "3.0.8", "srsly": "2.4.6", "murmurhash": "1.0.9", "onnx": "1.14.0",
    # None: releases from DATE_FLOOR on
    **dict.fromkeys((
        "pyhdf", "cftime", "hdbscan", "pmdarima", "shap", "duckdb", "tensorstore", "fastparquet", "pyfftw", "mkl-fft",
        "wordcloud", "ta-lib", "arch", "scikit-survival", "dipy", "pykdtree", "pyresample", "blosc2", "healpy",
        "photutils", "sep", "cvxpy", "ecos", "scs", "osqp", "highspy", "chroma-hnswlib", "usearch", "lap",
        "numpy-quaternion", "pyworld", "pesq", "praat-parselmouth", "samplerate", "openvino", "mahotas", "pot",
        "gurobipy", "ortools", "numpy-stl", "scikit-fmm", "mujoco", "catboost", "pysptk", "pyemd", "lapx",
        "cython-bbox", "pygeos", "fiona", "cartopy", "pycuda", "pyopencl", "ctranslate2", "open-clip-torch",
    ), None),
}


@dataclass(frozen=True)
class Scan:
    """What one wheel's extension modules say about NumPy."""

    wheel: str
    numpy2: bool | None  # True: NumPy 2 headers; False: NumPy 1.x headers; None: no NumPy C API at all
    feature: str | None  # the oldest NumPy most of its modules accept at run time (from the embedded error text)
    feature_max: str | None = None  # the newest such floor of any module (an optional module may need more)
    requires: tuple[str, ...] = ()  # the wheel METADATA's Requires-Dist lines naming numpy
    # A NumPy 1.x build: "c-api" when a module carries numpy/__multiarray_api.h's import_array or Cython's type
    # size check (both run at module init, so the import fails: "_ARRAY_API not found", "numpy.dtype size changed");
    # "lazy" when only pybind11 < 2.12 or rust-numpy look the API up, at the first array they handle.
    numpy1_binding: str | None = None
    binding_rule: int = BINDING_RULE


def http_json(url: str) -> Any:
    return json.loads(http_get(url))  # retries 429/5xx and network errors with backoff


def releases(name: str, floor: str | None) -> list[tuple[Version, str]]:
    """(version, file name of one manylinux x86_64 CPython wheel), final releases by version, from ``floor`` on.

    Without a version floor: releases first uploaded on or after ``DATE_FLOOR``, plus the newest one before it.
    """
    out = []
    for text, files in http_json(INDEX.format(name=name))["releases"].items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if version.is_prerelease or version.is_devrelease or (floor is not None and version < Version(floor)):
            continue
        wheels = {f["filename"].split("-")[-3]: f["filename"] for f in files if not f.get("yanked")
                  and f["filename"].endswith(".whl") and re.search(r"manylinux.*x86_64", f["filename"])}
        python = next((t for t in PYTHON_PREFERENCE if t in wheels), None)
        python = python or next((t for t in sorted(wheels) if t.startswith("cp3")), None)
        if python:
            uploaded = min(f["upload_time"][:10] for f in files)
            out.append((version, wheels[python], uploaded))
    out.sort()
    if floor is None:
        before = [r for r in out if r[2] < DATE_FLOOR]
        out = before[-1:] + [r for r in out if r[2] >= DATE_FLOOR]
    return [(version, wheel) for version, wheel, _ in out]


def scan_wheel(path: Path) -> Scan:
    numpy2 = numpy1 = c_api = False
    features: list[str] = []
    requires: list[str] = []
    with zipfile.ZipFile(path) as wheel:
        for info in wheel.infolist():
            if info.filename.endswith(".dist-info/METADATA"):
                metadata = email.parser.BytesHeaderParser().parsebytes(wheel.read(info))
                requires = [r for r in metadata.get_all("Requires-Dist") or [] if re.match(r"numpy\b", r, re.I)]
            if not EXTENSION.search(info.filename):
                continue
            data = wheel.read(info)
            if b"numpy._core" in data:
                numpy2 = True
            elif b"numpy.core._multiarray_umath" in data or b"numpy.core.multiarray" in data:
                numpy1 = True
                c_api = c_api or any(marker in data for marker in IMPORT_TIME_MARKERS)
            features.extend({m.decode() for m in FEATURE.findall(data)})
    # h5py 3.14: one optional module (_npystrings) targets NumPy 2.0 while the rest, and the package, run on 1.x.
    feature = min(set(features), key=lambda f: (-features.count(f), Version(f))) if features else None
    newest = max(features, key=Version) if features else None
    binding = ("c-api" if c_api else "lazy") if numpy1 and not numpy2 else None
    return Scan(path.name, True if numpy2 else (False if numpy1 else None), feature, newest, tuple(requires), binding)


def download_and_scan(name: str, version: Version, filename: str) -> Scan:
    """``pip download`` the wheel ``filename`` of ``name==version`` (its own python and platform tags) and scan it."""
    python, _, platforms = filename[:-4].split("-")[-3:]
    digits = python[2:]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--python-version", f"{digits[0]}.{digits[1:]}"]
    for platform in platforms.split("."):
        command += ["--platform", platform]
    for attempt in range(3):  # a busy index or network fails a download now and then
        with tempfile.TemporaryDirectory(prefix="numpy-abi-") as folder:
            try:
                subprocess.run([*command, "--dest", folder, f"{name}=={version}"], check=True, capture_output=True,
                               timeout=1800)
            except subprocess.SubprocessError:
                if attempt == 2:
                    raise
                time.sleep(5 * (attempt + 1))
                continue
            (wheel,) = Path(folder).glob("*.whl")
            return scan_wheel(wheel)
    raise AssertionError("unreachable")


def declared_numpy2_only(requires: list[str], python: str) -> str | None:
    """The Requires-Dist line (of a wheel for CPython ``python``) that excludes every NumPy 1.x release, if any."""
    environment = {"python_version": f"{python[2]}.{python[3:]}", "sys_platform": "linux",
                   "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}
    for line in requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.name.lower() != "numpy" or (requirement.marker and not requirement.marker.evaluate(environment)):
            continue
        if requirement.specifier and not requirement.specifier.contains("1.26.4") \
                and requirement.specifier.contains("2.5.0"):
            return line
    return None


class Scanner:
    def __init__(self, cache_path: Path) -> None:
        self.cache_path = cache_path
        self.cache: dict[str, dict[str, Any]] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
        self.lock = threading.Lock()

    def scan(self, name: str, version: Version, filename: str, want_binding: bool = False) -> Scan:
        key = f"{name}=={version}"
        stale = self.cache.get(key, {})
        if "feature_max" not in stale and stale.get("feature") and Version(stale["feature"]) >= Version("2.0"):
            del self.cache[key]  # scanned before the per-module floor was kept: its "feature" was the newest
        if (want_binding and stale.get("numpy2") is False and stale.get("numpy1_binding") != "c-api"
                and stale.get("binding_rule") != BINDING_RULE):  # a "c-api" verdict holds under every rule
            self.cache.pop(key, None)  # scanned before the NumPy 1 binding was told apart
        if key not in self.cache:
            scanned = download_and_scan(name, version, filename).__dict__
            with self.lock:
                self.cache[key] = scanned
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                self.cache_path.write_text(json.dumps(self.cache, indent=1, sort_keys=True))
        cached = self.cache[key]
        return Scan(**{**cached, "requires": tuple(cached.get("requires", ()))})


def first_where(items: list[Any], predicate: Any) -> int | None:
    """Index of the first item where ``predicate`` holds, assuming it holds from some point on; None if never."""
    if not items or not predicate(items[-1]):
        return None
    low, high = 0, len(items) - 1
    while low < high:
        middle = (low + high) // 2
        if predicate(items[middle]):
            high = middle
        else:
            low = middle + 1
    return low


def study(name: str, floor: str | None, scanner: Scanner) -> dict[str, Any]:
    """One row (or a 'no NumPy C API' / 'not found' verdict) for ``name``."""
    found = releases(name, floor)
    if not found:
        return {"name": name, "verdict": "no manylinux x86_64 wheels at or above the floor"}

    def scan(item: tuple[Version, str]) -> Scan:
        return scanner.scan(name, *item)

    latest, oldest = scan(found[-1]), scan(found[0])
    if latest.numpy2 is None and oldest.numpy2 is None:
        return {"name": name, "verdict": "no-numpy-c-api", "scanned": [str(found[0][0]), str(found[-1][0])]}
    index = first_where(found, lambda item: scan(item).numpy2 is True)
    if index is None:
        return {"name": name, "verdict": f"no NumPy 2 build up to {found[-1][0]}"}
    if index == 0:
        return {"name": name, "verdict": f"{found[0][0]}, the oldest release searched (floor {floor or DATE_FLOOR}) "
                "with a manylinux wheel, is already a NumPy 2 build: no NumPy 1.x wheel to compare"}
    last_numpy1 = scanner.scan(name, *found[index - 1], want_binding=True)
    row: dict[str, Any] = {"name": name, "numpy2_from": str(found[index][0]),
                           "last_numpy1_build": str(found[index - 1][0]),
                           "numpy1_failure": "import" if last_numpy1.numpy1_binding == "c-api" else "first-array-call",
                           "wheel": scan(found[index]).wheel}
    later = found[index:]

    def declared(item: tuple[Version, str]) -> str | None:
        return declared_numpy2_only(list(scan(item).requires), item[1].split("-")[-3])

    def needs_numpy2(item: tuple[Version, str]) -> bool:
        feature = scan(item).feature
        return (feature is not None and Version(feature) >= Version("2.0")) or declared(item) is not None

    only = first_where(later, needs_numpy2)
    if only is not None:
        version = later[only][0]
        feature = scan(later[only]).feature
        declared_line = declared(later[only])
        evidence = []
        if feature and Version(feature) >= Version("2.0"):
            evidence.append(f"binary C-API target NumPy {feature}")
        if declared_line:
            evidence.append(f"declares {declared_line}")
        row.update(numpy2_only_from=str(version), numpy2_only_evidence="; ".join(evidence))
    return row


# --- TOML output ------------------------------------------------------------------------------------

HEADER = """\
# NumPy C API per release of compiled packages: under NumPy >= 2 a module built against NumPy 1.x fails at import
# ("_ARRAY_API not found", "numpy.dtype size changed", "A module that was compiled using NumPy 1.x cannot be run in
# NumPy 2"); a release built for NumPy 2 only fails under NumPy 1.x.
#
# [[package]] keys: name; numpy2_from = first release built against NumPy 2; numpy2_only_from = first release that
# needs NumPy 2 at run time (optional); os = "windows"/"linux"/"darwin" for a row that holds on that OS only (it
# replaces the row without os there); last_numpy1_build (evidence); numpy1_failure = "import" (a NumPy 1.x build
# calls import_array when imported: the import fails) or "first-array-call" (pybind11 < 2.12 / rust-numpy look the
# API up at the first array they handle), default "import"; method = "wheel-scan" (generated) or "hand"; sources;
# note.
# Rows with method = "wheel-scan" are generated by `python tools/gen_numpy_abi.py` (last run {date}): for each
# package it bisects its PyPI releases, downloading one manylinux x86_64 CPython wheel per probe with
# `pip download --no-deps` and reading the NumPy import strings its extension modules carry (see the script).
# Rows with method = "hand" are kept by hand, each with its source; the script keeps them as they are.
"""


def toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def render(rows: list[dict[str, Any]], no_numpy: list[str], date: str) -> str:
    order = ("name", "os", "numpy2_from", "numpy2_only_from", "numpy2_only_evidence", "last_numpy1_build",
             "numpy1_failure", "method", "wheel", "sources", "note")
    parts = [HEADER.format(date=date), "[scan]", f"generated = {toml_value(date)}",
             "# Scanned, and no release at either end of the searched range links NumPy's C API (ctypes, Rust,",
             "# nanobind without NumPy, or pure Python): the NumPy 1/2 switch does not break them at import.",
             f"no_numpy_c_api = {toml_value(sorted(no_numpy))}", ""]
    for row in sorted(rows, key=lambda r: (r["name"], r.get("os", ""))):
        parts.append("[[package]]")
        parts.extend(f"{key} = {toml_value(row[key])}" for key in order if key in row)
        parts.append("")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="scan only these packages (other generated rows are kept)")
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    existing = tomllib.loads(args.out.read_text()) if args.out.exists() else {}
    kept = [r for r in existing.get("package", []) if r.get("method") == "hand"]
    names = args.only or sorted(PACKAGES)
    if args.only:  # a partial run keeps the other generated rows
        kept += [r for r in existing.get("package", []) if r.get("method") != "hand" and r["name"] not in names]
    no_numpy = [n for n in existing.get("scan", {}).get("no_numpy_c_api", []) if args.only and n not in names]
    scanner = Scanner(args.cache)
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        results = list(pool.map(lambda name: _study_logged(name, scanner), names))
    rows = list(kept)
    for result in results:
        verdict = result.pop("verdict", None)
        if verdict == "no-numpy-c-api":
            no_numpy.append(result["name"])
        elif verdict:
            print(f"{result['name']}: {verdict}", file=sys.stderr)
        else:
            rows.append({**result, "method": "wheel-scan", "sources": [SOURCE_ID]})
    args.out.write_text(render(rows, no_numpy, datetime.date.today().isoformat()))
    print(f"wrote {args.out}: {len(rows)} rows, {len(no_numpy)} packages without NumPy C API", file=sys.stderr)
    return 0


def _study_logged(name: str, scanner: Scanner) -> dict[str, Any]:
    try:
        result = study(name, PACKAGES[name], scanner)
    except (subprocess.SubprocessError, urllib.error.URLError, ValueError, OSError) as exc:
        result = {"name": name, "verdict": f"scan failed: {exc}"}
    print(f"{name}: {result}", file=sys.stderr, flush=True)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
