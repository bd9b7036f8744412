"""The interpreter and the host it runs on: cheap reads of ``sys``, ``os`` and ``/etc/os-release``."""

from __future__ import annotations

import os
import platform
import struct
import sys
from pathlib import Path

from envdoctor.snapshot import Host, PythonInfo, canonical_os

OS_RELEASE = Path("/etc/os-release")
# A 32-bit interpreter on a 64-bit machine: the machine's name -> the architecture its wheels are built for.
THIRTY_TWO_BIT = {"amd64": "x86", "x86_64": "i686", "aarch64": "armv7l", "arm64": "armv7l"}


def probe_python() -> PythonInfo:
    """Version, implementation, executable, and whether it runs in a venv or a conda env."""
    return PythonInfo(
        version=platform.python_version(),
        implementation=sys.implementation.name,
        executable=sys.executable or None,
        venv=sys.prefix != sys.base_prefix,
        conda=_in_conda(),
    )


def probe_host(os_release: Path = OS_RELEASE) -> Host:
    """OS, CPU architecture, Linux distribution and glibc version; unknown parts are None."""
    return Host(
        os=canonical_os(sys.platform),
        arch=interpreter_arch(),
        distro=read_distro(os_release),
        glibc=(glibc := _glibc_version()),
        libc=_libc(glibc),
    )


def interpreter_arch(machine: str | None = None, pointer_bytes: int | None = None) -> str | None:
    """The architecture wheels must be built for: the running interpreter's, not the OS's (a 32-bit Python on
    64-bit Windows reports ``AMD64`` as its machine, yet installs only ``win32`` wheels)."""
    machine = platform.machine() if machine is None else machine
    pointer_bytes = struct.calcsize("P") if pointer_bytes is None else pointer_bytes
    if pointer_bytes == 4:
        return THIRTY_TWO_BIT.get((machine or "").lower(), machine or None)
    return machine or None


def _in_conda() -> bool:
    return bool(os.environ.get("CONDA_PREFIX")) or (Path(sys.prefix) / "conda-meta").is_dir()


def read_distro(os_release: Path) -> str | None:
    """PRETTY_NAME (or NAME VERSION_ID) from an os-release file; None when absent or unreadable."""
    try:
        text = os_release.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip("\"'")
    if fields.get("PRETTY_NAME"):
        return fields["PRETTY_NAME"]
    joined = " ".join(v for v in (fields.get("NAME"), fields.get("VERSION_ID")) if v)
    return joined or None


def _libc(glibc: str | None, lib_dirs: tuple[str, ...] = ("/lib", "/usr/lib")) -> str | None:
    """glibc when its version was read; musl when its dynamic loader (``ld-musl-<arch>.so.1``) is there; else None."""
    if glibc:
        return "glibc"
    if sys.platform != "linux":
        return None
    for directory in lib_dirs:
        try:
            if any(name.startswith("ld-musl-") for name in os.listdir(directory)):
                return "musl"
        except OSError:
            continue
    return None


def _glibc_version() -> str | None:
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        text = None
    if text and text.startswith("glibc "):
        return text.split()[1]
    lib, version = platform.libc_ver()
    return version if lib == "glibc" and version else None
