from importlib import metadata

import pytest

from envdoctor.probe.torch_build import find_torch_dir, probe_torch_build, read_version_py
from envdoctor.snapshot import Snapshot, TorchBuild, snapshot_from_dict

VERSION_PY = """from typing import Optional

__all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip']
__version__ = '{version}'
debug = False
cuda: Optional[str] = {cuda}
git_version = 'd44533f9d073df13895333e70b66f81c513c1889'
hip: Optional[str] = None
"""


def _fake_torch(root, version, cuda, cmake_flags=None, init_text=None):
    torch_dir = root / "torch"
    torch_dir.mkdir()
    (torch_dir / "version.py").write_text(VERSION_PY.format(version=version, cuda=cuda))
    if cmake_flags is not None:
        cmake = torch_dir / "share" / "cmake" / "Torch"
        cmake.mkdir(parents=True)
        (cmake / "TorchConfig.cmake").write_text(f'  set(TORCH_CXX_FLAGS "{cmake_flags}")\n')
    (torch_dir / "__init__.py").write_text(init_text or "")
    return torch_dir


def test_old_torch_with_abi_flag_in_cmake(tmp_path):
    torch_dir = _fake_torch(tmp_path, "2.3.1+cu121", "'12.1'", cmake_flags="-D_GLIBCXX_USE_CXX11_ABI=0")
    assert probe_torch_build(torch_dir) == TorchBuild(version="2.3.1+cu121", cuda="12.1", cxx11abi=False)


def test_new_abi_flag_in_cmake(tmp_path):
    torch_dir = _fake_torch(tmp_path, "2.5.1+cu124", "'12.4'", cmake_flags="-D_GLIBCXX_USE_CXX11_ABI=1")
    assert probe_torch_build(torch_dir).cxx11abi is True


def test_new_torch_without_flag_reads_hard_coded_abi(tmp_path):
    init = 'def compiled_with_cxx11_abi() -> builtins.bool:\n    r"""Returns whether ..."""\n    return True\n'
    torch_dir = _fake_torch(tmp_path, "2.8.0+cu128", "'12.8'", cmake_flags="", init_text=init)
    assert probe_torch_build(torch_dir).cxx11abi is True


def test_abi_unknown_when_no_file_tells(tmp_path):
    init = "def compiled_with_cxx11_abi() -> builtins.bool:\n    return _C._GLIBCXX_USE_CXX11_ABI\n"
    torch_dir = _fake_torch(tmp_path, "2.6.0", "None", init_text=init)
    build = probe_torch_build(torch_dir)
    assert build == TorchBuild(version="2.6.0", cuda=None, cxx11abi=None, archs=None, cuda_none=True)


def test_cpu_build_is_written_as_null_cuda_and_unknown_cuda_left_out(tmp_path):
    cpu = probe_torch_build(_fake_torch(tmp_path, "2.6.0", "None"))
    assert cpu.cuda_none and Snapshot(torch=cpu).to_dict()["torch"]["cuda"] is None
    assert "cuda" not in Snapshot(torch=TorchBuild(version="2.6.0")).to_dict()["torch"]
    for build in (cpu, TorchBuild(version="2.6.0")):
        assert snapshot_from_dict(Snapshot(torch=build).to_dict()).torch == build


def test_unreadable_version_py_gives_unknowns(tmp_path):
    torch_dir = tmp_path / "torch"
    torch_dir.mkdir()
    (torch_dir / "version.py").write_text("__version__ = (")
    assert probe_torch_build(torch_dir) == TorchBuild()
    assert read_version_py(tmp_path / "missing.py") == {}


def test_real_installed_torch_without_importing_it():
    import sys

    if find_torch_dir() is None:
        pytest.skip("torch is not installed in this environment")
    build = probe_torch_build()
    assert "torch" not in sys.modules or build is not None
    assert build.version == metadata.version("torch")
    if "+cpu" in build.version:
        assert build.cuda is None
    assert build.cxx11abi is not None  # every torch release from 2.0 on states it in one of the files read
