"""Top-level modules owned by two installed distributions, and modules from a fork (matrices/module_owners.json):
the generator's reading of top_level.txt and RECORD (no network), the table's shape, and the check on snapshots."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.module_owners import load_module_owners
from envdoctor.matrices import MatrixError, default_root, load_matrices
from envdoctor.snapshot import snapshot_from_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
gen = importlib.import_module("gen_module_owners")

RULES = ("module-installed-twice", "module-from-fork")
H100 = {"driver": "550.54.15", "cuda_driver": "12.4",
        "gpus": [{"index": 0, "name": "NVIDIA H100", "compute_capability": "9.0", "memory_mib": 81559}]}


# --- the generator's parsing (no network) -------------------------------------------------------------


def test_top_level_txt_lists_first_parts_of_identifiers() -> None:
    assert gen.top_level_names("cv2\n\nfoo/bar\n-bad\n  PIL  \n") == {"cv2", "foo", "PIL"}


def test_record_gives_packages_files_and_extensions_but_not_namespaces() -> None:
    record = "\n".join([
        "cv2/__init__.py,sha256=x,10",
        "cv2/data/haar.xml,sha256=x,10",
        "pynvml.py,sha256=x,10",
        "_foo.cpython-311-x86_64-linux-gnu.so,sha256=x,10",
        "nvidia/cublas/lib/libcublas.so.12,sha256=x,10",  # namespace package: no __init__.py
        "tests/__init__.py,sha256=x,10",
        "opencv_python.libs/libz.so,sha256=x,10",
        "pkg-1.0.data/purelib/extra/__init__.py,sha256=x,10",
        "pkg-1.0.data/scripts/run,sha256=x,10",
        "opencv_python-4.10.0.dist-info/RECORD,,",
        "fast/__init__.cpython-311-x86_64-linux-gnu.so,sha256=x,10",
    ])
    paths = gen.record_paths(record)
    assert gen.modules_of(paths) == ("_foo", "cv2", "extra", "fast", "pynvml")
    assert gen.modules_of(paths, claimed={"cv2", "nvidia"}) == ("cv2",)


def test_sdist_egg_info_top_level() -> None:
    names = ["whisper-1.1.10/whisper.py", "whisper-1.1.10/whisper.egg-info/top_level.txt"]
    assert gen.sdist_modules(names, lambda name: "whisper\n") == ("whisper",)
    assert gen.sdist_modules(["x-1.0/setup.py"], lambda name: "") is None


def test_series_with_the_same_modules_merge_and_a_change_splits_the_range() -> None:
    reads = [gen.SeriesRead(8, "8.0.1", "8.0.4", ("pynvml",), "a.whl", {}),
             gen.SeriesRead(11, "11.0.0", "11.5.3", ("pynvml", "pynvml_utils"), "b.whl", {}),
             gen.SeriesRead(12, "12.0.0", "12.0.1", ("pynvml_utils",), "c.whl", {}),
             gen.SeriesRead(13, "13.0.0", "13.0.1", ("pynvml_utils",), "d.whl", {})]
    entries = gen.merged(reads)
    assert [(e["versions"], e["modules"], e["release_read"]) for e in entries] == [
        (">=8.0.1,<11.0.0", ["pynvml"], "8.0.4"),
        (">=11.0.0,<12.0.0", ["pynvml", "pynvml_utils"], "11.5.3"),
        (">=12.0.0", ["pynvml_utils"], "13.0.1"),
    ]


def test_module_version_reads_the_top_level_assignment() -> None:
    assert gen.module_version('"""doc"""\n__version__ = "4.26.1"\n') == "4.26.1"
    assert gen.module_version("def f():\n    __version__ = '1'\n") is None


# --- the table ----------------------------------------------------------------------------------------


def test_every_row_has_modules_releases_and_a_source() -> None:
    raw = json.loads((default_root() / "module_owners.json").read_text(encoding="utf-8"))
    assert raw["generator"] == "tools/gen_module_owners.py" and raw["command"].startswith("python ")
    for name, row in raw["distributions"].items():
        assert isinstance(row["modules"], list) and row["source"] and row["read"], name
        assert row["releases"] and all(isinstance(entry["modules"], list) for entry in row["releases"]), name
    table = load_module_owners(load_matrices(default_root()))
    assert table is not None
    assert {"opencv-python", "onnxruntime-gpu", "nvidia-ml-py", "adapter-transformers"} <= set(table.owners)
    assert table.owners["onnxruntime"].build == "cpu" and table.owners["onnxruntime-gpu"].build == "cuda"
    fork = table.owners["adapter-transformers"].stands_in
    assert fork is not None and fork.project == "transformers" and fork.relation == "fork_of"


def test_a_malformed_row_is_reported_with_its_key(tmp_path: Path) -> None:
    root = tmp_path / "matrices"
    shutil.copytree(default_root(), root)
    path = root / "module_owners.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["distributions"]["opencv-python"]["releases"][0]["versions"] = "not a specifier"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(MatrixError, match="distributions.opencv-python: releases"):
        load_module_owners(load_matrices(root))


# --- the check ----------------------------------------------------------------------------------------


def _findings(tmp_path: Path, packages: dict[str, str | None], nvidia: dict[str, Any] | None = None) -> list:
    raw: dict[str, Any] = {"schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"},
                           "packages": {name: {"version": version} for name, version in packages.items()}}
    if nvidia is not None:
        raw["nvidia"] = nvidia
    report = run_check(snapshot_from_dict(raw), stack=None, cwd=tmp_path)
    return [f for f in report.findings if f.rule in RULES]


def test_two_opencv_builds_give_one_finding_naming_both(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, {"opencv-python": "4.10.0.84", "opencv-python-headless": "4.9.0.80"})
    assert finding.rule == "module-installed-twice" and finding.severity.value == "warn" and finding.verified
    assert finding.category.value == "version"
    assert set(finding.components) == {"opencv-python", "opencv-python-headless"} and "cv2" in finding.message
    assert finding.fix is not None and finding.fix.startswith("pip uninstall -y opencv-python opencv-python-headless")


def test_cpu_and_gpu_builds_are_a_cuda_build_problem_and_the_gpu_one_is_kept(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, {"onnxruntime": "1.18.0", "onnxruntime-gpu": "1.18.0"}, nvidia=H100)
    assert finding.category.value == "cuda-build" and "CPU" in finding.message
    assert finding.fix == 'pip uninstall -y onnxruntime onnxruntime-gpu && pip install "onnxruntime-gpu==1.18.0"'
    (no_gpu,) = _findings(tmp_path, {"faiss-cpu": "1.8.0", "faiss-gpu-cu12": None}, nvidia={"gpus": []})
    assert no_gpu.fix is not None and no_gpu.fix.endswith('pip install "faiss-cpu==1.8.0"')


def test_cuda_builds_for_two_cuda_majors_keep_the_one_the_driver_runs(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, {"cupy-cuda11x": "13.0.0", "cupy-cuda12x": "13.0.0"}, nvidia=H100)
    assert finding.category.value == "cuda-build" and "modules cupy, cupy_backends, cupyx:" in finding.message
    assert finding.fix is not None and 'pip install "cupy-cuda12x==13.0.0"' in finding.fix.split("#")[0]


def test_old_pynvml_beside_nvidia_ml_py_but_not_the_current_one(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, {"pynvml": "11.5.0", "nvidia-ml-py": "12.535.133"})
    assert "pynvml" in finding.message and finding.verified
    assert _findings(tmp_path, {"pynvml": "12.0.0", "nvidia-ml-py": "12.535.133"}) == []
    (unknown,) = _findings(tmp_path, {"pynvml": None, "nvidia-ml-py": "12.535.133"})
    assert not unknown.verified and "version unknown" in unknown.message


def test_a_fork_alone_warns_and_beside_the_real_package_gives_the_pair(tmp_path: Path) -> None:
    (alone,) = _findings(tmp_path, {"adapter-transformers": "3.2.1"})
    assert alone.rule == "module-from-fork" and alone.severity.value == "warn"
    assert "fork of transformers" in alone.message and "4.26.1" in alone.message and "4.28.0" in alone.message
    assert alone.fix == "pip uninstall -y adapter-transformers && pip install transformers"
    (pair,) = _findings(tmp_path, {"adapter-transformers": "3.2.1", "transformers": "4.40.0"})
    assert pair.rule == "module-installed-twice" and set(pair.components) == {"adapter-transformers", "transformers"}
    assert _findings(tmp_path, {"adapter-transformers": "4.0.0"}) == []  # 4.0 installs only the adapters package
    (namesake,) = _findings(tmp_path, {"whisper": "1.1.10"})
    assert "openai-whisper" in namesake.message and namesake.fix.endswith("pip install openai-whisper")


def test_one_ordinary_owner_gives_nothing(tmp_path: Path) -> None:
    assert _findings(tmp_path, {"opencv-python": "4.10.0.84", "transformers": None, "onnxruntime-gpu": None}) == []


def test_snapshot_versions_are_not_trusted(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, {"onnxruntime": "$(reboot)", "onnxruntime-gpu": "1.18.0"}, nvidia=H100)
    assert "$(reboot)" not in (finding.fix or "") and "reboot" not in (finding.fix or "")
    assert "$(reboot)" not in finding.message and finding.verified  # every onnxruntime release installs it


@pytest.mark.network
def test_the_generator_reads_pynvml_from_pypi() -> None:
    row = gen.study(gen.Listed("pynvml", {}))
    assert row is not None and "pynvml" in row["releases"][0]["modules"] and "pynvml" not in row["modules"]


def test_a_group_of_modules_is_judged_on_one_both_owners_certainly_install_whatever_the_order() -> None:
    """tensorflow and tensorflow-cpu of unknown versions share `tensorflow` (every release) and `tensorflow_core`
    (some releases): the finding is verified from the module both certainly install, in any listing order."""
    from envdoctor.checks.module_owners import Claim, _surest

    owner = load_module_owners(load_matrices()).owners["tensorflow"]
    sure, maybe = Claim(owner, None, True, None), Claim(owner, None, False, None)
    claims = {"tensorflow_core": {"a": maybe, "b": sure}, "tensorflow": {"a": sure, "b": sure}}
    for modules in (["tensorflow_core", "tensorflow"], ["tensorflow", "tensorflow_core"]):
        assert _surest(claims, modules, ("a", "b")) == "tensorflow"
    assert _surest({"x": {"a": maybe}, "w": {"a": maybe}}, ["x", "w"], ("a",)) == "w"  # none sure: first by name
