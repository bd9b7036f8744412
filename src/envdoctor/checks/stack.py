"""The installed packages against the chosen stack: Python, requirements, exact pins, VCS refs."""

from __future__ import annotations

from envdoctor.checks import CheckContext
from envdoctor.checks.commands import (
    flash_attn_install,
    pip_install,
    plan_command,
    quoted,
    stack_torch_target,
    stack_wheel_target,
    torch_install,
)
from envdoctor.findings import Category, Finding, Severity
from envdoctor.matrices import Stack, StackVariant
from envdoctor.rules import ABSENT, UNKNOWN, fact, matches_specifier, parse_version, torch_variant


def chosen_variant(ctx: CheckContext) -> StackVariant | None:
    """The stack variant matching the installed torch's local tag, else the stack's default."""
    variant = torch_variant(ctx.snapshot)
    return ctx.stack.variant(variant if isinstance(variant, str) else None) if ctx.stack else None


def expected_pins(stack: Stack, variant: StackVariant | None) -> dict[str, str]:
    return {**stack.pins, **(variant.pins() if variant else {})}


def check_stack(ctx: CheckContext) -> list[Finding]:
    if ctx.stack is None:
        return []
    if ctx.snapshot.packages is None:
        return [_finding(ctx, "stack-packages-unknown", Category.MISSING, Severity.INFO, (),
                         "could not verify the stack: the snapshot has no package list", None, verified=False)]
    failed: set[str] = set()
    findings = _check_python(ctx) + _check_requires(ctx, failed)
    findings += _check_pins(ctx, failed)
    return findings + ([] if "torch" in failed else _check_variant(ctx)) + _check_vcs(ctx)


def skipped_for_no_gpu(ctx: CheckContext) -> list[Finding]:
    if ctx.stack is None:
        return []
    return [_finding(ctx, "stack-not-compared", Category.MISSING, Severity.INFO, (),
                     f"the packages were not compared with {ctx.stack.name}: it cannot run without a GPU", None)]


def _finding(ctx: CheckContext, rule: str, category: Category, severity: Severity, components: tuple[str, ...],
             message: str, fix: str | None, verified: bool = True) -> Finding:
    sources = ctx.stack.sources if ctx.stack else ()
    return Finding(rule=rule, category=category, severity=severity, components=components, message=message,
                   fix=fix, sources=sources, verified=verified)


def _check_python(ctx: CheckContext) -> list[Finding]:
    version, spec = ctx.snapshot.python.version, ctx.stack.python
    if not spec or version is None or matches_specifier(version, spec):
        return []
    return [_finding(ctx, "stack-python", Category.PYTHON, Severity.FAIL, ("python",),
                     f"{ctx.stack.name} needs Python {spec}; this is Python {version}",
                     f"uv venv --python {_python_for(spec)}   # then reinstall the stack into it: "
                     f"{plan_command(ctx)}")]


def _python_for(spec: str) -> str:
    """The newest CPython minor (3.9 to 3.14) that ``spec`` allows."""
    allowed = [f"3.{minor}" for minor in range(14, 8, -1) if matches_specifier(f"3.{minor}.0", spec)]
    return allowed[0] if allowed else "3.11"


def _check_requires(ctx: CheckContext, failed: set[str]) -> list[Finding]:
    findings = []
    categories = ctx.matrices.policy.requirement_category
    for name, spec in ctx.stack.requires.items():
        installed = fact(ctx.snapshot, f"packages.{name}")
        if installed is ABSENT:
            failed.add(name)
            findings.append(_missing(ctx, name, spec))
        elif not matches_specifier(installed, spec):
            failed.add(name)
            findings.append(_finding(
                ctx, "stack-requires", categories.get(name, Category.VERSION), Severity.FAIL, (name,),
                f"{ctx.stack.name} requires {name}{spec}, but {name} {installed} is installed",
                _install(ctx, name, ctx.stack.pins.get(name), spec)))
    return findings


def _missing(ctx: CheckContext, name: str, wanted: str) -> Finding:
    pin = None if wanted[0] in "<>=!~ " else wanted
    shown = f"=={pin}" if pin else wanted
    needs = name if shown.strip() in (">=0", "") else f"{name}{shown}"
    return _finding(ctx, "stack-missing", Category.MISSING, Severity.FAIL, (name,),
                    f"{name} is not installed; {ctx.stack.name} needs {needs}", _install(ctx, name, pin, wanted))


def _install(ctx: CheckContext, name: str, pin: str | None, spec: str) -> str:
    """The command that installs ``name`` as the stack wants it: exact wheels for torch and flash-attn."""
    if name == "torch":
        target = stack_torch_target(ctx)
        return torch_install(ctx, target, force=True) if target else plan_command(ctx)
    if name == "flash-attn" and pin:
        return flash_attn_install(ctx, pin, stack_wheel_target(ctx))
    if spec.startswith(" @ "):
        return f"pip install {quoted(name, spec)}"
    return pip_install(name, f"=={pin}" if pin else spec)


def _check_pins(ctx: CheckContext, failed: set[str]) -> list[Finding]:
    findings = []
    for name, pin in expected_pins(ctx.stack, chosen_variant(ctx)).items():
        installed = fact(ctx.snapshot, f"packages.{name}")
        if name in failed or installed is UNKNOWN:
            continue
        if installed is ABSENT:
            findings.append(_missing(ctx, name, pin))
        elif parse_version(installed) is None or parse_version(installed).public != parse_version(pin).public:
            findings.append(_finding(
                ctx, "stack-pin", Category.PIN, Severity.WARN, (name,),
                f"{name} {installed} is installed; {ctx.stack.name} pins {name}=={pin}{_variants_note(ctx, name)}",
                _install(ctx, name, pin, f"=={pin}")))
            failed.add(name)
    return findings


def _variants_note(ctx: CheckContext, name: str) -> str:
    return f" ({' or '.join('+' + v.cuda for v in ctx.stack.variants)})" if name == "torch" else ""


def _check_variant(ctx: CheckContext) -> list[Finding]:
    variant = torch_variant(ctx.snapshot)
    known = [v.cuda for v in ctx.stack.variants]
    if not isinstance(variant, str) or not variant or not known or variant in known:
        return []
    return [_finding(ctx, "stack-torch-variant", Category.CUDA_BUILD, Severity.WARN, ("torch",),
                     f"torch is a {variant} build; {ctx.stack.name} supports {', '.join(known)}",
                     _install(ctx, "torch", None, ""))]


def _check_vcs(ctx: CheckContext) -> list[Finding]:
    findings = []
    for name, vcs in ctx.stack.vcs.items():
        ref = fact(ctx.snapshot, f"vcs.{name}")
        installed = fact(ctx.snapshot, f"packages.{name}")
        if installed is ABSENT and not vcs.optional:
            findings.append(_missing(ctx, name, f" @ git+{vcs.url}@{vcs.ref}"))
        elif isinstance(ref, str) and ref != vcs.ref:
            findings.append(_finding(
                ctx, "stack-vcs-ref", Category.PIN, Severity.WARN, (name,),
                f"{name} was installed from git ref {ref}; {ctx.stack.name} uses {vcs.ref}",
                f"pip install \"{name} @ git+{vcs.url}@{vcs.ref}\""))
    return findings
