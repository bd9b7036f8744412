"""Read single members of a zip (a wheel) on an HTTP server with range requests, never the whole archive."""

from __future__ import annotations

import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from envdoctor.pypi_release import http_get  # noqa: E402

EOCD = b"PK\x05\x06"
CENTRAL = b"PK\x01\x02"
ZIP64_FIELD = 0xFFFFFFFF


@dataclass(frozen=True)
class Member:
    name: str
    method: int  # 0 stored, 8 deflated
    compressed: int
    offset: int  # of its local header


def read_range(url: str, start: int, end: int) -> bytes:
    """Bytes ``start`` to ``end`` (inclusive) of ``url``."""
    return http_get(url, (start, end), timeout=300.0)


def central_directory(url: str, size: int) -> list[Member]:
    """Every member of the zip at ``url`` (``size`` bytes long)."""
    tail = read_range(url, max(0, size - 65_557), size - 1)
    at = tail.rfind(EOCD)
    if at < 0:
        raise ValueError(f"{url}: no end of central directory in the last 64 KiB")
    cd_size, cd_offset = struct.unpack("<II", tail[at + 12:at + 20])
    if ZIP64_FIELD in (cd_size, cd_offset):
        raise ValueError(f"{url}: a zip64 archive is not read here")
    directory = read_range(url, cd_offset, cd_offset + cd_size - 1)
    members, pos = [], 0
    while directory.startswith(CENTRAL, pos):
        method, = struct.unpack("<H", directory[pos + 10:pos + 12])
        compressed, = struct.unpack("<I", directory[pos + 20:pos + 24])
        name_len, extra_len, comment_len = struct.unpack("<HHH", directory[pos + 28:pos + 34])
        offset, = struct.unpack("<I", directory[pos + 42:pos + 46])
        name = directory[pos + 46:pos + 46 + name_len].decode("utf-8", "replace")
        if ZIP64_FIELD in (compressed, offset):
            raise ValueError(f"{url}: {name} has zip64 sizes, not read here")
        members.append(Member(name, method, compressed, offset))
        pos += 46 + name_len + extra_len + comment_len
    return members


def member_bytes(url: str, member: Member) -> bytes:
    """The uncompressed content of one member."""
    header = read_range(url, member.offset, member.offset + 29)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    start = member.offset + 30 + name_len + extra_len
    data = read_range(url, start, start + member.compressed - 1)
    if member.method == 0:
        return data
    if member.method == 8:
        return zlib.decompress(data, -15)
    raise ValueError(f"{url}: compression method {member.method} is not read here")
