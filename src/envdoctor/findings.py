"""Findings and the report: what the checker concluded, as data for the renderers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from envdoctor.errors import EXIT_FAIL, EXIT_OK

if TYPE_CHECKING:
    from envdoctor.snapshot import Snapshot

REPORT_SCHEMA = "envdoctor.report/1"


class Severity(str, Enum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.OK: 0, Severity.INFO: 1, Severity.WARN: 2, Severity.FAIL: 3}


class Category(str, Enum):
    DRIVER = "driver"
    GPU_ARCH = "gpu-arch"
    CUDA_BUILD = "cuda-build"
    ABI = "abi"
    NUMPY = "numpy"
    VERSION = "version"
    PIN = "pin"
    MISSING = "missing"
    PYTHON = "python"
    PLATFORM = "platform"
    MODEL = "model"
    RESOURCES = "resources"


class Area(str, Enum):
    """How the default table groups findings."""

    HARDWARE = "hardware"
    CUDA = "cuda"
    PACKAGES = "packages"
    EXTENSIONS = "compiled extensions"
    MODEL = "model"


AREA_OF_CATEGORY = {
    Category.DRIVER: Area.HARDWARE,
    Category.GPU_ARCH: Area.HARDWARE,
    Category.RESOURCES: Area.HARDWARE,
    Category.PLATFORM: Area.HARDWARE,
    Category.CUDA_BUILD: Area.CUDA,
    Category.ABI: Area.EXTENSIONS,
    Category.NUMPY: Area.PACKAGES,
    Category.VERSION: Area.PACKAGES,
    Category.PIN: Area.PACKAGES,
    Category.MISSING: Area.PACKAGES,
    Category.PYTHON: Area.PACKAGES,
    Category.MODEL: Area.MODEL,
}


@dataclass(frozen=True)
class Finding:
    """One conclusion: a stable rule id, what is involved, why, and the command that fixes it."""

    rule: str
    category: Category
    severity: Severity
    message: str
    components: tuple[str, ...] = ()
    fix: str | None = None
    sources: tuple[str, ...] = ()
    verified: bool = True  # False: a fact was unknown, so the point could not be checked

    @property
    def area(self) -> Area:
        return AREA_OF_CATEGORY[self.category]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["category"] = self.category.value
        data["severity"] = self.severity.value
        data["components"] = list(self.components)
        data["sources"] = list(self.sources)
        return data


@dataclass(frozen=True)
class ScoreLine:
    """One deduction from the score, so the number explains itself."""

    rule: str
    severity: Severity
    points: int


@dataclass(frozen=True)
class Score:
    percent: int
    lost: tuple[ScoreLine, ...] = ()
    explanation: str = ""


@dataclass(frozen=True)
class Report:
    stack: str | None
    stack_reason: str
    findings: tuple[Finding, ...]
    score: Score
    snapshot: Snapshot  # the environment that was checked

    @property
    def status(self) -> Severity:
        """ok, warn or fail: the worst severity among the findings (info counts as ok)."""
        worst = max((f.severity.rank for f in self.findings), default=0)
        if worst >= Severity.FAIL.rank:
            return Severity.FAIL
        if worst >= Severity.WARN.rank:
            return Severity.WARN
        return Severity.OK

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if self.status is Severity.FAIL else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "stack": self.stack,
            "stack_reason": self.stack_reason,
            "status": self.status.value,
            "score": self.score.percent,
            "score_explanation": self.score.explanation,
            "score_lost": [
                {"rule": s.rule, "severity": s.severity.value, "points": s.points} for s in self.score.lost
            ],
            "findings": [f.to_dict() for f in self.findings],
            "snapshot": self.snapshot.to_dict(),
        }
