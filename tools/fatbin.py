"""The GPU code a shared library holds: each CUDA fat binary's entries, as (kind, compute capability).

A fat binary (the ``.nv_fatbin`` data nvcc links into a library) starts with a 16-byte header: magic 0xBA55ED50,
version 1, header size 16, then the size of what follows. Each entry after it starts with its kind (1 PTX, 2 ELF
cubin), its header size and its payload size, keeps a version at byte 24 (minor) and 26 (major), the PTX ISA for a
PTX entry, and names its target at byte 28 (``arch``: 80 for sm_80, 120 for sm_120); the next entry follows the
payload. Payloads may be compressed; the entry headers never are.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = struct.pack("<I", 0xBA55ED50)
KINDS = {1: "ptx", 2: "sass"}


@dataclass(frozen=True, order=True)
class GpuCode:
    kind: str  # "sass" (a cubin, runs on its major at this minor or above) or "ptx" (JIT-compiled by the driver)
    arch: int  # 80 for sm_80 / compute_80

    @property
    def capability(self) -> str:
        return f"{self.arch // 10}.{self.arch % 10}"


def fat_binaries(blob: bytes) -> list[frozenset[GpuCode]]:
    """The GPU code of each fat binary inside ``blob`` (nvcc writes one per compiled source file); bytes that only
    look like a header are skipped."""
    found = []
    at = blob.find(MAGIC)
    while at >= 0:
        entries, after = _container(blob, at)
        if entries:
            found.append(frozenset(code for code, _, _ in entries))
        at = blob.find(MAGIC, after)
    return found


def ptx_versions(blob: bytes) -> set[tuple[int, int]]:
    """The PTX ISA versions (major, minor) of the PTX entries in ``blob``'s fat binaries: an entry header keeps its
    PTX's ``.version`` at bytes 24 (minor) and 26 (major), which nvcc sets to its own toolkit's ISA (PTX ISA 7.8 is
    CUDA 11.8's), so they tell which CUDA toolkit compiled the library."""
    found = set()
    at = blob.find(MAGIC)
    while at >= 0:
        entries, after = _container(blob, at)
        found.update(version for code, _, version in entries if code.kind == "ptx")
        at = blob.find(MAGIC, after)
    return found


def _container(blob: bytes, at: int) -> tuple[list[tuple[GpuCode, int, tuple[int, int]]], int]:
    """(the entries with their payload sizes and (major, minor) versions, where to look next) for a fat binary at
    ``at``; no entries when it is not one."""
    if at + 16 > len(blob):
        return [], at + 4
    version, header_size, size = struct.unpack_from("<HHQ", blob, at + 4)
    end = at + header_size + size
    if version != 1 or header_size != 16 or end > len(blob):
        return [], at + 4
    entries, pos = [], at + 16
    while pos + 32 <= end:
        kind, entry_header, payload = struct.unpack_from("<HxxIQ", blob, pos)
        minor, major, arch = struct.unpack_from("<HHI", blob, pos + 24)
        if kind not in KINDS or entry_header < 32 or not 10 <= arch <= 200:
            return [], at + 4
        entries.append((GpuCode(KINDS[kind], arch), payload, (major, minor)))
        pos += entry_header + payload
    return entries, end
