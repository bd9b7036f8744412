import json
import platform
import subprocess
import sys

from conftest import python_env
from envdoctor import load_snapshot
from envdoctor.probe.python_env import interpreter_arch, probe_host, probe_python, read_distro


def test_read_distro(tmp_path):
    path = tmp_path / "os-release"
    path.write_text('NAME="Ubuntu"\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.3 LTS"\n')
    assert read_distro(path) == "Ubuntu 22.04.3 LTS"
    path.write_text('NAME="Alpine Linux"\nVERSION_ID=3.19.1\n')
    assert read_distro(path) == "Alpine Linux 3.19.1"
    assert read_distro(tmp_path / "missing") is None


def test_this_interpreter_and_host():
    python = probe_python()
    assert python.version == platform.python_version()
    assert python.implementation == "cpython"
    assert python.venv == (sys.prefix != sys.base_prefix)
    host = probe_host()
    assert host.os == sys.platform
    assert host.arch == platform.machine()
    if sys.platform == "linux":
        assert host.glibc and host.glibc[0].isdigit()


def test_probe_json_round_trip(tmp_path):
    """probe -> JSON -> load gives back an equal snapshot (run in a child: a fresh, unmodified sys.path)."""
    code = "from envdoctor.probe import probe; print(probe().to_json(), end='')"
    text = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=python_env(), check=True).stdout
    path = tmp_path / "snap.json"
    path.write_text(text)
    snapshot = load_snapshot(path)
    assert snapshot.to_json() == text
    assert json.loads(text)["schema"] == "envdoctor.snapshot/1"
    assert snapshot.packages["pytest"].version


def test_the_architecture_is_the_interpreters_not_the_machines():
    assert interpreter_arch("AMD64", 4) == "x86"  # 32-bit Python on 64-bit Windows: win32 wheels
    assert interpreter_arch("x86_64", 4) == "i686" and interpreter_arch("aarch64", 4) == "armv7l"
    assert interpreter_arch("AMD64", 8) == "AMD64" and interpreter_arch("", 8) is None
    assert probe_host().arch == interpreter_arch()
