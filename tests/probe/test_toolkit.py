import time

from envdoctor.probe.toolkit import parse_nvcc_release, probe_cuda_toolkit

NVCC_OUTPUT = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2024 NVIDIA Corporation
Built on Thu_Mar_28_02:18:24_PDT_2024
Cuda compilation tools, release 12.4, V12.4.131
Build cuda_12.4.r12.4/compiler.34097967_0
"""


def _script(path, body):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_parse_release():
    assert parse_nvcc_release(NVCC_OUTPUT) == "12.4"
    assert parse_nvcc_release("garbage") is None


def test_reads_release_and_home_from_nvcc(tmp_path):
    nvcc = _script(tmp_path / "cuda-12.4" / "bin" / "nvcc", f"cat <<'EOF'\n{NVCC_OUTPUT}EOF")
    toolkit = probe_cuda_toolkit(nvcc)
    assert toolkit.nvcc == "12.4"
    assert toolkit.home == str(tmp_path / "cuda-12.4")


def test_hanging_nvcc_times_out(tmp_path):
    nvcc = _script(tmp_path / "bin" / "nvcc", "exec sleep 30")
    started = time.monotonic()
    toolkit = probe_cuda_toolkit(nvcc, timeout=0.5)
    assert toolkit.nvcc is None
    assert time.monotonic() - started < 5


def test_failing_nvcc_gives_unknown(tmp_path):
    nvcc = _script(tmp_path / "bin" / "nvcc", "echo 'error while loading shared libraries' >&2; exit 127")
    assert probe_cuda_toolkit(nvcc).nvcc is None
