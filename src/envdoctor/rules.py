"""Evaluate condition rules (data in ``matrices/rules``) against a Snapshot.

Like ``packaging.markers.Marker.evaluate``: facts come from a plain lookup, conditions are strings.
A fact that is unknown never crashes and is never guessed: the rule says it could not verify.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envdoctor.facts import variant_of_cuda
from envdoctor.findings import Finding, Severity
from envdoctor.matrices import SPEC_START, Condition, Rule
from envdoctor.snapshot import Snapshot, normalize_name


class _Absent:
    """A fact known not to exist (a package not installed, no GPU)."""

    def __repr__(self) -> str:
        return "absent"


class _Installed:
    """A package known to be installed whose version is unknown (an issue thread said "flash-attn installed")."""

    def __repr__(self) -> str:
        return "installed (version unknown)"


ABSENT = _Absent()
INSTALLED = _Installed()
UNKNOWN = None  # the fact is not in the snapshot


# --- facts ------------------------------------------------------------------------------------


def fact(snapshot: Snapshot, path: str) -> Any:
    """The value of a fact path: a string/int/bool, ABSENT, or None (unknown)."""
    section, _, name = path.partition(".")
    if section == "packages":
        return _package_fact(snapshot, name)
    if section == "vcs":
        return _vcs_fact(snapshot, name)
    if section == "gpu":
        return _gpu_fact(snapshot, name)
    if section == "torch":
        return _torch_fact(snapshot, name)
    if section == "nvidia":
        if snapshot.nvidia is None:
            return UNKNOWN
        value = getattr(snapshot.nvidia, name, None)
        if name == "error":
            return value if value else ABSENT
        return value if value is not None else (ABSENT if has_no_gpu(snapshot) else UNKNOWN)
    if section in ("python", "host"):
        return getattr(getattr(snapshot, section), name, None)
    return UNKNOWN


def _package_fact(snapshot: Snapshot, name: str) -> Any:
    if snapshot.packages is None:
        return UNKNOWN
    package = snapshot.packages.get(normalize_name(name))
    if package is None:
        return ABSENT
    return package.version if package.version is not None else INSTALLED


def _vcs_fact(snapshot: Snapshot, name: str) -> Any:
    if snapshot.packages is None:
        return UNKNOWN
    package = snapshot.packages.get(normalize_name(name))
    if package is None:
        return ABSENT
    return package.requested_revision or package.vcs_commit or ABSENT


def has_no_gpu(snapshot: Snapshot) -> bool:
    """True when the probe reached a verdict that there is no usable NVIDIA GPU."""
    nvidia = snapshot.nvidia
    return nvidia is not None and (bool(nvidia.error) or nvidia.gpus == ())


def gpu_ccs(snapshot: Snapshot) -> list[Version]:
    """Compute capabilities of the GPUs that report one."""
    out = []
    for gpu in (snapshot.nvidia.gpus or ()) if snapshot.nvidia else ():
        if gpu.compute_capability and re.fullmatch(r"\d+\.\d+", gpu.compute_capability.strip()):
            out.append(Version(gpu.compute_capability.strip()))
    return out


def _gpu_fact(snapshot: Snapshot, name: str) -> Any:
    if has_no_gpu(snapshot):
        return 0 if name == "count" else ABSENT
    if snapshot.nvidia is None or snapshot.nvidia.gpus is None:
        return UNKNOWN
    gpus = snapshot.nvidia.gpus
    if name == "count":
        return len(gpus)
    if name == "min_memory_mib":
        memories = [g.memory_mib for g in gpus if g.memory_mib is not None]
        return min(memories) if memories else UNKNOWN
    ccs = gpu_ccs(snapshot)
    if not ccs:
        return UNKNOWN
    return str(min(ccs) if name == "min_cc" else max(ccs))


# Local tags that name a PyTorch build variant (an index under download.pytorch.org/whl/); other local tags (NGC's
# "07cecf4168.nv24.5", a source build's git hash) say nothing about the CUDA the build uses.
VARIANT_TAG = re.compile(r"cu\d{2,4}|cpu|rocm\d+(\.\d+)*|xpu")
# Platforms whose plain PyPI torch wheel is a CPU build (CUDA builds come only from the PyTorch index there).
CPU_ONLY_PYPI_PLATFORMS = frozenset({"windows", "darwin"})


# conda packages that select a conda pytorch build's CUDA (pytorch's channel: cudatoolkit up to 1.12, then pytorch-cuda)
CONDA_CUDA_PACKAGES = ("cudatoolkit", "pytorch-cuda")


def torch_variant(snapshot: Snapshot) -> Any:
    """The torch build variant: the local tag ('cu121', 'cpu'), else the CUDA the build reports ('cu121', or 'cpu'
    when it reports none), else 'cpu' for a plain PyPI wheel on Windows or macOS, '' for a plain PyPI build
    elsewhere ('cpu' beside conda's cpuonly package, UNKNOWN beside conda's CUDA runtime packages: conda's pytorch
    builds carry no tag); ABSENT or None."""
    version = _package_fact(snapshot, "torch")
    if version is UNKNOWN or version is ABSENT:
        return version
    parsed = parse_version(version) if version is not INSTALLED else None
    if parsed is not None and parsed.local and VARIANT_TAG.fullmatch(parsed.local):
        return parsed.local
    if snapshot.torch and snapshot.torch.cuda:
        return variant_of_cuda(snapshot.torch.cuda)  # validated as a CUDA version when read
    if snapshot.torch and snapshot.torch.cuda_none and not (parsed is not None and parsed.local):
        return "cpu"  # the build said torch.version.cuda is None
    if parsed is None or parsed.local:
        return UNKNOWN
    if "cpuonly" in (snapshot.packages or {}):
        return "cpu"  # conda's cpuonly package exists to select the CPU builds of pytorch's channel
    if any(name in (snapshot.packages or {}) for name in CONDA_CUDA_PACKAGES):
        return UNKNOWN  # conda's pytorch builds (CPU or CUDA) carry no tag: the plain version is not PyPI's wheel
    return "cpu" if snapshot.host.os in CPU_ONLY_PYPI_PLATFORMS else ""


def _torch_fact(snapshot: Snapshot, name: str) -> Any:
    installed = _package_fact(snapshot, "torch")
    if installed is ABSENT:
        return ABSENT
    if name == "variant":
        return torch_variant(snapshot)
    build = snapshot.torch
    value = getattr(build, name, None) if build else None
    if name == "cuda" and value is None and torch_variant(snapshot) == "cpu":
        return ABSENT
    return value


# --- conditions -------------------------------------------------------------------------------


def parse_version(text: Any) -> Version | None:
    if text is None or isinstance(text, (bool, _Absent, _Installed)):
        return None
    return _version(str(text))


@functools.lru_cache(maxsize=8192)
def public_of(version: str) -> str:
    """``2.3.1+cu121`` -> ``2.3.1`` (the text as given when it is not PEP 440)."""
    parsed = parse_version(version)
    return parsed.public if parsed else version


def same_release(installed: str, target: str) -> bool:
    """Whether ``installed`` can be the release ``target``: ``2.7`` (a minor, as issue threads write it) is any 2.7.x
    release; otherwise the public versions are equal (``2.7.0+cu126`` is ``2.7``)."""
    have, want = parse_version(installed), parse_version(target)
    if have is None or want is None:
        return public_of(installed) == public_of(target)
    if len(have.release) <= 2 and have.public == have.base_version:
        return want.release[:len(have.release)] == have.release
    return Version(have.public) == Version(want.public)


def minor_of(version: str) -> str:
    """``2.3.1+cu121`` -> ``2.3`` (the text as given when it is not PEP 440)."""
    parsed = parse_version(version)
    return ".".join(str(p) for p in parsed.release[:2]) if parsed else version


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


@functools.lru_cache(maxsize=4096)
def _specifier(spec: str) -> SpecifierSet | None:
    try:
        return SpecifierSet(spec)
    except InvalidSpecifier:
        return None


@functools.lru_cache(maxsize=65536)
def _matches(value: str, spec: str) -> bool:
    version, specifier = _version(value), _specifier(spec)
    if version is None or specifier is None:
        return False
    if "+" not in spec and version.local:
        version = _version(version.public)
    return specifier.contains(version, prereleases=True)


def matches_specifier(value: Any, spec: str) -> bool:
    """``value`` satisfies ``spec``; pre-releases count, a local tag (``+cu121``) is ignored unless named."""
    if value is None or isinstance(value, (bool, _Absent, _Installed)):
        return False
    return _matches(str(value), spec)


def condition_holds(value: Any, expected: Any) -> bool:
    """One condition against a known (non-None) fact value."""
    if isinstance(expected, tuple):
        return any(condition_holds(value, e) for e in expected)
    if expected == "absent":
        return value is ABSENT
    if expected == "present":
        return value is not ABSENT
    if value is ABSENT:
        return False
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    if isinstance(expected, str) and expected.startswith(SPEC_START):
        return matches_specifier(value, expected)
    return str(value).lower() == str(expected).lower()


def _evaluate_condition(snapshot: Snapshot, condition: Condition) -> tuple[bool, list[str]]:
    """(no known fact contradicts it, unknown fact paths)."""
    unknown = []
    for path, expected in condition:
        value = fact(snapshot, path)
        if value is INSTALLED and expected not in ("absent", "present"):
            unknown.append(f"{path} (installed, version unknown)")
        elif value is UNKNOWN:
            unknown.append(path)
        elif not condition_holds(value, expected):
            return False, []
    return True, unknown


def rule_outcome(rule: Rule, snapshot: Snapshot) -> tuple[bool, list[str]]:
    """(could fire, unknown facts): fires when True and no unknowns, 'could not verify' when unknowns."""
    holds, unknown = _evaluate_condition(snapshot, rule.when)
    if not holds or not rule.any:
        return holds, unknown
    group_unknowns: list[str] = []
    for group in rule.any:
        group_holds, group_unknown = _evaluate_condition(snapshot, group)
        if group_holds and not group_unknown:
            return True, unknown
        if group_holds:
            group_unknowns.extend(group_unknown)
    return (True, unknown + group_unknowns) if group_unknowns else (False, [])


def evaluate(rules: Iterable[Rule], snapshot: Snapshot) -> list[Finding]:
    """Findings for every rule that fires, plus 'could not verify' (info) for rules blocked by unknowns."""
    findings = []
    for rule in rules:
        fires, unknown = rule_outcome(rule, snapshot)
        if fires and not unknown:
            findings.append(_finding(rule, snapshot))
        elif fires:
            findings.append(_unverified(rule, unknown))
    return findings


def render_message(template: str, snapshot: Snapshot) -> str:
    def replace(match: re.Match[str]) -> str:
        value = fact(snapshot, match.group(1))
        return "unknown" if value is UNKNOWN else ("(version unknown)" if value is INSTALLED else str(value))

    return re.sub(r"\{([^{}]+)\}", replace, template)


def _finding(rule: Rule, snapshot: Snapshot) -> Finding:
    return Finding(
        rule=rule.id,
        category=rule.category,
        severity=rule.severity,
        message=render_message(rule.message, snapshot),
        components=rule.components,
        fix=rule.fix,
        sources=rule.sources,
    )


def _unverified(rule: Rule, unknown: list[str]) -> Finding:
    facts = ", ".join(sorted(set(unknown)))
    return Finding(
        rule=rule.id,
        category=rule.category,
        severity=Severity.INFO,
        message=f"could not verify '{rule.id}': the snapshot does not say {facts}",
        components=rule.components,
        sources=rule.sources,
        verified=False,
    )
