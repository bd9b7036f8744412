"""The system CUDA toolkit (nvcc) against torch's CUDA and the driver: what every source build depends on.

torch.utils.cpp_extension, which builds flash-attn, DeepSpeed ops, apex, xformers and the like from source, refuses a
toolkit whose CUDA major differs from torch's ("The detected CUDA version (12.1) mismatches the version that was used
to compile PyTorch (11.7)") and warns on a minor difference; code that nvcc compiles for a CUDA newer than the driver
runs fails with "the provided PTX was compiled with an unsupported toolchain".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from envdoctor.checks import CheckContext
from envdoctor.checks.driver import driver_below, torch_cuda, windows_below_linux_branch
from envdoctor.checks.nvcc_archs import nvcc_arch_findings
from envdoctor.checks.torch_range import unknown_version_range
from envdoctor.facts import cuda_major_minor
from envdoctor.findings import Category, Finding, Severity
from envdoctor.pypi_facts import ReleaseFacts, release_facts, releases
from envdoctor.rules import ABSENT, CONDA_CUDA_PACKAGES, fact, has_no_gpu, parse_version

SOURCES = ("anchors-failure-modes",)


def source_built(ctx: CheckContext) -> tuple[str, ...]:
    """Installed packages that compile against torch and the toolkit (at install time or, for DeepSpeed, at run)."""
    packages = ctx.snapshot.packages or {}
    return tuple(name for name in ctx.matrices.policy.torch_extensions if name in packages
                 and name not in ("torchvision", "torchaudio"))


def check_toolkit(ctx: CheckContext) -> list[Finding]:
    toolkit = ctx.snapshot.cuda_toolkit
    if toolkit is None:
        return (_flash_attn_build_unknown(ctx) + _source_builds_toolkit_unknown(ctx)
                + _runtime_builds_toolkit_unknown(ctx))
    if toolkit.nvcc is None:
        return _no_nvcc(ctx)
    findings = nvcc_arch_findings(ctx, toolkit.nvcc, source_built(ctx))
    torch = torch_cuda(ctx) or conda_runtime_cuda(ctx)
    if torch is not None and fact(ctx.snapshot, "packages.torch") is not None:
        findings.extend(_against_torch(ctx, toolkit.nvcc, torch))
    supports = fact(ctx.snapshot, "nvidia.cuda_driver")
    if isinstance(supports, str) and _newer(toolkit.nvcc, supports):
        findings.append(_nvcc_newer_than_driver(ctx, toolkit.nvcc, f"the driver runs CUDA {supports} at most",
                                                f"put a CUDA {supports} toolkit first on PATH (export "
                                                f"CUDA_HOME=/usr/local/cuda-{supports})"))
    elif not isinstance(supports, str):
        findings.extend(_nvcc_against_driver_version(ctx, toolkit.nvcc))
    return findings


def _nvcc_against_driver_version(ctx: CheckContext, nvcc: str) -> list[Finding]:
    """Only the driver's version is known (not the CUDA it supports): the toolkit release's own driver floor. Where
    the table has no Windows floor, a Windows driver of a lower branch than the Linux floor is below it too (NVIDIA
    numbers a branch's Windows drivers from the branch number up); what cannot be told is said, unverified."""
    driver = fact(ctx.snapshot, "nvidia.driver")
    try:
        minor = "{}.{}".format(*cuda_major_minor(nvcc))
    except ValueError:
        return []
    if not isinstance(driver, str):
        return []
    release = ctx.facts.cuda(minor)
    windows = ctx.snapshot.host.os == "windows"
    floor = (release.min_driver_windows if windows else release.min_driver_linux) if release else None
    below = driver_below(driver, floor) if floor else None
    if floor is None and windows and release is not None and release.min_driver_linux:
        branch = windows_below_linux_branch(driver, release.min_driver_linux)
        below, floor = (True, f"the {branch} branch") if branch else (None, None)
    if below is None:
        return [_toolkit_floor_unknown(ctx, nvcc, driver)]
    if not below:
        return []
    return [_nvcc_newer_than_driver(ctx, nvcc, f"CUDA {nvcc} needs driver >= {floor} and this driver is {driver}",
                                    "put the toolkit of a CUDA this driver runs first on PATH (CUDA_HOME)")]


def _toolkit_floor_unknown(ctx: CheckContext, nvcc: str, driver: str) -> Finding:
    """The toolkit's own driver floor is not recorded for this OS (a CUDA release newer than the table): said, since
    a toolkit newer than the driver is what breaks code compiled here."""
    return Finding(
        rule="nvcc-newer-than-driver", category=Category.DRIVER, severity=Severity.INFO,
        components=("cuda-toolkit", "nvidia-driver"), sources=SOURCES, verified=False,
        message=f"could not verify driver {driver} against nvcc's CUDA {nvcc}: the driver that CUDA {nvcc} needs on "
        f"{ctx.snapshot.host.os or 'this OS'} is not recorded, or lies inside the driver's branch",
        fix="nvidia-smi   # its 'CUDA Version' must be at least nvcc's",
    )


def _nvcc_newer_than_driver(ctx: CheckContext, nvcc: str, why: str, or_else: str) -> Finding:
    return Finding(
        rule="nvcc-newer-than-driver", category=Category.DRIVER, severity=Severity.WARN,
        components=("cuda-toolkit", "nvidia-driver") + source_built(ctx), sources=SOURCES,
        message=f"nvcc is CUDA {nvcc} but {why}: code compiled here fails to load ('the provided PTX was compiled "
        "with an unsupported toolchain')",
        fix=f"upgrade the NVIDIA driver to one that supports CUDA {nvcc}, or {or_else}",
    )


def conda_runtime_cuda(ctx: CheckContext) -> str | None:
    """The CUDA of conda's runtime package (cudatoolkit, pytorch-cuda) beside a torch of untagged build: a conda
    pytorch CUDA build is built for the runtime the environment holds (its CPU build has none, and is judged by the
    conda checks)."""
    packages = ctx.snapshot.packages or {}
    for name in CONDA_CUDA_PACKAGES:
        package = packages.get(name)
        parsed = parse_version(package.version) if package is not None and package.version else None
        if parsed is not None and len(parsed.release) >= 2:
            return f"{parsed.release[0]}.{parsed.release[1]}"
    return None


def _older_than(version: str, floor: str) -> bool | None:
    """Whether ``version`` is older than ``floor``; None when it is not a PEP 440 version."""
    parsed, bound = parse_version(version), parse_version(floor)
    return parsed < bound if parsed is not None and bound is not None else None


def _newer(left: str, right: str) -> bool:
    try:
        return cuda_major_minor(left) > cuda_major_minor(right)
    except ValueError:
        return False


def _against_torch(ctx: CheckContext, nvcc: str, torch: str) -> list[Finding]:
    try:
        (major, minor), (torch_major, torch_minor) = cuda_major_minor(nvcc), cuda_major_minor(torch)
    except ValueError:
        return []
    if (major, minor) == (torch_major, torch_minor):
        return []
    builds = source_built(ctx)
    components = ("cuda-toolkit", "torch") + builds
    switch = f"export CUDA_HOME=/usr/local/cuda-{torch}   # a CUDA {torch} toolkit, the one torch was built with"
    if major != torch_major:
        return [Finding(
            rule="nvcc-torch-cuda-mismatch", category=Category.CUDA_BUILD,
            severity=Severity.FAIL if builds else Severity.WARN, components=components, sources=SOURCES,
            message=f"the CUDA toolkit (nvcc {nvcc}) and torch's CUDA ({torch}) differ in major version: building any "
            "extension against torch fails with 'The detected CUDA version (" + nvcc + ") mismatches the version "
            f"that was used to compile PyTorch ({torch})'" + (f"; installed here: {', '.join(builds)}" if builds
                                                               else ""),
            fix=f"{switch}; or install a torch built for CUDA {major}.x, or prebuilt wheels instead of source builds",
        )]
    return [_minor_mismatch(ctx, nvcc, torch, components, switch)]


SETUPTOOLS_FOR_MINOR = "49.4.0"  # torch's check reads the toolkit's minor version only through setuptools' Version


def _minor_mismatch(ctx: CheckContext, nvcc: str, torch: str, components: tuple[str, ...], switch: str) -> Finding:
    """torch's extension builder accepts another minor version with a warning, but only when setuptools is 49.4.0 or
    newer; with an older one it raises the same 'mismatches' error as for another major."""
    setuptools = ctx.snapshot.packages.get("setuptools") if ctx.snapshot.packages else None
    version = setuptools.version if setuptools else None
    old = _older_than(version, SETUPTOOLS_FOR_MINOR) if version else None
    error = (f"'The detected CUDA version ({nvcc}) mismatches the version that was used to compile PyTorch "
             f"({torch})'")
    if old is False:
        severity, verified = Severity.INFO, True
        says = f"source builds proceed with a warning (setuptools {version}) and usually work"
    elif old:
        severity, verified = Severity.FAIL, True
        says = f"with setuptools {version} (older than {SETUPTOOLS_FOR_MINOR}) torch's extension builder raises {error}"
    else:
        severity, verified = Severity.WARN, False
        says = (f"torch's extension builder accepts that with a warning only with setuptools >= {SETUPTOOLS_FOR_MINOR} "
                f"(not known here; older ones raise {error}), and builders with checks of their own (apex) refuse it")
    return Finding(
        rule="nvcc-torch-cuda-minor-mismatch", category=Category.CUDA_BUILD, severity=severity,
        components=components, sources=(*SOURCES, "pytorch-cuda-minor-check"), verified=verified,
        message=f"the CUDA toolkit (nvcc {nvcc}) and torch's CUDA ({torch}) differ in minor version: {says}",
        fix=switch if old is not True else f'pip install "setuptools>={SETUPTOOLS_FOR_MINOR}"; or {switch}',
    )


def runtime_builders(ctx: CheckContext) -> list[str]:
    """Installed packages that compile CUDA code with nvcc when first used, unless a package of their pre-built
    kernels is installed beside them (policy ``kernel_caches``)."""
    packages = ctx.snapshot.packages or {}
    policy = ctx.matrices.policy
    return [name for name in source_built(ctx) if name in policy.runtime_compiled
            and not any(cache in packages for cache in policy.kernel_caches.get(name, ()))]


def _runtime_builds_toolkit_unknown(ctx: CheckContext) -> list[Finding]:
    """The snapshot says nothing about a toolkit, and a package that compiles its CUDA ops with nvcc at first use
    (DeepSpeed's op builder, FlashInfer's kernels) is installed: whether those ops can be built here is not known."""
    at_run = runtime_builders(ctx)
    if not at_run:
        return []
    return [Finding(
        rule="nvcc-unknown-for-runtime-builds", category=Category.CUDA_BUILD, severity=Severity.WARN,
        components=("cuda-toolkit", *at_run), sources=SOURCES, verified=False,
        message=f"{', '.join(at_run)} {'compiles' if len(at_run) == 1 else 'compile'} CUDA ops with nvcc when "
        "first used, and the snapshot says nothing "
        "about a CUDA toolkit: without one (a CUDA 'runtime' container image, a pip-only environment) that first "
        "use fails ('CUDA_HOME does not exist, unable to compile CUDA op(s)')",
        fix="nvcc --version   # if missing: install the CUDA toolkit of torch's CUDA (or use a CUDA 'devel' image) "
        "and export CUDA_HOME to it",
    )]


def _no_nvcc(ctx: CheckContext) -> list[Finding]:
    """No toolkit found: DeepSpeed-like packages compile ops at run time; an extension of unknown version may be
    mid-install, and without a matching wheel pip builds it from source, which needs nvcc too."""
    packages = ctx.snapshot.packages or {}
    at_run = runtime_builders(ctx)
    runtime = ctx.matrices.policy.runtime_compiled
    unknown = [name for name in source_built(ctx) if name not in runtime and packages[name].version is None]
    # every release only a source archive on PyPI: installing any of them runs setup.py, as for a known release
    to_build = [name for name in unknown if not _every_release_source_only(name)]
    sdist_only = [name for name in source_built(ctx) if name not in runtime and name not in to_build
                  and (packages[name].version is None or source_archive_only(name, packages[name].version))]
    findings = []
    if at_run:
        findings.append(Finding(
            rule="nvcc-missing-for-runtime-builds", category=Category.CUDA_BUILD, severity=Severity.WARN,
            components=("cuda-toolkit", *at_run), sources=SOURCES,
            message=f"{', '.join(at_run)} compile CUDA ops at run time with nvcc, and no CUDA toolkit was found "
            "('CUDA_HOME does not exist, unable to compile CUDA op(s)')",
            fix="install the CUDA toolkit matching torch's CUDA (e.g. conda install -c nvidia cuda-toolkit) and "
            "export CUDA_HOME to it; or use prebuilt ops (DS_BUILD_OPS=1 pip install deepspeed at install time)",
        ))
    if to_build:
        findings.append(Finding(
            rule="nvcc-missing-for-source-builds", category=Category.CUDA_BUILD, severity=Severity.WARN,
            components=("cuda-toolkit", *to_build), sources=SOURCES, verified=False,
            message=f"{', '.join(to_build)} (version unknown) may still be building: without a prebuilt wheel for "
            "this torch, Python and CUDA, pip compiles it from source, and no CUDA toolkit was found "
            "('CUDA_HOME environment variable is not set')",
            fix="install prebuilt wheels (envdoctor plan --from-probe), or the CUDA toolkit of torch's CUDA with "
            "CUDA_HOME pointing at it",
        ))
    findings.extend(_ptxas_missing(ctx))
    if sdist_only:
        shown = ", ".join(f"{name} {packages[name].version or '(version unknown)'}" for name in sdist_only)
        which = ("every release" if any(packages[name].version is None for name in sdist_only)
                 else "this release" if len(sdist_only) == 1 else "these releases")
        findings.append(Finding(
            rule="nvcc-missing-for-source-builds", category=Category.CUDA_BUILD, severity=Severity.WARN,
            components=("cuda-toolkit", *sdist_only), sources=("pypi-metadata", "flash-attn-publish"),
            message=f"{shown}: PyPI has only the source archive of {which}, "
            "so installing it runs its setup.py, which declares a CUDA extension (torch.utils.cpp_extension needs "
            "CUDA_HOME even when setup.py then fetches a prebuilt wheel), and no CUDA toolkit was found: "
            "'CUDA_HOME environment variable is not set'",
            fix=_sdist_fix(ctx, sdist_only),
        ))
    return findings


def _ptxas_missing(ctx: CheckContext) -> list[Finding]:
    """No CUDA toolkit was found, and XLA (JAX, TensorFlow) compiles its GPU kernels with ptxas at run time: without
    the pip wheel that carries one, nothing provides it. Unverified: whether XLA runs on the GPU here (a CUDA build
    of jaxlib, a GPU) is not always in the snapshot."""
    packages = ctx.snapshot.packages or {}
    policy = ctx.matrices.policy
    users = [name for name in policy.ptxas_at_run if name in packages]
    if not users or has_no_gpu(ctx.snapshot) or any(name in packages for name in policy.ptxas_wheels):
        return []
    return [Finding(
        rule="ptxas-missing-for-xla", category=Category.CUDA_BUILD, severity=Severity.WARN,
        components=("cuda-toolkit", *users), sources=("jax-install-ptxas",), verified=False,
        message=f"{', '.join(users)}: XLA compiles its GPU kernels with ptxas when they first run, and neither a CUDA "
        "toolkit nor NVIDIA's nvidia-cuda-nvcc wheel is here to provide it (a CUDA 'runtime' image has none): "
        "'Couldn't find ptxas', 'No PTX compilation provider is available'",
        fix="pip install nvidia-cuda-nvcc-cu12   # ptxas for XLA (pip install -U \"jax[cuda12]\" brings it); or use a "
        "CUDA 'devel' image / install the toolkit and put its bin/ on PATH",
    )]


def _source_only(release: ReleaseFacts) -> bool:
    """PyPI has the release's sdist and no wheel of it (pip must run its setup.py)."""
    return release.sdist and release.wheels == ()


def _every_release_source_only(name: str) -> bool:
    known = releases(name)
    return bool(known) and all(_source_only(r) for r in known)


def source_archive_only(name: str, version: str | None) -> bool:
    """PyPI has only the source archive of this release of ``name``: an install of it was compiled here."""
    release = release_facts(name, version) if version else None
    return release is not None and _source_only(release)


def _sdist_fix(ctx: CheckContext, names: list[str]) -> str:
    if names == ["flash-attn"]:
        version = fact(ctx.snapshot, "packages.flash-attn")
        return (f'FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE pip install --no-build-isolation "flash-attn=={version}"   '
                "# fetches the release wheel without compiling; or install the CUDA toolkit of torch's CUDA and "
                "export CUDA_HOME")
    return ("install the CUDA toolkit matching torch's CUDA (conda install -c nvidia cuda-toolkit=X.Y) and export "
            "CUDA_HOME to it, then pip install --no-build-isolation " + " ".join(names))


def _flash_attn_build_unknown(ctx: CheckContext) -> list[Finding]:
    """flash-attn is a source archive on PyPI: pip compiles it (needing nvcc and CUDA_HOME) unless a release wheel
    matches torch, CUDA, the C++ ABI and Python. With the toolkit unknown and no matching wheel known, say so."""
    version = fact(ctx.snapshot, "packages.flash-attn")
    torch = fact(ctx.snapshot, "packages.torch")
    if version in (ABSENT, None):
        return []
    release = ctx.facts.flash_attn(version) if isinstance(version, str) else None
    minor = ".".join(torch.split("+")[0].split(".")[:2]) if isinstance(torch, str) else None
    if release is not None and minor is not None and minor in release.torch_minors:
        return []
    if release and minor:
        why = f"no flash-attn {version} release wheel targets torch {minor}"
    elif minor:
        why = "flash-attn's release is unknown, so whether a release wheel matches torch is too"
    else:
        why = "torch's version is unknown, so whether a release wheel matches is too"
    return [Finding(
        rule="flash-attn-needs-source-build", category=Category.CUDA_BUILD, severity=Severity.WARN,
        components=("flash-attn", "cuda-toolkit"), sources=("flash-attn-publish",), verified=False,
        message=f"flash-attn is a source archive on PyPI and {why}: pip then compiles it, which needs a CUDA toolkit "
        "(nvcc, CUDA_HOME) matching torch's CUDA, and the snapshot does not say whether one is installed",
        fix="nvcc --version   # then: envdoctor plan --from-probe for a release wheel, or install the CUDA toolkit "
        "of torch's CUDA",
    )]


@dataclass(frozen=True)
class SourceBuild:
    """Why installing a package here compiles CUDA code; ``inferred`` when it holds for most candidates of an
    unknown version rather than for the installed release."""

    why: str
    inferred: bool = False


def _always_source_built(ctx: CheckContext, name: str, version: str | None) -> SourceBuild | None:
    """Why installing ``name`` here compiles CUDA code, when that holds for the installed release (or, its version
    unknown, for every release PyPI has): PyPI has only its source archive, and no release wheel of the project
    targets this platform. None when a wheel may be used."""
    if name in ctx.matrices.policy.runtime_compiled:
        return None
    if name == "flash-attn" and ctx.snapshot.host.os in (None, "linux"):
        return _flash_attn_compiles(ctx, version)
    if version is not None:
        return (SourceBuild(f"PyPI has only the source archive of {name} {version}")
                if source_archive_only(name, version) else None)
    known = releases(name)
    if _every_release_source_only(name):
        return SourceBuild(f"{name}'s version is unknown, and PyPI has only source archives of all its {len(known)} "
                           f"releases ({known[0].version} to {known[-1].version})")
    recent = _newest_source_only(known)
    if recent:
        return SourceBuild(f"{name}'s version is unknown, and PyPI's newest releases ({recent[0].version} to "
                           f"{recent[-1].version}) are source archives only, so a current install compiles it (an "
                           "older release with a wheel may be installed)", inferred=True)
    return None


def _newest_source_only(known: tuple[ReleaseFacts, ...]) -> list[ReleaseFacts]:
    """The newest releases, back to the first that has a wheel, when they are source archives only; empty when the
    newest release has a wheel."""
    current = [r for r in known if not r.yanked]
    run = list(itertools.takewhile(_source_only, reversed(current)))
    return run[::-1]


def _flash_attn_compiles(ctx: CheckContext, version: str | None) -> SourceBuild | None:
    """On Linux flash-attn's release wheels (installed by URL, or fetched by its setup.py) need no toolkit when one
    targets torch's minor; say why it compiles when none does, for the installed torch or, torch's version unknown,
    for most torch releases the table has wheels of for this Python."""
    release = ctx.facts.flash_attn(version) if version else None
    if release is None:
        return None
    torch = fact(ctx.snapshot, "packages.torch")
    if isinstance(torch, str):
        minor = ".".join(torch.split("+")[0].split(".")[:2])
        return (None if minor in release.torch_minors else
                SourceBuild(f"no flash-attn {version} release wheel targets torch {minor}, so installing it "
                            "compiles it"))
    span = unknown_version_range(ctx)
    if span is None:
        return None
    minors = sorted({".".join(b.version.split(".")[:2]) for b in span.builds},
                    key=lambda m: tuple(int(p) for p in m.split(".")))
    lacking = [m for m in minors if m not in release.torch_minors]
    if 2 * len(lacking) <= len(minors):
        return None
    return SourceBuild(f"torch's version is unknown, and flash-attn {version}'s release wheels target torch "
                       f"{', '.join(release.torch_minors)} only: for {len(lacking)} of the {len(minors)} torch minors "
                       f"of {span.described} installing it compiles it (inferred over the range)", inferred=True)


def _source_builds_toolkit_unknown(ctx: CheckContext) -> list[Finding]:
    """The toolkit is not in the snapshot, and an installed CUDA extension can only have come from a source build:
    installing it ran its setup.py, which builds a torch CUDAExtension and needs nvcc and CUDA_HOME."""
    packages = ctx.snapshot.packages or {}
    reasons = [(name, build) for name in source_built(ctx)
               if (build := _always_source_built(ctx, name, packages[name].version)) is not None]
    if not reasons:
        return []
    names = [name for name, _ in reasons]
    return [Finding(
        rule="cuda-toolkit-needed-for-source-build", category=Category.MISSING, severity=Severity.WARN,
        components=("cuda-toolkit", *names), sources=("pypi-metadata", *SOURCES),
        verified=not any(build.inferred for _, build in reasons),
        message="; ".join(build.why for _, build in reasons) + ": installing it runs setup.py, which declares a torch "
        "CUDAExtension (torch.utils.cpp_extension needs CUDA_HOME for that, even when setup.py then fetches a "
        "prebuilt release wheel) and compiles it unless such a wheel matches; the snapshot shows no CUDA toolkit "
        "('CUDA_HOME environment variable is not set', 'nvcc was not found', \"name 'bare_metal_version' is not "
        "defined\")",
        fix="nvcc --version   # if missing: install the CUDA toolkit of torch's CUDA (conda install -c nvidia "
        "cuda-toolkit) and export CUDA_HOME to it before installing " + " ".join(names),
    )]
