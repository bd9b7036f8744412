"""Typed, lazily loaded access to the sourced compatibility facts in ``matrices/``.

Each table lives in its own TOML file (``cuda.toml``, ``torch.toml``, ``flash_attn.toml``, ``xformers.toml``,
``bitsandbytes.toml``, ``companions.toml``) and is read the first time a question needs it, so
``envdoctor check`` pays only for the files its checks touch. Every accessor returns ``None`` for a version
the tables do not know: callers report "could not verify" rather than guess.

A malformed file raises :class:`FactsError` whose message names the file and the dotted key.

Example::

    facts = default_facts()
    facts.cuda("12.4").min_driver_linux            # "550.54.14"
    facts.torch("2.3.1").pypi_default              # "cu121"
    facts.torch_archs("2.3.1", "cu121")            # ("sm_50", ..., "sm_90")
    facts.flash_attn_wheel("2.5.8", "2.3.1", "12.1", cxx11abi=False, python="3.10")
    # "flash_attn-2.5.8+cu122torch2.3cxx11abiFALSE-cp310-cp310-linux_x86_64.whl"
    facts.companion_torch("torchvision", "0.18.1")   # "2.3.1"
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envdoctor import table_cache
from envdoctor.matrices import MatrixError

__all__ = [
    "FactsError",
    "CudaRelease",
    "TorchRelease",
    "TorchVariant",
    "FlashAttnRelease",
    "XformersRelease",
    "BitsandbytesRelease",
    "Facts",
    "default_facts",
    "default_matrices_root",
    "cuda_major_minor",
    "variant_of_cuda",
    "cuda_of_variant",
    "gpu_runs_archs",
]


class FactsError(MatrixError):
    """A facts file that cannot be read or has a bad field; the message names the file and key."""


@dataclass(frozen=True)
class CudaBuild:
    """A ``[[builds]]`` row of cuda.toml: the releases of a package (other than torch) built for one CUDA."""

    package: str
    versions: str  # a version specifier
    cuda_major: int
    cuda_minor: int | None  # from ``cuda = "X.Y"`` when the row states the minor
    source: str
    oldest_of_several: bool = False  # the releases come in several CUDA builds and the row gives the oldest


@dataclass(frozen=True)
class CudaRelease:
    """One CUDA toolkit release and the NVIDIA Linux drivers that run its builds."""

    version: str  # "12.4" or "12.4.1"
    label: str
    min_driver_linux: str  # Table 3: the driver the toolkit ships with (full feature set)
    min_driver_windows: str | None
    family_min_driver_linux: str  # Table 2: minor-version compatibility floor for the whole major
    confidence: str


@dataclass(frozen=True)
class TorchVariant:
    """A CUDA variant of the PyTorch wheels (``cu121``): its CUDA version and compiled GPU archs."""

    name: str
    cuda: str  # "12.1"
    archs: tuple[str, ...] | None  # SASS archs; None = not known
    archs_confidence: str


@dataclass(frozen=True)
class TorchRelease:
    """One torch release: its CUDA variants, Python wheels and build properties."""

    version: str
    released: str
    variants: tuple[str, ...]  # ("cu118", "cu121")
    pypi_default: str  # the variant PyPI's plain wheel is
    python: tuple[str, ...]  # CPython versions with Linux wheels
    requires_python: str
    numpy2: bool  # built against NumPy 2 (runs with numpy 2.x on Linux)
    cxx11abi_pypi: bool
    cxx11abi_variants: dict[str, bool]  # exceptions to cxx11abi_pypi, by variant
    triton: str
    platform: str  # wheel platform tag of the PyPI wheel
    torchvision: str | None
    torchaudio: str | None
    confidence: str

    def cxx11abi(self, variant: str) -> bool:
        """Whether the Linux wheel of ``variant`` uses the C++11 ABI (flash-attn wheel names key on it)."""
        return self.cxx11abi_variants.get(variant, self.cxx11abi_pypi)

    @property
    def minor(self) -> str:
        """``"2.3"`` for ``"2.3.1"``."""
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class FlashAttnRelease:
    """One flash-attn release and its official prebuilt Linux x86_64 wheels (GitHub release assets)."""

    version: str
    on_pypi: bool  # PyPI has the sdist (the wheels are only on GitHub)
    wheel_cuda_tags: dict[str, str]  # torch's CUDA "major" (or exact "major.minor", up to 2.3.5) -> tag: {"12": "cu12"}
    torch_minors: tuple[str, ...]
    python: tuple[str, ...]
    sass: tuple[str, ...]  # GPU archs compiled in (no PTX)
    min_cc: str | None  # minimum GPU compute capability, "8.0"
    wheels: frozenset[str]  # exact filenames
    wheels_confidence: str
    url_template: str
    min_nvcc: str | None = None  # oldest CUDA toolkit (nvcc) its setup.py accepts for a source build, "11.7"
    # wheel name part -> CUDA variant of the torch CI built it against: {"cu12torch2.6": "cu126"}
    torch_build_cuda: dict[str, str] = field(default_factory=dict)
    runners: tuple[str, ...] = ()  # the CI runner images its wheels were built on ("ubuntu-22.04")

    def url(self, filename: str) -> str:
        """The GitHub release URL of one of this release's wheel files."""
        return self.url_template.format(version=self.version, filename=filename)


@dataclass(frozen=True)
class XformersRelease:
    version: str
    torch: str  # requirement specifier, "==2.3.1" or ">=2.10"
    requires_python: str


@dataclass(frozen=True)
class BitsandbytesRelease:
    version: str
    torch: str  # requirement specifier; "" = unversioned
    requires_python: str  # "" = none declared
    cuda_libs: tuple[str, ...]  # bundled libbitsandbytes_cuda{XYZ}.so, as "121"
    min_cc: str
    int8_min_cc: str


# --- small pure helpers ------------------------------------------------------------------------


def cuda_major_minor(cuda: str) -> tuple[int, int]:
    """``"12.4"`` / ``"12.4.1"`` / ``"cu124"`` -> ``(12, 4)``. Raises ValueError on anything else."""
    text = cuda.strip().lower()
    if text.startswith("cu"):
        digits = text[2:]
        if not digits.isdigit() or len(digits) < 3:
            raise ValueError(f"not a CUDA variant tag: {cuda!r}")
        return int(digits[:-1]), int(digits[-1])
    parts = text.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts) or len(parts) > 3:
        raise ValueError(f"not a CUDA version: {cuda!r} (expected e.g. 12.4)")
    return int(parts[0]), int(parts[1])


def variant_of_cuda(cuda: str) -> str:
    """``"12.1"`` -> ``"cu121"``."""
    major, minor = cuda_major_minor(cuda)
    return f"cu{major}{minor}"


def cuda_of_variant(variant: str) -> str:
    """``"cu121"`` -> ``"12.1"``."""
    major, minor = cuda_major_minor(variant)
    return f"{major}.{minor}"


def gpu_runs_archs(compute_capability: str, archs: tuple[str, ...]) -> bool:
    """True when SASS in ``archs`` runs on a GPU of ``compute_capability`` ("8.6").

    SASS built for sm_XY runs on GPUs of the same major X with minor >= Y (sm_80 code runs on sm_86);
    it never runs across majors, and without PTX nothing JIT-compiles for a newer GPU.
    """
    major, minor = (int(p) for p in compute_capability.split(".")[:2])
    for arch in archs:
        digits = arch.removeprefix("sm_").rstrip("a")
        if digits.isdigit() and int(digits[:-1]) == major and int(digits[-1]) <= minor:
            return True
    return False


def default_matrices_root() -> Path:
    """The bundled ``matrices`` folder: ``envdoctor/matrices`` in a wheel, ``<repo>/matrices`` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "matrices", here.parents[1] / "matrices"):
        if candidate.is_dir():
            return candidate
    return here / "matrices"


# --- reading -----------------------------------------------------------------------------------


class _Fields:
    """Type-checked access to one table, naming ``file: key.path`` in every error."""

    def __init__(self, path: Path, where: str, table: Any) -> None:
        self.path, self.where = path, where
        if not isinstance(table, dict):
            raise self.error("", "a table", table)
        self.table = table

    def error(self, key: str, expected: str, got: Any) -> FactsError:
        dotted = f"{self.where}.{key}" if key else self.where
        return FactsError(f"{self.path.name}: '{dotted}' should be {expected}, got {got!r:.60}; fix the file")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str):
            raise self.error(key, "a string", value)
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self.table.get(key) is None else self.text(key)

    def flag(self, key: str) -> bool:
        value = self.table.get(key)
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def strings(self, key: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = self.table.get(key, default)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "a list of strings", value)
        return tuple(value)

    def mapping(self, key: str, kind: type) -> dict[str, Any]:
        value = self.table.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, kind) for v in value.values()):
            raise self.error(key, f"a table of {kind.__name__} values", value)
        return dict(value)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return table_cache.load_toml(path)
    except OSError as exc:
        raise FactsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except table_cache.TOMLDecodeError as exc:
        raise FactsError(f"{path}: invalid TOML: {exc}") from None


class Facts:
    """The facts tables under one ``matrices`` root; each file is parsed on first use and cached."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_matrices_root()

    @functools.cache  # noqa: B019 - one Facts per root, lives for the process
    def _file(self, name: str) -> dict[str, Any]:
        return _read_toml(self.root / name)

    def _section(self, name: str, section: str) -> dict[str, Any]:
        value = self._file(name).get(section, {})
        if not isinstance(value, dict):
            raise FactsError(f"{name}: '{section}' should be a table of tables")
        return value

    def sources(self, name: str) -> tuple[str, ...]:
        """Source ids (``matrices/sources*.toml``) cited by one facts file, e.g. ``"torch.toml"``."""
        return _Fields(self.root / name, "(top level)", self._file(name)).strings("sources", ())

    # --- CUDA ---------------------------------------------------------------------------------

    def cuda(self, version: str) -> CudaRelease | None:
        """The toolkit release ``"12.4"`` (or ``"12.4.1"``); None when unknown."""
        table = self._section("cuda.toml", "releases").get(version)
        if table is None:
            return None
        fields = _Fields(self.root / "cuda.toml", f'releases."{version}"', table)
        family = self.cuda_family_min_driver(cuda_major_minor(version)[0])
        return CudaRelease(
            version=version,
            label=fields.text("label", f"CUDA {version}"),
            min_driver_linux=fields.text("min_driver_linux"),
            min_driver_windows=fields.optional_text("min_driver_windows"),
            family_min_driver_linux=family or fields.text("min_driver_linux"),
            confidence=fields.text("confidence", "uncertain"),
        )

    def cuda_family_min_driver(self, major: int) -> str | None:
        """Minor-version-compatibility floor of a CUDA major (12 -> "525.60.13"); None when unknown."""
        table = self._section("cuda.toml", "families").get(str(major))
        if table is None:
            return None
        return _Fields(self.root / "cuda.toml", f'families."{major}"', table).text("minor_compat_min_driver_linux")

    def cuda_builds(self) -> tuple[CudaBuild, ...]:
        """The ``[[builds]]`` rows: CUDA wheels other than torch, by release range."""
        rows = self._file("cuda.toml").get("builds", [])
        out = []
        for index, row in enumerate(rows if isinstance(rows, list) else []):
            where = f"{self.root / 'cuda.toml'}: 'builds[{index}]"
            fields = _Fields(self.root / "cuda.toml", f"builds[{index}]", row)
            major = row.get("cuda_major")
            if not isinstance(major, int) or isinstance(major, bool):
                raise FactsError(f"{where}.cuda_major' should be an integer")
            cuda = fields.optional_text("cuda")
            minor = None
            if cuda is not None:
                try:
                    cuda_major, minor = cuda_major_minor(cuda)
                except ValueError:
                    raise FactsError(f"{where}.cuda' should be a CUDA version like \"10.2\"") from None
                if cuda_major != major:
                    raise FactsError(f"{where}.cuda' {cuda!r} is not of cuda_major {major}")
            oldest = row.get("oldest_of_several", False)
            if not isinstance(oldest, bool):
                raise FactsError(f"{where}.oldest_of_several' should be true or false")
            out.append(CudaBuild(fields.text("package"), fields.text("versions"), major, minor,
                                 fields.text("source"), oldest))
        return tuple(out)

    def post_release_cuda(self, package: str, post: int) -> str | None:
        """The CUDA a release's post number names (``cuda.toml [post_release_cuda.PACKAGE]``: paddlepaddle-gpu's
        ``.post107`` is CUDA 10.0); None when the package or the number is not listed."""
        table = self._section("cuda.toml", "post_release_cuda").get(package)
        cuda = table.get(str(post)) if isinstance(table, dict) else None
        return self._cuda_value(cuda, f"post_release_cuda.{package}.{post}")

    def post_release_packages(self) -> frozenset[str]:
        return frozenset(self._section("cuda.toml", "post_release_cuda"))

    def ptx_isa_cuda(self, isa: str) -> str | None:
        """The CUDA release that introduced PTX ISA ``isa`` (``cuda.toml [ptx_isa]``); None when not listed."""
        return self._cuda_value(self._section("cuda.toml", "ptx_isa").get(isa), f"ptx_isa.{isa}")

    def _cuda_value(self, cuda: object, key: str) -> str | None:
        """A CUDA version of cuda.toml (None when absent); FactsError naming the key when it is not one."""
        if cuda is None:
            return None
        try:
            cuda_major_minor(cuda if isinstance(cuda, str) else "")
        except ValueError:
            raise FactsError(f"{self.root / 'cuda.toml'}: '{key}' should be a CUDA version like \"11.8\", got "
                             f"{cuda!r}") from None
        return str(cuda)

    def cuda_minor_compat(self, major: int) -> bool:
        """Whether builds for any minor of this CUDA major run on the major's floor driver (false for CUDA 10)."""
        table = self._section("cuda.toml", "families").get(str(major))
        return True if table is None else table.get("minor_compat", True) is not False

    def torch_pypi_default(self, version: str) -> str | None:
        """The variant of the plain PyPI Linux wheel of torch ``version``: the release table's; for a bare series
        (``"2.8"``) the one all its releases share; else the series' (``legacy_pypi_default``) for releases older than
        the table; None when unknown."""
        release = self.torch(version)
        if release is not None:
            return release.pypi_default
        series = {release.pypi_default for v in self.torch_series(version) if (release := self.torch(v)) is not None}
        if len(series) == 1:  # a bare series ("2.8") whose every release's plain wheel is the same build
            return series.pop()
        minor = ".".join(version.split("+")[0].split(".")[:2])
        value = self._file("torch.toml").get("legacy_pypi_default", {}).get(minor)
        return value if isinstance(value, str) else None

    def cuda_family_min_driver_windows(self, major: int) -> str | None:
        """Minor-version-compatibility floor of a CUDA major on Windows (12 -> "527.41"); None when unknown."""
        table = self._section("cuda.toml", "families").get(str(major))
        if table is None:
            return None
        return _Fields(self.root / "cuda.toml", f'families."{major}"', table).optional_text(
            "minor_compat_min_driver_windows")

    def cuda_versions(self) -> tuple[str, ...]:
        """Every CUDA release the table knows, oldest first."""
        return tuple(sorted(self._section("cuda.toml", "releases"), key=_version_key))

    # --- torch --------------------------------------------------------------------------------

    def torch(self, version: str) -> TorchRelease | None:
        """The torch release ``"2.3.1"`` (a local tag like ``+cu121`` is ignored); None when unknown."""
        version = version.split("+")[0]
        table = self._section("torch.toml", "releases").get(version)
        if table is None:
            return None
        fields = _Fields(self.root / "torch.toml", f'releases."{version}"', table)
        release = _torch_release(fields, version, {})  # validate torch.toml before reading companions.toml
        return dataclasses.replace(release, **self.companions_of(version))

    def torch_versions(self) -> tuple[str, ...]:
        """Every torch release the table knows, oldest first."""
        return tuple(sorted(self._section("torch.toml", "releases"), key=_version_key))

    def torch_series(self, version: str) -> tuple[str, ...]:
        """The releases the table knows of a bare series ``"2.8"`` (``2.8.0``, ``2.8.1``), oldest first; empty for a
        full version or a series the table lacks."""
        series = version.split("+")[0]
        if not re.fullmatch(r"\d+\.\d+", series):
            return ()
        return tuple(v for v in self.torch_versions() if ".".join(v.split(".")[:2]) == series)

    def torch_variant(self, variant: str) -> TorchVariant | None:
        """The CUDA variant ``"cu121"`` (its CUDA version and default arch list); None when unknown."""
        table = self._section("torch.toml", "variants").get(variant)
        if table is None:
            return None
        fields = _Fields(self.root / "torch.toml", f"variants.{variant}", table)
        archs = fields.strings("archs") if "archs" in table else None
        return TorchVariant(variant, fields.text("cuda"), archs, fields.text("archs_confidence", "uncertain"))

    def torch_archs(self, version: str, variant: str) -> tuple[str, ...] | None:
        """SASS archs compiled into torch ``version`` built for ``variant``; None when not known."""
        release, info = self.torch(version), self.torch_variant(variant)
        if release is None and info is not None and self.torch_pypi_default(version) == variant:
            return info.archs  # a release older than the table, as its plain PyPI wheel's build
        if release is None or info is None or variant not in release.variants:
            return None
        table = self._section("torch.toml", "variants")[variant]
        fields = _Fields(self.root / "torch.toml", f"variants.{variant}", table)
        by_torch = fields.mapping("archs_by_torch", list)
        if release.minor in by_torch:
            return tuple(str(a) for a in by_torch[release.minor])
        return info.archs

    def torch_index_url(self, variant: str) -> str:
        """The PyTorch package index of one variant: ``https://download.pytorch.org/whl/cu121``."""
        fields = _Fields(self.root / "torch.toml", "(top level)", self._file("torch.toml"))
        return fields.text("index_url_template").format(variant=variant)

    # --- flash-attn ---------------------------------------------------------------------------

    def flash_attn(self, version: str) -> FlashAttnRelease | None:
        """The flash-attn release ``"2.5.8"`` with its exact wheel filenames; None when unknown."""
        table = self._section("flash_attn.toml", "releases").get(version)
        if table is None:
            return None
        path = self.root / "flash_attn.toml"
        fields = _Fields(path, f'releases."{version}"', table)
        top = _Fields(path, "(top level)", self._file("flash_attn.toml"))
        return FlashAttnRelease(
            version=version,
            on_pypi=fields.flag("on_pypi"),
            wheel_cuda_tags=fields.mapping("wheel_cuda_tags", str),
            torch_minors=fields.strings("torch_minors", ()),
            python=fields.strings("python", ()),
            sass=fields.strings("sass", ()),
            min_cc=fields.optional_text("min_compute_capability"),
            wheels=frozenset(_flash_attn_filename(version, tag, fields) for tag in fields.strings("wheels")),
            wheels_confidence=fields.text("wheels_confidence", "uncertain"),
            url_template=top.text("url_template"),
            min_nvcc=fields.optional_text("min_nvcc"),
            torch_build_cuda=fields.mapping("torch_build_cuda", str),
            runners=fields.strings("runners", ()),
        )

    def flash_attn_versions(self) -> tuple[str, ...]:
        """Every flash-attn release the table knows, oldest first."""
        return tuple(sorted(self._section("flash_attn.toml", "releases"), key=_version_key))

    def flash_attn_wheel(
        self, version: str, torch_version: str, cuda: str, cxx11abi: bool, python: str
    ) -> str | None:
        """The official wheel filename for this target, named the way that release named its wheels.

        ``cuda`` is the CUDA of the torch build ("12.1" or "cu121"); the release maps its major to the
        CUDA it built with (cu118/cu122/cu123 up to 2.6.x, cu11/cu12 from 2.7.0, cu13 from 2.8.3.post1); up to 2.3.5
        the exact "major.minor" of torch's CUDA picks the tag (cu117), a bare major being a CUDA setup.py forces.
        Returns None when that release published no such wheel (pip would fall back to a source build).
        """
        release = self.flash_attn(version)
        if release is None:
            return None
        major, minor = cuda_major_minor(cuda)
        tag = release.wheel_cuda_tags.get(f"{major}.{minor}") or release.wheel_cuda_tags.get(str(major))
        if tag is None:
            return None
        torch_minor = ".".join(torch_version.split("+")[0].split(".")[:2])
        cp = "cp" + python.replace(".", "")
        abi = "TRUE" if cxx11abi else "FALSE"
        name = f"flash_attn-{version}+{tag}torch{torch_minor}cxx11abi{abi}-{cp}-{cp}-linux_x86_64.whl"
        return name if name in release.wheels else None

    # --- xformers, bitsandbytes, companions ---------------------------------------------------

    def xformers(self, version: str) -> XformersRelease | None:
        """The xformers release ``"0.0.27"``; None when unknown."""
        table = self._section("xformers.toml", "releases").get(version)
        if table is None:
            return None
        fields = _Fields(self.root / "xformers.toml", f'releases."{version}"', table)
        return XformersRelease(version, fields.text("torch"), fields.text("requires_python", ""))

    def xformers_torch(self, version: str) -> str | None:
        """The torch requirement of an xformers release ("==2.3.1"); None when unknown."""
        release = self.xformers(version)
        return release.torch if release else None

    def bitsandbytes(self, version: str) -> BitsandbytesRelease | None:
        """The bitsandbytes release ``"0.43.1"``; None when unknown."""
        table = self._section("bitsandbytes.toml", "releases").get(version)
        if table is None:
            return None
        fields = _Fields(self.root / "bitsandbytes.toml", f'releases."{version}"', table)
        return BitsandbytesRelease(
            version=version,
            torch=fields.text("torch", ""),
            requires_python=fields.text("requires_python", ""),
            cuda_libs=fields.strings("cuda_libs"),
            min_cc=fields.text("min_compute_capability"),
            int8_min_cc=fields.text("int8_min_compute_capability", "7.5"),
        )

    def companion_torch(self, package: str, version: str) -> str | None:
        """The torch release a companion wheel pins: ``companion_torch("torchvision", "0.18.1") -> "2.3.1"``."""
        table = self._section("companions.toml", package).get(version)
        if table is None:
            return None
        return _Fields(self.root / "companions.toml", f'{package}."{version}"', table).optional_text("torch")

    def companions_of(self, torch_version: str) -> dict[str, str]:
        """The torchvision/torchaudio releases built for one torch release: ``{"torchvision": "0.18.1", ...}``."""
        torch_version = torch_version.split("+")[0]
        found: dict[str, str] = {}
        for package in ("torchvision", "torchaudio"):
            for version in self._section("companions.toml", package):
                if self.companion_torch(package, version) == torch_version:
                    found[package] = version
        return found


def _torch_release(fields: _Fields, version: str, companions: dict[str, str]) -> TorchRelease:
    return TorchRelease(
        version=version,
        released=fields.text("released", ""),
        variants=fields.strings("variants"),
        pypi_default=fields.text("pypi_default"),
        python=fields.strings("python"),
        requires_python=fields.text("requires_python", ""),
        numpy2=fields.flag("numpy2"),
        cxx11abi_pypi=fields.flag("cxx11abi_pypi"),
        cxx11abi_variants=fields.mapping("cxx11abi_variants", bool),
        triton=fields.text("triton", ""),
        platform=fields.text("platform", ""),
        torchvision=companions.get("torchvision"),
        torchaudio=companions.get("torchaudio"),
        confidence=fields.text("confidence", "uncertain"),
    )


def _flash_attn_filename(version: str, entry: str, fields: _Fields) -> str:
    """``"cu122torch2.3cxx11abiFALSE-cp310"`` -> the full wheel filename."""
    tag, sep, cp = entry.rpartition("-")
    if not sep or not cp.startswith("cp") or "torch" not in tag:
        raise fields.error("wheels", "entries like 'cu122torch2.3cxx11abiFALSE-cp310'", entry)
    return f"flash_attn-{version}+{tag}-{cp}-{cp}-linux_x86_64.whl"


def _version_key(version: str) -> tuple[int, ...]:
    """Numeric sort key that tolerates ``.postN``: ``"2.8.3.post1"`` -> (2, 8, 3, 1)."""
    return tuple(int("".join(ch for ch in part if ch.isdigit()) or 0) for part in version.split("."))


@functools.lru_cache(maxsize=1)
def default_facts() -> Facts:
    """The bundled facts (one shared, lazily loaded instance)."""
    return Facts()


@functools.lru_cache(maxsize=8)
def facts_at(root: Path) -> Facts:
    """One shared, lazily loaded Facts per matrices folder, so repeated checks in one process parse each table once."""
    return Facts(root)


FACT_FILES = ("cuda.toml", "torch.toml", "flash_attn.toml", "xformers.toml", "bitsandbytes.toml", "companions.toml")


def validate_facts(root: Path | None = None) -> list[str]:
    """Every problem in the fact tables present under ``root``, one line each: every entry of every table is read
    once as ``check`` would read it."""
    facts = Facts(root)
    errors: list[str] = []

    def attempt(read: Any, *args: Any) -> None:
        try:
            read(*args)
        except FactsError as error:
            errors.append(str(error))

    present = {name for name in FACT_FILES if (facts.root / name).exists()}
    for name, versions, read in (
        ("cuda.toml", facts.cuda_versions, facts.cuda),
        ("torch.toml", facts.torch_versions, facts.torch),
        ("flash_attn.toml", facts.flash_attn_versions, facts.flash_attn),
    ):
        if name not in present:
            continue
        try:
            listed = versions()
        except FactsError as error:
            errors.append(str(error))
            continue
        for version in listed:
            attempt(read, version)
    for table, read in (("xformers.toml", facts.xformers), ("bitsandbytes.toml", facts.bitsandbytes)):
        if table not in present:
            continue
        try:
            listed = tuple(facts._section(table, "releases"))
        except FactsError as error:
            errors.append(str(error))
            continue
        for version in listed:
            attempt(read, version)
    if "torch.toml" not in present:
        return list(dict.fromkeys(errors))
    try:
        variants = tuple(facts._section("torch.toml", "variants"))
    except FactsError as error:
        return errors + [str(error)]
    for variant in variants:
        attempt(facts.torch_variant, variant)
    if "cuda.toml" in present:
        try:
            facts.cuda_builds()
        except FactsError as error:
            errors.append(str(error))
    legacy = facts._file("torch.toml").get("legacy_pypi_default", {})
    for minor, variant in (legacy.items() if isinstance(legacy, dict) else ()):
        if variant not in variants:
            errors.append(f"{facts.root / 'torch.toml'}: legacy_pypi_default.\"{minor}\": {variant!r} is not a "
                          "variant of [variants]")
    return list(dict.fromkeys(errors))
