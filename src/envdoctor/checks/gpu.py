"""GPU presence, architecture and memory against torch, flash-attn, bitsandbytes and the stack."""

from __future__ import annotations

from packaging.version import Version

from envdoctor.checks import CheckContext
from envdoctor.checks.bitsandbytes_support import check_bitsandbytes_gpu_support
from envdoctor.checks.commands import plan_command, stack_torch_target, torch_install, torch_target
from envdoctor.checks.plain_torch import plain_wheel_is_cpu_only
from envdoctor.checks.toolkit import source_archive_only
from envdoctor.checks.torch_range import TorchBuild, TorchRange, plain_version_range, unknown_version_range
from envdoctor.facts import gpu_runs_archs
from envdoctor.findings import Category, Finding, Severity
from envdoctor.rules import (
    ABSENT,
    CPU_ONLY_PYPI_PLATFORMS,
    fact,
    gpu_ccs,
    has_no_gpu,
    parse_version,
    public_of,
    torch_variant,
)


def check_gpu_present(ctx: CheckContext) -> list[Finding]:
    """One clear failure when the stack needs an NVIDIA GPU and the probe found none."""
    if not has_no_gpu(ctx.snapshot) or (ctx.stack is not None and ctx.stack.cpu_ok):
        return []
    reason = ctx.snapshot.nvidia.error if ctx.snapshot.nvidia and ctx.snapshot.nvidia.error else "no GPU listed"
    name = ctx.stack.name if ctx.stack else "GPU training"
    severity = Severity.FAIL if ctx.stack is not None else Severity.WARN
    return [Finding(
        rule="no-nvidia-gpu", category=Category.DRIVER, severity=severity, components=("nvidia-driver",),
        message=f"no usable NVIDIA GPU or driver ({reason}); {name} needs one: the driver, GPU and CUDA checks were "
        "skipped (the installed packages were still checked against each other)",
        fix="run on a machine with an NVIDIA GPU and driver (nvidia-smi must work), or choose a cpu_ok stack",
        sources=("anchors-failure-modes",),
    )]


def _gpu_count(ctx: CheckContext) -> int | None:
    """NVIDIA GPUs seen: the listed ones, at least 1 when only a working driver is known; None when unknown."""
    nvidia = ctx.snapshot.nvidia
    if nvidia is None:
        return None
    if has_no_gpu(ctx.snapshot):
        return 0
    if nvidia.gpus:
        return len(nvidia.gpus)
    return 1 if nvidia.driver or nvidia.cuda_driver else None


def check_cpu_torch(ctx: CheckContext) -> list[Finding]:
    snapshot, count = ctx.snapshot, _gpu_count(ctx)
    variant, version = torch_variant(snapshot), fact(snapshot, "packages.torch")
    if count == 0 or version is ABSENT or version is None:
        return []
    plain_cpu_here = variant == "" and isinstance(version, str) and bool(plain_wheel_is_cpu_only(snapshot, version))
    why = _plain_cpu_reason(ctx, version) if plain_cpu_here else ""
    if count is None:
        if snapshot.host.os == "darwin":  # no NVIDIA GPU runs under macOS: a CPU build is the right one there
            return _no_cuda_on_macos(version if isinstance(version, str) else "(version unknown)")
        plain_cpu_platform = variant is None and snapshot.host.os in CPU_ONLY_PYPI_PLATFORMS
        cpu = variant == "cpu" or plain_cpu_platform or plain_cpu_here
        if plain_cpu_platform and not why:
            why = _pypi_cpu_platform_reason(snapshot.host.os)
        if cpu:
            return _cpu_torch_gpu_unknown(version if isinstance(version, str) else "(version unknown)", why)
        return _torch_build_and_gpu_unknown() if variant is None and snapshot.torch is None else []
    if variant is None and snapshot.torch is not None and snapshot.torch.archs:
        return []  # GPU archs compiled in: a CUDA build (its archs are judged on their own)
    if variant is None:
        pypi_cpu = snapshot.host.os in CPU_ONLY_PYPI_PLATFORMS
        return [Finding(
            rule="torch-build-unknown", category=Category.CUDA_BUILD, severity=Severity.WARN, components=("torch",),
            sources=("anchors-failure-modes", "pypi-metadata") if pypi_cpu else ("anchors-failure-modes",),
            verified=pypi_cpu,
            message=f"torch is installed beside {count} NVIDIA GPU(s), but neither its version tag nor its CUDA is "
            "known: it could be a CPU-only build ('Torch not compiled with CUDA enabled')"
            + (_pypi_cpu_platform_reason(snapshot.host.os) if pypi_cpu else ""),
            fix="python -c \"import torch; print(torch.__version__, torch.version.cuda)\"   # None means a CPU build",
        )]
    if variant != "cpu" and not plain_cpu_here:
        return []
    plain = isinstance(version, str) and "+" not in version
    if plain and not why:
        why = f" (the plain PyPI wheel on {snapshot.host.os} is a CPU build)"
    return [Finding(
        rule="cpu-torch-on-gpu-machine", category=Category.CUDA_BUILD, severity=Severity.FAIL,
        components=("torch",), sources=("anchors-failure-modes",),
        message=f"torch {version} is a CPU-only build{why} on a machine with {count} NVIDIA GPU(s): "
        "'Torch not compiled with CUDA enabled', or training silently runs on the CPU",
        fix=_torch_fix(ctx),
    )] + _extensions_built_against_cpu_torch(ctx, str(version))


def _extensions_built_against_cpu_torch(ctx: CheckContext, torch: str) -> list[Finding]:
    """torch extensions compiled here (PyPI has only the source archive of the installed release) against this
    CPU-only torch, whose setup.py builds CUDA ops only where torch has CUDA (``cuda_if_torch_cuda`` of
    policy.toml): they are CPU-only builds too."""
    packages = ctx.snapshot.packages or {}
    findings = []
    for name in ctx.matrices.policy.cuda_if_torch_cuda:
        package = packages.get(name)
        if package is None or not package.version or "+" in package.version or package.direct_url \
                or not source_archive_only(name, package.version):
            continue
        findings.append(Finding(
            rule="extension-built-against-cpu-torch", category=Category.CUDA_BUILD, severity=Severity.WARN,
            components=(name, "torch"), sources=("torch-extension-cpu-fallback", "pypi-metadata"), verified=False,
            message=f"{name} {package.version} was most likely compiled here (PyPI has only its source archive, and "
            f"no local label names another index's build) against torch {torch}, a CPU-only build: it has no CUDA "
            "ops either ('Not compiled with CUDA support')",
            fix=f"after installing a CUDA torch: pip install --force-reinstall --no-cache-dir --no-build-isolation "
            f"\"{name}=={package.version}\"   # rebuilt against it (needs nvcc)",
        ))
    return findings


def _plain_cpu_reason(ctx: CheckContext, version: str) -> str:
    host = ctx.snapshot.host
    return (f" (the plain PyPI wheel of torch {version} for {host.os} {host.arch} is a CPU build: that release "
            "requires its CUDA libraries, the nvidia-* wheels, on Linux x86_64 only)")


def _pypi_cpu_platform_reason(os: str | None) -> str:
    return (f" (inferred: on {os} every torch wheel on PyPI is CPU-only, its CUDA libraries, the nvidia-* wheels, "
            "being declared for Linux only; a CUDA build comes only from the PyTorch index of a CUDA variant)")


def _torch_build_and_gpu_unknown() -> list[Finding]:
    """Neither torch's build (version, tag, CUDA) nor the GPUs are in the snapshot: whether this torch can use an
    NVIDIA GPU at all, the first thing GPU training needs, could not be checked (unverified, not silence)."""
    return [Finding(
        rule="torch-build-unknown", category=Category.CUDA_BUILD, severity=Severity.WARN, components=("torch",),
        sources=("anchors-failure-modes",), verified=False,
        message="torch is installed, but neither its build (version tag, CUDA) nor the machine's NVIDIA GPUs are in "
        "the snapshot: whether it is a CUDA build could not be checked; a CPU-only build (what pip or conda installs "
        "when no CUDA build matches) gives 'Torch not compiled with CUDA enabled'",
        fix="python -c \"import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())\"   "
        "# or envdoctor probe",
    )]


def _no_cuda_on_macos(version: str) -> list[Finding]:
    """macOS runs no NVIDIA GPU and no CUDA (PyTorch's macOS builds are CPU and MPS only): what envdoctor checks,
    CUDA training, cannot run there, whatever is installed."""
    return [Finding(
        rule="no-cuda-on-macos", category=Category.PLATFORM, severity=Severity.WARN, components=("torch",),
        sources=("anchors-failure-modes",),
        message=f"torch {version} on macOS: macOS has no CUDA (PyTorch's macOS builds run on the CPU or Apple's MPS), "
        "so code that moves models or tensors to 'cuda' fails ('Torch not compiled with CUDA enabled') and CUDA "
        "packages (bitsandbytes' CUDA kernels, flash-attn, xformers' CUDA ops) have nothing to run on",
        fix="train on a Linux machine (or WSL2 on Windows) with an NVIDIA GPU; on this Mac use device 'mps' or 'cpu'",
    )]


def _cpu_torch_gpu_unknown(version: object, why: str = "") -> list[Finding]:
    """torch's CPU-only build is known (a +cpu tag, or the platform's PyPI wheel); only the GPU is not: envdoctor
    checks GPU training environments, so this is said as a warning with that assumption."""
    return [Finding(
        rule="cpu-torch-gpu-unknown", category=Category.CUDA_BUILD, severity=Severity.WARN, components=("torch",),
        sources=("anchors-failure-modes",),
        message=f"torch {version} is a CPU-only build{why} and the snapshot does not say whether the machine has an "
        "NVIDIA GPU: if it has, 'Torch not compiled with CUDA enabled' (training runs on the CPU)",
        fix="nvidia-smi   # if it lists a GPU: envdoctor plan --from-probe > install.sh && bash install.sh",
    )]


def _torch_fix(ctx: CheckContext) -> str:
    """The stack's CUDA build of torch (else the same release's PyPI CUDA build), forced over the CPU one."""
    target = stack_torch_target(ctx)
    version = fact(ctx.snapshot, "packages.torch")
    if target is None and isinstance(version, str):
        release = ctx.facts.torch(version)
        target = torch_target(ctx, version, release.pypi_default) if release else None
    if target is None or not target.variant.startswith("cu"):
        return plan_command(ctx)
    return torch_install(ctx, target, force=True)


def _torch_archs(ctx: CheckContext) -> tuple[tuple[str, ...] | None, str]:
    """(archs, where from): the snapshot's list, else the facts for the installed release/variant."""
    if ctx.snapshot.torch and ctx.snapshot.torch.archs:
        return ctx.snapshot.torch.archs, "the installed torch reports"
    version, variant = fact(ctx.snapshot, "packages.torch"), torch_variant(ctx.snapshot)
    if not isinstance(variant, str) or variant == "cpu" or version in (ABSENT, None):
        return None, ""
    release = ctx.facts.torch(version) if isinstance(version, str) else None
    if release is None and isinstance(version, str) and ctx.facts.torch_series(version):
        return _series_archs(ctx, version, variant)
    if not variant and isinstance(version, str):
        variant = ctx.facts.torch_pypi_default(version) or ""
    archs = ctx.facts.torch_archs(version, variant) if release else None
    if archs is None and variant:
        info = ctx.facts.torch_variant(variant)  # a nightly or a release the table lacks: the variant's archs
        archs = info.archs if info else None
    shown = version if isinstance(version, str) else "(version unknown)"
    return archs, f"torch {shown} {variant} wheels ship"


def _series_archs(ctx: CheckContext, series: str, variant: str) -> tuple[tuple[str, ...] | None, str]:
    """A bare series (a thread's "torch 2.8"): the archs every recorded release of it ships for the variant (its
    PyPI default when the variant is unknown), when they all agree; else unknown."""
    found = set()
    for version in ctx.facts.torch_series(series):
        chosen = variant or ctx.facts.torch_pypi_default(version) or ""
        archs = ctx.facts.torch_archs(version, chosen)
        if archs is None:
            return None, ""
        found.add((chosen, archs))
    if len(found) != 1:
        return None, ""
    (chosen, archs), = found
    return archs, f"torch {series} {chosen} wheels ship (every {series}.x release)"


def check_torch_archs(ctx: CheckContext) -> list[Finding]:
    archs, origin = _torch_archs(ctx)
    if archs is None:
        return _below_an_older_variants_floor(ctx) or _unknown_build_archs(ctx)
    missing = sorted({str(cc) for cc in gpu_ccs(ctx.snapshot) if not _runs(str(cc), archs)})
    if not missing:
        return _tagless_other_variants(ctx)
    return [Finding(
        rule="gpu-arch-not-in-torch", category=Category.GPU_ARCH, severity=Severity.FAIL, components=("torch",),
        message=f"GPU compute capability {', '.join(missing)} is not among the archs {origin} "
        f"({' '.join(archs)}): 'no kernel image is available for execution on the device'",
        fix=f"{plan_command(ctx)}   # a torch variant whose wheels include this GPU (Blackwell needs cu128+)",
        sources=("torch-archs", "anchors-failure-modes"),
    )]


def _below_an_older_variants_floor(ctx: CheckContext) -> list[Finding]:
    """A CUDA variant whose arch list is not recorded (torch 2.8.0+cu129): the same release's build for the nearest
    older CUDA whose list is known sets a floor, since PyTorch's builds for a newer CUDA never bring back an arch
    that an older CUDA's build dropped (nvcc itself drops the oldest ones)."""
    version, variant = fact(ctx.snapshot, "packages.torch"), torch_variant(ctx.snapshot)
    release = ctx.facts.torch(version) if isinstance(version, str) else None
    if release is None or not isinstance(variant, str) or not variant.startswith("cu") or not variant[2:].isdigit():
        return []
    older = sorted((v for v in release.variants if v.startswith("cu") and v[2:].isdigit()
                    and int(v[2:]) < int(variant[2:]) and ctx.facts.torch_archs(release.version, v)),
                   key=lambda v: int(v[2:]))
    if not older:
        return []
    archs = ctx.facts.torch_archs(release.version, older[-1]) or ()
    floor = min((a for a in archs if a.startswith("sm_")), key=_sm_number, default=None)
    if floor is None:
        return []
    low = sorted({str(cc) for cc in gpu_ccs(ctx.snapshot) if _cc_number(str(cc)) < _sm_number(floor)})
    if not low:
        return []
    return [Finding(
        rule="gpu-arch-not-in-torch", category=Category.GPU_ARCH, severity=Severity.WARN, components=("torch",),
        sources=("torch-archs",), verified=False,
        message=f"GPU compute capability {', '.join(low)}: the archs of torch {release.version}'s {variant} build "
        f"are not recorded, but its {older[-1]} build starts at {floor} (inferred: a build for a newer CUDA never "
        "brings back an arch an older one dropped): 'no kernel image is available for execution on the device'",
        fix=f"{plan_command(ctx)}   # a torch variant whose wheels include this GPU",
    )]


def _sm_number(arch: str) -> int:
    """``sm_90a`` -> 90."""
    return int(arch[3:].rstrip("af"))


def _cc_number(cc: str) -> int:
    """``6.1`` -> 61, as in ``sm_61``."""
    major, _, minor = cc.partition(".")
    return int(major) * 10 + int(minor or 0)


def _lacking(ctx: CheckContext, span: TorchRange | None, ccs: list[str]) -> tuple[list[TorchBuild], list[TorchBuild]]:
    """(builds of known archs, those of them with no kernels for one of ``ccs``)."""
    known = [b for b in (span.builds if span else ()) if ctx.facts.torch_archs(b.version, b.variant) is not None]
    return known, [b for b in known if not all(_runs(cc, ctx.facts.torch_archs(b.version, b.variant)) for cc in ccs)]


def _range_archs(ctx: CheckContext) -> list[Finding]:
    """torch of an unknown version whose every possible build is judged: when most CUDA builds of the range have
    no kernels for this GPU, a warning that says what is assumed (an inference over the range, not a guess)."""
    span, ccs = unknown_version_range(ctx), sorted({str(cc) for cc in gpu_ccs(ctx.snapshot)})
    known, lacking = _lacking(ctx, span, ccs)
    if span is None or not ccs or not known or 2 * len(lacking) <= len(known):
        return []
    runs = sorted({f"{b.variant} of {b.version}" for b in known if b not in lacking}, key=_build_order)
    which = f"only {_span_of(runs)} have them" if runs else "none has them"
    return [Finding(
        rule="gpu-arch-not-in-torch", category=Category.GPU_ARCH, severity=Severity.WARN, components=("torch",),
        sources=("torch-archs",),
        message=f"torch's version is unknown, and {span.share(lacking, known)} have no kernels for compute "
        f"capability {', '.join(ccs)} ({which}): unless torch is one of those, 'no kernel image is available for "
        "execution on the device' (inferred over the range)",
        fix=f"{plan_command(ctx)}   # a torch variant whose wheels include this GPU",
    )]


def _build_order(text: str) -> tuple[int, ...]:
    variant, _, version = text.partition(" of ")
    return (*(int(p) for p in version.split(".") if p.isdigit()), int(variant.removeprefix("cu")))


def _span_of(runs: list[str]) -> str:
    return ", ".join(runs) if len(runs) <= 4 else f"{len(runs)} builds from {runs[0]} to {runs[-1]}"


def _tagless_other_variants(ctx: CheckContext) -> list[Finding]:
    """A torch release without a local tag or a reported CUDA, judged as PyPI's build, which runs on this GPU: when
    other CUDA builds of the release (the PyTorch index's, tagged ``+cuXYZ``, a tag threads often drop) lack the
    GPU's arch, an inferred warning naming them."""
    version = fact(ctx.snapshot, "packages.torch")
    if torch_variant(ctx.snapshot) != "" or not isinstance(version, str) or (ctx.snapshot.torch and
                                                                          ctx.snapshot.torch.archs):
        return []
    release, ccs = ctx.facts.torch(version), sorted({str(cc) for cc in gpu_ccs(ctx.snapshot)})
    if release is None or not ccs:
        return []
    lacking = [variant for variant in release.variants if variant != release.pypi_default
               and (archs := ctx.facts.torch_archs(release.version, variant))
               and not all(_runs(cc, archs) for cc in ccs)]
    if not lacking:
        return []
    builds = f"builds from the PyTorch index (+{lacking[0]}, ...) have" if len(lacking) > 1 else \
        f"build from the PyTorch index (+{lacking[0]}) has"
    return [Finding(
        rule="gpu-arch-not-in-torch", category=Category.GPU_ARCH, severity=Severity.WARN, components=("torch",),
        sources=("torch-archs",), verified=False,
        message=f"torch {release.version} carries no local tag, so it is taken as PyPI's {release.pypi_default} "
        f"build, which has kernels for compute capability {', '.join(ccs)}; its {', '.join(lacking)} {builds} "
        "none: if it came from there, 'no kernel image is available for execution on the device' (inferred: the "
        "build is not known)",
        fix=f"{plan_command(ctx)}   # a torch variant whose wheels include this GPU",
    )]


def _tagless_on_cpu_platform(ctx: CheckContext) -> list[Finding]:
    """A version without a local tag on a platform whose PyPI wheel is CPU-only, beside a GPU: a thread that shows
    CUDA at work dropped the tag of a PyTorch-index build. When that release's default CUDA build (the one PyPI's
    Linux wheel is and pytorch.org's selector suggests) and at least half of its CUDA builds lack this GPU's arch,
    say so, with the assumption."""
    span, ccs = plain_version_range(ctx), sorted({str(cc) for cc in gpu_ccs(ctx.snapshot)})
    if span is None or not ccs or ctx.snapshot.host.os not in CPU_ONLY_PYPI_PLATFORMS:
        return []
    known, lacking = _lacking(ctx, span, ccs)
    release = ctx.facts.torch(span.builds[0].version)
    default = next((b for b in known if release and b.variant == release.pypi_default), None)
    if default is None or default not in lacking or 2 * len(lacking) < len(known):
        return []
    return [Finding(
        rule="gpu-arch-not-in-torch", category=Category.GPU_ARCH, severity=Severity.WARN, components=("torch",),
        sources=("torch-archs",),
        message=f"torch {release.version} carries no local tag; if it is a CUDA build from the PyTorch index, "
        f"{span.share(lacking, known)} have no kernels for compute capability {', '.join(ccs)}, the default "
        f"{default.variant} among them: 'no kernel image is available for execution on the device' (inferred: the "
        "build is not known)",
        fix=f"{plan_command(ctx)}   # a torch variant whose wheels include this GPU",
    )]


def _unknown_build_archs(ctx: CheckContext) -> list[Finding]:
    """torch of an unknown build: the newest release's PyPI build lacks this GPU's arch, so a current install from
    PyPI does not run on it (not verified: torch may come from another index)."""
    version, ccs = fact(ctx.snapshot, "packages.torch"), gpu_ccs(ctx.snapshot)
    if version in (ABSENT, None) or not ccs:
        return []
    if isinstance(version, str):
        return _tagless_on_cpu_platform(ctx)
    if torch_variant(ctx.snapshot) == "cpu":
        return []
    ranged = _range_archs(ctx)
    if ranged:
        return ranged
    newest = ctx.facts.torch(ctx.facts.torch_versions()[-1]) if ctx.facts.torch_versions() else None
    archs = ctx.facts.torch_archs(newest.version, newest.pypi_default) if newest else None
    missing = sorted({str(cc) for cc in ccs if archs and not _runs(str(cc), archs)})
    if not missing:
        return []
    releases = [r for r in map(ctx.facts.torch, reversed(ctx.facts.torch_versions())) if r is not None]
    runs = [r.version for r in releases for variant in r.variants
            if all(_runs(cc, ctx.facts.torch_archs(r.version, variant) or ()) for cc in missing)]
    hint = f" (torch {runs[0]} still has a build for it)" if runs else ""
    return [Finding(
        rule="gpu-arch-not-in-torch", category=Category.GPU_ARCH, severity=Severity.WARN, components=("torch",),
        verified=False, sources=("torch-archs",),
        message=f"torch is installed with an unknown build, and the current PyPI build (torch {newest.version} "
        f"{newest.pypi_default}) has no kernels for compute capability {', '.join(missing)} ({' '.join(archs)})"
        f"{hint}: 'no kernel image is available for execution on the device'",
        fix=f"{plan_command(ctx)}   # a torch variant whose wheels include this GPU",
    )]


def _runs(cc: str, archs: tuple[str, ...]) -> bool:
    """torch's own rule (``torch.cuda._check_cubins``): SASS of the GPU's major with a lower-or-equal minor runs.
    PTX (compute_XY) is counted for the same major only: it would JIT torch's own kernels for a newer major, but the
    CUDA libraries the build bundles (cuBLAS, cuDNN) have none for it ('no kernel image is available')."""
    ptx = [a.removeprefix("compute_") for a in archs if a.startswith("compute_")]
    major, minor = (int(p) for p in cc.split(".")[:2])
    jit = any(p.isdigit() and int(p[:-1]) == major and int(p[-1]) <= minor for p in ptx)
    return jit or gpu_runs_archs(cc, archs)


def _flash_attn_floor(ctx: CheckContext, version: object) -> tuple[str | None, tuple[str, ...], str]:
    """(minimum compute capability, SASS archs, how known) of the installed flash-attn release; for an unknown
    version, the lowest minimum any 2.x release in the table has (flash-attn 2 never ran below it)."""
    release = ctx.facts.flash_attn(public_of(version)) if isinstance(version, str) else None
    if release is not None:
        return release.min_cc, release.sass, ""
    if isinstance(version, str) and not version.startswith("2."):
        return None, (), ""
    floors = [r.min_cc for r in map(ctx.facts.flash_attn, ctx.facts.flash_attn_versions()) if r and r.min_cc]
    if not floors:
        return None, (), ""
    return min(floors, key=Version), (), " (its version is unknown here; every flash-attn 2 release needs this)"


def check_flash_attn_arch(ctx: CheckContext) -> list[Finding]:
    version = fact(ctx.snapshot, "packages.flash-attn")
    if version in (ABSENT, None):
        return []
    ccs = gpu_ccs(ctx.snapshot)
    unknown_release = not isinstance(version, str) or (public_of(version).startswith("2.")
                                                       and not ctx.facts.flash_attn(public_of(version)))
    if unknown_release and (unknown := _flash_attn_unknown_release_sass(ctx, version, ccs)):
        return unknown
    min_cc, sass, inferred = _flash_attn_floor(ctx, version)
    if min_cc is None or not ccs:
        return []
    too_old = [cc for cc in ccs if cc < Version(min_cc)]
    no_sass = [cc for cc in ccs if sass and not gpu_runs_archs(str(cc), sass)]
    bad = sorted({str(cc) for cc in too_old + no_sass})
    if not bad:
        return []
    needs = f"compute capability >= {min_cc}{inferred}" if too_old else f"one of {' '.join(sass)} (no PTX)"
    error = ("'FlashAttention only supports Ampere GPUs or newer'" if too_old
             else "'no kernel image is available for execution on the device'")
    shown = version if isinstance(version, str) else "(version unknown)"
    return [Finding(
        rule="flash-attn-gpu-arch", category=Category.GPU_ARCH, severity=Severity.FAIL,
        components=("flash-attn",), sources=("flash-attn-publish", "flash-attn-ampere"),
        message=f"flash-attn {shown} needs a GPU with {needs}, but this GPU is {', '.join(bad)}: "
        f"{error} at the first attention call",
        fix=_FLASH_ATTN_UNINSTALL,
    )]


_FLASH_ATTN_UNINSTALL = "pip uninstall -y flash-attn   # and load the model with attn_implementation=\"sdpa\""


def _flash_attn_unknown_release_sass(ctx: CheckContext, version: object, ccs: list[Version]) -> list[Finding]:
    """flash-attn of a version the table lacks (or none given) on a GPU that only some releases carry kernels for
    (SASS only, no PTX: sm_120 from 2.8.0): a warning naming the first release that runs there."""
    releases = [r for r in map(ctx.facts.flash_attn, ctx.facts.flash_attn_versions()) if r and r.sass]
    if not releases or not ccs:
        return []
    uncovered = sorted({str(cc) for cc in ccs if not all(gpu_runs_archs(str(cc), r.sass) for r in releases)})
    if not uncovered:
        return []
    running = [r.version for r in releases if all(gpu_runs_archs(cc, r.sass) for cc in uncovered)]
    shown = version if isinstance(version, str) else "of unknown version"
    if not running:
        return []  # no release runs there: the compute-capability floor below says so, verified
    first = min(running, key=Version)
    if isinstance(version, str) and (parsed := parse_version(public_of(version))) and parsed >= Version(first):
        return []  # a release the table lacks, at or after the first with kernels for this GPU
    return [Finding(
        rule="flash-attn-gpu-arch-unknown-release", category=Category.GPU_ARCH, severity=Severity.WARN,
        components=("flash-attn",), verified=False, sources=("flash-attn-publish",),
        message=f"flash-attn {shown} is installed on a GPU of compute capability {', '.join(uncovered)}; only "
        f"flash-attn {first} and later carry kernels for it (earlier releases build SASS for "
        f"{' '.join(_older_sass(releases, first))} only, no PTX): 'no kernel image is available for execution on "
        "the device' at the first attention call",
        fix=f"pip install 'flash-attn>={first}' --no-build-isolation   # or: {_FLASH_ATTN_UNINSTALL}",
    )]


def _older_sass(releases: list, first: str) -> list[str]:
    return sorted({arch for r in releases if Version(r.version) < Version(first) for arch in r.sass})


def check_stack_gpu(ctx: CheckContext) -> list[Finding]:
    stack, ccs = ctx.stack, gpu_ccs(ctx.snapshot)
    if stack is None or stack.cpu_ok or not ccs:
        return []
    findings = []
    if stack.min_compute_capability and min(ccs) < Version(stack.min_compute_capability):
        findings.append(Finding(
            rule="stack-gpu-too-old", category=Category.GPU_ARCH, severity=Severity.FAIL, components=("gpu",),
            message=f"{stack.name} trains in bf16 with FlashAttention-2-class kernels and needs compute capability "
            f">= {stack.min_compute_capability}; this GPU is {min(ccs)} (bf16 needs Ampere, sm_80)",
            fix="run on a GPU of compute capability 8.0 or newer (A100, A10, L4, L40S, H100)", sources=("nvidia-bf16",),
        ))
    memory = fact(ctx.snapshot, "gpu.min_memory_mib")
    largest = max((g.memory_mib or 0 for g in ctx.snapshot.nvidia.gpus or ()), default=0)
    if stack.min_memory_mib and isinstance(memory, int) and largest < stack.min_memory_mib:
        findings.append(Finding(
            rule="stack-gpu-memory", category=Category.RESOURCES, severity=Severity.FAIL, components=("gpu",),
            message=f"{stack.name} needs about {stack.min_memory_mib} MiB of GPU memory for LoRA on an 8B bf16 "
            f"base; the largest GPU here has {largest} MiB",
            fix="use a GPU with at least 40 GiB, or a smaller base model", sources=("lora-memory",),
        ))
    return findings


def check_bitsandbytes_arch(ctx: CheckContext) -> list[Finding]:
    """The release's built archs (exact releases of bitsandbytes.toml), then the limits of its release range."""
    version = fact(ctx.snapshot, "packages.bitsandbytes")
    release = ctx.facts.bitsandbytes(version) if isinstance(version, str) else None
    ccs = gpu_ccs(ctx.snapshot)
    ranged = check_bitsandbytes_gpu_support(ctx)
    if release is None or not ccs or version is ABSENT or min(ccs) >= Version(release.min_cc):
        return ranged
    return ranged + [Finding(
        rule="bitsandbytes-gpu-arch", category=Category.GPU_ARCH, severity=Severity.WARN,
        components=("bitsandbytes",), sources=("bitsandbytes-docs",),
        message=f"bitsandbytes {version} is built for compute capability >= {release.min_cc}; this GPU is {min(ccs)}",
        fix="pip uninstall -y bitsandbytes   # the trainer does not need it for bf16 LoRA",
    )]
