"""The install plan as data: a target, the chosen torch build, and ordered steps.

Renderers (bash script, requirements + constraints, JSON) and ``--verify`` read only these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from envdoctor.errors import EXIT_FAIL, EnvdoctorError

PLAN_SCHEMA = "envdoctor.plan/1"


class PlanError(EnvdoctorError, ValueError):
    """No plan that can work exists for the target; the message says why and what would work instead."""

    exit_code = EXIT_FAIL


class Installer(str, Enum):
    """What the script installs with: ``python -m pip`` or ``uv pip --python``."""

    PIP = "pip"
    UV = "uv"


class StepKind(str, Enum):
    UNINSTALL = "uninstall"  # remove packages that would conflict (a CPU torch, a mismatched extension)
    INSTALL = "install"  # pip install of pinned requirements
    CHECK = "check"  # envdoctor check --stack: fails the script when red


class Source(str, Enum):
    """Where a step's packages come from; --verify can ask PyPI only."""

    PYPI = "pypi"
    TORCH_INDEX = "torch-index"  # download.pytorch.org/whl/<variant>
    URL = "url"  # an exact release wheel URL (flash-attn on GitHub)
    VCS = "vcs"  # git+https://...@tag
    NONE = "none"


@dataclass(frozen=True)
class Target:
    """What the plan is for. ``cuda`` is the CUDA version the driver supports (nvidia-smi 'CUDA Version')."""

    cuda: str
    python: str  # "3.10"
    gpu_cc: str | None = None  # "8.0"; None = unknown
    gpu_name: str | None = None
    platform: str = "linux_x86_64"


@dataclass(frozen=True)
class Step:
    """One install step. ``requirements`` are pip requirement strings, already pinned exactly."""

    id: str
    kind: StepKind
    why: str  # one line for the script comment
    requirements: tuple[str, ...] = ()
    source: Source = Source.PYPI
    index_url: str | None = None
    only_binary: bool = True
    use_constraints: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "why": self.why,
            "requirements": list(self.requirements),
            "source": self.source.value,
            "index_url": self.index_url,
            "only_binary": self.only_binary,
            "use_constraints": self.use_constraints,
        }


@dataclass(frozen=True)
class TorchChoice:
    """The torch build picked for the target, and how it runs there."""

    version: str  # "2.3.1"
    variant: str  # "cu121"
    index_url: str
    minor_compat: bool  # True: variant CUDA newer than the driver's, runs via minor-version compatibility
    archs: tuple[str, ...] | None
    cxx11abi: bool

    @property
    def pin(self) -> str:
        return f"torch=={self.version}+{self.variant}"


@dataclass(frozen=True)
class Plan:
    stack: str
    stack_summary: str
    target: Target
    torch: TorchChoice
    steps: tuple[Step, ...]
    constraints: tuple[str, ...]  # lines of the constraints file (-c), torch and numpy included
    notes: tuple[str, ...] = field(default_factory=tuple)
    venv: str | None = None
    envdoctor_source: str | None = None  # what the check step installs when the target lacks envdoctor
    installer: Installer = Installer.PIP
    installer_reason: str = ""  # one line: why this installer (asked for, or detected)

    def only_steps(self, ids: tuple[str, ...]) -> Plan:
        """The same plan limited to the steps named in ``ids`` (plan order kept)."""
        return replace(self, steps=tuple(step for step in self.steps if step.id in ids))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "stack": self.stack,
            "stack_summary": self.stack_summary,
            "target": {
                "cuda": self.target.cuda,
                "python": self.target.python,
                "gpu_compute_capability": self.target.gpu_cc,
                "gpu_name": self.target.gpu_name,
                "platform": self.target.platform,
            },
            "torch": {
                "version": self.torch.version,
                "variant": self.torch.variant,
                "index_url": self.torch.index_url,
                "minor_version_compatibility": self.torch.minor_compat,
                "archs": list(self.torch.archs) if self.torch.archs is not None else None,
                "cxx11abi": self.torch.cxx11abi,
            },
            "venv": self.venv,
            "envdoctor_source": self.envdoctor_source,
            "installer": self.installer.value,
            "constraints": list(self.constraints),
            "notes": list(self.notes),
            "steps": [step.to_dict() for step in self.steps],
        }
