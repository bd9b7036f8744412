"""The two resolvers ``--verify`` can ask, without installing: ``uv pip compile`` and pip's ``install --dry-run``.

Both resolve for the plan's target (its Python version and manylinux platform, wheels only) under the plan's
constraints, against the configured indexes. The resolved versions are read from each tool's machine-readable
output (uv's ``pylock.toml``, pip's ``--report`` JSON); only the cause of a failure, which neither tool writes in a
machine-readable form, is taken from its printed text.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envdoctor.plan.indexes import IndexConfig
from envdoctor.plan.installer import find_uv
from envdoctor.plan.model import Installer, Plan

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

RESOLVE_TIMEOUT_S = 300.0
# pip does not widen --platform to older manylinux tags, so name them all (glibc 2.28 host and older);
# uv's --python-platform <arch>-manylinux_2_28 includes the older tags itself.
MANYLINUX = ("manylinux_2_28", "manylinux_2_27", "manylinux_2_24", "manylinux_2_17", "manylinux2014",
             "manylinux_2_12", "manylinux2010", "manylinux_2_5", "manylinux1")
_UNREACHABLE = ("Failed to establish a new connection", "NewConnectionError", "Failed to fetch",
                "error sending request", "dns error", "Connection refused", "Could not connect")
# what each tool prints when the requirements have no solution; any other failure is the tool's own (a full disk,
# a bad option, a crash) and says nothing about the plan
_NO_SOLUTION = {
    Installer.UV: ("No solution found",),
    Installer.PIP: ("ResolutionImpossible", "conflicting dependencies", "No matching distribution found",
                    "Could not find a version that satisfies"),
}
# pip reads each wheel's metadata with HTTP range requests instead of downloading it whole (a torch build with its
# CUDA wheels is about 3 GB) where the index serves no PEP 658 metadata file
PIP_FAST_DEPS = "--use-feature=fast-deps"
PIP_METADATA_ONLY = Version("25.3")  # the first pip whose --dry-run with fast-deps downloads no whole wheel


@dataclass(frozen=True)
class Resolver:
    """Which tool resolves, the executable that runs it, and why it was chosen."""

    kind: Installer
    executable: str
    reason: str

    @property
    def label(self) -> str:
        return "uv pip compile" if self.kind is Installer.UV else "pip install --dry-run"


@dataclass(frozen=True)
class Resolution:
    """One resolution: the tool's exit status (None: it did not answer in time), the versions it resolved and
    everything it printed."""

    returncode: int | None
    versions: dict[str, str]  # PEP 503 normalized name -> version
    output: str
    unreachable: bool = False  # the failure was a connection to an index, not the requirements
    no_solution: bool = False  # the failure was the requirements: the tool found no solution


def _no_solution(kind: Installer, output: str) -> bool:
    return any(marker in output for marker in _NO_SOLUTION[kind])


def _unreachable(kind: Installer, output: str) -> bool:
    """A network error: anywhere in pip's output (it warns on each retry), in uv's error itself (its warnings may
    be about something else)."""
    lines = output.splitlines()
    start = 0 if kind is Installer.PIP else next((i for i, ln in enumerate(lines) if ln.startswith("error:")), 0)
    return any(marker in line for line in lines[start:] for marker in _UNREACHABLE)


def choose_resolver(asked: Installer | None, uv_path: str | None = None, search_path: str | None = None) -> Resolver:
    """uv when it is found (unless pip was asked for), pip's resolver otherwise."""
    if asked is Installer.PIP:
        return Resolver(Installer.PIP, sys.executable, "--installer pip" + _pip_download_note(_pip_version()))
    uv = uv_path or find_uv(search_path)
    if uv is not None:
        return Resolver(Installer.UV, uv, "uv was found")
    return Resolver(Installer.PIP, sys.executable,
                    "uv was not found; pip's resolver answers instead" + _pip_download_note(_pip_version()))


def _pip_version() -> str | None:
    try:
        return importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        return None


def _pip_download_note(version: str | None) -> str:
    """pip before 25.3 downloads every wheel of the resolved set even with --dry-run and fast-deps (measured with
    pip 23.2.1, 24.0, 25.0 and 25.2 against 25.3 and 26.0 on torch 2.5.1's set); say so before it fills a disk."""
    try:
        if version is None or Version(version) >= PIP_METADATA_ONLY:
            return ""
    except InvalidVersion:
        return ""
    return (f"; pip {version} downloads every wheel it resolves, about 3 GB with a CUDA torch, to a temporary"
            f" directory: pip >= {PIP_METADATA_ONLY} or uv reads only their metadata")


def resolve(resolver: Resolver, requirements: tuple[str, ...], plan: Plan, constraints: Path,
            indexes: IndexConfig) -> Resolution:
    with tempfile.TemporaryDirectory(prefix="envdoctor-resolve-") as work:
        out = Path(work) / ("pylock.toml" if resolver.kind is Installer.UV else "report.json")
        if resolver.kind is Installer.UV:
            source = Path(work) / "requirements.in"
            source.write_text("\n".join(requirements) + "\n", encoding="utf-8")
            command = uv_command(resolver.executable, plan, constraints, source, out, indexes)
        else:
            command = pip_command(plan, constraints, Path(work) / "target", out, requirements)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S, check=False)
            if resolver.kind is Installer.PIP and rejects_feature(done.stderr, PIP_FAST_DEPS):
                command.remove(PIP_FAST_DEPS)  # a pip without the feature resolves the slow way
                done = subprocess.run(command, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return Resolution(None, {}, "")
        except OSError as exc:
            return Resolution(127, {}, f"{resolver.executable}: {exc.strerror or exc}")
        text = out.read_text(encoding="utf-8") if done.returncode == 0 and out.is_file() else ""
        versions = _pylock_versions(text) if resolver.kind is Installer.UV else _report_versions(text)
        output = done.stdout + "\n" + done.stderr
        failed = done.returncode != 0
        return Resolution(done.returncode, versions, output, failed and _unreachable(resolver.kind, output),
                          failed and _no_solution(resolver.kind, output))


def rejects_feature(stderr: str, flag: str) -> bool:
    """pip's usage error for a ``--use-feature`` value it does not know."""
    return f"invalid choice: '{flag.split('=', 1)[1]}'" in stderr


def uv_command(uv: str, plan: Plan, constraints: Path, source: Path, out: Path, indexes: IndexConfig) -> list[str]:
    arch = plan.target.platform.split("_", 1)[1]
    command = [
        uv, "pip", "compile", str(source), "-c", str(constraints), "--python-version", plan.target.python,
        "--python-platform", f"{arch}-manylinux_2_28", "--only-binary", ":all:", "--format", "pylock.toml",
        "-o", str(out), "--no-header", "--color", "never", "--default-index", indexes.index_url,
        # pip's meaning of several indexes (the best version across all of them), and no interpreter download:
        # the target Python is --python-version, this interpreter only answers for uv's own bookkeeping
        "--index-strategy", "unsafe-best-match", "--python", sys.executable, "--no-python-downloads",
    ]
    command += [arg for url in indexes.extra_index_urls for arg in ("--extra-index-url", url)]
    return command + [arg for link in indexes.find_links for arg in ("--find-links", link)]


def pip_command(
    plan: Plan, constraints: Path, target_dir: Path, report: Path, requirements: tuple[str, ...]
) -> list[str]:
    """pip reads the configured indexes itself (its configuration files and PIP_* variables)."""
    arch = plan.target.platform.split("_", 1)[1]
    platforms = [arg for tag in MANYLINUX for arg in ("--platform", f"{tag}_{arch}")]
    return [
        sys.executable, "-m", "pip", "install", "--dry-run", PIP_FAST_DEPS, "--ignore-installed",
        "--report", str(report), "--no-color", "--disable-pip-version-check", "--no-input",
        "--python-version", plan.target.python, *platforms,
        "--only-binary=:all:", "--target", str(target_dir), "-c", str(constraints), *requirements,
    ]


def _pylock_versions(text: str) -> dict[str, str]:
    try:
        packages = tomllib.loads(text).get("packages", []) if text else []
    except tomllib.TOMLDecodeError:
        return {}
    return {canonicalize_name(str(p["name"])): str(p["version"]) for p in packages if "name" in p and "version" in p}


def _report_versions(text: str) -> dict[str, str]:
    try:
        installs = json.loads(text).get("install", []) if text else []
    except json.JSONDecodeError:
        return {}
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}


def failure_cause(resolver: Resolver, output: str) -> str:
    """The lines that say why the resolution failed, joined with `` | ``."""
    lines = [line.strip().lstrip("×╰─▶ ").strip() for line in output.splitlines() if line.strip()]
    lines = [line for line in lines if line]
    if resolver.kind is Installer.UV:  # "error: No solution found ...", then "cause: Because ..." lines
        start = next((i for i, line in enumerate(lines) if "No solution found" in line), None)
        if start is None:
            block = [line for line in lines if line.startswith("error:")][:3]
        else:
            block = [line.removeprefix("cause:").strip() for line in lines[start + 1:start + 8]
                     if not line.startswith(("hint:", "help:"))]
    else:
        block = _pip_conflict_block(lines) or [line for line in lines if line.startswith("ERROR:")][:3]
    return " | ".join(block) or f"{resolver.label} failed without an error message"


def tool_failure(output: str) -> str:
    """What a resolver that failed on its own said: the last line of a traceback (it names the exception), else its
    first error line and the two after it (uv wraps long messages), else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines:
        return "no message"
    if "ERROR: Exception:" in lines:
        return lines[-1]
    start = next((i for i, line in enumerate(lines) if line.lower().startswith("error:")), len(lines) - 1)
    return " ".join(lines[start:start + 3])


def _pip_conflict_block(lines: list[str]) -> list[str]:
    """The 'The conflict is caused by:' lines pip prints for ResolutionImpossible."""
    if "The conflict is caused by:" not in lines:
        return []
    start = lines.index("The conflict is caused by:")
    block = []
    for line in lines[start + 1:]:
        if line.startswith(("To fix", "Additionally", "ERROR:")):
            break
        block.append(line)
    return block
