"""Regenerate ``matrices/flash_attn.toml`` from the flash-attention repository and PyPI.

Usage: python tools/gen_flash_attn.py --git-dir DIR [--pypi-json FILE] [--out FILE] [--floor 2.3.0]

DIR is a clone (bare or not) of https://github.com/Dao-AILab/flash-attention. For every release tag ``vX.Y.Z``
at or above the floor:
- ``.github/workflows/publish.yml`` gives the wheels CI built: the build job's matrix axes minus its ``exclude``
  entries plus its ``include`` entries (GitHub's rules), each job named the way the workflow's shell names it
  (``tmpname=cu${...}torch${...}cxx11abi${{ matrix.cxx11_abi }}``, its variables cut from the matrix values with
  the ``awk`` programs the workflow runs);
- ``setup.py`` gives the wheel name pip's fallback asks for (``get_wheel_url``: which CUDA of the installed torch
  maps to which ``cu`` tag), the oldest nvcc a source build accepts (the ``bare_metal_version < Version(..)`` check
  that raises), and the SASS archs ``cc_flag`` compiles for the CUDA each wheel was built with.
``https://pypi.org/pypi/flash-attn/json`` says which releases have their sdist on PyPI (``on_pypi``). A release on
PyPI whose tag the clone lacks keeps its entry from the existing file (or gets an empty, ``uncertain`` one).
Differences from the existing file are printed, one line each.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import itertools
import json
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib
import yaml
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "matrices" / "flash_attn.toml"
REPO_URL = "https://github.com/Dao-AILab/flash-attention"
PYPI_URL = "https://pypi.org/pypi/flash-attn/json"
WORKFLOW = ".github/workflows/publish.yml"
URL_TEMPLATE = REPO_URL + "/releases/download/v{version}/{filename}"
ENTRY = re.compile(r"^cu\d+torch\d+\.\d+cxx11abi(TRUE|FALSE)-cp\d+$")


class SourceError(ValueError):
    """A workflow or setup.py this generator cannot read; the message names the tag and what was expected."""


# --- publish.yml --------------------------------------------------------------------------------------------


def _build_matrix(workflow: dict[str, Any]) -> dict[str, Any]:
    """The ``strategy.matrix`` of the job that builds wheels (the one whose matrix has a ``cuda-version`` axis)."""
    for job in (workflow.get("jobs") or {}).values():
        matrix = ((job or {}).get("strategy") or {}).get("matrix")
        if isinstance(matrix, dict) and "cuda-version" in matrix:
            return matrix
    raise SourceError("no job with a strategy.matrix holding a cuda-version axis")


def matrix_jobs(matrix: dict[str, Any]) -> list[dict[str, str]]:
    """Every job of a GitHub Actions matrix: the product of its axes, minus ``exclude``, plus ``include``.

    An exclude entry drops every combination that has all its key/values. An include entry is merged into every
    combination whose original axis values it does not contradict (adding only new keys); when it fits none,
    it becomes a combination of its own.
    """
    axes = {k: [str(v) for v in values] for k, values in matrix.items() if k not in ("include", "exclude")}
    if not all(axes.values()):
        return []
    names = list(axes)
    jobs = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]
    for rule in matrix.get("exclude") or []:
        wanted = {k: str(v) for k, v in rule.items()}
        jobs = [job for job in jobs if any(job.get(k) != v for k, v in wanted.items())]
    originals = [dict(job) for job in jobs]
    for rule in matrix.get("include") or []:
        extra = {k: str(v) for k, v in rule.items()}
        merged = False
        for job, original in zip(jobs[:len(originals)], originals, strict=True):
            if all(original.get(k, v) == v for k, v in extra.items() if k in axes):
                job.update({k: v for k, v in extra.items() if k not in original})
                merged = True
        if not merged:
            jobs.append(extra)
    return jobs


def unmatched_excludes(matrix: dict[str, Any]) -> list[dict[str, str]]:
    """Exclude entries that match no combination of the axes (a value spelled unlike the axis value): the jobs
    they were meant to drop still ran."""
    axes = {k: [str(v) for v in values] for k, values in matrix.items() if k not in ("include", "exclude")}
    return [{k: str(v) for k, v in rule.items()} for rule in matrix.get("exclude") or []
            if any(k in axes and str(v) not in axes[k] for k, v in rule.items())]


AWK_VAR = re.compile(
    r"""(\w+)=\$\(echo \$\{\{\s*matrix\.([\w-]+)\s*\}\}\s*\|\s*awk -F\s*\\?\.\s*\{'print ([^']*)'\}\)""")
TMPNAME = re.compile(r"tmpname=(.+?)\s*$", re.MULTILINE)


def awk_print(program: str, value: str) -> str:
    """What ``echo VALUE | awk -F . {'print PROGRAM'}`` prints: ``$1 $2`` of ``12.2.0`` -> ``122``."""
    fields = value.split(".")
    out = []
    for token in re.findall(r'\$\d+|"[^"]*"', program):
        if token.startswith("$"):
            index = int(token[1:])
            out.append(fields[index - 1] if 0 < index <= len(fields) else "")
        else:
            out.append(token[1:-1])
    return "".join(out)


def wheel_entries(workflow_text: str) -> list[tuple[dict[str, str], str]]:
    """Each CI job of a publish.yml with the wheel entry it uploads (``cu122torch2.3cxx11abiFALSE-cp310``)."""
    workflow = yaml.safe_load(workflow_text)
    if not isinstance(workflow, dict):
        raise SourceError("publish.yml is not a YAML mapping")
    jobs = matrix_jobs(_build_matrix(workflow))
    variables = {name: (axis, program) for name, axis, program in AWK_VAR.findall(workflow_text)}
    template = TMPNAME.search(workflow_text)
    if template is None:
        raise SourceError("no 'tmpname=...' line naming the wheels")
    out = []
    for job in jobs:
        def value(match: re.Match[str], job: dict[str, str] = job) -> str:
            name = match.group(1) or match.group(2)
            if match.group(1):  # ${{ matrix.X }}
                if name not in job:
                    raise SourceError(f"tmpname uses matrix.{name}, which the matrix lacks")
                return job[name]
            if name not in variables:
                raise SourceError(f"tmpname uses ${name}, which no 'awk' line of the workflow sets")
            axis, program = variables[name]
            if axis not in job:
                raise SourceError(f"${name} reads matrix.{axis}, which the matrix lacks")
            return awk_print(program, job[axis])

        tag = re.sub(r"\$\{\{\s*matrix\.([\w-]+)\s*\}\}|\$\{(\w+)\}", value, template.group(1))
        entry = f"{tag}-cp{job['python-version'].replace('.', '')}"
        if not ENTRY.match(entry):
            raise SourceError(f"wheel entry {entry!r} is not 'cu<N>torch<M.m>cxx11abi<TRUE|FALSE>-cp<XY>'")
        out.append((job, entry))
    return out


COMPARISONS = {ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
               ast.GtE: lambda a, b: a >= b}
TORCH_CUDA_SNIPPET = re.compile(r'TORCH_CUDA_VERSION=\$\(python -c "([^"]*)"(?:\s|\\)*\)', re.S)


def torch_cuda_chooser(workflow_text: str) -> ast.expr | None:
    """The expression publish.yml prints to pick the CUDA of the torch CI installs (``minv``/``maxv`` tables by
    torch minor), with those tables substituted: parsed with ``ast``, never run; None when the workflow has none."""
    match = TORCH_CUDA_SNIPPET.search(workflow_text)
    if match is None:
        return None
    code = re.sub(r"\\\n", "\n", match.group(1))
    try:
        tree = ast.parse("\n".join(line.strip() for line in re.split(r";|\n", code) if line.strip()))
    except SyntaxError:
        return None
    tables: dict[str, ast.expr] = {}
    printed: ast.expr | None = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            tables[node.targets[0].id] = node.value
        elif (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
              and isinstance(node.value.func, ast.Name) and node.value.func.id == "print" and node.value.args):
            printed = node.value.args[0]
    if printed is None:
        return None

    class Substitute(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return tables.get(node.id, node)

    return Substitute().visit(printed)


def ci_torch_cuda(chooser: ast.expr, torch_minor: str, cuda_version: str) -> str | None:
    """``cu126``: the CUDA of the torch CI installed for one job (MATRIX_TORCH_VERSION and MATRIX_CUDA_VERSION as the
    workflow sets them), by evaluating the chooser over a few node types only; None for anything else."""
    cuda = "".join(cuda_version.split(".")[:2])
    env = {"MATRIX_TORCH_VERSION": torch_minor, "MATRIX_CUDA_VERSION": cuda}

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Dict):
            return {value(k): value(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
        if isinstance(node, ast.Subscript):
            if isinstance(node.value, (ast.Name, ast.Attribute)):  # env[...] / os.environ[...]
                return env[value(node.slice)]
            return value(node.value)[value(node.slice)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("int", "max", "min"):
            args = [value(arg) for arg in node.args]
            return {"int": lambda *a: int(a[0]), "max": max, "min": min}[node.func.id](*args)
        if isinstance(node, ast.IfExp):
            return value(node.body) if value(node.test) else value(node.orelse)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in COMPARISONS:
            return COMPARISONS[type(node.ops[0])](value(node.left), value(node.comparators[0]))
        raise ValueError(ast.dump(node))

    try:
        chosen = value(chooser)
    except (ValueError, KeyError, TypeError):
        return None
    return f"cu{chosen}" if isinstance(chosen, int) else None


def ci_torch_variants(workflow_text: str, built: list[tuple[dict[str, str], str]]) -> dict[str, str]:
    """Wheel name part (``cu12torch2.6``) -> the CUDA variant of the torch CI built it against (``cu126``); jobs whose
    choice cannot be read are left out."""
    chooser = torch_cuda_chooser(workflow_text)
    if chooser is None:
        return {}
    out: dict[str, str] = {}
    for job, entry in built:
        if "dev" in job["torch-version"]:
            continue
        variant = ci_torch_cuda(chooser, _minor(job["torch-version"]), job["cuda-version"])
        if variant is not None:
            out[entry.split("cxx11abi")[0]] = variant
    return dict(sorted(out.items()))


def linux_x86_64(job: dict[str, str]) -> bool:
    """Whether a CI job builds the ``linux_x86_64`` wheels this table holds (GitHub's ubuntu x64 runners)."""
    runner = job.get("os", "ubuntu")
    return runner.startswith("ubuntu") and "arm" not in runner


# --- setup.py -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WheelScheme:
    """How setup.py's ``get_wheel_url`` turns the installed torch's CUDA into the wheel's ``cu`` tag.

    ``per_major``: a CUDA major -> the CUDA the wheels of that major are built with (``{11: 11.8, 12: 12.2}``);
    ``fallback``: the CUDA of every other major (the ``else`` branch); both empty: torch's own CUDA is used
    (``exact``), except ``overrides``, CUDAs forced for one torch minor. ``digits``: ``("major", "minor")`` for
    ``cu122``, ``("major",)`` for ``cu12``.
    """

    digits: tuple[str, ...]
    per_major: dict[int, Version] = field(default_factory=dict)
    fallback: Version | None = None
    overrides: tuple[Version, ...] = ()

    def tag(self, cuda: Version) -> str:
        return "cu" + "".join(str(getattr(cuda, part)) for part in self.digits)

    def cuda_tags(self, built: list[Version]) -> dict[str, str]:
        """The TOML ``wheel_cuda_tags``: CUDA ``"major"`` (or ``"major.minor"`` for an exact scheme) -> tag."""
        if self.per_major or self.fallback:
            tags = {str(major): self.tag(cuda) for major, cuda in sorted(self.per_major.items())}
            if self.fallback is not None:
                tags.setdefault(str(self.fallback.major), self.tag(self.fallback))
            return tags
        tags = {f"{c.major}.{c.minor}": self.tag(c) for c in sorted(set(built))}
        for cuda in self.overrides:
            tags[str(cuda.major)] = self.tag(cuda)
        return dict(sorted(tags.items(), key=lambda item: Version(item[0])))


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise SourceError(f"setup.py has no function {name}()")


def _parse_call(node: ast.AST) -> Version | None:
    """``parse("12.2")`` -> Version("12.2"); anything else -> None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "parse"
            and len(node.args) == 1 and isinstance(node.args[0], ast.Constant)):
        return Version(str(node.args[0].value))
    return None


def _major_test(test: ast.AST) -> int | None:
    """``torch_cuda_version.major == 11`` -> 11."""
    if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Attribute) and test.left.attr == "major"
            and isinstance(test.left.value, ast.Name) and test.left.value.id == "torch_cuda_version"
            and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
            and isinstance(test.comparators[0], ast.Constant)):
        return int(test.comparators[0].value)
    return None


def wheel_scheme(setup_py: str) -> WheelScheme:
    """The CUDA tag scheme of one setup.py (see :class:`WheelScheme`)."""
    function = _function(ast.parse(setup_py), "get_wheel_url")
    digits: tuple[str, ...] | None = None
    per_major: dict[int, Version] = {}
    fallback: Version | None = None
    overrides: list[Version] = []

    def visit(statements: list[ast.stmt], test: ast.AST | None, branch: str) -> None:
        nonlocal digits, fallback
        for node in statements:
            if isinstance(node, ast.If):
                visit(node.body, node.test, "body")
                visit(node.orelse, node.test, "else")
                continue
            if not isinstance(node, ast.Assign) or len(node.targets) != 1:
                continue
            target = node.targets[0]
            if not isinstance(target, ast.Name):
                continue
            if target.id == "cuda_version" and isinstance(node.value, ast.JoinedStr):
                digits = tuple(v.value.attr for v in node.value.values
                               if isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Attribute))
            elif target.id == "torch_cuda_version":
                value = node.value
                if isinstance(value, ast.IfExp) and _major_test(value.test) is not None:
                    per_major[_major_test(value.test)] = _parse_call(value.body)
                    fallback = _parse_call(value.orelse)
                elif (forced := _parse_call(value)) is not None:
                    major = _major_test(test) if test is not None else None
                    if major is not None and branch == "body":
                        per_major[major] = forced
                    elif test is not None and branch == "else" and _major_test(test) is not None:
                        fallback = forced
                    elif test is not None and "torch_version_raw" in ast.unparse(test):
                        overrides.append(forced)
                    else:
                        raise SourceError(f"get_wheel_url sets torch_cuda_version under {ast.unparse(test or value)}")

    visit(function.body, None, "body")
    if digits not in (("major", "minor"), ("major",)):
        raise SourceError(f"get_wheel_url's cuda_version uses {digits}, not major[+minor] of torch_cuda_version")
    if None in per_major.values():
        raise SourceError("get_wheel_url maps a CUDA major to something other than parse('X.Y')")
    return WheelScheme(digits, per_major, fallback, tuple(overrides))


def _version_compare(node: ast.AST) -> tuple[str, Version] | None:
    """``bare_metal_version >= Version("11.8")`` -> (">=", 11.8)."""
    ops = {ast.GtE: ">=", ast.Gt: ">", ast.Lt: "<", ast.LtE: "<="}
    if (isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "bare_metal_version"
            and len(node.ops) == 1 and type(node.ops[0]) in ops and isinstance(node.comparators[0], ast.Call)
            and node.comparators[0].args and isinstance(node.comparators[0].args[0], ast.Constant)):
        return ops[type(node.ops[0])], Version(str(node.comparators[0].args[0].value))
    return None


def min_nvcc(setup_py: str) -> str | None:
    """The oldest nvcc a source build accepts: ``X`` of ``if bare_metal_version < Version("X"): raise ...``."""
    for node in ast.walk(ast.parse(setup_py)):
        if isinstance(node, ast.If) and any(isinstance(n, ast.Raise) for n in node.body):
            compare = _version_compare(node.test)
            if compare and compare[0] == "<":
                return str(compare[1])
    return None


def _default_cuda_archs(tree: ast.Module) -> list[str]:
    """The ``FLASH_ATTN_CUDA_ARCHS`` default (``"80;90;100;120"``) of ``cuda_archs()``; [] when there is none."""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "getenv"
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value
                == "FLASH_ATTN_CUDA_ARCHS" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
            return str(node.args[1].value).split(";")
    return []


def _holds(test: ast.AST, nvcc: Version, archs: list[str]) -> bool | None:
    """A build condition for this nvcc and arch list; None when it tests neither (a build-mode flag)."""
    if isinstance(test, ast.BoolOp):
        parts = [r for r in (_holds(v, nvcc, archs) for v in test.values) if r is not None]
        if not parts:
            return None
        return all(parts) if isinstance(test.op, ast.And) else any(parts)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _holds(test.operand, nvcc, archs)
        return None if inner is None else not inner
    if (compare := _version_compare(test)) is not None:
        op, bound = compare
        return {">=": nvcc >= bound, ">": nvcc > bound, "<": nvcc < bound, "<=": nvcc <= bound}[op]
    if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Constant) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.In) and "cuda_archs" in ast.unparse(test.comparators[0])):
        return str(test.left.value) in archs
    return None


def sass_for(setup_py: str, nvcc: Version) -> list[str]:
    """The ``sm_XX`` archs ``cc_flag`` gets when setup.py builds with this nvcc and the default arch list."""
    tree = ast.parse(setup_py)
    archs = _default_cuda_archs(tree)
    found: list[str] = []

    def visit(statements: list[ast.stmt], active: bool) -> None:
        for node in statements:
            if isinstance(node, ast.If):
                holds = _holds(node.test, nvcc, archs)
                visit(node.body, active and holds is not False)
                visit(node.orelse, active and holds is not True)
                continue
            for child in ast.walk(node):
                if (active and isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                        and child.func.attr == "append" and ast.unparse(child.func.value) == "cc_flag"
                        and child.args and isinstance(child.args[0], ast.Constant)):
                    match = re.search(r"code=(sm_\d+a?)", str(child.args[0].value))
                    if match and match.group(1) not in found:
                        found.append(match.group(1))
            for attr in ("body", "orelse", "finalbody"):
                if isinstance(node, (ast.For, ast.With, ast.Try, ast.While)) and hasattr(node, attr):
                    visit(getattr(node, attr), active)

    visit(tree.body, True)
    return found


# --- one release --------------------------------------------------------------------------------------------


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _sorted_versions(values: set[str]) -> list[str]:
    return sorted(values, key=Version)


def torch_builds(built: list[tuple[dict[str, str], str]], version: str, warnings: list[str]) -> dict[str, str]:
    """Torch minor -> the exact torch release (or nightly) CI installed to build that minor's wheels."""
    exact: dict[str, set[str]] = {}
    for job, _ in built:
        exact.setdefault(_minor(job["torch-version"]), set()).add(job["torch-version"])
    several = {minor: sorted(found) for minor, found in exact.items() if len(found) > 1}
    if several:
        warnings.append(f"{version}: several torch builds per minor {several}; the newest is recorded")
    return {minor: max(found, key=Version) for minor, found in sorted(exact.items(), key=lambda i: Version(i[0]))}


def release_entry(version: str, workflow_text: str, setup_py: str, on_pypi: bool) -> tuple[dict[str, Any], list[str]]:
    """One ``[releases."X"]`` table from the tag's publish.yml and setup.py, and warnings about it."""
    warnings = []
    built = [(job, entry) for job, entry in wheel_entries(workflow_text)]
    skipped = sorted({job.get("os", "") for job, _ in built if not linux_x86_64(job)})
    if skipped:
        warnings.append(f"{version}: wheels of runners {skipped} are not linux_x86_64 and are not recorded")
    built = [(job, entry) for job, entry in built if linux_x86_64(job)]
    cudas = [Version(job["cuda-version"]) for job, _ in built]
    scheme = wheel_scheme(setup_py)
    tags = scheme.cuda_tags(cudas)
    wheels = sorted({entry for _, entry in built}, key=_entry_key)
    unnamed = sorted({e.split("torch")[0] for e in wheels} - set(tags.values()))
    if unnamed:
        warnings.append(f"{version}: CI builds {unnamed} wheels that setup.py never asks for ({tags})")
    sass: list[str] = []
    for cuda in sorted(set(cudas)):
        sass += [arch for arch in sass_for(setup_py, cuda) if arch not in sass]
    sass.sort(key=lambda arch: int(re.sub(r"\D", "", arch)))
    entry: dict[str, Any] = {
        "on_pypi": on_pypi,
        "wheel_cuda_tags": tags,
        "torch_minors": _sorted_versions({_minor(job["torch-version"]) for job, _ in built}),
        "torch_builds": torch_builds(built, version, warnings),
        "torch_build_cuda": ci_torch_variants(workflow_text, built),
        "python": _sorted_versions({job["python-version"] for job, _ in built}),
        "sass": sass,
    }
    runners = sorted({job.get("os", "") for job, _ in built if job.get("os")})
    if runners:
        entry["runners"] = runners
    if sass:
        lowest = min(int(re.sub(r"\D", "", arch)) for arch in sass)
        entry["min_compute_capability"] = f"{lowest // 10}.{lowest % 10}"
    nvcc = min_nvcc(setup_py)
    if nvcc is None:
        warnings.append(f"{version}: setup.py has no 'bare_metal_version < Version(..)' check that raises")
    else:
        entry["min_nvcc"] = nvcc
    entry["wheels_confidence"] = "ci-matrix"
    stray = unmatched_excludes(_build_matrix(yaml.safe_load(workflow_text)))
    if stray:
        shown = "; ".join(", ".join(f"{k}={v}" for k, v in rule.items()) for rule in stray)
        entry["wheels_confidence"] = (f"ci-matrix, overstated: exclude entries match no job ({shown}), so the jobs "
                                      "they meant to drop ran and may have failed; their wheels are listed")
        warnings.append(f"{version}: {len(stray)} exclude entries match no job")
    entry["wheels"] = wheels
    return entry, warnings


def _entry_key(entry: str) -> tuple[Version, int, str, bool]:
    """Order of the existing file: torch minor, Python, CUDA tag, ABI FALSE before TRUE."""
    match = re.match(r"^(cu\d+)torch(\d+\.\d+)cxx11abi(TRUE|FALSE)-cp3(\d+)$", entry)
    assert match, entry
    cuda, torch, abi, python = match.groups()
    return Version(torch), int(python), f"{len(cuda):02d}{cuda}", abi == "TRUE"


# --- git, PyPI ----------------------------------------------------------------------------------------------


def git(git_dir: Path, *args: str) -> str:
    result = subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SourceError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def release_tags(git_dir: Path, floor: Version) -> dict[str, str]:
    """Release version -> tag, for ``vX.Y.Z[.postN]`` tags at or above the floor."""
    tags = {}
    for tag in git(git_dir, "tag").split():
        if not re.fullmatch(r"v\d+(\.\d+)*(\.post\d+)?", tag):
            continue
        try:
            if Version(tag[1:]) >= floor:
                tags[tag[1:]] = tag
        except InvalidVersion:
            continue
    return dict(sorted(tags.items(), key=lambda item: Version(item[0])))


def pypi_sdists(document: dict[str, Any]) -> set[str]:
    """Releases whose sdist is on PyPI (from the JSON API document)."""
    return {version for version, files in document.get("releases", {}).items()
            if any(f.get("packagetype") == "sdist" for f in files)}


def fetch_pypi() -> dict[str, Any]:
    request = urllib.request.Request(PYPI_URL, headers={"User-Agent": "envdoctor tools/gen_flash_attn.py"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


# --- writing ------------------------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


KEY_ORDER = ("on_pypi", "wheel_cuda_tags", "torch_minors", "torch_builds", "torch_build_cuda", "python", "runners",
             "sass",
             "min_compute_capability",
             "min_nvcc", "wheels_confidence")


def render(releases: dict[str, dict[str, Any]], header: list[str]) -> str:
    lines = [f"# {line}".rstrip() for line in header]
    lines += ['sources = ["flash-attn-publish"]', f"url_template = {json.dumps(URL_TEMPLATE)}", ""]
    for version, table in sorted(releases.items(), key=lambda item: Version(item[0])):
        lines.append(f'[releases."{version}"]')
        for key in KEY_ORDER + tuple(k for k in table if k not in KEY_ORDER and k != "wheels"):
            if key in table:
                lines.append(f"{key} = {_toml_value(table[key])}")
        lines.append("wheels = [")
        lines += [f"  {json.dumps(entry)}," for entry in table.get("wheels", [])]
        lines += ["]", ""]
    return "\n".join(lines)


def differences(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[str]:
    """One line per release added or dropped and per key whose value changed."""
    out = []
    for version in sorted(set(old) | set(new), key=Version):
        if version not in new:
            out.append(f"{version}: dropped")
        elif version not in old:
            out.append(f"{version}: added ({len(new[version].get('wheels', []))} wheels)")
        else:
            for key in sorted(set(old[version]) | set(new[version])):
                before, after = old[version].get(key), new[version].get(key)
                if key == "wheels" and before != after:
                    gone, came = set(before or ()) - set(after or ()), set(after or ()) - set(before or ())
                    if gone or came:
                        out.append(f"{version}: wheels -{len(gone)} +{len(came)} "
                                   f"{sorted(gone)[:4]} {sorted(came)[:4]}")
                elif before != after:
                    out.append(f"{version}: {key} {before!r} -> {after!r}")
    return out


def generate(git_dir: Path, pypi: dict[str, Any], old: dict[str, dict[str, Any]], floor: Version,
             today: str) -> tuple[str, dict[str, dict[str, Any]], list[str]]:
    tags = release_tags(git_dir, floor)
    if not tags:
        raise SourceError(f"{git_dir}: no release tag at or above v{floor}")
    sdists = pypi_sdists(pypi)
    releases, warnings = {}, []
    for version, tag in tags.items():
        try:
            entry, notes = release_entry(version, git(git_dir, "show", f"{tag}:{WORKFLOW}"),
                                         git(git_dir, "show", f"{tag}:setup.py"), version in sdists)
        except SourceError as error:
            raise SourceError(f"{tag}: {error}") from None
        releases[version], warnings = entry, warnings + notes
    newest = list(tags.values())[-1]
    commit = git(git_dir, "rev-list", "-n", "1", newest).strip()
    committed = git(git_dir, "log", "-1", "--format=%cs", commit).strip()
    untagged = sorted((v for v in sdists if Version(v) >= floor and v not in releases), key=Version)
    for version in untagged:
        kept = dict(old.get(version) or {"wheel_cuda_tags": releases[list(releases)[-1]]["wheel_cuda_tags"]})
        kept["on_pypi"] = True
        kept.setdefault("wheels_confidence", f"uncertain: tag v{version} not in the repository read "
                                             f"(newest tag read {newest}, {committed})")
        kept.setdefault("wheels", [])
        releases[version] = kept
        warnings.append(f"{version}: on PyPI, no tag in {git_dir}; entry kept from the existing file")
    header = [
        f"Generated by tools/gen_flash_attn.py on {today}; regenerate with python tools/gen_flash_attn.py "
        "--git-dir DIR",
        f"(DIR: a clone of {REPO_URL}). Do not edit by hand.",
        "",
        f"Sources: {REPO_URL}/blob/<tag>/.github/workflows/publish.yml and setup.py at every release tag",
        f"v{floor} .. {newest} (newest commit read: {commit}, {committed}); {PYPI_URL} (on_pypi: the sdist is there).",
        *(f"Releases on PyPI without a tag in that clone keep their hand-kept entry: {', '.join(untagged)}."
          for _ in [0] if untagged),
        "",
        "Official release wheels on GitHub (PyPI has only the sdist). Each wheel is stored as",
        '"{cuda_tag}torch{major.minor}cxx11abi{TRUE|FALSE}-cp{XY}"; the filename is',
        '"flash_attn-{version}+{that with cp{XY}-cp{XY}}-linux_x86_64.whl". wheels: publish.yml\'s build matrix',
        "(axes minus exclude, plus include), named as its tmpname line names them (that every CI job uploaded its",
        "asset is not verified). wheel_cuda_tags: the tag setup.py's get_wheel_url asks for, by the CUDA of the",
        'installed torch: "major" keys (cu118/cu122/cu123 up to 2.6.x, cu11/cu12/cu13 from 2.7.0), or "major.minor"',
        "keys where setup.py uses torch's exact CUDA (up to 2.3.5), a bare major there being a forced CUDA (torch",
        "2.1). sass: cc_flag's archs for the CUDA of each CI job (union); min_compute_capability: the lowest of them.",
        "min_nvcc: the oldest nvcc setup.py accepts for a source build ('FlashAttention is only supported on CUDA",
        "X and above'). torch_builds: per torch minor, the exact torch CI installed to build its wheels (matrix",
        "torch-version; a '.dev' one is a nightly before that minor's release). runners: the GitHub runner",
        "images the wheels were built on (ubuntu-22.04: glibc 2.35, what the wheels' binaries may need).",
        "",
    ]
    return render(releases, header), releases, warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--git-dir", type=Path, required=True, help="a clone of the flash-attention repository")
    parser.add_argument("--pypi-json", type=Path, help=f"a saved copy of {PYPI_URL} (default: fetch it)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--floor", type=Version, default=Version("2.3.0"))
    args = parser.parse_args(argv)
    try:
        pypi = json.loads(args.pypi_json.read_text()) if args.pypi_json else fetch_pypi()
        old = tomllib.loads(args.out.read_text()).get("releases", {}) if args.out.exists() else {}
        text, releases, warnings = generate(args.git_dir, pypi, old, args.floor, datetime.date.today().isoformat())
    except (SourceError, OSError, ValueError) as error:
        print(f"gen_flash_attn: {error}", file=sys.stderr)
        return 2
    args.out.write_text(text, encoding="utf-8")
    for line in warnings:
        print(f"note: {line}")
    for line in differences(old, releases):
        print(f"changed: {line}")
    print(f"{args.out}: {len(releases)} releases, {sum(len(r.get('wheels', [])) for r in releases.values())} wheels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
