"""tools/gen_numpy1_floors.py: reading the NumPy a compiled module was built against from its machine code."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gen_numpy1_floors", ROOT / "tools" / "gen_numpy1_floors.py")
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_numpy1_floors"] = gen
_spec.loader.exec_module(gen)

# What Cython's type import and numpy/__multiarray_api.h's _import_array compile to: a call whose arguments are the
# module and type names with sizeof(PyArrayObject), and an error call with NPY_FEATURE_VERSION.
MODULE_SOURCE = """
extern void *__Pyx_ImportType(void *m, const char *mod, const char *cls, unsigned long size, int check);
extern int PyErr_Format(void *exc, const char *fmt, ...);
void *exc;
void *init(void *m) { return __Pyx_ImportType(m, "numpy", "ndarray", ARRAY_SIZE, 2); }
int api(int v) {
    if (v < FEATURE) {
        PyErr_Format(exc, "module compiled against API version 0x%x but this version of numpy is 0x%x", FEATURE, v);
        return -1;
    }
    return 0;
}
"""

needs_toolchain = pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("objdump")),
                                     reason="needs gcc and binutils' objdump (x86_64)")


def _module(tmp_path: Path, size: int, api: int) -> Path:
    source = tmp_path / "module.c"
    source.write_text(MODULE_SOURCE.replace("ARRAY_SIZE", str(size)).replace("FEATURE", hex(api)))
    out = tmp_path / f"module_{size}_{api}.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(out), str(source)], check=True)
    return out


@needs_toolchain
@pytest.mark.parametrize(("size", "api"), [(80, 0xd), (88, 0xe), (96, 0xf), (96, 0x10)])
def test_the_ndarray_size_and_the_api_version_are_read_from_the_call_sites(tmp_path: Path, size: int,
                                                                           api: int) -> None:
    if subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip() != "x86_64":
        pytest.skip("the reader reads x86_64 machine code")
    module = _module(tmp_path, size, api)
    assert gen.module_floors(module.read_bytes(), module) == {"ndarray_size": size, "api_version": api}


def test_sizes_and_api_versions_map_to_the_first_numpy_that_has_them() -> None:
    assert gen.NDARRAY_SIZES == {80: None, 88: "1.20", 96: "1.22"}
    assert gen.API_VERSIONS[0xe] == "1.20" and gen.API_VERSIONS[0xf] == "1.22" and gen.API_VERSIONS[0x10] == "1.23"


def test_the_declared_floor_is_the_lowest_lower_bound() -> None:
    assert gen.declared_floor(["numpy (>=1.17.0)"]) == Version("1.17.0")
    assert gen.declared_floor(["numpy>=1.21.6,<1.28.0"]) == Version("1.21.6")
    assert gen.declared_floor(["numpy<2"]) is None
    assert gen.declared_floor(["numpy>=1.19; python_version<'3.9'", "numpy>=1.21; python_version>='3.9'"]) \
        == Version("1.19")
