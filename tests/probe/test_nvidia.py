import ctypes
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import python_env
from envdoctor.probe._background import BackgroundCall
from envdoctor.probe._nvml_child import query
from envdoctor.probe.nvidia import NvidiaProbe, cuda_version_from_int, nvidia_from_dict, probe_nvidia
from envdoctor.snapshot import Gpu


def test_no_driver_here_is_recorded_not_raised():
    result = probe_nvidia()  # this machine has no NVIDIA driver: NVML's library is missing
    assert result.gpus == ()
    assert result.error and "NVML" in result.error
    assert result.driver is None


def test_cuda_version_from_int():
    assert cuda_version_from_int(13000) == "13.0"
    assert cuda_version_from_int(12040) == "12.4"
    assert cuda_version_from_int(11080) == "11.8"


class _FakeMemory:
    total = 81559 * 1024 * 1024


class _FakeNvml:
    """NVML's call surface with one H100; the real library cannot run on this GPU-less machine."""

    def nvmlSystemGetDriverVersion(self):
        return b"580.159.04"

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return 13000

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("handle", index)

    def nvmlDeviceGetName(self, handle):
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return (9, 0)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return _FakeMemory()


def test_reads_driver_cuda_and_gpus_from_nvml_answers():
    result = nvidia_from_dict(query(_FakeNvml()))
    assert result.driver == "580.159.04"
    assert result.cuda_driver == "13.0"
    assert result.error is None
    assert result.gpus == (Gpu(index=0, name="NVIDIA H100 80GB HBM3", compute_capability="9.0", memory_mib=81559),)


def test_background_call_gives_up_after_timeout():
    call = BackgroundCall(lambda: time.sleep(30) or "late", "sleeper")
    started = time.monotonic()
    assert call.result(0.2, lambda: "timed out") == "timed out"
    assert time.monotonic() - started < 2


def loaded_library_path(name: str) -> Path:
    """Where the dynamic loader finds ``name`` for this process (read from /proc/self/maps)."""
    ctypes.CDLL(name)
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.rstrip().endswith(name):
            return Path(line.split()[-1])
    pytest.skip(f"{name} is not in /proc/self/maps")


def fake_driver_library(folder: Path) -> dict:
    """An environment in which ``libnvidia-ml.so.1`` loads (it is libm under that name) but has no NVML in it."""
    (folder / "libnvidia-ml.so.1").symlink_to(loaded_library_path("libm.so.6"))
    return {"LD_LIBRARY_PATH": str(folder)}


def test_no_driver_library_starts_no_child():
    probe = NvidiaProbe()  # no libnvidia-ml.so.1 on this machine
    assert probe._child is None
    result = probe.result(5)
    assert result.error.startswith("NVML unavailable: NVML Shared Library Not Found (libnvidia-ml.so.1")


def test_the_child_imports_pynvml_without_ctypes_util_until_asked():
    code = textwrap.dedent("""
        import sys
        from _nvml_child import _import_pynvml  # as the child runs it: a script, no envdoctor imported
        pynvml = _import_pynvml()
        deferred = "shutil" not in sys.modules
        import ctypes.util
        print(deferred, bool(ctypes.util.find_library("c")), pynvml.__name__)
    """)
    child_dir = Path(__file__).resolve().parents[2] / "src" / "envdoctor" / "probe"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                          env=python_env([child_dir]), check=True)
    assert done.stdout.split() == ["True", "True", "pynvml"]


def test_hung_nvml_cannot_hang_probe(tmp_path):
    (tmp_path / "pynvml.py").write_text("import time\ndef nvmlInit():\n    time.sleep(60)\n")
    code = textwrap.dedent("""
        import time
        from envdoctor.probe import probe
        start = time.monotonic()
        snap = probe(timeout=0.5)
        print(round(time.monotonic() - start, 1), snap.nvidia.error, len(snap.packages))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                          env={**python_env([tmp_path]), **fake_driver_library(tmp_path)}, check=True)
    elapsed, rest = done.stdout.split(" ", 1)
    assert float(elapsed) < 5
    assert "did not answer within 0.5 s" in rest


def processes_with_marker(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker`` (zombies excluded)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if marker.encode() in (proc / "environ").read_bytes() and "zombie" not in (proc / "status").read_text():
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def test_check_launches_nvml_first_and_a_bad_command_line_leaves_no_child(tmp_path):
    """`envdoctor check` starts the NVML child before parsing; when nothing claims it (here: a bad flag), the child
    is killed at exit instead of hanging on in a stuck driver."""
    (tmp_path / "pynvml.py").write_text("import time\ndef nvmlInit():\n    time.sleep(60)\n")
    marker = f"ENVDOCTOR_TEST_MARKER={time.time_ns()}"
    env = {**python_env([tmp_path]), **fake_driver_library(tmp_path), "ENVDOCTOR_TEST_MARKER": marker.split("=")[1]}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "envdoctor", "check", "--no-such-flag"], capture_output=True,
                          text=True, timeout=30, env=env)
    assert done.returncode == 2 and time.monotonic() - started < 10
    time.sleep(0.3)
    assert processes_with_marker(marker) == []


def test_only_commands_that_probe_here_launch_early():
    from envdoctor.cli import _probes_this_machine

    assert _probes_this_machine(["check"]) and _probes_this_machine(["probe", "--json"])
    assert not _probes_this_machine(["check", "--snapshot", "x.json"])
    assert not _probes_this_machine(["check", "--snapshot=x.json"]) and not _probes_this_machine(["check", "-h"])
    assert not _probes_this_machine(["plan", "--cuda", "12.4"]) and not _probes_this_machine([])
