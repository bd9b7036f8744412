import os
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


def test_nvcc_printing_binary_garbage_is_unknown_and_quiet(tmp_path, capfd):
    garbage = r"printf '\377\376\000\201release \377 12.x\n'; head -c 2048 /dev/urandom"
    nvcc = _script(tmp_path / "bin" / "nvcc", garbage)
    assert probe_cuda_toolkit(nvcc).nvcc is None
    assert capfd.readouterr().err == ""


def test_nvcc_printing_without_end_is_cut_off(tmp_path):
    nvcc = _script(tmp_path / "bin" / "nvcc", "exec cat /dev/zero")
    started = time.monotonic()
    assert probe_cuda_toolkit(nvcc, timeout=5).nvcc is None
    assert time.monotonic() - started < 5


def test_nvcc_whose_child_keeps_the_pipe_open_times_out(tmp_path):
    nvcc = _script(tmp_path / "bin" / "nvcc", "sleep 30 &\necho 'Cuda compilation tools, release 12.4, V12.4.131'")
    started = time.monotonic()
    toolkit = probe_cuda_toolkit(nvcc, timeout=0.5)
    assert toolkit.nvcc is None  # its output never ended within the timeout
    assert time.monotonic() - started < 5


def test_probe_with_a_garbage_nvcc_on_path_prints_no_traceback(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    _script(tmp_path / "bin" / "nvcc", "head -c 4096 /dev/urandom")
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "envdoctor", "probe"], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert '"nvcc": null' in done.stdout


def test_the_host_gcc_is_read_from_dumpfullversion(tmp_path):
    from envdoctor.probe.toolkit import read_host_gcc

    gcc = _script(tmp_path / "bin" / "gcc", 'test "$1" = -dumpfullversion && echo 11.4.0')
    assert read_host_gcc(5, str(gcc)) == "11.4.0"
    assert read_host_gcc(5, str(_script(tmp_path / "old" / "gcc", "echo 'gcc: unrecognized option'"))) is None
    assert read_host_gcc(0.5, str(_script(tmp_path / "hang" / "gcc", "exec sleep 30"))) is None


def test_nvcc_ccbin_names_the_host_compiler_and_clang_is_not_read_as_gcc(tmp_path, monkeypatch):
    from envdoctor.probe.toolkit import host_compiler

    bindir = tmp_path / "gcc-9"
    _script(bindir / "gcc", "echo 9.5.0")
    monkeypatch.setenv("NVCC_CCBIN", str(bindir))
    assert host_compiler() == str(bindir / "gcc")
    monkeypatch.setenv("NVCC_CCBIN", "/usr/bin/clang++-17")
    assert host_compiler() is None
    monkeypatch.setenv("NVCC_CCBIN", "/usr/bin/g++-12")
    assert host_compiler() == "/usr/bin/g++-12"


def test_the_toolkit_probe_reads_gcc_only_where_nvcc_is(tmp_path, monkeypatch):
    from envdoctor.probe.toolkit import probe_toolkit_facts

    _script(tmp_path / "bin" / "gcc", "echo 13.2.0")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("NVCC_CCBIN", raising=False)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    if not os.access("/usr/local/cuda/bin/nvcc", os.X_OK):  # the probe's last place to look for nvcc
        facts = probe_toolkit_facts()
        assert (facts.toolkit.nvcc, facts.gcc) == (None, None)
    _script(tmp_path / "bin" / "nvcc", "echo 'Cuda compilation tools, release 12.4, V12.4.131'")
    facts = probe_toolkit_facts()
    assert (facts.toolkit.nvcc, facts.gcc) == ("12.4", "13.2.0")
