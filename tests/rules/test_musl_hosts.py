"""musl hosts (Alpine) install musllinux wheels only: the wheel checks judge them on those."""

from __future__ import annotations

from pathlib import Path

from envdoctor.checker import run_check
from envdoctor.checks.wheels import host_target, musl_host
from envdoctor.findings import Finding
from envdoctor.probe.python_env import _libc
from envdoctor.snapshot import Host, snapshot_from_dict

SCHEMA = "envdoctor.snapshot/1"


def platform_findings(tmp_path: Path, host: dict, packages: dict) -> list[Finding]:
    snap = snapshot_from_dict({"schema": SCHEMA, "host": host, "python": {"version": "3.11"}, "packages": packages})
    return [f for f in run_check(snap, stack=None, cwd=tmp_path).findings if f.rule == "no-wheel-for-platform"]


def test_alpine_or_a_musl_libc_makes_the_target_musllinux() -> None:
    assert musl_host(Host(os="linux", distro="Alpine Linux v3.19"))
    assert musl_host(Host(libc="musl")) and not musl_host(Host(os="linux", distro="Ubuntu 22.04"))
    assert not musl_host(Host(os="linux", distro="Alpine Linux", libc="glibc"))  # the probe's fact wins
    target = host_target(Host(os="linux", arch="x86_64", distro="Alpine Linux"), "3.11")
    assert target is not None and target.families == frozenset({"musllinux_x86_64"})
    assert host_target(Host(os="linux", arch="x86_64"), "3.11").families == frozenset({"linux_x86_64"})


def test_torch_on_alpine_has_no_wheel_while_numpy_has_musllinux_ones(tmp_path: Path) -> None:
    alpine = {"os": "linux", "arch": "x86_64", "distro": "Alpine Linux v3.18"}
    found = platform_findings(tmp_path, alpine, {"torch": {"version": "2.3.1"}, "numpy": {"version": "1.26.4"}})
    assert [f.components for f in found] == [("torch",)] and "musl" in found[0].message
    assert not platform_findings(tmp_path, {"os": "linux", "arch": "x86_64"}, {"torch": {"version": "2.3.1"}})


def test_the_probe_finds_musl_by_its_loader(tmp_path: Path) -> None:
    (tmp_path / "ld-musl-x86_64.so.1").write_bytes(b"")
    assert _libc("2.36", (str(tmp_path),)) == "glibc"
    assert _libc(None, (str(tmp_path),)) == "musl"
    assert _libc(None, (str(tmp_path / "absent"),)) is None


def test_a_libc_that_is_neither_is_a_field_problem() -> None:
    snap = snapshot_from_dict({"schema": SCHEMA, "host": {"libc": "uclibc"}})
    assert snap.host.libc is None and [p.where for p in snap.problems] == ["host.libc"]
    assert snapshot_from_dict({"schema": SCHEMA, "host": {"libc": "MUSL"}}).host.libc == "musl"
