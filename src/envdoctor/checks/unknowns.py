"""What the snapshot could not tell: invalid values it held, and the facts the other checks needed but lacked.

A doctor never guesses green: each of these is a finding with ``verified: false``. Invalid values and facts that
the chosen stack needs are warnings (the status cannot be ok); other unknowns are information.
"""

from __future__ import annotations

from envdoctor.checks import CheckContext
from envdoctor.checks.driver import cuda_needs
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import gpu_ccs, has_no_gpu
from envdoctor.snapshot import FieldProblem

# Field path prefix -> (category, component) of a finding about it.
FIELD_KIND = (
    ("packages.", Category.VERSION, None),
    ("nvidia.gpus", Category.GPU_ARCH, "gpu"),
    ("nvidia.", Category.DRIVER, "nvidia-driver"),
    ("torch.", Category.CUDA_BUILD, "torch"),
    ("cuda_toolkit.", Category.CUDA_BUILD, "cuda-toolkit"),
    ("python.", Category.PYTHON, "python"),
)


def check_invalid_values(ctx: CheckContext) -> list[Finding]:
    """One warning per snapshot value that is not valid for its field (it was treated as unknown)."""
    return [_invalid(problem) for problem in ctx.snapshot.problems]


def _invalid(problem: FieldProblem) -> Finding:
    category, component = Category.VERSION, None
    for prefix, kind, name in FIELD_KIND:
        if problem.where.startswith(prefix):
            category, component = kind, name
            break
    if component is None:  # packages.<name>.version
        component = problem.where.split(".")[1] if problem.where.count(".") >= 2 else "snapshot"
    return Finding(
        rule="snapshot-invalid-value", category=category, severity=Severity.WARN, components=(component,),
        message=f"the snapshot's {problem.where} is {problem.value!r}, which is not {problem.expected}: it was "
        "treated as unknown, so the checks that need it could not run",
        fix=f"re-run 'envdoctor probe -o snapshot.json' on that machine, or correct {problem.where}",
        verified=False,
    )


def check_unknown_facts(ctx: CheckContext) -> list[Finding]:
    """Facts the checks needed and the snapshot lacks: GPU architecture, driver, package versions, everything."""
    snapshot = ctx.snapshot
    if snapshot.packages is None and snapshot.nvidia is None and snapshot.python.version is None:
        nvcc = snapshot.cuda_toolkit and snapshot.cuda_toolkit.nvcc
        toolchain = [what for what, known in (("the CUDA toolkit", nvcc), ("the host compiler", snapshot.host.gcc))
                     if known]
        checked = f"only {' and '.join(toolchain)} could be checked" if toolchain else "nothing could be checked"
        return [Finding(
            rule="snapshot-empty", category=Category.MISSING, severity=Severity.WARN, components=("snapshot",),
            message=f"the snapshot holds no packages, no NVIDIA facts and no Python version: {checked}",
            fix="envdoctor probe -o snapshot.json   # on the machine to check", verified=False,
        )]
    return _unknown_gpu(ctx) + _unknown_versions(ctx)


def _needs_gpu(ctx: CheckContext) -> bool:
    return ctx.stack is not None and not ctx.stack.cpu_ok


def _unknown_gpu(ctx: CheckContext) -> list[Finding]:
    nvidia = ctx.snapshot.nvidia
    if nvidia is None or has_no_gpu(ctx.snapshot) or not nvidia.gpus:
        if nvidia is None and _needs_gpu(ctx):
            return [_unknown("gpu-facts-unknown", Category.DRIVER, ("gpu", "nvidia-driver"),
                             f"the snapshot says nothing about NVIDIA GPUs or the driver; {ctx.stack.name} needs a GPU",
                             severity=Severity.WARN)]
        if nvidia is None and (needs := cuda_needs(ctx)):
            builds = ", ".join(f"{need.package} {need.version} (CUDA {need.cuda})" for need in needs[:4])
            return [_unknown("driver-unknown", Category.DRIVER, ("nvidia-driver",),
                             f"the snapshot says nothing about the NVIDIA driver, so these CUDA builds could not be "
                             f"checked against it: {builds}", Severity.INFO,
                             fix="nvidia-smi   # its header's driver version and CUDA version; or envdoctor probe")]
        if nvidia is not None and nvidia.gpus is None and not has_no_gpu(ctx.snapshot) and _needs_gpu(ctx):
            return [_unknown("gpu-facts-unknown", Category.GPU_ARCH, ("gpu",),
                             f"the snapshot does not list the GPUs; {ctx.stack.name} needs a GPU of a given "
                             "architecture and memory, which could not be checked", severity=Severity.WARN)]
        return []
    severity = Severity.WARN if _needs_gpu(ctx) else Severity.INFO
    findings = []
    if len(gpu_ccs(ctx.snapshot)) < len(nvidia.gpus):
        findings.append(_unknown(
            "gpu-arch-unknown", Category.GPU_ARCH, ("gpu",),
            "a GPU is listed without a valid compute capability: its architecture could not be checked against "
            "the installed builds", severity))
    if nvidia.driver is None and nvidia.cuda_driver is None:
        findings.append(_unknown(
            "driver-unknown", Category.DRIVER, ("nvidia-driver",),
            "a GPU is listed but neither the driver version nor the CUDA version it supports is known: the driver "
            "could not be checked against the CUDA builds", severity))
    return findings


def _unknown_versions(ctx: CheckContext) -> list[Finding]:
    unknown = sorted(name for name, package in (ctx.snapshot.packages or {}).items() if package.version is None)
    if not unknown:
        return []
    needed = set(ctx.stack.pins) | set(ctx.stack.requires) if ctx.stack else set()
    severity = Severity.WARN if needed & set(unknown) else Severity.INFO
    return [_unknown(
        "package-version-unknown", Category.VERSION, tuple(unknown),
        f"installed with an unknown version: {', '.join(unknown)}; checks that need only their presence ran, "
        "checks that need their version could not", severity,
        fix="pip list --format=freeze   # or envdoctor probe, to record the versions")]


def _unknown(rule: str, category: Category, components: tuple[str, ...], message: str, severity: Severity,
             fix: str | None = "envdoctor probe -o snapshot.json   # on the machine to check") -> Finding:
    return Finding(rule=rule, category=category, severity=severity, components=components, message=message,
                   fix=fix, verified=False)
