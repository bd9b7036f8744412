"""build_plan: a stack + a target -> the install steps that work there, or PlanError saying why none does.

Pure: reads only the stack, the target and the facts tables; no network, no subprocess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.facts import Facts, TorchRelease, cuda_major_minor, cuda_of_variant, default_facts, gpu_runs_archs
from envdoctor.matrices import Stack, StackVariant, VcsPackage
from envdoctor.plan.model import Plan, PlanError, Source, Step, StepKind, Target, TorchChoice

MINOR_COMPAT_NOTE = "minor-version compatibility: limited feature set, no PTX JIT"
TORCH_FAMILY = ("torch", "torchvision", "torchaudio")
INSTALLED_APART = (*TORCH_FAMILY, "flash-attn")
CONFLICTING = ("torch", "torchvision", "torchaudio", "triton", "flash-attn", "xformers")
ENVDOCTOR_MIN_PYTHON = "3.10"  # pyproject requires-python: the check step runs envdoctor in the target interpreter


@dataclass(frozen=True)
class _Candidate:
    variant: StackVariant
    release: TorchRelease | None
    problem: str | None
    minor_compat: bool = False
    archs: tuple[str, ...] | None = None


def build_plan(
    stack: Stack,
    target: Target,
    facts: Facts | None = None,
    venv: str | None = None,
    other_stacks: Sequence[Stack] = (),
) -> Plan:
    """The plan for ``stack`` on ``target``. Raises PlanError naming the reason and stacks that would work."""
    facts = facts or default_facts()
    try:
        return _build(stack, target, facts, venv)
    except PlanError as exc:
        working = [s.name for s in other_stacks if s.name != stack.name and _works(s, target, facts)]
        hint = f"; stacks that do have a plan for this target: {', '.join(working)}" if working else ""
        raise PlanError(f"{exc}{hint}") from None


def _works(stack: Stack, target: Target, facts: Facts) -> bool:
    try:
        _build(stack, target, facts, None)
    except (PlanError, ValueError):
        return False
    return True


def _build(stack: Stack, target: Target, facts: Facts, venv: str | None) -> Plan:
    _check_python(stack, target)
    _check_stack_gpu(stack, target)
    chosen = _choose(stack, target, facts)
    assert chosen.release is not None  # _choose returns only viable candidates
    torch = TorchChoice(
        version=chosen.release.version,
        variant=chosen.variant.cuda,
        index_url=facts.torch_index_url(chosen.variant.cuda),
        minor_compat=chosen.minor_compat,
        archs=chosen.archs,
        cxx11abi=chosen.release.cxx11abi(chosen.variant.cuda),
    )
    pins = {**stack.pins, **chosen.variant.packages}
    _check_companions(pins, torch, facts)
    _check_xformers(pins, torch, facts)
    flash_step = _flash_attn_step(stack, pins.get("flash-attn"), torch, target, facts)
    steps = [_uninstall_step(), _torch_step(pins, torch)]
    steps += [flash_step] if flash_step else []
    steps += _package_steps(stack, pins)
    steps.append(_check_step(stack, target))
    return Plan(
        stack=stack.name,
        stack_summary=stack.summary,
        target=target,
        torch=torch,
        steps=tuple(steps),
        constraints=_constraints(stack, pins, torch),
        notes=_notes(stack, target, torch, facts, pins),
        venv=venv,
    )


# --- checks before choosing ------------------------------------------------------------------


def _check_python(stack: Stack, target: Target) -> None:
    if not stack.python:
        return
    try:
        inside = SpecifierSet(stack.python).contains(Version(target.python), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        raise PlanError(f"stack {stack.name}: cannot compare Python {target.python} with {stack.python!r}") from None
    if not inside:
        raise PlanError(
            f"stack {stack.name} needs Python {stack.python}, the target is Python {target.python};"
            f" pass --python with a version inside {stack.python}"
        )


def _check_stack_gpu(stack: Stack, target: Target) -> None:
    need = stack.min_compute_capability
    if stack.cpu_ok or not need or not target.gpu_cc:
        return
    if Version(target.gpu_cc) < Version(need):
        raise PlanError(
            f"stack {stack.name} needs a GPU of compute capability >= {need}; the target GPU is"
            f" sm_{target.gpu_cc.replace('.', '')}{_gpu_label(target)}"
        )


def _gpu_label(target: Target) -> str:
    return f" ({target.gpu_name})" if target.gpu_name else ""


# --- choosing the torch CUDA variant ------------------------------------------------------------


def _choose(stack: Stack, target: Target, facts: Facts) -> _Candidate:
    if not stack.variants:
        raise PlanError(f"stack {stack.name} names no torch variant ([[variants]]), so there is nothing to install")
    candidates = [_assess(variant, target, facts) for variant in stack.variants]
    viable = [c for c in candidates if c.problem is None]
    native = sorted((c for c in viable if not c.minor_compat), key=_cuda_key, reverse=True)
    compat = sorted((c for c in viable if c.minor_compat), key=_cuda_key)
    if native or compat:
        return (native or compat)[0]
    reasons = "; ".join(f"{c.variant.cuda}: {c.problem}" for c in candidates)
    raise PlanError(
        f"stack {stack.name} has no torch build that runs on the target (CUDA {target.cuda} driver,"
        f" Python {target.python}{_gpu_text(target)}): {reasons}"
    )


def _gpu_text(target: Target) -> str:
    return f", GPU sm_{target.gpu_cc.replace('.', '')}" if target.gpu_cc else ""


def _cuda_key(candidate: _Candidate) -> tuple[int, int]:
    return (0, 0) if candidate.variant.cuda == "cpu" else cuda_major_minor(candidate.variant.cuda)


def _assess(variant: StackVariant, target: Target, facts: Facts) -> _Candidate:
    release = facts.torch(variant.torch)
    if release is None:
        return _Candidate(variant, None, f"torch {variant.torch} is not in the facts tables (matrices/torch.toml)")
    if variant.cuda == "cpu":  # runs anywhere; used only by CPU test stacks
        return _Candidate(variant, release, None)
    if variant.cuda not in release.variants:
        return _Candidate(variant, release, f"torch {variant.torch} has no {variant.cuda} build")
    problem, minor_compat = _driver_problem(variant.cuda, target.cuda, facts)
    if problem is None and target.python not in release.python:
        problem = f"torch {release.version} has no CPython {target.python} wheels (has {', '.join(release.python)})"
    archs = facts.torch_archs(release.version, variant.cuda)
    if problem is None and target.gpu_cc and archs is not None and not gpu_runs_archs(target.gpu_cc, archs):
        problem = (
            f"torch {release.version}+{variant.cuda} has no kernels for sm_{target.gpu_cc.replace('.', '')}"
            f" (built for {' '.join(archs)})"
        )
    return _Candidate(variant, release, problem, minor_compat, archs)


def _driver_problem(variant: str, driver_cuda: str, facts: Facts) -> tuple[str | None, bool]:
    """(problem, relies_on_minor_compat) for a torch build of ``variant`` on a driver supporting ``driver_cuda``."""
    built = cuda_major_minor(variant)
    driver = cuda_major_minor(driver_cuda)
    if built <= driver:
        return None, False
    if built[0] == driver[0] and facts.cuda_family_min_driver(built[0]) is not None:
        return None, True
    return f"built for CUDA {cuda_of_variant(variant)}, newer than the driver's CUDA {driver_cuda}", False


# --- companion checks ---------------------------------------------------------------------------


def _check_companions(pins: dict[str, str], torch: TorchChoice, facts: Facts) -> None:
    for name in ("torchvision", "torchaudio"):
        if name in pins:
            built_for = facts.companion_torch(name, pins[name])
            if built_for is not None and built_for != torch.version:
                raise PlanError(
                    f"{name}=={pins[name]} is built for torch {built_for}, the stack installs torch {torch.version};"
                    f" fix the stack's {name} pin"
                )


def _check_xformers(pins: dict[str, str], torch: TorchChoice, facts: Facts) -> None:
    if "xformers" not in pins:
        return
    requirement = facts.xformers_torch(pins["xformers"])
    if requirement and not SpecifierSet(requirement).contains(Version(torch.version), prereleases=True):
        raise PlanError(
            f"xformers=={pins['xformers']} requires torch{requirement}, the stack installs torch {torch.version};"
            " pip would replace torch or fail"
        )


# --- flash-attn ---------------------------------------------------------------------------------


def _flash_attn_step(
    stack: Stack, version: str | None, torch: TorchChoice, target: Target, facts: Facts
) -> Step | None:
    if version is None:
        return None
    release = facts.flash_attn(version)
    if release is None:
        raise PlanError(f"flash-attn {version} is not in matrices/flash_attn.toml; no wheel URL can be given")
    _check_flash_attn_gpu(version, release.min_cc, release.sass, target)
    filename = facts.flash_attn_wheel(version, torch.version, torch.variant, torch.cxx11abi, target.python)
    if filename is None:
        raise PlanError(_no_wheel_message(stack, version, torch, target, facts))
    return Step(
        id="flash-attn",
        kind=StepKind.INSTALL,
        why=f"flash-attn {version}: the official prebuilt wheel for torch {torch.version}+{torch.variant},"
        f" CPython {target.python} (never a source build)",
        requirements=(f"flash-attn @ {release.url(filename)}",),
        source=Source.URL,
    )


def _check_flash_attn_gpu(version: str, min_cc: str | None, sass: tuple[str, ...], target: Target) -> None:
    if not target.gpu_cc:
        return
    sm = f"sm_{target.gpu_cc.replace('.', '')}"
    if min_cc and Version(target.gpu_cc) < Version(min_cc):
        raise PlanError(f"flash-attn {version} needs compute capability >= {min_cc}; the target GPU is {sm}")
    if sass and not gpu_runs_archs(target.gpu_cc, sass):
        raise PlanError(f"flash-attn {version} wheels carry kernels for {' '.join(sass)} only (no PTX); not {sm}")


def _no_wheel_message(stack: Stack, version: str, torch: TorchChoice, target: Target, facts: Facts) -> str:
    base = (
        f"flash-attn {version} has no prebuilt wheel for torch {torch.version}+{torch.variant}"
        f" (cxx11abi {torch.cxx11abi}), CPython {target.python}, {target.platform}"
    )
    for python in _nearby_pythons(target.python):
        name = facts.flash_attn_wheel(version, torch.version, torch.variant, torch.cxx11abi, python)
        if name and (not stack.python or SpecifierSet(stack.python).contains(python)):
            return f"{base}; nearest target with one: --python {python} ({name})"
    return f"{base}; no nearby Python has one either: pick a stack with a newer flash-attn"


def _nearby_pythons(python: str) -> list[str]:
    minor = int(python.split(".")[1])
    order = sorted(range(8, 16), key=lambda m: (abs(m - minor), -m))
    return [f"3.{m}" for m in order if m != minor]


# --- steps --------------------------------------------------------------------------------------


def _uninstall_step() -> Step:
    return Step(
        id="remove-conflicts",
        kind=StepKind.UNINSTALL,
        why="remove a CPU-only or mismatched torch and extensions built against it, so pip cannot keep them",
        requirements=CONFLICTING,
        source=Source.NONE,
        only_binary=False,
        use_constraints=False,
    )


def _torch_step(pins: dict[str, str], torch: TorchChoice) -> Step:
    requirements = [torch.pin]
    requirements += [f"{name}=={pins[name]}+{torch.variant}" for name in TORCH_FAMILY[1:] if name in pins]
    why = f"torch {torch.version} built for {torch.variant}, from the PyTorch index of that variant"
    if torch.minor_compat:
        why += f" ({MINOR_COMPAT_NOTE})"
    return Step("torch", StepKind.INSTALL, why, tuple(requirements), Source.TORCH_INDEX, torch.index_url)


def _package_steps(stack: Stack, pins: dict[str, str]) -> list[Step]:
    names = sorted(n for n in pins if n not in INSTALLED_APART and n not in stack.vcs)
    requirements = [f"{name}=={pins[name]}" for name in names]
    # a package the stack requires but does not pin (rich for trl 0.9.6) is installed within its bound
    unpinned = sorted(n for n in stack.requires if n not in pins and n not in TORCH_FAMILY)
    requirements += [_bounded(name, stack.requires[name]) for name in unpinned]
    steps = []
    if requirements:
        steps.append(
            Step(
                id="packages",
                kind=StepKind.INSTALL,
                why="the stack's pinned packages, wheels only, held by the constraints so torch and numpy stay put",
                requirements=tuple(sorted(requirements)),
            )
        )
    for name, vcs in sorted(stack.vcs.items()):
        if vcs.optional:
            continue
        steps.append(
            Step(
                id=f"vcs-{name}",
                kind=StepKind.INSTALL,
                why=f"{name} from git at the ref the stack names ({vcs.ref}); not on PyPI in that version",
                requirements=(_vcs_requirement(name, vcs),),
                source=Source.VCS,
                only_binary=False,
            )
        )
    return steps


def _vcs_requirement(name: str, vcs: VcsPackage) -> str:
    extras = f"[{','.join(vcs.extras)}]" if vcs.extras else ""
    url = vcs.url if vcs.url.startswith("git+") else f"git+{vcs.url}"
    return f"{name}{extras} @ {url}@{vcs.ref}"


def _bounded(name: str, spec: str) -> str:
    """``rich`` for a stack's ``rich = ">=0"`` (any version), else ``name<spec>``."""
    return name if spec.strip() in ("", ">=0") else f"{name}{spec}"


def _check_step(stack: Stack, target: Target) -> Step:
    if Version(target.python) < Version(ENVDOCTOR_MIN_PYTHON):
        why = (f"envdoctor needs Python >= {ENVDOCTOR_MIN_PYTHON}, so it cannot check this Python {target.python}"
               f" environment; check it by hand against stack {stack.name}")
        requirements: tuple[str, ...] = ()
    else:
        why = "envdoctor check against the stack, run by the target interpreter: the script fails here if it is red"
        requirements = (stack.name,)
    return Step("check", StepKind.CHECK, why, requirements, Source.NONE, only_binary=False, use_constraints=False)


# --- constraints and notes ----------------------------------------------------------------------


def _constraints(stack: Stack, pins: dict[str, str], torch: TorchChoice) -> tuple[str, ...]:
    lines = {"torch": torch.pin}
    for name in TORCH_FAMILY[1:]:
        if name in pins:
            lines[name] = f"{name}=={pins[name]}+{torch.variant}"
    for name, version in pins.items():
        if name != "flash-attn":  # installed from its wheel URL, which pip refuses to constrain to a version
            lines.setdefault(name, f"{name}=={version}")
    for name, spec in stack.requires.items():
        lines.setdefault(name, _bounded(name, spec))
    return tuple(lines[name] for name in sorted(lines))


def _notes(stack: Stack, target: Target, torch: TorchChoice, facts: Facts, pins: dict[str, str]) -> tuple[str, ...]:
    notes = [] if target.gpu_cc or stack.cpu_ok else [_unknown_gpu_note(stack, torch, facts, pins.get("flash-attn"))]
    if torch.minor_compat:
        family = facts.cuda_family_min_driver(cuda_major_minor(torch.variant)[0])
        notes.append(
            f"torch {torch.variant} is newer than the driver's CUDA; it runs through {MINOR_COMPAT_NOTE}"
            f" (driver >= {family})"
        )
    if torch.archs is None:
        notes.append(f"the GPU architectures of torch {torch.version}+{torch.variant} are not known; not checked")
    if "flash-attn" in pins:
        notes.append(
            "flash-attn wheel names come from the release's CI build matrix; that this exact asset was uploaded"
            " is not checked here (envdoctor plan --verify asks GitHub)"
        )
    for name, vcs in sorted(stack.vcs.items()):
        if vcs.optional:
            how = f": {vcs.note}" if vcs.note else ""
            notes.append(f"optional, not installed by this script: '{_vcs_requirement(name, vcs)}'{how}")
    notes += list(stack.notes)
    return tuple(notes)


def _unknown_gpu_note(stack: Stack, torch: TorchChoice, facts: Facts, flash_attn: str | None) -> str:
    parts = ["the target GPU is not known (pass --gpu-arch or --from-probe), so it is not checked here"]
    if stack.min_compute_capability:
        parts.append(f"the stack needs compute capability >= {stack.min_compute_capability}")
    if torch.archs:
        parts.append(f"torch {torch.version}+{torch.variant} has kernels for {' '.join(torch.archs)}")
    release = facts.flash_attn(flash_attn) if flash_attn else None
    if release and release.sass:
        parts.append(f"flash-attn {flash_attn} has kernels for {' '.join(release.sass)} only and no PTX")
    return "; ".join(parts)
