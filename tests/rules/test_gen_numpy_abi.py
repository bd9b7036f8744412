"""tools/gen_numpy_abi.py: reading wheels for their NumPy C API, the bisection, and a table the loader accepts."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

from envdoctor.numpy_abi import parse_numpy_abi

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gen_numpy_abi", ROOT / "tools" / "gen_numpy_abi.py")
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_numpy_abi"] = gen
_spec.loader.exec_module(gen)

NUMPY2_MODULE = (b"\x7fELF...numpy._core._multiarray_umath\x00numpy.core._multiarray_umath\x00module was compiled "
                 b"against NumPy C-API version 0x%x (NumPy 1.23) but the running NumPy has C-API version 0x%x")
NUMPY1_MODULE = b"\x7fELF...numpy.core._multiarray_umath\x00module compiled against ABI version 0x%x"
CYTHON_NUMPY1_MODULE = (b"\x7fELF...numpy.core.multiarray\x00%.200s.%.200s size changed, may indicate binary "
                        b"incompatibility. Expected %zd from C header, got %zd from PyObject")  # type check at import
PYBIND11_NUMPY1_MODULE = b"\x7fELF...numpy.core.multiarray\x00_ARRAY_API\x00"  # pybind11 < 2.12: looked up lazily


def _wheel(tmp_path: Path, modules: dict[str, bytes], requires: tuple[str, ...] = ()) -> Path:
    path = tmp_path / "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    metadata = "Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("pkg-1.0.dist-info/METADATA", metadata)
        wheel.writestr("pkg/__init__.py", "import numpy\n")
        for name, data in modules.items():
            wheel.writestr(name, data)
    return path


def test_numpy2_build_and_its_runtime_floor(tmp_path: Path) -> None:
    optional = NUMPY2_MODULE.replace(b"NumPy 1.23", b"NumPy 2.0")  # one optional module may target NumPy 2 only
    scan = gen.scan_wheel(_wheel(tmp_path, {"pkg/a.cpython-311-x86_64-linux-gnu.so": NUMPY2_MODULE,
                                            "pkg/b.cpython-311-x86_64-linux-gnu.so": NUMPY2_MODULE,
                                            "pkg/c.cpython-311-x86_64-linux-gnu.so": optional},
                                 ("numpy>=1.23", "rich; extra == 'cli'")))
    assert (scan.numpy2, scan.feature, scan.feature_max, scan.requires) == (True, "1.23", "2.0", ("numpy>=1.23",))


def test_numpy1_build_and_no_numpy_at_all(tmp_path: Path) -> None:
    for name in ("c-api", "cython", "pybind11", "none"):
        (tmp_path / name).mkdir()
    c_api = gen.scan_wheel(_wheel(tmp_path / "c-api", {"pkg/a.abi3.so": NUMPY1_MODULE}))
    assert (c_api.numpy2, c_api.numpy1_binding) == (False, "c-api")
    cython = gen.scan_wheel(_wheel(tmp_path / "cython", {"pkg/a.abi3.so": CYTHON_NUMPY1_MODULE}))
    assert (cython.numpy2, cython.numpy1_binding) == (False, "c-api")
    pybind11 = gen.scan_wheel(_wheel(tmp_path / "pybind11", {"pkg/a.abi3.so": PYBIND11_NUMPY1_MODULE}))
    assert (pybind11.numpy2, pybind11.numpy1_binding) == (False, "lazy")
    assert gen.scan_wheel(_wheel(tmp_path / "none", {"pkg/a.abi3.so": b"\x7fELF plain"})).numpy2 is None


@pytest.mark.parametrize(("requires", "expected"), [
    (["numpy>=2.0.0,<2.8"], "numpy>=2.0.0,<2.8"),
    (["numpy>=1.23.2"], None),
    (['numpy>=2.0.2; python_version < "3.14"'], 'numpy>=2.0.2; python_version < "3.14"'),
    (['numpy>=2.1; python_version >= "3.13"', "numpy>=1.22"], None),  # the cp311 wheel's marker excludes the floor
])
def test_declared_numpy2_floor_is_read_for_the_wheels_python(requires: list[str], expected: str | None) -> None:
    assert gen.declared_numpy2_only(requires, "cp311") == expected


def test_bisection_finds_the_first_release_where_it_holds() -> None:
    items = list(range(20))
    seen: list[int] = []

    def from_seven(item: int) -> bool:
        seen.append(item)
        return item >= 7

    assert gen.first_where(items, from_seven) == 7 and len(seen) <= 6
    assert gen.first_where(items, lambda item: False) is None


def test_rendered_table_loads_and_keeps_hand_rows(tmp_path: Path) -> None:
    rows = [{"name": "pandas", "numpy2_from": "2.2.2", "last_numpy1_build": "2.2.1", "method": "wheel-scan",
             "wheel": "pandas-2.2.2-cp311-cp311-manylinux_2_17_x86_64.whl", "sources": ["numpy-abi-wheel-scan"]},
            {"name": "torch", "os": "windows", "numpy2_from": "2.4.1", "method": "hand", "sources": ["pytorch-131668"],
             "note": "kept by hand"}]
    text = gen.render(rows, ["torchvision"], "2026-12-06")
    errors: list[str] = []
    table = parse_numpy_abi(gen.tomllib.loads(text), tmp_path / "numpy_abi.toml", errors)
    assert errors == []
    assert [(r.package, r.os, r.numpy2_from) for r in table.rows] == [("pandas", None, Version("2.2.2")),
                                                                       ("torch", "windows", Version("2.4.1"))]
    assert table.no_numpy_c_api == ("torchvision",)


@pytest.mark.network
@pytest.mark.slow
def test_live_scan_finds_pandas_first_numpy2_build(tmp_path: Path) -> None:
    row = gen.study("pandas", "2.2.0", gen.Scanner(tmp_path / "cache.json"))
    assert (row["numpy2_from"], row["last_numpy1_build"]) == ("2.2.2", "2.2.1")
