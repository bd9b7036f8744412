"""Exact, paste-able fix commands built from the facts: pins with local tags and index URLs, wheel URLs.

A fix never holds a placeholder. When no exact command exists, it names the ``envdoctor plan`` call that
writes one, with the real stack and CUDA filled in.

A snapshot is untrusted text, so a value from it enters a command only after validation (a PEP 508 name, a
PEP 440 version or specifier, a CUDA version like 12.4) and only shell-quoted: ``shell_word`` keeps the familiar
double quotes for text that has nothing a shell expands inside them, else uses ``shlex.quote``. When a value does
not validate there is no command (``None``) rather than a guessed one.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from envdoctor.checks import CheckContext
from envdoctor.facts import cuda_of_variant
from envdoctor.rules import fact, parse_version, torch_variant

TORCH_FAMILY = ("torch", "torchvision", "torchaudio")
ANY_VERSION = ("", ">=0")
PACKAGE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,200}[A-Za-z0-9])?$")  # PEP 508 name
CUDA_VERSION = re.compile(r"^\d{1,2}\.\d{1,2}(?:\.\d{1,3})?$")
# Printable ASCII that bash leaves alone inside double quotes: no $ ` \ " and no ! (history) unless in "!=".
_DOUBLE_QUOTE_SAFE = re.compile(r'^(?:[\x20\x23\x25-\x5b\x5d-\x5f\x61-\x7e]|!=)*$')


@dataclass(frozen=True)
class TorchTarget:
    """A torch release and CUDA variant to install (``2.3.1``, ``cu121``) and whether it needs the PyTorch index."""

    version: str
    variant: str
    use_index: bool


def public(version: str) -> str:
    """``2.3.1`` for ``2.3.1+cu121``; text that is not a PEP 440 version is shown escaped, never as is."""
    parsed = parse_version(version)
    return parsed.public if parsed else repr(str(version))[:80]


def shell_word(text: str) -> str:
    """``text`` as one shell word: bare when shlex needs no quotes, else as ``double_quoted``."""
    return text if shlex.quote(text) == text else double_quoted(text)


def double_quoted(text: str) -> str:
    """``"text"`` when nothing in it expands inside double quotes, else shlex's single quotes."""
    return f'"{text}"' if _DOUBLE_QUOTE_SAFE.match(text) else shlex.quote(text)


def valid_name(name: object) -> bool:
    return isinstance(name, str) and PACKAGE_NAME.match(name) is not None


def valid_specifier(spec: object) -> bool:
    """A PEP 440 specifier set ("" included: any version)."""
    return isinstance(spec, str) and _parses_as_specifier(spec)


@functools.lru_cache(maxsize=4096)
def _parses_as_specifier(spec: str) -> bool:
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        return False
    return True


def valid_cuda(text: object) -> bool:
    return isinstance(text, str) and CUDA_VERSION.match(text) is not None


def quoted(name: str, spec: str) -> str:
    """``"numpy<2"``, or a bare name when any version will do (``rich``); always one shell word."""
    return shell_word(name) if spec.strip() in ANY_VERSION else double_quoted(f"{name}{spec}")


def pip_install(name: str, spec: str = "") -> str:
    return f"pip install {quoted(name, spec)}"


def pip_uninstall(names: list[str] | tuple[str, ...]) -> str | None:
    """``pip uninstall -y a b`` for the names that are valid package names; None when none is."""
    valid = [name for name in names if valid_name(name)]
    return f"pip uninstall -y {' '.join(shell_word(name) for name in valid)}" if valid else None


def import_command(name: str) -> str | None:
    """``run: python -c "import flash_attn" to see the full error``; None when ``name`` is not a package name."""
    module = name.replace("-", "_")
    if not valid_name(name) or not module.isidentifier():
        return None
    return f'run: python -c "import {module}" to see the full error'


def with_note(command: str | None, note: str) -> str | None:
    """``command`` followed by ``note`` (a comment or extra arguments); None when there is no command."""
    return f"{command}{note}" if command else None


def installed_local_tag(ctx: CheckContext) -> bool:
    variant = torch_variant(ctx.snapshot)
    return isinstance(variant, str) and bool(variant)


def torch_target(ctx: CheckContext, version: str, variant: str | None = None) -> TorchTarget | None:
    """The variant to install ``version`` as: ``variant``, else the installed one, else PyPI's default."""
    release = ctx.facts.torch(version)
    if release is None:
        return None
    installed = torch_variant(ctx.snapshot)
    wanted = variant or (installed if installed in release.variants else release.pypi_default)
    if wanted not in (*release.variants, "cpu"):
        return None
    use_index = installed_local_tag(ctx) or wanted != release.pypi_default
    return TorchTarget(release.version, wanted, use_index)


def stack_torch_target(ctx: CheckContext) -> TorchTarget | None:
    """The torch the chosen stack installs for this machine (the variant matching the installed torch)."""
    if ctx.stack is None or not ctx.stack.variants:
        return None
    installed = torch_variant(ctx.snapshot)
    variant = ctx.stack.variant(installed if isinstance(installed, str) else None)
    return torch_target(ctx, variant.torch, variant.cuda) if variant else None


def _spec(name: str, version: str, target: TorchTarget) -> str:
    tag = f"+{target.variant}" if target.use_index else ""
    return double_quoted(f"{name}=={version}{tag}")


def _index(ctx: CheckContext, target: TorchTarget) -> str:
    return f" --index-url {shell_word(ctx.facts.torch_index_url(target.variant))}" if target.use_index else ""


def torch_install(ctx: CheckContext, target: TorchTarget, force: bool = False) -> str:
    """torch (with the installed companions re-paired) from the right index: one command."""
    specs = [_spec("torch", target.version, target)]
    companions = ctx.facts.companions_of(target.version)
    for name in ("torchvision", "torchaudio"):
        if isinstance(fact(ctx.snapshot, f"packages.{name}"), str) and name in companions:
            specs.append(_spec(name, companions[name], target))
    flag = "--force-reinstall " if force else ""
    return f"pip install {flag}{' '.join(specs)}{_index(ctx, target)}"


def companion_install(ctx: CheckContext, name: str, torch_version: str) -> str:
    """The companion release built for ``torch_version``, from the same index as that torch."""
    wanted = ctx.facts.companions_of(torch_version).get(name)
    target = torch_target(ctx, torch_version)
    if wanted is None or target is None:
        return f"pip uninstall -y {name}   # no {name} release built for torch {public(torch_version)} is known"
    return f"pip install --force-reinstall --no-deps {_spec(name, wanted, target)}{_index(ctx, target)}"


def requirement_install(ctx: CheckContext, name: str, spec: str) -> str | None:
    """``pip install "name<spec>"``; torch-family packages keep the installed CUDA variant's index.
    None when ``name`` is not a package name or ``spec`` not a version specifier (both come from a snapshot)."""
    if not valid_name(name) or not valid_specifier(spec):
        return None
    variant = torch_variant(ctx.snapshot) if name in TORCH_FAMILY else None
    if isinstance(variant, str) and variant:
        return f"{pip_install(name, spec)} --index-url {shell_word(ctx.facts.torch_index_url(variant))}"
    return pip_install(name, spec)


def plan_command(ctx: CheckContext, cuda: str | None = None) -> str:
    """``envdoctor plan --stack NAME --cuda X.Y > install.sh`` with this machine's values."""
    cuda = cuda or _driver_cuda(ctx)
    parts = ["envdoctor plan"]
    if ctx.stack is not None:
        parts.append(f"--stack {shell_word(ctx.stack.name)}")
    if valid_cuda(cuda):
        parts.append(f"--cuda {cuda}")
    return " ".join(parts) + " > install.sh"


def _driver_cuda(ctx: CheckContext) -> str | None:
    supports = fact(ctx.snapshot, "nvidia.cuda_driver")
    if valid_cuda(supports):
        return supports
    target = stack_torch_target(ctx)
    return cuda_of_variant(target.variant) if target and target.variant.startswith("cu") else None


# --- flash-attn -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WheelTarget:
    """What a flash-attn wheel must match: torch release, CUDA, C++ ABI, CPython."""

    torch: str
    cuda: str
    cxx11abi: bool
    python: str

    def describe(self) -> str:
        return f"torch {public(self.torch)}, CUDA {self.cuda}, cxx11abi={str(self.cxx11abi).upper()}, cp{self.python}"


def installed_wheel_target(ctx: CheckContext) -> WheelTarget | None:
    """The wheel target of the installed torch (the probe's ABI and CUDA first, then the facts)."""
    version = fact(ctx.snapshot, "packages.torch")
    if not isinstance(version, str):
        return None
    cuda, abi = installed_torch_cuda_abi(ctx)
    return _wheel_target(ctx, version, cuda, abi)


def installed_torch_cuda_abi(ctx: CheckContext) -> tuple[str | None, bool | None]:
    """(CUDA, C++11 ABI) of the installed torch: the probe's first, then the facts of its release and variant."""
    version = fact(ctx.snapshot, "packages.torch")
    if not isinstance(version, str):
        return None, None
    build = ctx.snapshot.torch
    target = torch_target(ctx, version)
    cuda = (build.cuda if build and build.cuda else None) or _variant_cuda(target)
    abi = build.cxx11abi if build and build.cxx11abi is not None else _facts_abi(ctx, target)
    return cuda, abi


def stack_wheel_target(ctx: CheckContext) -> WheelTarget | None:
    """The wheel target of the torch the stack installs."""
    target = stack_torch_target(ctx)
    if target is None:
        return None
    return _wheel_target(ctx, target.version, _variant_cuda(target), _facts_abi(ctx, target))


def _wheel_target(ctx: CheckContext, torch: str, cuda: str | None, abi: bool | None) -> WheelTarget | None:
    python = re.match(r"^(\d)\.(\d{1,2})(?:\.|$)", ctx.snapshot.python.version or "")
    if cuda is None or abi is None or python is None or parse_version(torch) is None or not valid_cuda(cuda):
        return None
    return WheelTarget(torch, cuda, abi, python.group(1) + python.group(2))


def _variant_cuda(target: TorchTarget | None) -> str | None:
    return cuda_of_variant(target.variant) if target and target.variant.startswith("cu") else None


def _facts_abi(ctx: CheckContext, target: TorchTarget | None) -> bool | None:
    release = ctx.facts.torch(target.version) if target else None
    return release.cxx11abi(target.variant) if release and target else None


def flash_attn_wheel_url(ctx: CheckContext, version: str, target: WheelTarget) -> str | None:
    python = f"{target.python[0]}.{target.python[1:]}"
    name = ctx.facts.flash_attn_wheel(version, target.torch, target.cuda, target.cxx11abi, python)
    release = ctx.facts.flash_attn(version) if name else None
    return release.url(name) if release and name else None


def flash_attn_install(ctx: CheckContext, version: str, target: WheelTarget | None, force: bool = False) -> str:
    """The exact release wheel of flash-attn ``version`` for ``target``; else the newest release that has one."""
    if target is None:
        return f"{plan_command(ctx)}   # prints the flash-attn wheel URL for this machine"
    flag = "--force-reinstall " if force else ""
    url = flash_attn_wheel_url(ctx, version, target)
    if url:
        return f"pip install {flag}--no-deps {shell_word(url)}"
    for other in reversed(ctx.facts.flash_attn_versions()):
        url = flash_attn_wheel_url(ctx, other, target)
        if url:
            return (f"pip install {flag}--no-deps {shell_word(url)}   # flash-attn {public(version)} has no prebuilt "
                    f"wheel for {target.describe()}; {other} has")
    return (f"pip uninstall -y flash-attn   # no flash-attn release has a prebuilt wheel for {target.describe()}: "
            f"use attn_implementation=\"sdpa\", or run '{plan_command(ctx)}' for a torch that has one")
