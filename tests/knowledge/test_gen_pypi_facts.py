"""tools/gen_pypi_facts.py: parsing PyPI's release list and METADATA (saved fixtures), and one live regeneration."""

from __future__ import annotations

import importlib.util
import io
import json
import random
import sys
import urllib.error
import zipfile
from pathlib import Path

import pytest

from envdoctor import pypi_release

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
_spec = importlib.util.spec_from_file_location("gen_pypi_facts", ROOT / "tools" / "gen_pypi_facts.py")
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_pypi_facts"] = gen
_spec.loader.exec_module(gen)

# numpy's release list as https://pypi.org/pypi/numpy/json gave it, cut to 1.26.4, 2.4.0rc1 and 2.4.0.
INDEX = json.loads((DATA / "numpy_index_sample.json").read_text())
# The METADATA headers of torch-2.4.0-cp312-cp312-manylinux1_x86_64.whl.
TORCH_METADATA = (DATA / "torch-2.4.0-METADATA.txt").read_text()


@pytest.mark.parametrize(("filename", "tags"), [
    ("torch-2.4.0-cp311-cp311-manylinux1_x86_64.whl", {"cp311-linux_x86_64"}),
    ("numpy-1.26.4-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", {"cp312-linux_aarch64"}),
    ("numpy-1.26.4-cp39-cp39-macosx_10_9_universal2.whl", {"cp39-macosx_arm64", "cp39-macosx_x86_64"}),
    ("torch-2.3.1-cp310-none-macosx_11_0_arm64.whl", {"cp310-macosx_arm64"}),
    ("bitsandbytes-0.43.1-py3-none-win_amd64.whl", {"py3-win_amd64"}),
    ("safetensors-0.4.3-cp37-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", {"cp37-abi3-linux_x86_64"}),
    ("six-1.16.0-py2.py3-none-any.whl", {"py3-any"}),
    ("numpy-1.26.4-pp39-pypy39_pp73-win_amd64.whl", set()),
    ("numpy-2.4.0-cp311-cp311-musllinux_1_2_x86_64.whl", {"cp311-musllinux_x86_64"}),
])
def test_wheel_tags(filename: str, tags: set[str]) -> None:
    assert pypi_release.wheel_tags(filename) == tags


@pytest.mark.parametrize(("marker", "only_extra"), [
    ('extra == "opt-einsum"', True),
    ("python_version < '3.10' and extra == 'dev'", True),
    ('(platform_system == "Linux" or sys_platform == "darwin") and extra == "gpu"', True),
    ('python_version < "3.8" or extra == "test"', False),
    ('platform_system == "Linux" and platform_machine == "x86_64"', False),
    (None, False),
])
def test_extra_only_markers(marker: str | None, only_extra: bool) -> None:
    assert pypi_release.applies_only_to_extra(marker) is only_extra


def test_requires_dist_keeps_markers_and_drops_extras() -> None:
    lines = pypi_release.requires_dist(TORCH_METADATA)
    assert 'triton (==3.0.0) ; platform_system == "Linux" and platform_machine == "x86_64" and ' \
           'python_version < "3.13"' in lines
    assert "filelock" in lines and "sympy" in lines
    assert not [line for line in lines if "opt-einsum" in line or "optree" in line]
    assert pypi_release.requires_python_of(TORCH_METADATA) == ">=3.8.0"


def test_release_list_keeps_final_releases_above_the_floor() -> None:
    assert pypi_release.kept_versions(INDEX["releases"], None) == ["1.26.4", "2.4.0"]
    assert pypi_release.kept_versions(INDEX["releases"], "2.0") == ["2.4.0"]
    files = pypi_release.release_files("1.26.4", INDEX["releases"]["1.26.4"])
    assert files.date == "2024-02-05" and files.sdist and files.requires_python == ">=3.9"
    assert {"cp312-linux_x86_64", "cp39-win_amd64", "cp312-macosx_arm64", "cp310-linux_aarch64"} <= set(files.wheels)
    assert not [tag for tag in files.wheels if tag.startswith(("pp", "py2"))]
    assert "manylinux" in files.metadata_wheel["filename"] and "x86_64" in files.metadata_wheel["filename"]
    entry = pypi_release.release_entry(files, "Metadata-Version: 2.1\nName: numpy\nRequires-Python: >=3.9\n\n", False)
    assert entry["requires"] == [] and entry["wheels"] == files.wheels and entry["yanked"] is False


def test_wheel_metadata_read_by_range_from_a_zip() -> None:
    """A wheel bigger than the tail fetch: only the central directory and METADATA ranges are read."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr("pkg/_ops.so", random.Random(0).randbytes(1 << 20))  # 1 MiB that does not compress
        wheel.writestr("pkg-1.0.dist-info/METADATA", TORCH_METADATA)
        wheel.writestr("pkg-1.0.dist-info/RECORD", "")
    blob = buffer.getvalue()
    asked: list[tuple[int, int] | None] = []

    def fetch(url: str, byte_range: tuple[int, int] | None) -> bytes:
        asked.append(byte_range)
        if byte_range is None:  # the PEP 658 file: not served here
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return blob[byte_range[0]:byte_range[1] + 1]

    url = "https://example.invalid/pkg-1.0-py3-none-any.whl"
    assert pypi_release.wheel_metadata(url, len(blob), fetch) == TORCH_METADATA
    fetched = sum(end - start + 1 for start, end in (r for r in asked if r is not None))
    assert fetched < len(blob) // 2


def test_dump_is_one_release_per_line_and_valid_json() -> None:
    document = {"package": "x", "releases": {"1.0": {"date": "2024-01-01"}, "1.1": {"date": "2024-02-01"}}}
    text = gen.dump(document)
    assert json.loads(text) == document
    assert len(text.splitlines()) == 4


@pytest.mark.network
def test_regenerating_a_small_package_matches_the_bundled_file() -> None:
    bundled = json.loads((ROOT / "matrices" / "pypi" / "liger-kernel.json").read_text())
    fresh = gen.generate("liger-kernel", {}, threads=2, tabled=gen.tabled_names(gen.CONFIG))
    assert fresh["source"] == bundled["source"]
    shared = set(bundled["releases"]) & set(fresh["releases"])
    assert len(shared) >= 30  # releases are never removed from PyPI, only yanked
    for version in shared:
        old, new = bundled["releases"][version], fresh["releases"][version]
        assert {k: v for k, v in new.items() if k != "yanked"} == {k: v for k, v in old.items() if k != "yanked"}


EXTRAS_METADATA = """Metadata-Version: 2.1
Name: diffusers
Requires-Dist: huggingface-hub>=0.27.0
Requires-Dist: peft>=0.17.0; extra == "training"
Requires-Dist: accelerate; extra == "training"
Requires-Dist: peft>=0.17.0; extra == "dev"
Requires-Dist: transformers>=4.41.2; extra == "test"
Requires-Dist: ruff==0.9.10; extra == "quality"
Requires-Dist: torch>=2.6; extra == "torch"
Requires-Dist: torch>=2.6; extra == "torch"
Requires-Dist: gguf>=0.10.0; extra == "gguf"

"""


def test_extra_requires_keeps_ranged_lines_on_tabled_packages_of_non_development_extras() -> None:
    tabled = {"peft", "accelerate", "transformers", "torch", "ruff"}
    assert pypi_release.extra_requires(EXTRAS_METADATA, tabled) == ['peft>=0.17.0; extra == "training"',
                                                           'torch>=2.6; extra == "torch"']
    assert pypi_release.requires_dist(EXTRAS_METADATA) == ["huggingface-hub>=0.27.0"]


def test_code_python_floor_reads_syntax_a_newer_python_needs() -> None:
    at_import = "import torch\n\n\ndef f(x: torch.Tensor | None = None) -> int:\n    return 1\n"
    in_class = "class A:\n    size: int | None = None\n"
    postponed = "from __future__ import annotations\n\n\ndef f(x: int | None) -> None:\n    pass\n"
    inside_function = "def f():\n    def g(x: int | None):\n        pass\n    y: int | None = None\n"
    quoted = "def f(x: 'int | None'):\n    pass\n"
    matching = "def f(x):\n    match x:\n        case 1:\n            return 1\n"
    assert gen.code_python_floor([("a.py", at_import)]) == (10, "a.py:4")
    assert gen.code_python_floor([("b.py", in_class)]) == (10, "b.py:2")
    assert gen.code_python_floor([("m.py", matching)]) == (10, "m.py:2")
    for text in (postponed, inside_function, quoted, "x = 1 | 2\n"):
        assert gen.code_python_floor([("c.py", text)]) is None, text
    assert gen.code_python_floor([("bad.py", "def (:\n"), ("a.py", at_import)]) == (10, "a.py:4")
    assert gen.python_lower_bound(">=3.9.0") == 9 and gen.python_lower_bound("<3.13,>=3.8") == 8
    assert gen.python_lower_bound(None) is None


def test_code_python_floor_reads_python_3_8_syntax_older_pythons_cannot_parse() -> None:
    walrus = "def f(a):\n    if (n := len(a)) > 1:\n        return n\n"
    positional_only = "def f(a, /, b=1):\n    return a\n"
    assert gen.code_python_floor([("w.py", walrus)]) == (8, "w.py:2")
    assert gen.code_python_floor([("p.py", positional_only)]) == (8, "p.py:1")
    assert gen.code_python_floor([("d.py", "x = a / b\ny = {'k': 1}\n")]) is None
    assert gen.code_python_floor([("w.py", walrus), ("a.py", "class A:\n    size: int | None = None\n")]) == \
        (10, "a.py:2")


def test_code_python_floor_skips_scripts_the_package_never_imports() -> None:
    at_import = "def f(x: int | None = None) -> int:\n    return 1\n"
    assert gen.code_python_floor([("pkg/models/x/convert_x_weights.py", at_import), ("pkg/__main__.py", at_import)]) \
        is None


def test_code_python_floor_reads_builtin_generics_python_3_8_cannot_subscript() -> None:
    annotation = "def f(names: list[str]) -> dict[str, int]:\n    return {}\n"
    alias = "from __future__ import annotations\n\nNames = tuple[str, ...]\n"
    postponed = "from __future__ import annotations\n\n\ndef f(names: list[str]) -> None:\n    pass\n"
    in_body = "def f():\n    x: list[str] = []\n    return list[int]\n"
    assert gen.code_python_floor([("a.py", annotation)]) == (9, "a.py:1")
    assert gen.code_python_floor([("b.py", alias)]) == (9, "b.py:3")  # a value is evaluated even when postponed
    for text in (postponed, in_body, "from typing import List\n\n\ndef f(x: List[str]):\n    pass\n"):
        assert gen.code_python_floor([("c.py", text)]) is None, text
