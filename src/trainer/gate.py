"""The gate: reasons to refuse a training run, found before any weights load. Imports no torch or numpy.

Every rank runs it. Refusals are values (Refusal), the CLI prints them and exits with trainer.errors.EXIT_REFUSED.
No flag skips the NumPy or the quantized-base checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from envdoctor import Finding

NUMPY_FIX = 'pip install "numpy==1.26.4"'
FULL_PRECISION_FIX = (
    "use the full-precision (bf16) base instead, e.g. meta-llama/Meta-Llama-3.1-8B-Instruct, "
    "not a pre-quantized copy such as unsloth/meta-llama-3.1-8b-instruct-unsloth-bnb-4bit"
)


@dataclass(frozen=True)
class Refusal:
    reason: str
    fix: str
    details: tuple[str, ...] = ()

    def render(self) -> str:
        lines = [f"REFUSED: {self.reason}"] + [f"  - {line}" for line in self.details] + [f"  fix: {self.fix}"]
        return "\n".join(lines)


def installed_numpy_version() -> str | None:
    """NumPy's version from package metadata (numpy is not imported), None when it is not installed."""
    try:
        return metadata.version("numpy")
    except metadata.PackageNotFoundError:
        return None


def numpy_refusal(version: str | None) -> Refusal | None:
    if version is None:
        return None
    try:
        major = Version(version).major
    except InvalidVersion:
        return Refusal(f"NumPy version {version!r} cannot be parsed; the trainer needs NumPy 1.x", NUMPY_FIX)
    if major < 2:
        return None
    return Refusal(
        f"NumPy {version} is installed. The trainer refuses NumPy 2.x: the Phase 1A stack (trl's numpy<2 pin, "
        "older torch and compiled extensions built against NumPy 1) breaks with it",
        NUMPY_FIX,
    )


def load_option_refusal(load_in_4bit: bool, load_in_8bit: bool) -> Refusal | None:
    chosen = [flag for flag, on in (("--load_in_4bit", load_in_4bit), ("--load_in_8bit", load_in_8bit)) if on]
    if not chosen:
        return None
    return Refusal(
        f"{' and '.join(chosen)} asked to quantize the base. The trainer trains LoRA on a full-precision (bf16) "
        "base only: merging an adapter trained on a quantized base corrupts the merged model",
        f"drop {' and '.join(chosen)}",
    )


def quantized_base_refusal(model_name: str, revision: str | None = None) -> Refusal | None:
    """Refuse a pre-quantized base, from its name, config.json and safetensors headers (no weights loaded)."""
    from envdoctor import ModelError, inspect_model

    try:
        info = inspect_model(model_name, revision=revision)
    except ModelError as error:
        return Refusal(f"cannot inspect the base model: {error}", "pass a readable model directory or hub id")
    if not info.quantized:
        return None
    return Refusal(
        f"the base model {model_name} is pre-quantized (4/8-bit, GPTQ, AWQ or a quantization_config). LoRA on a "
        "quantized base and a later merge corrupt the model",
        FULL_PRECISION_FIX,
        info.quantization_signals,
    )


def default_stack(stack: str | None, cwd: Path | None = None) -> str | None:
    """The stack to check: the flag, else None when envdoctor.toml exists (check reads it), else phase1a-2.0."""
    from trainer.config import DEFAULT_STACK

    if stack:
        return stack
    return None if ((cwd or Path.cwd()) / "envdoctor.toml").is_file() else DEFAULT_STACK


def environment_refusal(stack: str | None, cwd: Path | None = None) -> Refusal | None:
    """Run envdoctor's check in-process; refuse on any FAIL finding, listing severity, rule, message and fix."""
    import envdoctor

    try:
        check = envdoctor.check
    except (ImportError, AttributeError) as error:
        return Refusal(f"envdoctor's check is unavailable ({error})", "reinstall envdoctor: pip install -e .")
    try:
        report = check(stack=default_stack(stack, cwd), cwd=cwd)
    except (envdoctor.StackNotFoundError, envdoctor.MatrixError, envdoctor.SnapshotError) as error:
        return Refusal(f"envdoctor could not check the environment: {error}", "pass --stack with a known stack name")
    if report.exit_code == 0:
        return None
    return Refusal(
        f"envdoctor check failed for stack {report.stack}: the environment cannot run this training",
        "apply the fixes above, then run `envdoctor check` until it passes",
        tuple(render_finding(finding) for finding in report.findings if finding.severity.value == "fail"),
    )


def render_finding(finding: Finding) -> str:
    """One plain line: severity, rule, message, fix."""
    line = f"{finding.severity.value.upper()} {finding.rule}: {finding.message}"
    return f"{line} -> fix: {finding.fix}" if finding.fix else line


def refusals(
    model_name: str,
    stack: str | None,
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    revision: str | None = None,
    cwd: Path | None = None,
) -> list[Refusal]:
    """Every reason to refuse this run, checked in order: NumPy, load options, quantized base, environment."""
    found = [
        numpy_refusal(installed_numpy_version()),
        load_option_refusal(load_in_4bit, load_in_8bit),
        quantized_base_refusal(model_name, revision),
        environment_refusal(stack, cwd),
    ]
    return [refusal for refusal in found if refusal is not None]


def render_refusals(found: list[Refusal]) -> str:
    header = "The trainer refused to start (exit code 3). Nothing was loaded or written."
    return "\n\n".join([header] + [refusal.render() for refusal in found])
