"""The snapshot: everything the probe learned about one environment, as plain data.

A snapshot is the public interchange format (``envdoctor.snapshot/1``). Every field may be
``None``, which means "unknown"; the checker then says it could not verify a point instead of
guessing. Unknown extra fields in the JSON are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

SNAPSHOT_SCHEMA = "envdoctor.snapshot/1"


class SnapshotError(ValueError):
    """A snapshot file or mapping that cannot be read; the message names the file or field."""


@dataclass(frozen=True)
class Host:
    os: str | None = None
    arch: str | None = None
    distro: str | None = None
    glibc: str | None = None


@dataclass(frozen=True)
class PythonInfo:
    version: str | None = None
    implementation: str | None = None
    executable: str | None = None
    venv: bool | None = None
    conda: bool | None = None


@dataclass(frozen=True)
class Gpu:
    index: int | None = None
    name: str | None = None
    compute_capability: str | None = None  # "9.0"
    memory_mib: int | None = None


@dataclass(frozen=True)
class Nvidia:
    driver: str | None = None  # "580.159.04"
    cuda_driver: str | None = None  # highest CUDA the driver supports, "13.0"
    error: str | None = None  # why the probe could not read NVML, when it could not
    gpus: tuple[Gpu, ...] | None = None


@dataclass(frozen=True)
class CudaToolkit:
    nvcc: str | None = None  # "12.4"
    home: str | None = None


@dataclass(frozen=True)
class Package:
    version: str
    direct_url: str | None = None  # URL a direct/VCS install came from (direct_url.json)
    vcs_commit: str | None = None
    requested_revision: str | None = None  # git tag or branch named at install time
    requires: tuple[str, ...] | None = None  # Requires-Dist lines, as written in METADATA


@dataclass(frozen=True)
class TorchBuild:
    version: str | None = None
    cuda: str | None = None  # CUDA the wheel was built with, "12.1"; None for CPU builds
    cxx11abi: bool | None = None
    archs: tuple[str, ...] | None = None  # ("sm_80", "sm_90")


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    host: Host = field(default_factory=Host)
    python: PythonInfo = field(default_factory=PythonInfo)
    nvidia: Nvidia | None = None
    cuda_toolkit: CudaToolkit | None = None
    packages: dict[str, Package] | None = None  # keyed by normalized name
    torch: TorchBuild | None = None
    smoke: dict[str, SmokeResult] | None = None
    note: str | None = None

    def package_version(self, name: str) -> str | None:
        """The installed version of ``name`` (any spelling), or None when absent or unknown."""
        if self.packages is None:
            return None
        pkg = self.packages.get(normalize_name(name))
        return pkg.version if pkg else None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema": SNAPSHOT_SCHEMA}
        data.update(_plain(self))
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"


def normalize_name(name: str) -> str:
    """PEP 503 normalization: ``Flash_Attn`` -> ``flash-attn``."""
    out = []
    prev_sep = False
    for ch in name.lower():
        if ch in "-_.":
            if not prev_sep:
                out.append("-")
            prev_sep = True
        else:
            out.append(ch)
            prev_sep = False
    return "".join(out)


def _plain(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, ``note: None`` dropped: ``asdict`` without its deep copies (5x faster)."""
    if hasattr(value, "__dataclass_fields__"):
        value = {item.name: getattr(value, item.name) for item in fields(value)}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if not (key == "note" and item is None)}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


# --- reading -------------------------------------------------------------------------------


def snapshot_from_dict(data: Any, origin: str = "snapshot") -> Snapshot:
    """Build a Snapshot from parsed JSON. Raises SnapshotError naming the offending field."""
    if not isinstance(data, dict):
        raise SnapshotError(f"{origin}: expected a JSON object at the top level")
    schema = data.get("schema")
    if schema is not None and not (isinstance(schema, str) and schema.startswith("envdoctor.snapshot/")):
        raise SnapshotError(f"{origin}: field 'schema' is {schema!r}, expected {SNAPSHOT_SCHEMA!r}")
    if isinstance(schema, str) and schema != SNAPSHOT_SCHEMA and schema.split("/")[-1] != "1":
        raise SnapshotError(f"{origin}: schema {schema!r} is newer than this envdoctor reads ({SNAPSHOT_SCHEMA})")
    reader = _Reader(origin)
    return Snapshot(
        host=reader.obj(data, "host", Host, {"os": str, "arch": str, "distro": str, "glibc": str}) or Host(),
        python=reader.obj(
            data,
            "python",
            PythonInfo,
            {"version": str, "implementation": str, "executable": str, "venv": bool, "conda": bool},
        )
        or PythonInfo(),
        nvidia=reader.nvidia(data),
        cuda_toolkit=reader.obj(data, "cuda_toolkit", CudaToolkit, {"nvcc": str, "home": str}),
        packages=reader.packages(data),
        torch=reader.torch(data),
        smoke=reader.smoke(data),
        note=reader.scalar(data, "note", str, "note"),
    )


def load_snapshot(path: str | Path) -> Snapshot:
    """Read a snapshot JSON file. Raises SnapshotError with the path and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SnapshotError(f"{path}: not UTF-8 text; pass a file written by 'envdoctor probe --json'") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            " (truncated? re-run 'envdoctor probe --json')"
        ) from None
    return snapshot_from_dict(data, origin=str(path))


class _Reader:
    """Type-checked field access that reports the dotted path of the first bad field."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, where: str, expected: str, got: Any) -> SnapshotError:
        return SnapshotError(
            f"{self.origin}: field '{where}' should be {expected}, got {type(got).__name__} {got!r:.60}"
        )

    def scalar(self, data: dict, key: str, kind: type, where: str) -> Any:
        value = data.get(key)
        if value is None:
            return None
        if kind is int and isinstance(value, bool):
            raise self.fail(where, "an integer", value)
        if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # "cuda_driver": 12.4 written as a number is still meaningful
        if not isinstance(value, kind):
            name = {str: "a string", bool: "true or false", int: "an integer"}[kind]
            raise self.fail(where, name, value)
        return value

    def obj(self, data: dict, key: str, cls: type, fields: dict[str, type], where: str | None = None) -> Any:
        where = where or key
        section = data.get(key)
        if section is None:
            return None
        if not isinstance(section, dict):
            raise self.fail(where, "an object", section)
        kwargs = {name: self.scalar(section, name, kind, f"{where}.{name}") for name, kind in fields.items()}
        return cls(**kwargs)

    def nvidia(self, data: dict) -> Nvidia | None:
        section = data.get("nvidia")
        if section is None:
            return None
        if not isinstance(section, dict):
            raise self.fail("nvidia", "an object", section)
        gpus_raw = section.get("gpus")
        gpus: tuple[Gpu, ...] | None = None
        if gpus_raw is not None:
            if not isinstance(gpus_raw, list):
                raise self.fail("nvidia.gpus", "a list", gpus_raw)
            gpus = tuple(
                self.obj(
                    {"g": g},
                    "g",
                    Gpu,
                    {"index": int, "name": str, "compute_capability": str, "memory_mib": int},
                    where=f"nvidia.gpus[{i}]",
                )
                or Gpu()
                for i, g in enumerate(gpus_raw)
            )
        return Nvidia(
            driver=self.scalar(section, "driver", str, "nvidia.driver"),
            cuda_driver=self.scalar(section, "cuda_driver", str, "nvidia.cuda_driver"),
            error=self.scalar(section, "error", str, "nvidia.error"),
            gpus=gpus,
        )

    def packages(self, data: dict) -> dict[str, Package] | None:
        section = data.get("packages")
        if section is None:
            return None
        if not isinstance(section, dict):
            raise self.fail("packages", "an object of name -> {version}", section)
        out: dict[str, Package] = {}
        for name, entry in section.items():
            where = f"packages.{name}"
            if isinstance(entry, str):  # tolerate {"torch": "2.3.1"}
                entry = {"version": entry}
            if not isinstance(entry, dict):
                raise self.fail(where, "an object with 'version'", entry)
            version = self.scalar(entry, "version", str, f"{where}.version")
            if not version:
                raise SnapshotError(f"{self.origin}: field '{where}.version' is missing")
            requires = entry.get("requires")
            if requires is not None and not (
                isinstance(requires, list) and all(isinstance(r, str) for r in requires)
            ):
                raise self.fail(f"{where}.requires", "a list of strings", requires)
            out[normalize_name(name)] = Package(
                version=version,
                direct_url=self.scalar(entry, "direct_url", str, f"{where}.direct_url"),
                vcs_commit=self.scalar(entry, "vcs_commit", str, f"{where}.vcs_commit"),
                requested_revision=self.scalar(entry, "requested_revision", str, f"{where}.requested_revision"),
                requires=tuple(requires) if requires is not None else None,
            )
        return out

    def torch(self, data: dict) -> TorchBuild | None:
        section = data.get("torch")
        if section is None:
            return None
        if not isinstance(section, dict):
            raise self.fail("torch", "an object", section)
        archs = section.get("archs")
        if archs is not None and not (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
            raise self.fail("torch.archs", "a list of strings like 'sm_90'", archs)
        return TorchBuild(
            version=self.scalar(section, "version", str, "torch.version"),
            cuda=self.scalar(section, "cuda", str, "torch.cuda"),
            cxx11abi=self.scalar(section, "cxx11abi", bool, "torch.cxx11abi"),
            archs=tuple(archs) if archs is not None else None,
        )

    def smoke(self, data: dict) -> dict[str, SmokeResult] | None:
        section = data.get("smoke")
        if section is None:
            return None
        if not isinstance(section, dict):
            raise self.fail("smoke", "an object of name -> {ok, error}", section)
        out = {}
        for name, entry in section.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("ok"), bool):
                raise self.fail(f"smoke.{name}", "an object with boolean 'ok'", entry)
            out[name] = SmokeResult(ok=entry["ok"], error=self.scalar(entry, "error", str, f"smoke.{name}.error"))
        return out
