"""Findings and the report: what the checker concluded, as data for the renderers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from envdoctor.errors import EXIT_FAIL, EXIT_OK
from envdoctor.finding_ids import Category, Severity, require_registered

if TYPE_CHECKING:
    from envdoctor.snapshot import Snapshot

REPORT_SCHEMA = "envdoctor.report/1"


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

    def __post_init__(self) -> None:
        """Every finding, from a condition rule or a Python check, has an id registered in finding_ids.toml for its
        category and severity; anything else raises FindingIdError naming the id."""
        require_registered(self.rule, self.category, self.severity, self.verified)

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
