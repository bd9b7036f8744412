"""torch.compile against the Python it runs on: each torch release's TorchDynamo supports CPython up to one minor
(matrices/torch_compile.toml); above it torch imports and runs eagerly, but the first torch.compile call raises."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.rules import parse_version

TABLE = "torch_compile"
RULE = "torch-compile-python-unsupported"


@dataclass(frozen=True)
class DynamoPython:
    torch: SpecifierSet
    max_python: Version
    sources: tuple[str, ...]


def check_compile_python(ctx: CheckContext) -> list[Finding]:
    torch = ctx.snapshot.packages.get("torch") if ctx.snapshot.packages else None
    python = _minor(ctx.snapshot.python.version)
    if torch is None or python is None:
        return []
    rows = load_dynamo_python(ctx.matrices)
    if not rows:
        return []
    newest = max(rows, key=lambda row: row.max_python)
    version = parse_version(torch.version)
    if version is None or version.release[:2] < (2, 0):
        return []
    release = Version(version.base_version)
    row = next((row for row in rows if release in row.torch), None)
    if row is None:  # newer than the table; support never goes back, so only a newer Python is in doubt
        return [_finding(torch.version, python, newest, verified=False)] if python > newest.max_python else []
    return [_finding(torch.version, python, row, verified=True)] if python > row.max_python else []


def _finding(torch: str, python: Version, row: DynamoPython, verified: bool) -> Finding:
    if verified:
        message = (f"torch {torch} cannot torch.compile on Python {python}: its TorchDynamo supports Python up to "
                   f"{row.max_python}, and the first torch.compile call raises 'Dynamo is not supported on Python "
                   f"{python}+' (eager code runs; the trainer's --torch_compile, Unsloth and other compiling "
                   "libraries fail)")
        fix = (f"use a torch release whose torch.compile supports Python {python} (with its matching torchvision/"
               f"torchaudio), or a Python <= {row.max_python} environment")
    else:
        message = (f"torch {torch} is newer than the table of torch.compile's Python support, which ends at Python "
                   f"{row.max_python}; whether torch.compile runs on Python {python} is not known")
        fix = f"to be safe, use Python <= {row.max_python} where torch.compile is needed"
    return Finding(rule=RULE, category=Category.PYTHON, severity=Severity.WARN if verified else Severity.INFO,
                   components=("torch", "python"), message=message, fix=fix, sources=row.sources,
                   verified=verified)


def _minor(text: str | None) -> Version | None:
    parsed = parse_version(text)
    return Version(f"{parsed.release[0]}.{parsed.release[1] if len(parsed.release) > 1 else 0}") if parsed else None


def load_dynamo_python(matrices: Matrices) -> tuple[DynamoPython, ...]:
    """The table's rows, validated (() when the matrices folder has no such table); a bad row raises MatrixError
    naming the file and row."""
    where = matrices.root / f"{TABLE}.toml"
    rows = []
    for index, row in enumerate(matrices.table(TABLE).get("dynamo_python", [])):
        try:
            rows.append(DynamoPython(SpecifierSet(row["torch"]), Version(row["max_python"]), tuple(row["sources"])))
        except (KeyError, TypeError, InvalidSpecifier, ValueError) as error:
            raise MatrixError(f"{where}: dynamo_python[{index}]: needs torch (a specifier), max_python (a "
                              f"version) and sources, a list of source ids ({error})") from None
    return tuple(rows)
