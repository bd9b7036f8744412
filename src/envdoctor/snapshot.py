"""The snapshot: everything the probe learned about one environment, as plain data.

A snapshot is the public interchange format (``envdoctor.snapshot/1``). Every field may be ``None`` or absent,
which means "unknown"; the checker then says it could not verify a point instead of guessing. A package whose
version is ``None`` is installed with an unknown version. Unknown extra fields in the JSON are ignored.

Snapshots are often written by hand from an issue thread, so every value is untrusted: a value of the right JSON
type that is not valid for its field (a version that is not PEP 440, a compute capability like ``"abc"``, a
negative memory size) is kept out of the snapshot and recorded in ``Snapshot.problems``, which the checker reports.
A value of the wrong JSON type, a missing ``schema`` or two spellings of one package refuse the whole snapshot.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envdoctor.errors import EnvdoctorError

if TYPE_CHECKING:
    from packaging.version import Version

SNAPSHOT_SCHEMA = "envdoctor.snapshot/1"
SCHEMA_PREFIX = "envdoctor.snapshot/"
SCHEMA_VERSION = 1
# A CUDA version as nvidia-smi or nvcc print it: "12.4", "12.4.1".
CUDA_VERSION = re.compile(r"\d{1,2}\.\d{1,2}(\.\d{1,3})?")
LIBCS = frozenset({"glibc", "musl"})
GCC_VERSION = re.compile(r"\d{1,2}(\.\d{1,3}){0,2}")
# A compute capability: "8.6", "12.0".
COMPUTE_CAPABILITY = re.compile(r"\d{1,2}\.\d")
# An NVIDIA driver version: "535.104.05", "470.57", "581.42".
DRIVER_VERSION = re.compile(r"\d{2,4}(\.\d{1,3}){1,2}|\d{3}")  # a full version, or only its branch ("470")
OS_ALIASES = {
    "linux": "linux", "linux2": "linux", "win32": "windows", "windows": "windows", "win": "windows",
    "cygwin": "windows", "win64": "windows", "darwin": "darwin", "macos": "darwin", "mac": "darwin", "osx": "darwin",
    "macosx": "darwin",
}


class SnapshotError(EnvdoctorError, ValueError):
    """A snapshot file or mapping that cannot be read; the message names the file or field."""


@dataclass(frozen=True)
class Host:
    os: str | None = None  # "linux", "windows" or "darwin"
    arch: str | None = None
    distro: str | None = None
    glibc: str | None = None
    gcc: str | None = None  # the gcc nvcc compiles host code with (``gcc -dumpfullversion``), e.g. 11.4.0
    libc: str | None = None  # "glibc" or "musl" (Alpine); None: unknown


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
    memory_used_mib: int | None = None  # in use by every process when probed (NVML)
    processes: int | None = None  # compute processes NVML could see on it (other containers' are hidden)


@dataclass(frozen=True)
class Nvidia:
    driver: str | None = None  # "580.159.04", or only the branch: "580"
    cuda_driver: str | None = None  # highest CUDA the driver supports, "13.0"
    error: str | None = None  # why the probe could not read NVML, when it could not
    gpus: tuple[Gpu, ...] | None = None


@dataclass(frozen=True)
class CudaToolkit:
    nvcc: str | None = None  # "12.4"
    home: str | None = None


@dataclass(frozen=True)
class Package:
    version: str | None  # None: installed, version unknown
    direct_url: str | None = None  # URL a direct/VCS install came from (direct_url.json)
    vcs_commit: str | None = None
    requested_revision: str | None = None  # git tag or branch named at install time
    requires: tuple[str, ...] | None = None  # Requires-Dist lines, as written in METADATA


@dataclass(frozen=True)
class TorchBuild:
    version: str | None = None
    cuda: str | None = None  # CUDA the wheel was built with, "12.1"; None for CPU builds or when unknown
    cxx11abi: bool | None = None
    archs: tuple[str, ...] | None = None  # ("sm_80", "sm_90")
    # the build says it has no CUDA (torch.version.cuda is None: a CPU build); written as "cuda": null, while an
    # unknown CUDA leaves the key out (no key of its own in the file)
    cuda_none: bool = field(default=False, metadata={"in_file": False})


@dataclass(frozen=True)
class Environment:
    """Process environment variables that change what CUDA and the Hugging Face libraries see."""

    cuda_visible_devices: str | None = None  # None: unset (every GPU visible); "" hides them all
    ld_library_path: tuple[str, ...] | None = None  # its directories in search order; None: unset
    cuda_library_dirs: tuple[str, ...] | None = None  # those of them holding libcudart, libnvJitLink, libcublas...
    hf_hub_offline: bool | None = None  # HF_HUB_OFFLINE as huggingface_hub reads it
    hf_home: str | None = None  # HF_HOME as set; None: unset (~/.cache/huggingface)


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class FieldProblem:
    """A snapshot value of the right type that is not valid for its field; the checker reports it."""

    where: str  # dotted path, "packages.torch.version"
    value: str  # the raw value, untrusted: escape before showing
    expected: str  # "a PEP 440 version like 2.3.1"


@dataclass(frozen=True)
class Snapshot:
    host: Host = field(default_factory=Host)
    python: PythonInfo = field(default_factory=PythonInfo)
    nvidia: Nvidia | None = None
    cuda_toolkit: CudaToolkit | None = None
    packages: dict[str, Package] | None = None  # keyed by normalized name
    torch: TorchBuild | None = None
    smoke: dict[str, SmokeResult] | None = None
    env: Environment | None = None
    note: str | None = None
    problems: tuple[FieldProblem, ...] = ()

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


_NAME_SEPARATORS = re.compile(r"[-_.]+")


def normalize_name(name: str) -> str:
    """PEP 503 normalization: ``Flash_Attn`` -> ``flash-attn``."""
    return _NAME_SEPARATORS.sub("-", name).lower()


def canonical_os(value: str) -> str:
    """``win32``/``Windows`` -> ``windows``, ``macOS``/``darwin`` -> ``darwin``, ``linux2`` -> ``linux``."""
    text = value.strip().lower()
    return OS_ALIASES.get(text, "linux" if text.startswith("linux") else text)


def _plain(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, ``note: None`` and empty problems dropped (asdict without deep copies).
    torch's ``cuda`` is ``null`` for a CPU build and left out when unknown."""
    if isinstance(value, TorchBuild):
        plain = {item.name: getattr(value, item.name) for item in fields(value) if item.metadata.get("in_file", True)}
        if value.cuda is None and not value.cuda_none:
            del plain["cuda"]
        return _plain(plain)
    if hasattr(value, "__dataclass_fields__"):
        value = {item.name: getattr(value, item.name) for item in fields(value)}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()
                if not (key == "note" and item is None) and not (key == "problems" and not item)}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


# --- reading -------------------------------------------------------------------------------


def snapshot_from_dict(data: Any, origin: str = "snapshot", require_schema: bool = False) -> Snapshot:
    """Build a Snapshot from parsed JSON. Raises SnapshotError naming the offending field.

    ``require_schema``: a file must say what it is (a JSON object that is not a snapshot is refused); code that
    builds a mapping itself may leave ``schema`` out.
    """
    if not isinstance(data, dict):
        raise SnapshotError(f"{origin}: expected a JSON object at the top level (an envdoctor.snapshot/1 file)")
    if require_schema or data.get("schema") is not None:
        _check_schema(data.get("schema"), origin)
    reader = _Reader(origin)
    host = reader.obj(data, "host", Host,
                      {"os": str, "arch": str, "distro": str, "glibc": str, "gcc": str, "libc": str}) or Host()
    host = replace(host, os=canonical_os(host.os) if host.os else host.os,
                   gcc=reader.valid(host.gcc, "host.gcc", GCC_VERSION.fullmatch, "a gcc version like 11.4.0"),
                   libc=reader.valid(host.libc.lower() if host.libc else None, "host.libc", LIBCS.__contains__,
                                     "glibc or musl"))
    python = reader.obj(
        data, "python", PythonInfo,
        {"version": str, "implementation": str, "executable": str, "venv": bool, "conda": bool},
    ) or PythonInfo()
    python = PythonInfo(
        version=reader.valid(python.version, "python.version", _is_python_version, "a Python version like 3.11.7"),
        implementation=python.implementation, executable=python.executable, venv=python.venv, conda=python.conda,
    )
    toolkit = reader.obj(data, "cuda_toolkit", CudaToolkit, {"nvcc": str, "home": str})
    if toolkit is not None:
        toolkit = CudaToolkit(
            nvcc=reader.valid(toolkit.nvcc, "cuda_toolkit.nvcc", CUDA_VERSION.fullmatch, "a CUDA release like 12.4"),
            home=toolkit.home,
        )
    packages, torch = _consistent_torch(reader, reader.packages(data), reader.torch(data))
    return Snapshot(
        host=host,
        python=python,
        nvidia=reader.nvidia(data),
        cuda_toolkit=toolkit,
        packages=packages,
        torch=torch,
        smoke=reader.smoke(data),
        env=reader.environment(data),
        note=reader.scalar(data, "note", str, "note"),
        problems=tuple(reader.problems),
    )


def _consistent_torch(
    reader: _Reader, packages: dict[str, Package] | None, torch: TorchBuild | None
) -> tuple[dict[str, Package] | None, TorchBuild | None]:
    """One torch: ``torch.version`` fills an unknown ``packages.torch`` version (they are the same fact), and a
    ``torch.cuda`` that contradicts the version's ``+cuXYZ`` tag is recorded as a problem and dropped."""
    if torch is None or torch.version is None:
        return packages, _checked_cuda(reader, packages, torch)
    installed = (packages or {}).get("torch")
    if installed is None or installed.version is None:
        packages = dict(packages or {})
        base = installed or Package(version=None)
        packages["torch"] = Package(torch.version, base.direct_url, base.vcs_commit, base.requested_revision,
                                    base.requires)
    return packages, _checked_cuda(reader, packages, torch)


def _checked_cuda(reader: _Reader, packages: dict[str, Package] | None, torch: TorchBuild | None) -> TorchBuild | None:
    installed = (packages or {}).get("torch")
    if torch is None or (torch.cuda is None and not torch.cuda_none) or installed is None or installed.version is None:
        return torch
    local = (parse_pep440(installed.version).local or "") if parse_pep440(installed.version) else ""
    if not re.fullmatch(r"cu\d{3,4}", local):
        return torch
    tagged = f"{local[2:-1]}.{local[-1]}"
    if torch.cuda is not None and ".".join(torch.cuda.split(".")[:2]) == tagged:
        return torch
    expected = f"{tagged}, the CUDA of the installed +{local} build"
    reader.problems.append(FieldProblem("torch.cuda", torch.cuda if torch.cuda is not None else "null (a CPU build)",
                                        expected))
    return TorchBuild(version=torch.version, cuda=None, cxx11abi=torch.cxx11abi, archs=torch.archs)


def _check_schema(schema: Any, origin: str) -> None:
    if schema is None:
        raise SnapshotError(
            f"{origin}: field 'schema' is missing; an envdoctor snapshot starts with "
            f"\"schema\": \"{SNAPSHOT_SCHEMA}\" (write one with 'envdoctor probe --json')"
        )
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        raise SnapshotError(f"{origin}: field 'schema' is {schema!r:.60}, expected {SNAPSHOT_SCHEMA!r}")
    number = schema.removeprefix(SCHEMA_PREFIX)
    if not number.isdigit():
        raise SnapshotError(f"{origin}: field 'schema' is {schema!r:.60}, expected {SNAPSHOT_SCHEMA!r}")
    if int(number) > SCHEMA_VERSION:
        raise SnapshotError(f"{origin}: schema {schema!r} is newer than this envdoctor reads ({SNAPSHOT_SCHEMA});"
                            " upgrade envdoctor")
    if int(number) < SCHEMA_VERSION:
        raise SnapshotError(f"{origin}: schema {schema!r} is not a format envdoctor ever wrote; this envdoctor reads"
                            f" {SNAPSHOT_SCHEMA}")


def load_snapshot(path: str | Path) -> Snapshot:
    """Read a snapshot JSON file (size and nesting bounded). Raises SnapshotError with the path and the problem."""
    from envdoctor.bounded_json import JsonFileError, load_json_file

    try:
        data = load_json_file(path)
    except JsonFileError as error:
        raise SnapshotError(str(error)) from None
    return snapshot_from_dict(data, origin=str(path), require_schema=True)


def parse_pep440(text: str) -> Version | None:
    from packaging.version import InvalidVersion, Version  # here, so the probe runs where packaging is absent

    try:
        return Version(text)
    except InvalidVersion:
        return None


def _tuple_or_none(value: list[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


def _is_python_version(text: str) -> bool:
    version = parse_pep440(text)
    return version is not None and version.release[0] in (2, 3) and not version.local


def _is_version(text: str) -> bool:
    return text.strip() == text and parse_pep440(text) is not None


def _is_git_commit(text: str) -> bool:
    """A git commit id as threads paste them for packages installed from git: 7 to 40 hex digits, letters among
    them (an all-digit string is read as a version)."""
    return re.fullmatch(r"[0-9a-f]{7,40}", text) is not None and not text.isdigit()


def _is_driver(text: str) -> bool:
    return DRIVER_VERSION.fullmatch(text) is not None


def _is_compute_capability(text: str) -> bool:
    return COMPUTE_CAPABILITY.fullmatch(text) is not None and 1.0 <= float(text) < 20


class _Reader:
    """Type-checked field access that reports the dotted path of the first bad field, and collects the values of
    the right type that are not valid for their field."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.problems: list[FieldProblem] = []

    def fail(self, where: str, expected: str, got: Any) -> SnapshotError:
        return SnapshotError(
            f"{self.origin}: field '{where}' should be {expected}, got {type(got).__name__} {got!r:.60}"
        )

    def valid(self, value: Any, where: str, check: Any, expected: str) -> Any:
        """``value`` when None or ``check(value)`` holds; else None, with the problem recorded."""
        if value is None or check(value):
            return value
        self.problems.append(FieldProblem(where, str(value)[:200], expected))
        return None

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

    def gpu(self, raw: Any, where: str) -> Gpu:
        gpu = self.obj({"g": raw}, "g", Gpu, {"index": int, "name": str, "compute_capability": str, "memory_mib": int,
                                              "memory_used_mib": int, "processes": int}, where=where) or Gpu()
        return Gpu(
            index=gpu.index,
            name=gpu.name,
            compute_capability=self.valid(gpu.compute_capability, f"{where}.compute_capability",
                                          _is_compute_capability, "a compute capability like 8.6"),
            memory_mib=self.valid(gpu.memory_mib, f"{where}.memory_mib", lambda v: v > 0,
                                  "a positive number of MiB"),
            memory_used_mib=self.valid(gpu.memory_used_mib, f"{where}.memory_used_mib", lambda v: v >= 0,
                                       "a number of MiB, 0 or more"),
            processes=self.valid(gpu.processes, f"{where}.processes", lambda v: v >= 0, "a count, 0 or more"),
        )

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
            gpus = tuple(self.gpu(g, f"nvidia.gpus[{i}]") for i, g in enumerate(gpus_raw))
        driver = self.scalar(section, "driver", str, "nvidia.driver")
        cuda_driver = self.scalar(section, "cuda_driver", str, "nvidia.cuda_driver")
        return Nvidia(
            driver=self.valid(driver, "nvidia.driver", _is_driver,
                              "an NVIDIA driver version like 550.54.14 (or its branch, 550)"),
            cuda_driver=self.valid(cuda_driver, "nvidia.cuda_driver", CUDA_VERSION.fullmatch,
                                   "the CUDA version nvidia-smi shows, like 12.4"),
            error=self.scalar(section, "error", str, "nvidia.error"),
            gpus=gpus,
        )

    def environment(self, data: dict) -> Environment | None:
        section = data.get("env")
        if section is None:
            return None
        if not isinstance(section, dict):
            raise self.fail("env", "an object", section)
        dirs = {key: section.get(key) for key in ("ld_library_path", "cuda_library_dirs")}
        for key, value in dirs.items():
            if value is not None and not (isinstance(value, list) and all(isinstance(d, str) for d in value)):
                raise self.fail(f"env.{key}", "a list of directories (strings)", value)
        return Environment(
            cuda_visible_devices=self.scalar(section, "cuda_visible_devices", str, "env.cuda_visible_devices"),
            ld_library_path=_tuple_or_none(dirs["ld_library_path"]),
            cuda_library_dirs=_tuple_or_none(dirs["cuda_library_dirs"]),
            hf_hub_offline=self.scalar(section, "hf_hub_offline", bool, "env.hf_hub_offline"),
            hf_home=self.scalar(section, "hf_home", str, "env.hf_home"),
        )

    def packages(self, data: dict) -> dict[str, Package] | None:
        section = data.get("packages")
        if section is None:
            return None
        if not isinstance(section, dict):
            raise self.fail("packages", "an object of name -> {version}", section)
        out: dict[str, Package] = {}
        spelled: dict[str, str] = {}
        for name, entry in section.items():
            key = normalize_name(name)
            if not key or not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", key):
                raise SnapshotError(f"{self.origin}: field 'packages' has {name!r:.60}, which is not a package name")
            if key in spelled:
                raise SnapshotError(
                    f"{self.origin}: field 'packages' names one package twice ({spelled[key]!r} and {name!r}, both "
                    f"{key!r} after PEP 503 normalization); keep one"
                )
            spelled[key] = name
            out[key] = self.package(name, entry)
        return out

    def package(self, name: str, entry: Any) -> Package:
        where = f"packages.{name}"
        if isinstance(entry, str) or entry is None:  # tolerate {"torch": "2.3.1"} and {"flash-attn": null}
            entry = {"version": entry}
        if not isinstance(entry, dict):
            raise self.fail(where, "an object with 'version'", entry)
        version = self.scalar(entry, "version", str, f"{where}.version") or None
        requires = entry.get("requires")
        if requires is not None and not (isinstance(requires, list) and all(isinstance(r, str) for r in requires)):
            raise self.fail(f"{where}.requires", "a list of strings", requires)
        vcs_commit = self.scalar(entry, "vcs_commit", str, f"{where}.vcs_commit")
        if version and vcs_commit is None and _is_git_commit(version) and not _is_version(version):
            version, vcs_commit = None, version  # installed from git, given by its commit: the version is unknown
        return Package(
            version=self.valid(version, f"{where}.version", _is_version, "a PEP 440 version like 2.3.1"),
            direct_url=self.scalar(entry, "direct_url", str, f"{where}.direct_url"),
            vcs_commit=vcs_commit,
            requested_revision=self.scalar(entry, "requested_revision", str, f"{where}.requested_revision"),
            requires=tuple(requires) if requires is not None else None,
        )

    def torch(self, data: dict) -> TorchBuild | None:
        section = data.get("torch")
        if section is None:
            return None
        if not isinstance(section, dict):
            raise self.fail("torch", "an object", section)
        archs = section.get("archs")
        if archs is not None and not (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
            raise self.fail("torch.archs", "a list of strings like 'sm_90'", archs)
        if archs is not None and not all(re.fullmatch(r"(sm|compute)_\d{2,3}[af]?", a) for a in archs):
            self.problems.append(FieldProblem("torch.archs", " ".join(archs)[:200], "GPU archs like sm_90"))
            archs = None
        version = self.scalar(section, "version", str, "torch.version")
        return TorchBuild(
            version=self.valid(version, "torch.version", _is_version, "a PEP 440 version like 2.3.1+cu121"),
            cuda=self.valid(self.scalar(section, "cuda", str, "torch.cuda"), "torch.cuda", CUDA_VERSION.fullmatch,
                            "the CUDA version torch was built with, like 12.1"),
            cxx11abi=self.scalar(section, "cxx11abi", bool, "torch.cxx11abi"),
            archs=tuple(archs) if archs is not None else None,
            cuda_none="cuda" in section and section["cuda"] is None,
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
            out[normalize_name(name)] = SmokeResult(ok=entry["ok"],
                                                    error=self.scalar(entry, "error", str, f"smoke.{name}.error"))
        return out
