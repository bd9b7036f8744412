"""flash-attn releases whose backward pass for large head dimensions runs only on A100/H100-class GPUs
(``matrices/flash_attn_backward.toml``, from each release's README): on another GPU, training a model whose head
dimension is above the release's limit fails in the backward pass. The model's head dimension is not in a snapshot,
so the finding is unverified (most LLMs use 128; Gemma 256)."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.checks import CheckContext
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Matrices, MatrixError
from envdoctor.rules import gpu_ccs, parse_version

TABLE = "flash_attn_backward"


@dataclass(frozen=True)
class BackwardLimit:
    versions: str
    max_head_dim: int
    capabilities: frozenset[Version]  # the GPUs where larger head dimensions still run
    sources: tuple[str, ...]


def load_flash_attn_backward(matrices: Matrices) -> tuple[BackwardLimit, ...]:
    """The rows, validated; a bad row raises MatrixError naming the file and row."""
    where = matrices.root / f"{TABLE}.toml"
    rows = []
    for index, row in enumerate(matrices.table(TABLE).get("limit", [])):
        try:
            SpecifierSet(row["versions"])
            limit = row["max_head_dim"]
            if not isinstance(limit, int) or isinstance(limit, bool) or not row["sources"]:
                raise ValueError("max_head_dim should be an integer and sources a non-empty list")
            rows.append(BackwardLimit(row["versions"], limit, frozenset(Version(cc) for cc in row["capabilities"]),
                                      tuple(row["sources"])))
        except (KeyError, TypeError, ValueError, InvalidSpecifier, InvalidVersion) as error:
            raise MatrixError(f"{where}: limit[{index}]: needs versions (a specifier), max_head_dim, capabilities "
                              f"(\"X.Y\" each) and sources ({error})") from None
    return tuple(rows)


def check_flash_attn_backward(ctx: CheckContext) -> list[Finding]:
    package = (ctx.snapshot.packages or {}).get("flash-attn")
    parsed = parse_version(package.version) if package is not None and package.version else None
    ccs = sorted(set(gpu_ccs(ctx.snapshot)))
    if parsed is None or not ccs:
        return []
    release = Version(parsed.public)
    for limit in load_flash_attn_backward(ctx.matrices):
        if not SpecifierSet(limit.versions).contains(release, prereleases=True):
            continue
        others = [cc for cc in ccs if cc not in limit.capabilities]
        if not others:
            return []
        shown = ", ".join(str(cc) for cc in others)
        return [Finding(
            rule="flash-attn-backward-head-dim", category=Category.GPU_ARCH, severity=Severity.WARN,
            components=("flash-attn", "gpu"), sources=limit.sources, verified=False,
            message=f"flash-attn {package.version}'s backward pass for head dimensions above {limit.max_head_dim} "
            f"runs only on A100/H100-class GPUs (compute capability 8.0 or 9.0), and this GPU is {shown}: training a "
            f"model whose head dimension is above {limit.max_head_dim} (most LLMs use 128) fails in backward "
            "('FlashAttention backward for head dim > 64 requires A100 or H100 GPUs', 'Expected is_sm80 to be true'); "
            "inference is not affected",
            fix="pip install \"flash-attn>=2.5.5\" --no-build-isolation   # head dim up to 256 in backward on this GPU "
            "(without dropout); or train with use_flash_attention off",
        )]
    return []
