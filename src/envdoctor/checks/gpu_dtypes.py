"""GPUs without bfloat16 (``matrices/dtype_support.toml``) beside runtimes that run a model in its stored dtype and
refuse bfloat16 there at start-up: most current LLMs are stored in bfloat16, so such a run needs float16 set by
hand. The model is not in the snapshot, so whether it is stored in bfloat16 is not known (unverified). GPUs without
FP8 beside packages whose purpose is FP8 execution (Transformer Engine), which refuse it there (unverified too: whether
FP8 is turned on is not in the snapshot). Runtimes that refuse float16 below their own compute-capability floor
(CTranslate2 wants FP16 tensor cores, 7.0), which their users' examples ask for (faster-whisper's
``compute_type="float16"``): a warning, since the compute type is chosen in code the snapshot does not show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.checks.declared import required_names
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.pypi_facts import newest_release, release_facts
from envdoctor.rules import gpu_ccs, parse_version
from envdoctor.snapshot import normalize_name

TABLE = "dtype_support"
Row = TypeVar("Row")


@dataclass(frozen=True)
class DtypeRefusal:
    """A package that refuses a dtype on GPUs without it: the error it raises and the fix."""

    package: str
    error: str
    fix: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class DtypeSupport:
    bf16_min_cc: Version
    sources: tuple[str, ...]
    refusals: dict[str, DtypeRefusal]  # normalized package name
    fp8_min_cc: Version | None = None
    fp8_sources: tuple[str, ...] = ()
    fp8_required: dict[str, DtypeRefusal] = field(default_factory=dict)  # packages that exist to run FP8
    fp16_refused: dict[str, Fp16Floor] = field(default_factory=dict)  # runtimes with their own float16 floor


@dataclass(frozen=True)
class Fp16Floor:
    """A runtime that refuses float16 compute below its own compute-capability floor."""

    min_cc: Version
    refusal: DtypeRefusal


def load_dtype_support(matrices: Matrices) -> DtypeSupport | None:
    """The table, validated (None when absent); a bad entry raises MatrixError naming the file and key."""
    where = matrices.root / f"{TABLE}.toml"
    raw = matrices.table(TABLE)
    if not raw:
        return None
    known = set(matrices.sources)
    try:
        floor = Version(raw["bf16_min_compute_capability"])
        sources = _sources(raw["sources"], known)
        refusals = _rows(raw, "bf16_refused", known)
        fp8 = raw.get("fp8_min_compute_capability")
        fp8_floor = Version(fp8) if fp8 is not None else None
        fp8_sources = _sources(raw["fp8_sources"], known) if fp8_floor is not None else ()
        fp8_required = _rows(raw, "fp8_required", known)
        fp16_refused = _fp16_rows(raw, known)
    except (KeyError, TypeError, InvalidVersion, ValueError) as error:
        raise MatrixError(f"{where}: {error}") from None
    return DtypeSupport(floor, sources, refusals, fp8_floor, fp8_sources, fp8_required, fp16_refused)


def _fp16_rows(raw: dict, known: set[str]) -> dict[str, Fp16Floor]:
    """``[[fp16_refused]]``: the rows of ``_rows`` with a ``min_compute_capability`` each."""
    floors = {}
    for index, row in enumerate(raw.get("fp16_refused", [])):
        if not isinstance(row, dict) or not isinstance(row.get("min_compute_capability"), str):
            raise ValueError(f"fp16_refused[{index}]: expected a string min_compute_capability")
        rest = {key: value for key, value in row.items() if key != "min_compute_capability"}
        [(name, refusal)] = _rows({"fp16_refused": [rest]}, "fp16_refused", known).items()
        floors[name] = Fp16Floor(Version(row["min_compute_capability"]), refusal)
    return floors


def _rows(raw: dict, key: str, known: set[str]) -> dict[str, DtypeRefusal]:
    rows = {}
    for index, row in enumerate(raw.get(key, [])):
        if set(row) != {"package", "error", "fix", "sources"} or not all(
                isinstance(row[k], str) for k in ("package", "error", "fix")):
            raise ValueError(f"{key}[{index}]: expected string package, error, fix and a sources list")
        rows[normalize_name(row["package"])] = DtypeRefusal(
            normalize_name(row["package"]), row["error"], row["fix"], _sources(row["sources"], known))
    return rows


def _sources(raw: object, known: set[str]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) and s in known for s in raw):
        raise ValueError(f"sources {raw!r}: expected ids of matrices/sources*.toml")
    return tuple(raw)


def check_gpu_dtypes(ctx: CheckContext) -> list[Finding]:
    table = load_dtype_support(ctx.matrices)
    ccs = gpu_ccs(ctx.snapshot)
    if table is None or not ccs:
        return []
    return _without_bf16(ctx, table, min(ccs)) + _without_fp8(ctx, table, min(ccs)) + _below_fp16_floor(
        ctx, table, min(ccs))


def _below_fp16_floor(ctx: CheckContext, table: DtypeSupport, cc: Version) -> list[Finding]:
    findings = []
    packages = ctx.snapshot.packages or {}
    for name, package in sorted(packages.items()):
        floor = table.fp16_refused.get(name)
        through = None if floor else _required_row(name, package.version, table.fp16_refused)
        row = floor or through
        if row is None or cc >= row.min_cc or (through and through.refusal.package in packages):
            continue  # a runtime that is installed itself is named once, on its own
        shown = f"{name} {package.version}" if package.version else name
        via = "" if floor else f" (it runs its models with {row.refusal.package})"
        findings.append(Finding(
            rule="gpu-below-fp16-floor", category=Category.GPU_ARCH, severity=Severity.WARN,
            components=(name,) if floor else (name, row.refusal.package), sources=row.refusal.sources,
            message=f"this GPU (compute capability {cc}) is below {row.min_cc}, which {row.refusal.package} needs "
            f"for float16 compute: {shown}{via} refuses float16 and int8_float16 here ('{row.refusal.error}')",
            fix=row.refusal.fix,
        ))
    return findings


def _without_fp8(ctx: CheckContext, table: DtypeSupport, cc: Version) -> list[Finding]:
    if table.fp8_min_cc is None or cc >= table.fp8_min_cc:
        return []
    findings = []
    for name, package in sorted((ctx.snapshot.packages or {}).items()):
        row = table.fp8_required.get(name)
        if row is None:
            continue
        shown = f"{name} {package.version}" if package.version else name
        findings.append(Finding(
            rule="gpu-without-fp8", category=Category.GPU_ARCH, severity=Severity.WARN, components=(name, "gpu"),
            sources=(*table.fp8_sources, *row.sources), verified=False,
            message=f"this GPU (compute capability {cc}) has no FP8, which needs {table.fp8_min_cc}; {shown} exists to "
            f"run FP8 and refuses it here ('{row.error}') (inferred: whether FP8 is turned on is not in the snapshot)",
            fix=row.fix,
        ))
    return findings


def _without_bf16(ctx: CheckContext, table: DtypeSupport, cc: Version) -> list[Finding]:
    if cc >= table.bf16_min_cc:
        return []
    findings = []
    for name, package in sorted((ctx.snapshot.packages or {}).items()):
        refusal = table.refusals.get(name)
        through = None if refusal else _required_refusal(name, package.version, table)
        if refusal is None and through is None:
            continue
        runtime = refusal or through
        shown = f"{name} {package.version}" if package.version else name
        via = "" if refusal else f" (it requires {runtime.package}, which runs its models)"
        findings.append(Finding(
            rule="gpu-without-bf16", category=Category.GPU_ARCH, severity=Severity.WARN,
            components=(name,) if refusal else (name, runtime.package), sources=(*table.sources, *runtime.sources),
            verified=False,
            message=f"this GPU (compute capability {cc}) has no bfloat16, which needs {table.bf16_min_cc}; "
            f"{shown}{via} runs a model in its stored dtype by default, and most current LLMs are stored in "
            f"bfloat16: it refuses them at start-up ('{runtime.error}') unless float16 is set (inferred: the model "
            "is not in the snapshot)",
            fix=runtime.fix,
        ))
    return findings


def _required_refusal(name: str, version: str | None, table: DtypeSupport) -> DtypeRefusal | None:
    """The bf16-refusing runtime the installed release (its newest, version unknown) requires, if any."""
    return _required_row(name, version, table.refusals)


def _required_row(name: str, version: str | None, rows: dict[str, Row]) -> Row | None:
    """The row of a runtime that the installed release (its newest, version unknown) requires, if any."""
    parsed = parse_version(version) if version else None
    release = release_facts(name, parsed.public) if parsed is not None else newest_release(name)
    required = required_names(release.requires) if release is not None else frozenset()
    return next((rows[name] for name in sorted(required) if name in rows), None)
