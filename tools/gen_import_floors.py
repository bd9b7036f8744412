"""Regenerate ``matrices/import_floors.json``: the names each release of a Hugging Face library imports from its
partner packages when it is imported, and which partner releases have those names.

Usage:
    python tools/gen_import_floors.py [--out FILE] [--wheels NAME ...] [--transformers-wheels] [GIT_DIR ...]
    python tools/gen_import_floors.py --add NAME [--add NAME ...] [--out FILE] [GIT_DIR ...]

Each GIT_DIR is a bare clone of one of the repositories in ``IMPORTERS`` or ``PROVIDERS`` (told by its path,
``/work/.mirror/huggingface+peft/repo``); release tags ``vX.Y.Z`` (final releases at or above the floor) are read
with ``git cat-file``. ``--wheels NAME`` reads that package from each release's PyPI wheel instead, by HTTP range
requests (only the zip's directory and the files needed): every release users can install, the newest included,
and transformers, which has no clone here (``--transformers-wheels`` is ``--wheels transformers``).

``--add NAME`` reads only the packages named (each from its clone when given, else its wheels) and merges them into
the table at ``--out``: every other entry stays as it is, ``generated`` included (the day the rest was read). A
provider already there is read only for the names an added importer needs that it does not list, over the releases
it lists. An added provider's names come from the importers in the table; those not read again since it was added
(``vllm`` and ``triton``, say) record none of its names until a full run.

Nothing is executed: each file is parsed with ``ast``.

Importers. For each release, the modules ``import <package>`` loads: its ``__init__.py`` and, transitively, every
module of the package that a loaded module imports at module level. A namespace package (no ``__init__.py``:
optimum, llama-recipes) loads nothing that way; users import its modules (``optimum.bettertransformer``, ``python -m
llama_recipes.finetuning``), so each public top-level module and subpackage is read in turn, and each need records
(``via``) the first of them whose import reaches it. Imports that may not run are left out:
anything inside a function or class, under any ``if`` (``TYPE_CHECKING``, ``is_x_available()``, version switches)
and in a ``try`` whose handlers catch an import failure (``ImportError``, ``Exception``, a bare ``except``, an
``OptionalDependencyNotAvailable``), its ``else`` included. What the loaded modules import from a partner package
(``from transformers.pytorch_utils import id_tensor_storage``, ``import transformers.modeling_layers``) is a need.
So is each link of an attribute chain read off a name bound to a partner module by ``import torch[.x] [as y]``
(``torch.xpu.empty_cache`` -> ``torch:xpu`` and ``torch.xpu:empty_cache``, access "attribute"), where it surely runs
at import: module body, class bodies, decorators, default values; not inside functions, lambdas, the branches of
``a if c else b``, the operands of ``and``/``or`` after the first, a guarded ``try`` or an ``if`` (``hasattr``,
version switches).

One exception, for partner ``x``: the body of a bare ``if is_<x>_available():`` and the ``else`` of a bare
``if not is_<x>_available():`` (tests written exactly so, at module level, not inside another such block) run
whenever ``x`` is installed, which is when the check compares against ``x``. There ``x``'s imports (``import
x.y``, ``from x.y import z``) and the attribute chains read off names bound to ``x``'s modules are needs on ``x``,
by the rules above (``bitsandbytes/triton/*.py``: ``if not is_triton_available(): ... else: from
triton.ops.matmul_perf_model import ...``). Another partner's imports there are needs on that partner which hold
only where ``x`` is installed (``when``: optimum's ``if is_torch_available(): from transformers.pytorch_utils
import is_torch_less_than_1_11``). The package's own modules such a block imports are not loaded, and the body of
``if not is_<x>_available():``, the ``else`` of ``if is_<x>_available():`` and blocks guarded by a package that is
not a partner are left out.

Providers. For each release of a partner and each need: the module's file exists, and the name is bound at module
level (defined, assigned or imported, in any branch), is a submodule, is reached through a ``from .x import *``
inside the package (``STAR_DEPTH`` levels), or is listed in the module's lazy structure (transformers'
``_import_structure``, huggingface_hub's ``_SUBMOD_ATTRS``). When a module builds its structure at run time
(``define_import_structure``), defines a module ``__getattr__``, star-imports from outside the package or under
``if TYPE_CHECKING`` (a lazy module's typing mirror, not followed), a name not found otherwise is "unknown",
never "absent".

A compiled module (torch's ``torch._C``) is known by its type stub (``torch/_C/__init__.pyi``) or its ``.so`` file.
Names it may supply (``from torch._C import *``, names copied by ``for name in dir(...): globals()[name] = ...``)
are present when the stub declares them and otherwise unknown, except a name that is a Python module of the package
in another release read (``torch.xpu`` before 2.3, ``torch.compiler`` before 2.1): a compiled module does not supply
the package's Python modules, so there it is absent. An attribute need whose module is no module (``torch.cuda.Stream``)
is looked up in its parent; an attribute of an object found there is unknown.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import functools
import io
import json
import re
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import urljoin

from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "matrices" / "import_floors.json"
GENERATOR = "tools/gen_import_floors.py"
sys.path.insert(0, str(ROOT / "src"))

from envdoctor import pypi_release  # noqa: E402 - after the path is set for a checkout without an install
from envdoctor.numpy_name_scan import catches  # noqa: E402


@dataclass(frozen=True)
class Package:
    """One library: its distribution name, import name, GitHub repository and first release read."""

    dist: str
    module: str
    repo: str
    floor: str


IMPORTERS = {
    "peft": Package("peft", "peft", "huggingface/peft", "0.3.0"),
    "trl": Package("trl", "trl", "huggingface/trl", "0.4.0"),
    "diffusers": Package("diffusers", "diffusers", "huggingface/diffusers", "0.14.0"),
    "accelerate": Package("accelerate", "accelerate", "huggingface/accelerate", "0.20.0"),
    "sentence-transformers": Package("sentence-transformers", "sentence_transformers", "UKPLab/sentence-transformers",
                                     "2.2.0"),
    # Libraries built on them (keys: normalized names). A floor trims a long release history (mteb, vllm, unsloth
    # publish weekly or faster) to the releases still installed beside the partner releases read.
    "datasets": Package("datasets", "datasets", "huggingface/datasets", "2.0.0"),
    "evaluate": Package("evaluate", "evaluate", "huggingface/evaluate", "0.3.0"),
    "setfit": Package("setfit", "setfit", "huggingface/setfit", "1.0.0"),
    "rfdetr": Package("rfdetr", "rfdetr", "roboflow/rf-detr", "1.0.0"),
    "auto-gptq": Package("auto-gptq", "auto_gptq", "AutoGPTQ/AutoGPTQ", "0.4.2"),
    "autoawq": Package("autoawq", "awq", "casper-hansen/AutoAWQ", "0.1.0"),
    "unsloth": Package("unsloth", "unsloth", "unslothai/unsloth", "2025.1.1"),
    "llamafactory": Package("llamafactory", "llamafactory", "hiyouga/LLaMA-Factory", "0.7.1"),
    "vllm": Package("vllm", "vllm", "vllm-project/vllm", "0.5.0"),
    "lm-eval": Package("lm-eval", "lm_eval", "EleutherAI/lm-evaluation-harness", "0.4.0"),
    "mteb": Package("mteb", "mteb", "embeddings-benchmark/mteb", "2.0.0"),
    "flagembedding": Package("FlagEmbedding", "FlagEmbedding", "FlagOpen/FlagEmbedding", "1.4.0"),
    "instructorembedding": Package("InstructorEmbedding", "InstructorEmbedding", "xlang-ai/instructor-embedding",
                                   "1.0.0"),
    "gliner": Package("gliner", "gliner", "urchade/GLiNER", "0.2.0"),
    "flair": Package("flair", "flair", "flairNLP/flair", "0.12.0"),
    "wtpsplit": Package("wtpsplit", "wtpsplit", "segment-any-text/wtpsplit", "1.0.0"),
    "whisperx": Package("whisperx", "whisperx", "m-bain/whisperX", "3.1.1"),
    "timm": Package("timm", "timm", "huggingface/pytorch-image-models", "0.9.0"),
    "bitsandbytes": Package("bitsandbytes", "bitsandbytes", "bitsandbytes-foundation/bitsandbytes", "0.41.0"),
    "optimum": Package("optimum", "optimum", "huggingface/optimum", "1.8.0"),
    "liger-kernel": Package("liger-kernel", "liger_kernel", "linkedin/Liger-Kernel", "0.3.0"),
    # Beyond the ML stack: Jinja2 and its MarkupSafe (soft_unicode went with MarkupSafe 2.1.0).
    "jinja2": Package("Jinja2", "jinja2", "pallets/jinja", "2.10"),
    # Beyond the ML stack: what Pillow and SciPy removed broke these at import (torchvision's PILLOW_VERSION,
    # gensim's scipy.linalg.triu).
    "torchvision": Package("torchvision", "torchvision", "pytorch/vision", "0.2.1"),
    "gensim": Package("gensim", "gensim", "piskvorky/gensim", "3.8.0"),
    "scikit-learn": Package("scikit-learn", "sklearn", "scikit-learn/scikit-learn", "0.22"),
    "scikit-image": Package("scikit-image", "skimage", "scikit-image/scikit-image", "0.16.2"),
    "librosa": Package("librosa", "librosa", "librosa/librosa", "0.8.0"),
    # Namespace packages (no __init__.py): each of their top-level modules is read as a root (``namespace_roots``).
    "llama-recipes": Package("llama-recipes", "llama_recipes", "meta-llama/llama-recipes", "0.0.1"),
}
PROVIDERS = {
    "transformers": Package("transformers", "transformers", "huggingface/transformers", "4.26.0"),
    "huggingface-hub": Package("huggingface-hub", "huggingface_hub", "huggingface/huggingface_hub", "0.10.0"),
    "accelerate": Package("accelerate", "accelerate", "huggingface/accelerate", "0.15.0"),
    "peft": Package("peft", "peft", "huggingface/peft", "0.3.0"),
    # Read from the manylinux x86_64 wheel of each release (``metadata_wheel``): its Python files, its type stubs
    # (``torch/_C/__init__.pyi``: the compiled module's declared names) and the names of its compiled modules.
    "torch": Package("torch", "torch", "pytorch/pytorch", "1.13.0"),
    # Read from the manylinux x86_64 wheel of each release, as torch is (the repository was openai/triton).
    "triton": Package("triton", "triton", "triton-lang/triton", "2.0.0"),
    "markupsafe": Package("MarkupSafe", "markupsafe", "pallets/markupsafe", "1.0"),
    # Read from the manylinux x86_64 wheel of each release, as torch is.
    "pillow": Package("pillow", "PIL", "python-pillow/Pillow", "5.0.0"),
    "scipy": Package("scipy", "scipy", "scipy/scipy", "1.0.0"),
}
PARTNER_OF_MODULE = {spec.module: name for name, spec in PROVIDERS.items()}
# Handlers that make a guarded import optional: the import may fail and the package still loads.
IMPORT_FAILURES = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException", "OptionalDependencyNotAvailable",
                   "AttributeError", "RuntimeError"}
# Calls that build a lazy structure at run time: a name missing from the static reading is unknown there.
DYNAMIC_STRUCTURE = {"define_import_structure"}
# Star imports followed from a module (``from .utils import *`` and what that module star-imports); deeper: unknown.
STAR_DEPTH = 3
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ALL_LIST = re.compile(r"^__all__\s*=\s*(\[[^\]]*\]|\([^)]*\))", re.M)
STRUCTURES = ("_import_structure", "_SUBMOD_ATTRS")
# Files a source lists: Python sources, type stubs and compiled modules (the last two tell a provider's compiled
# modules apart from missing ones; an importer's closure reads ``.py`` files only).
MODULE_FILES = (".py", ".pyi", ".so", ".pyd")


# --- where the files come from ----------------------------------------------------------------------


class Source(Protocol):
    def releases(self, floor: str) -> list[tuple[str, str]]:
        """(version, ref) pairs, oldest first."""

    def files(self, ref: str) -> set[str]:
        """Paths of the package's files at ``ref``, relative to the folder that holds the package
        (``peft/peft_model.py``)."""

    def read(self, ref: str, path: str) -> str | None:
        """The text of ``path`` (as ``files`` gives it) at ``ref``; None when absent."""

    def provenance(self, ref: str) -> dict[str, str]:
        """What the newest release read is."""

    def close(self, ref: str) -> None:
        """Forget what was kept of ``ref``."""

    def folder(self, ref: str, prefix: str) -> Iterator[tuple[str, str]]:
        """(path, text) of every ``.py`` file under ``prefix`` at ``ref``."""


def final_version(text: str, floor: str) -> Version | None:
    try:
        version = Version(text.lstrip("v"))
    except InvalidVersion:
        return None
    return version if not (version.is_prerelease or version.is_devrelease or version.local) \
        and version >= Version(floor) else None


class GitTags:
    """Release tags ``v*`` of a bare git clone; the package folder is ``src/<module>`` or ``<module>``."""

    def __init__(self, git_dir: Path, spec: Package) -> None:
        self.git_dir, self.spec = git_dir, spec
        self.url = f"https://github.com/{spec.repo}"
        self._prefix: dict[str, str] = {}
        self._batch: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _git(self, *args: str) -> str:
        done = subprocess.run(["git", "--git-dir", str(self.git_dir), *args], capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""

    def releases(self, floor: str) -> list[tuple[str, str]]:
        found = {str(v): tag for tag in self._git("tag").split()
                 if tag.startswith("v") and (v := final_version(tag, floor)) is not None}
        return sorted(found.items(), key=lambda item: Version(item[0]))

    def files(self, ref: str) -> set[str]:
        listing = self._git("ls-tree", "-r", "--name-only", ref, "--", f"src/{self.spec.module}/")
        prefix = "src/"
        if not listing.strip():
            listing, prefix = self._git("ls-tree", "-r", "--name-only", ref, "--", f"{self.spec.module}/"), ""
        self._prefix[ref] = prefix
        return {line[len(prefix):] for line in listing.splitlines() if line.endswith(MODULE_FILES)}

    def read(self, ref: str, path: str) -> str | None:
        with self._lock:
            if self._batch is None:  # one `git cat-file --batch` serves every read
                self._batch = subprocess.Popen(["git", "--git-dir", str(self.git_dir), "cat-file", "--batch"],
                                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert self._batch.stdin is not None and self._batch.stdout is not None
            if ref not in self._prefix:
                self.files(ref)
            self._batch.stdin.write(f"{ref}:{self._prefix[ref]}{path}\n".encode())
            self._batch.stdin.flush()
            header = self._batch.stdout.readline().decode().split()
            if len(header) != 3 or header[1] != "blob":
                return None
            return self._batch.stdout.read(int(header[2]) + 1)[:-1].decode("utf-8", errors="replace")

    def provenance(self, ref: str) -> dict[str, str]:
        commit = self._git("rev-parse", f"{ref}^{{commit}}").strip()
        return {"url": self.url, "read": "git tags v*, files at each tag", "newest_tag": ref, "commit": commit}

    def close(self, ref: str) -> None:
        pass

    def folder(self, ref: str, prefix: str) -> Iterator[tuple[str, str]]:
        for path in sorted(p for p in self.files(ref) if p.startswith(prefix)):
            text = self.read(ref, path)
            if text is not None:
                yield path, text


class PyPIWheels:
    """The files of each release's wheel on PyPI, read by HTTP range requests (no full download)."""

    def __init__(self, spec: Package) -> None:
        self.spec = spec
        self.url = f"https://pypi.org/pypi/{spec.dist}/json"
        self.index = json.loads(pypi_release.http_get(self.url))
        self._open: dict[str, zipfile.ZipFile] = {}
        self._lock = threading.Lock()

    def releases(self, floor: str) -> list[tuple[str, str]]:
        kept = [v for v in pypi_release.kept_versions(self.index["releases"], floor)
                if final_version(v, floor) is not None and pypi_release.metadata_wheel(self.index["releases"][v])]
        return [(v, v) for v in kept]

    def _wheel(self, ref: str) -> zipfile.ZipFile:
        with self._lock:
            if ref not in self._open:
                wheel = pypi_release.metadata_wheel(self.index["releases"][ref])
                assert wheel is not None
                remote = pypi_release.RangeFile(urljoin(self.url, wheel["url"]), wheel["size"],
                                                pypi_release.http_get)
                self._open[ref] = zipfile.ZipFile(remote)  # type: ignore[arg-type]
            return self._open[ref]

    def files(self, ref: str) -> set[str]:
        return {n for n in self._wheel(ref).namelist()
                if n.startswith(f"{self.spec.module}/") and n.endswith(MODULE_FILES)}

    def read(self, ref: str, path: str) -> str | None:
        try:
            return self._wheel(ref).read(path).decode("utf-8", errors="replace")
        except KeyError:
            return None

    def close(self, ref: str) -> None:
        with self._lock:
            self._open.pop(ref, None)

    def folder(self, ref: str, prefix: str) -> Iterator[tuple[str, str]]:
        """A whole folder is most of the wheel: one download instead of a range request per file."""
        wheel = pypi_release.metadata_wheel(self.index["releases"][ref])
        assert wheel is not None
        with zipfile.ZipFile(io.BytesIO(pypi_release.http_get(urljoin(self.url, wheel["url"])))) as whole:
            for path in whole.namelist():
                if path.startswith(prefix) and path.endswith(".py"):
                    yield path, whole.read(path).decode("utf-8", errors="replace")

    def provenance(self, ref: str) -> dict[str, str]:
        wheel = pypi_release.metadata_wheel(self.index["releases"][ref]) or {}
        return {"url": self.url, "read": "files of each release's wheel", "newest_release": ref,
                "newest_wheel": wheel.get("filename", ""), "sha256": wheel.get("digests", {}).get("sha256", "")}


# --- importers: what `import <package>` loads, and what it takes from partners -----------------------


@dataclass(frozen=True)
class Need:
    """One thing a release imports from a partner at import: ``name`` from ``module`` (or the module itself when
    ``name`` is empty), in the importer's ``file``. ``access`` "attribute": the importer reads ``module.name`` as an
    attribute (``torch.xpu.empty_cache`` gives ``torch:xpu`` and ``torch.xpu:empty_cache``), where ``module`` may be
    any object reached from a partner module."""

    partner: str
    module: str
    name: str
    file: str
    access: str = "import"
    via: str = ""  # a namespace package's module whose import reaches the need ("" for ``import <package>``)
    when: str = ""  # a partner whose presence runs the import (``if is_torch_available():``); "" for always

    @property
    def key(self) -> str:
        return f"{self.module}:{self.name}" if self.name else self.module


def namespace_roots(files: set[str], package: str) -> list[str]:
    """The modules users import from a namespace package (no ``__init__.py``, so ``import <package>`` loads
    nothing): each public top-level module and subpackage (``optimum.bettertransformer``,
    ``llama_recipes.finetuning``); [] for a regular package."""
    if module_path(files, package) is not None:
        return []
    roots = set()
    for path in files:
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == package and parts[1].endswith(".py"):
            roots.add(parts[1].removesuffix(".py"))
        elif len(parts) == 3 and parts[0] == package and parts[2] == "__init__.py":
            roots.add(parts[1])
    return [f"{package}.{name}" for name in sorted(roots)
            if name.isidentifier() and not name.startswith("_") and name not in ("test", "tests")]


def module_path(files: set[str], module: str) -> str | None:
    """``peft.utils`` -> ``peft/utils/__init__.py`` or ``peft/utils.py`` when that file is there."""
    base = module.replace(".", "/")
    for path in (f"{base}/__init__.py", f"{base}.py"):
        if path in files:
            return path
    return None


def _absolute(module: str, path: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import names, resolving ``from ..x import y`` against ``module``."""
    if not node.level:
        return node.module or ""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _catches_import_failure(node: ast.Try) -> bool:
    return catches(node, IMPORT_FAILURES)


AVAILABLE = re.compile(r"^is_([A-Za-z0-9_]+)_available\(\)$")
NOT_AVAILABLE = re.compile(r"^not is_([A-Za-z0-9_]+)_available\(\)$")


def guarded_statements(body: Iterable[ast.stmt], classes: bool = False,
                       guard: str = "") -> Iterator[tuple[ast.stmt, str]]:
    """(statement, guard) for the statements of a module body that run whenever the module is imported (a ``try``
    whose handlers catch an import failure, ``AttributeError`` included, is a guard); with ``classes``, class
    bodies too. ``if`` blocks (guards, version switches) and function bodies may not run, except the body of a
    bare ``if is_<x>_available():`` and the ``else`` of a bare ``if not is_<x>_available():``, which run whenever
    package ``x`` is installed: their statements come with guard ``x`` ("" for none; guards do not nest). The test
    of an ``if`` and the header of a ``with``, ``for``, function or class are yielded as the statement itself (see
    ``evaluated``)."""
    for node in body:
        if isinstance(node, ast.Try | getattr(ast, "TryStar", ast.Try)):
            if not _catches_import_failure(node):
                yield from guarded_statements(node.body, classes, guard)
                yield from guarded_statements(node.orelse, classes, guard)
            yield from guarded_statements(node.finalbody, classes, guard)
        elif isinstance(node, ast.With):
            yield node, guard
            yield from guarded_statements(node.body, classes, guard)
        elif isinstance(node, ast.ClassDef):
            yield node, guard
            if classes:
                yield from guarded_statements(node.body, classes, guard)
        elif isinstance(node, ast.If) and not guard and (match := AVAILABLE.match(ast.unparse(node.test))):
            yield node, guard
            yield from guarded_statements(node.body, classes, match.group(1))
        elif isinstance(node, ast.If) and not guard and (match := NOT_AVAILABLE.match(ast.unparse(node.test))):
            yield node, guard
            yield from guarded_statements(node.orelse, classes, match.group(1))
        else:
            yield node, guard


def unconditional_statements(body: Iterable[ast.stmt], classes: bool = False) -> Iterator[ast.stmt]:
    """The statements ``guarded_statements`` yields with no guard."""
    return (statement for statement, guard in guarded_statements(body, classes) if not guard)


def unconditional_imports(body: Iterable[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of a module body that run whenever the module is imported (not in a class body)."""
    for node, guard in guarded_imports(body):
        if not guard:
            yield node


def guarded_imports(body: Iterable[ast.stmt]) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """(import statement, guard) for the imports of a module body that ``guarded_statements`` keeps (not in a class
    body): guard "" for those that run whenever the module is imported, ``x`` for those that run whenever package
    ``x`` is installed (which count for partner ``x`` alone, see ``import_closure``)."""
    for node, guard in guarded_statements(body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, guard


def evaluated(statement: ast.stmt) -> Iterator[ast.expr]:
    """The expressions a statement yielded by ``unconditional_statements`` evaluates when it runs: not the body of
    a function, class, ``with``, loop or ``if`` (a function's decorators and default values are; a class's bases
    and decorators; a loop's iterable; an ``if``'s test)."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
        yield from statement.decorator_list
        yield from (d for d in [*statement.args.defaults, *statement.args.kw_defaults] if d is not None)
    elif isinstance(statement, ast.ClassDef):
        yield from [*statement.decorator_list, *statement.bases, *(k.value for k in statement.keywords)]
    elif isinstance(statement, ast.With):
        yield from (item.context_expr for item in statement.items)
    elif isinstance(statement, ast.For | ast.AsyncFor):
        yield statement.iter
    elif isinstance(statement, ast.If | ast.While):
        yield statement.test
    elif isinstance(statement, ast.AnnAssign):
        yield from [statement.target, *([statement.value] if statement.value is not None else [])]
    elif not isinstance(statement, ast.Import | ast.ImportFrom | ast.Try | getattr(ast, "TryStar", ast.Try)
                        | ast.Match):
        yield from (child for child in ast.iter_child_nodes(statement) if isinstance(child, ast.expr))


def attribute_chains(expression: ast.expr, modules: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """(module, attributes) for each chain ``name.a.b`` that ``expression`` surely reads, where ``name`` is bound
    to ``module`` (``modules``: local name -> module). Parts that may not run are left out: the branches of
    ``x if c else y``, the operands of ``and``/``or`` after the first, lambdas. Dunder attributes end a chain
    (``torch.__version__``: module attributes no source binds); an assigned attribute is not read."""
    if isinstance(expression, ast.Lambda):
        return
    if isinstance(expression, ast.IfExp):
        yield from attribute_chains(expression.test, modules)
        return
    if isinstance(expression, ast.BoolOp):
        yield from attribute_chains(expression.values[0], modules)
        return
    if isinstance(expression, ast.Attribute):
        parts: list[str] = []
        node: ast.expr = expression
        while isinstance(node, ast.Attribute):
            parts.insert(0, node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in modules:
            if isinstance(expression.ctx, ast.Store | ast.Del):
                parts = parts[:-1]
            read = [part for part in parts[:next((i for i, p in enumerate(parts) if p.startswith("__")),
                                                  len(parts))]]
            if read:
                yield modules[node.id], read
            return
        yield from attribute_chains(node, modules)
        return
    for child in ast.iter_child_nodes(expression):
        if isinstance(child, ast.expr):
            yield from attribute_chains(child, modules)
        elif isinstance(child, ast.comprehension):
            for part in (child.iter, child.target, *child.ifs):
                yield from attribute_chains(part, modules)
        elif isinstance(child, ast.keyword):
            yield from attribute_chains(child.value, modules)


def import_closure(source: Source, ref: str, package: str) -> tuple[list[Need], list[str]]:
    """Every need of the modules that ``import <package>`` loads at ``ref`` (sorted), and files that did not parse."""
    files = source.files(ref)
    roots = namespace_roots(files, package)  # a namespace package: each of its modules users import, in turn
    queue: list[tuple[str, str]] = []
    seen: set[str] = set()
    needs: dict[tuple[str, str], Need] = {}
    unparsed = []

    def keep(need: Need) -> None:
        """The first need of a key, or an unconditional one in place of one that runs only beside a partner."""
        key = (need.partner, need.key, need.access)
        if key not in needs or (needs[key].when and not need.when):
            needs[key] = need

    def load(module: str, via: str) -> None:
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, then c
            name = ".".join(parts[:i])
            if name not in seen and module_path(files, name) is not None:
                seen.add(name)
                queue.append((name, via))

    def drain() -> None:
        while queue:
            module, via = queue.pop(0)
            path = module_path(files, module)
            text = source.read(ref, path) if path else None
            if text is None:
                continue
            try:
                tree = ast.parse(text)
            except SyntaxError:
                unparsed.append(path or module)
                continue
            for need in attribute_needs(tree.body, path or ""):
                keep(replace(need, via=via))
            for node, guard in guarded_imports(tree.body):
                if isinstance(node, ast.Import):
                    targets = [(alias.name, "") for alias in node.names]
                else:
                    target = _absolute(module, path or "", node)
                    targets = [(target, alias.name) for alias in node.names]
                for target, name in targets:
                    top = target.split(".", 1)[0]
                    if guard and (top == package or guard not in PARTNER_OF_MODULE):
                        continue  # under `if is_<x>_available():` no module of the package is loaded, and only a
                        # partner x tells when the block runs
                    when = PARTNER_OF_MODULE[guard] if guard and top != guard else ""
                    if top == package:
                        load(target, via)
                        if name and module_path(files, f"{target}.{name}") is not None:
                            load(f"{target}.{name}", via)
                    elif top in PARTNER_OF_MODULE:
                        if name == "*" or (not name and target == top):
                            continue  # the package itself always exists; a star import names nothing
                        keep(Need(PARTNER_OF_MODULE[top], target, name, path or "", via=via, when=when))

    seen.add(package)
    queue.append((package, ""))
    drain()
    for root in roots:  # each root's closure in turn: a module belongs to the first root that reaches it
        load(root, root)
        drain()
    return sorted(needs.values(), key=lambda n: (n.partner, n.key, n.access)), unparsed


def attribute_needs(body: list[ast.stmt], path: str) -> Iterator[Need]:
    """The attributes a module reads at import from names bound to partner modules by ``import x.y [as z]``
    (module body, class bodies, decorators, default values; what ``guarded_statements`` keeps, a block under
    ``if is_torch_available():`` or in the ``else`` of ``if not is_torch_available():`` for torch's attributes
    only): one need per link of each chain."""
    modules: dict[str, str] = {}
    for statement, guard in guarded_statements(body, classes=True):
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                top = alias.name.split(".", 1)[0]
                if top in PARTNER_OF_MODULE and guard in ("", top):
                    modules[alias.asname or top] = alias.name if alias.asname else top
            continue
        for expression in evaluated(statement):
            for module, parts in attribute_chains(expression, modules):
                if guard not in ("", module.split(".", 1)[0]):
                    continue
                for i, part in enumerate(parts):
                    yield Need(PARTNER_OF_MODULE[module.split(".", 1)[0]], ".".join([module, *parts[:i]]), part,
                               path, "attribute")


# --- providers: which releases have a name ------------------------------------------------------------


@dataclass(frozen=True)
class ModuleNames:
    """What one module file offers: names bound at module level, names of its lazy structure, relative star
    imports (absolute module names), and whether a missing name may still resolve at run time."""

    bound: frozenset[str]
    stars: tuple[str, ...]
    open_ended: bool
    # Folders (package paths) whose files' ``__all__`` a run-time structure (``define_import_structure``) adds.
    scanned: tuple[str, ...] = ()
    # Names may also come from a compiled module: a type stub (which may not declare them all), or names copied
    # from ``dir()`` of an object into ``globals()``. A name not found is then unknown, unless the package has a
    # Python module of that name in another release (see ``ProviderRelease``).
    compiled: bool = False
    # What ``from <module> import *`` takes: the names of a literal ``__all__`` (list or tuple of strings, assigned
    # once at module level); None when the module has none (its public names) or builds it otherwise (unknown).
    exports: frozenset[str] | None = None
    exports_known: bool = True


def module_names(tree: ast.Module, module: str, path: str) -> ModuleNames:
    bound: set[str] = set()
    stars: list[str] = []
    open_ended = typing_stars = copies = False
    package = module.split(".", 1)[0]

    def sets_globals(node: ast.stmt) -> bool:
        """``globals()[name] = ...``, ``globals().update(...)`` or ``setattr(sys.modules[__name__], ...)``."""
        text = ast.unparse(node)
        return text.startswith(("globals()[", "globals().update(", "setattr(sys.modules[__name__]"))

    def targets(node: ast.expr) -> Iterator[str]:
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Tuple | ast.List):
            for element in node.elts:
                yield from targets(element)

    def visit(body: Iterable[ast.stmt], typing_only: bool = False, copied: bool = False) -> None:
        nonlocal open_ended, typing_stars, copies
        for node in body:
            if sets_globals(node):
                if copied:
                    copies = True  # `for name in dir(_C._VariableFunctions): globals()[name] = ...`
                else:
                    open_ended = True
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bound.add(node.name)
                if node.name == "__getattr__":
                    open_ended = True
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    bound.update(targets(target))
            elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
                bound.add(node.target.id)
            elif isinstance(node, ast.Import):
                bound.update((a.asname or a.name).split(".", 1)[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*":
                        if typing_only:
                            typing_stars = True  # a lazy module's typing mirror: not followed
                        elif node.level or (node.module or "").split(".", 1)[0] == package:
                            stars.append(_absolute(module, path, node))  # `from torch._C import *` in torch
                        else:
                            open_ended = True  # another package's names: not read here
                    else:
                        bound.add(alias.asname or alias.name)
            elif isinstance(node, ast.If):
                visit(node.body, typing_only or "TYPE_CHECKING" in ast.unparse(node.test), copied)
                visit(node.orelse, typing_only, copied)
            elif isinstance(node, ast.With | ast.For | ast.While):
                from_dir = isinstance(node, ast.For) and ast.unparse(node.iter).startswith("dir(")
                visit(node.body, typing_only, copied or from_dir)
                visit(getattr(node, "orelse", []), typing_only, copied)
            elif isinstance(node, ast.Try | getattr(ast, "TryStar", ast.Try)):
                visit(node.body, typing_only, copied)
                visit(node.orelse, typing_only, copied)
                visit(node.finalbody, typing_only, copied)
                for handler in node.handlers:
                    visit(handler.body, typing_only, copied)

    visit(tree.body)
    structure, has_structure, scanned = _lazy_structure(tree, path)
    # A lazy module's typing mirror (`if TYPE_CHECKING: from .x import *`) repeats its structure: the static part,
    # and the folders a run-time part scans (read by ProviderRelease); or the names it copies from a compiled object
    # (torch's `from torch._C._VariableFunctions import *` beside its `globals()[name] = ...` loop).
    # A module __getattr__ assigned from a lazy loader (huggingface_hub's `__getattr__, ... = _attach(...,
    # submod_attrs=_SUBMOD_ATTRS)`) serves the structure; any other answers names no reading can list.
    attached = "__getattr__" in bound and not has_structure
    exports, exports_known = _literal_all(tree)
    return ModuleNames(frozenset(bound | structure), tuple(stars), open_ended or attached
                       or (typing_stars and not has_structure and not copies) or scanned is None, scanned or (),
                       copies or path.endswith(".pyi"), exports, exports_known)


def _literal_all(tree: ast.Module) -> tuple[frozenset[str] | None, bool]:
    """(the names of the module's ``__all__``, whether that is known): a single module-level assignment of a list
    or tuple of strings gives its names; none at all gives (None, True), the module's public names; any other
    ``__all__`` (built, extended, assigned twice or under a branch) gives (None, False)."""
    literal: list[frozenset[str]] = []
    other = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            value = node.value
            if node in tree.body and isinstance(value, ast.List | ast.Tuple) and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts):
                literal.append(frozenset(e.value for e in value.elts))
            else:
                other = True
        elif isinstance(node, ast.AugAssign | ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and node.target.id == "__all__":
            other = True
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "__all__":
            other = True  # __all__.extend(...), __all__.append(...)
    if other or len(literal) > 1:
        return None, False
    return (literal[0], True) if literal else (None, True)


def _lazy_structure(tree: ast.Module, path: str) -> tuple[set[str], bool, tuple[str, ...] | None]:
    """The names of a module's lazy structure (strings in ``_import_structure`` or ``_SUBMOD_ATTRS``, however
    built up at module level), whether it has one, and the folders a run-time part of it scans (None when that
    part cannot be read: a call whose folder is not a plain ``Path(__file__).parent / "x"``)."""
    names: set[str] = set()
    has_structure = False
    scanned: list[str] | None = []
    folder = path.rpartition("/")[0]
    for statement in _module_level(tree.body):
        for node in ast.walk(statement):
            if isinstance(node, ast.Call):
                called = ast.unparse(node.func)
                if called.rsplit(".", 1)[-1] in DYNAMIC_STRUCTURE:
                    has_structure = True
                    where = _scanned_folder(node, folder)
                    scanned = None if where is None or scanned is None else [*scanned, where]
                if called.startswith(STRUCTURES) and called.endswith((".extend", ".append")):
                    names.update(_strings(node.args))
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(ast.unparse(t).startswith(STRUCTURES) for t in targets):
                    has_structure = True
                    value = node.value
                    if isinstance(value, ast.Dict):  # keys are submodules, values the names they hold
                        names.update(_strings(value.values))
                    elif value is not None:
                        names.update(_strings([value]))
    return names, has_structure, tuple(scanned) if scanned is not None else None


def _scanned_folder(call: ast.Call, folder: str) -> str | None:
    """``define_import_structure(_file)`` -> the module's folder; ``(Path(__file__).parent / "models", ...)`` ->
    ``<folder>/models``; None for anything else."""
    if not call.args:
        return None
    argument = call.args[0]
    parts = []
    while isinstance(argument, ast.BinOp) and isinstance(argument.op, ast.Div):
        if not (isinstance(argument.right, ast.Constant) and isinstance(argument.right.value, str)):
            return None
        parts.insert(0, argument.right.value)
        argument = argument.left
    text = ast.unparse(argument)
    if text not in ("_file", "__file__", "Path(__file__).parent", "Path(_file).parent", "os.path.dirname(__file__)"):
        return None
    return "/".join([folder, *parts])


def _module_level(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """The simple statements of a module body, inside ``if``/``try``/``with`` blocks too (not in functions or
    classes)."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if isinstance(node, ast.If | ast.With | ast.For | ast.While | ast.Try | getattr(ast, "TryStar", ast.Try)):
            for block in ("body", "orelse", "finalbody"):
                yield from _module_level(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                yield from _module_level(handler.body)
        else:
            yield node


def _strings(nodes: Iterable[ast.AST | None]) -> set[str]:
    return {n.value for node in nodes if node is not None for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.isidentifier()}


def modules_of(files: Iterable[str]) -> dict[str, str]:
    """Dotted module name -> the file that stands for it: its ``.py`` source, else its type stub, else the
    compiled module (``torch/_C/__init__.pyi`` for ``torch._C``; ``torch/_dl.cpython-311-x86_64-linux-gnu.so``)."""
    found: dict[str, tuple[int, str]] = {}
    for path in files:
        stem, _, suffix = path.rpartition(".")
        rank = {"py": 0, "pyi": 1}.get(suffix, 2)
        stem = stem.split(".", 1)[0] if rank == 2 else stem  # drop the ABI tag of a compiled module
        name = stem.removesuffix("/__init__").replace("/", ".")
        if name not in found or rank < found[name][0]:
            found[name] = (rank, path)
    return {name: path for name, (_, path) in found.items()}


class ProviderRelease:
    """One release of a partner package: answers whether a need is met. ``elsewhere``: the package's Python
    modules in any release read (``torch.xpu``); a compiled module's star import is not taken to supply a name
    that is one of those in another release (a compiled module does not provide the package's Python modules)."""

    def __init__(self, source: Source, ref: str, elsewhere: frozenset[str] = frozenset()) -> None:
        self.source, self.ref, self.elsewhere = source, ref, elsewhere
        self.files = source.files(ref)
        self.modules = modules_of(self.files)
        self._names: dict[str, ModuleNames | None] = {}
        self._scans: dict[str, tuple[set[str], set[str]]] = {}
        self._binaries: dict[str, str] = {}  # module -> its compiled binary's text (``_cython_lacks``)

    def names(self, module: str) -> ModuleNames | None:
        if module not in self._names:
            path = self.modules.get(module)
            path = path if path is not None and path.endswith((".py", ".pyi")) else None
            text = self.source.read(self.ref, path) if path else None
            try:
                self._names[module] = module_names(ast.parse(text), module, path or "") if text is not None else None
            except SyntaxError:
                self._names[module] = ModuleNames(frozenset(), (), True, exports_known=False)
        return self._names[module]

    def status(self, module: str, name: str, access: str = "import") -> str:
        """"present", "absent" or "unknown" for ``name`` of ``module`` (the module itself when ``name`` is "").
        For an ``access`` "attribute" ``module`` may be an object: when it is no module, its last part is looked
        up in its parent, and a name of an object found there is unknown (objects are not read)."""
        if module not in self.modules:
            if access != "attribute" or "." not in module:
                return "absent"
            parent, _, last = module.rpartition(".")
            found = self.status(parent, last, access)
            return "unknown" if found == "present" else found
        if not name or f"{module}.{name}" in self.modules:
            return "present"
        found = self._lookup(module, name, set(), 0)
        if found == "compiled":
            return "absent" if f"{module}.{name}" in self.elsewhere else "unknown"
        return found

    def _lookup(self, module: str, name: str, seen: set[str], depth: int) -> str:
        """"present", "absent", "unknown", or "compiled": not found, but a compiled module may supply it."""
        seen.add(module)
        found = self.names(module)
        if found is None:
            return "compiled" if module in self.modules else "unknown"
        if name in found.bound:
            return "present"
        if found.stars and depth >= STAR_DEPTH:
            return "unknown"
        results = [self._through_star(star, name, seen, depth + 1) for star in found.stars if star not in seen]
        results += [self._scanned(folder, name) for folder in found.scanned]
        if "present" in results:
            return "present"
        if found.open_ended or "unknown" in results:
            return "unknown"
        return "compiled" if found.compiled or "compiled" in results else "absent"

    def _through_star(self, module: str, name: str, seen: set[str], depth: int) -> str:
        """What ``from <module> import *`` gives of ``name``: only a name its literal ``__all__`` lists, or without
        one a public name (no leading underscore); unknown when its ``__all__`` is built at run time."""
        found = self.names(module)
        if (found is None or found.compiled) and self._cython_lacks(module, name):
            return "absent"
        if found is not None and found.exports_known:
            if (name not in found.exports) if found.exports is not None else name.startswith("_"):
                return "absent"
        return self._lookup(module, name, seen, depth)

    def _cython_lacks(self, module: str, name: str) -> bool:
        """Whether a compiled module is a Cython one (its binary holds Cython's ``__pyx_`` symbols) whose binary
        does not hold ``name`` as a word: Cython interns every name a module binds as a string, so such a module
        cannot bind it. Any other compiled module (a C++ binding such as ``torch._C``, whose names live in other
        libraries) may still supply it."""
        if module not in self._binaries:  # read once per module: its binary's text, "" when it has none
            stem = module.replace(".", "/")
            binary = next((path for path in sorted(self.files) if path.startswith(stem + ".")
                           and path.endswith((".so", ".pyd"))), None)
            self._binaries[module] = (self.source.read(self.ref, binary) or "") if binary else ""
        text = self._binaries[module]
        return "__pyx_" in text and re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text) is None

    def _scanned(self, folder: str, name: str) -> str:
        """What a run-time structure over ``folder`` makes of ``name``: "present" when a file there lists it in
        ``__all__``; "absent" when no file there has the word at all; else "unknown" (it may be exported another
        way, as transformers' ``@export`` decorators did)."""
        if folder not in self._scans:
            exported: set[str] = set()
            words: set[str] = set()
            for _, text in self.source.folder(self.ref, folder + "/"):
                words.update(WORD.findall(text))
                for match in ALL_LIST.finditer(text):
                    try:
                        exported.update(str(n) for n in ast.literal_eval(match.group(1)))
                    except (ValueError, SyntaxError):
                        exported.add("")  # an __all__ built otherwise: every word there stays unknown
            self._scans[folder] = (exported, words)
        exported, words = self._scans[folder]
        return "present" if name in exported else "unknown" if name in words else "absent"


# --- the document -----------------------------------------------------------------------------------


def ranges(versions: list[str], members: set[str]) -> list[list[str]]:
    """Runs of consecutive ``versions`` (oldest first) that are in ``members``, as [first, last] pairs."""
    out: list[list[str]] = []
    previous_in = False
    for version in versions:
        if version in members:
            if previous_in:
                out[-1][1] = version
            else:
                out.append([version, version])
        previous_in = version in members
    return out


def read_importer(name: str, source: Source) -> dict[str, object]:
    spec = IMPORTERS[name]
    releases = source.releases(spec.floor)
    needs_by_key: dict[tuple[str, str, str], tuple[Need, set[str]]] = {}
    unparsed: dict[str, list[str]] = {}

    def one(item: tuple[str, str]) -> tuple[list[Need], list[str]]:
        found = import_closure(source, item[1], spec.module)
        source.close(item[1])
        return found

    with ThreadPoolExecutor(max_workers=_workers(source)) as pool:
        read = list(pool.map(one, releases))
    for (version, _), (needs, skipped) in zip(releases, read, strict=True):
        for need in needs:
            members = needs_by_key.get((need.partner, need.key, need.access), (need, set()))[1]
            members.add(version)
            needs_by_key[(need.partner, need.key, need.access)] = (need, members)  # the newest release's file
        if skipped:
            unparsed[version] = skipped
    versions = [v for v, _ in releases]
    print(f"{name}: {len(versions)} releases, {len(needs_by_key)} needs", file=sys.stderr, flush=True)
    return {
        "source": source.provenance(releases[-1][1]) if releases else {},
        "floor": spec.floor,
        "releases": versions,
        "unparsed": unparsed,
        "needs": [{"partner": need.partner, "module": need.module, "name": need.name, "file": need.file,
                   **({"access": need.access} if need.access != "import" else {}),
                   **({"via": need.via} if need.via else {}), **({"when": need.when} if need.when else {}),
                   "releases": ranges(versions, members)}
                  for _, (need, members) in sorted(needs_by_key.items())],
    }


def read_provider(name: str, source: Source, wanted: dict[tuple[str, str], str],
                  versions: list[str] | None = None) -> dict[str, object]:
    """For each (module, name) in ``wanted`` (-> its access, "import" or "attribute"): the releases of the partner
    that have it, and those where that could not be told. ``versions``: read these releases alone (those a table
    lists for the partner), each of which must still be there."""
    spec = PROVIDERS[name]
    releases = source.releases(spec.floor)
    if versions is not None:
        gone = sorted(set(versions) - {v for v, _ in releases}, key=Version)
        if gone:
            raise SystemExit(f"{name}: releases {', '.join(gone)} of the table can no longer be read")
        releases = [item for item in releases if item[0] in set(versions)]

    def python_modules(item: tuple[str, str]) -> set[str]:
        return {module for module, path in modules_of(source.files(item[1])).items() if path.endswith(".py")}

    def one(item: tuple[str, str]) -> dict[tuple[str, str], str]:
        _, ref = item
        release = ProviderRelease(source, ref, elsewhere)
        found = {key: release.status(*key, wanted[key]) for key in sorted(wanted)}
        source.close(ref)
        return found

    with ThreadPoolExecutor(max_workers=_workers(source)) as pool:
        elsewhere = frozenset().union(*pool.map(python_modules, releases))
        statuses = dict(zip([v for v, _ in releases], pool.map(one, releases), strict=True))
    versions = [v for v, _ in releases]
    names = {}
    for module, attr in sorted(wanted):
        key = f"{module}:{attr}" if attr else module
        present = {v for v in versions if statuses[v][(module, attr)] == "present"}
        unknown = {v for v in versions if statuses[v][(module, attr)] == "unknown"}
        entry: dict[str, list[list[str]]] = {"present": ranges(versions, present)}
        if unknown:
            entry["unknown"] = ranges(versions, unknown)
        names[key] = entry
    print(f"{name}: {len(versions)} releases, {len(names)} names", file=sys.stderr, flush=True)
    return {"source": source.provenance(releases[-1][1]) if releases else {}, "floor": spec.floor,
            "releases": versions, "names": names}


def _workers(source: Source) -> int:
    return 8 if isinstance(source, PyPIWheels) else 1  # HTTP waits overlap; git reads share one process


def wanted_names(importers: Iterable[dict[str, object]]) -> dict[str, dict[tuple[str, str], str]]:
    """Partner -> (module, name) -> access, over the needs of the importers' entries."""
    wanted: dict[str, dict[tuple[str, str], str]] = {}
    for entry in importers:
        for need in entry["needs"]:  # type: ignore[attr-defined]
            keys = wanted.setdefault(need["partner"], {})
            key = (need["module"], need["name"])
            # a name both imported and read as an attribute is judged as an import (its module must be a module)
            keys[key] = "import" if keys.get(key) == "import" else need.get("access", "import")
    return wanted


def _read_importers(importers: dict[str, Source]) -> dict[str, dict[str, object]]:
    with ThreadPoolExecutor(max_workers=max(1, len(importers))) as pool:
        return dict(zip(importers, pool.map(lambda item: read_importer(*item), importers.items()), strict=True))


def generate(importers: dict[str, Source], providers: dict[str, Source], command: str,
             today: str | None = None) -> dict[str, object]:
    done = _read_importers(importers)
    wanted = wanted_names(done.values())
    with ThreadPoolExecutor(max_workers=max(1, len(providers))) as pool:
        jobs = {name: pool.submit(read_provider, name, source, wanted.get(name, {}))
                for name, source in providers.items()}
        offered = {name: job.result() for name, job in jobs.items()}
    return {
        "generator": GENERATOR,
        "command": command,
        "generated": today or datetime.date.today().isoformat(),
        "what": "names each importer release takes from partner packages at import, and the partner releases that "
                "have them; read from each release's source with ast",
        "importers": done,
        "providers": offered,
    }


def _name_order(key: str) -> tuple[str, str]:
    """A provider's name key in the order ``read_provider`` writes them: by (module, name)."""
    module, _, name = key.partition(":")
    return module, name


def update(document: dict[str, object], importers: dict[str, Source], providers: dict[str, Source],
           others: dict[str, Callable[[], Source]], command: str) -> dict[str, object]:
    """``document`` (a table this script wrote) with the named ``importers`` and ``providers`` read again or added,
    every other entry kept as it is. A provider not named that a named importer takes a name from which the table
    does not list is read for those names alone, over the releases the table lists for it (``others``: what
    opens its source); its other names are kept. A name the table judged as an attribute that a new importer
    imports is kept as judged (a full run judges it as an import), and said."""
    old_importers, old_providers = document["importers"], document["providers"]
    assert isinstance(old_importers, dict) and isinstance(old_providers, dict)
    done = _read_importers(importers)
    merged = {name: done.get(name) or old_importers[name] for name in [*IMPORTERS, *old_importers]
              if name in done or name in old_importers}
    wanted, before = wanted_names(merged.values()), wanted_names(old_importers.values())
    jobs, extra = {}, {}
    with ThreadPoolExecutor(max_workers=max(1, len(PROVIDERS))) as pool:
        for name in PROVIDERS:
            if name in providers:
                jobs[name] = pool.submit(read_provider, name, providers[name], wanted.get(name, {}))
            elif name in old_providers:
                listed = old_providers[name]["names"]
                missing = {key: access for key, access in wanted.get(name, {}).items()
                           if (f"{key[0]}:{key[1]}" if key[1] else key[0]) not in listed}
                for key, access in wanted.get(name, {}).items():
                    if access == "import" and before.get(name, {}).get(key) == "attribute":
                        print(f"{name}: {key[0]}:{key[1]} kept as judged (an attribute); a full run judges it as an "
                              "import", file=sys.stderr)
                if missing:
                    if name not in others:
                        raise SystemExit(f"{name}: {len(missing)} names to read, and no source for it")
                    extra[name] = pool.submit(read_provider, name, others[name](), missing,
                                              list(old_providers[name]["releases"]))
        offered: dict[str, object] = {}
        for name in [*PROVIDERS, *old_providers]:
            if name in offered:
                continue
            if name in jobs:
                offered[name] = jobs[name].result()
            elif name in old_providers:
                entry = dict(old_providers[name])
                if name in extra:
                    names = {**entry["names"], **extra[name].result()["names"]}  # type: ignore[dict-item]
                    entry["names"] = dict(sorted(names.items(), key=lambda item: _name_order(item[0])))
                offered[name] = entry
    previous = str(document["command"])
    return {**document, "command": previous if previous.endswith(f" && {command}") else f"{previous} && {command}",
            "importers": merged, "providers": offered}


def dump(document: dict[str, object]) -> str:
    """One need or name per line: a readable diff when a release is added."""
    lines = ["{"]
    for key, value in document.items():
        if key not in ("importers", "providers"):
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    for section, listed in (("importers", "needs"), ("providers", "names")):
        packages = document[section]
        assert isinstance(packages, dict)
        lines.append(f"  {json.dumps(section)}: {{")
        for i, (name, entry) in enumerate(packages.items()):
            lines.append(f"    {json.dumps(name)}: {{")
            for key, value in entry.items():
                if key != listed:
                    lines.append(f"      {json.dumps(key)}: {json.dumps(value)},")
            items = entry[listed]
            if isinstance(items, dict):
                rows = [f"        {json.dumps(k)}: {json.dumps(v)}" for k, v in items.items()]
                lines += [f"      {json.dumps(listed)}: {{", ",\n".join(rows), "      }"] if rows else \
                    [f"      {json.dumps(listed)}: {{}}"]
            else:
                rows = [f"        {json.dumps(v)}" for v in items]
                lines += [f"      {json.dumps(listed)}: [", ",\n".join(rows), "      ]"] if rows else \
                    [f"      {json.dumps(listed)}: []"]
            lines.append("    }" + ("," if i < len(packages) - 1 else ""))
        lines.append("  }" + ("," if section == "importers" else ""))
    lines.append("}")
    return "\n".join(line for line in lines if line) + "\n"


def _repo_of(git_dir: Path) -> str:
    """``/work/.mirror/huggingface+peft/repo`` -> ``huggingface/peft``."""
    for part in reversed(git_dir.resolve().parts):
        if "+" in part:
            return part.replace("+", "/", 1)
    return git_dir.resolve().name.removesuffix(".git")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("git_dirs", nargs="*", type=Path, help="bare clones; the repository is told by the path")
    parser.add_argument("--transformers-wheels", action="store_true", help="read transformers from PyPI wheels")
    parser.add_argument("--wheels", action="append", default=[], metavar="NAME",
                        help="read this package from its PyPI wheels instead of a clone (repeatable)")
    parser.add_argument("--add", action="append", default=[], metavar="NAME",
                        help="read only this importer or provider (its clone among GIT_DIRs, else its PyPI wheels) "
                             "and merge it into the table at --out, keeping every other entry (repeatable)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.add:
        return _add(parser, args)
    by_repo = {spec.repo.lower(): name for name, spec in {**PROVIDERS, **IMPORTERS}.items()}
    importers: dict[str, Source] = {}
    providers: dict[str, Source] = {}
    for git_dir in args.git_dirs:
        name = by_repo.get(_repo_of(git_dir).lower())
        if name is None:
            parser.error(f"{git_dir}: not a clone of {', '.join(sorted(by_repo))} (the path names the repository)")
        if name in IMPORTERS:
            importers[name] = GitTags(git_dir, IMPORTERS[name])
        if name in PROVIDERS:
            providers[name] = GitTags(git_dir, PROVIDERS[name])
    wheels = set(args.wheels) | ({"transformers"} if args.transformers_wheels else set())
    for name in sorted(wheels):
        if name not in IMPORTERS and name not in PROVIDERS:
            parser.error(f"--wheels {name}: not one of {', '.join(sorted({*IMPORTERS, *PROVIDERS}))}")
        source = PyPIWheels((IMPORTERS | PROVIDERS)[name])
        if name in IMPORTERS:
            importers[name] = source
        if name in PROVIDERS:
            providers[name] = source
    if not importers:
        parser.error("give at least one clone of an importer: " + ", ".join(spec.repo for spec in IMPORTERS.values()))
    command = "python " + " ".join([GENERATOR, *(f"--wheels {name}" for name in sorted(wheels)),
                                    *(str(d) for d in args.git_dirs)])
    document = generate({n: importers[n] for n in IMPORTERS if n in importers},
                        {n: providers[n] for n in PROVIDERS if n in providers}, command)
    args.out.write_text(dump(document), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _add(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``--add``: the named packages read and merged into the table at ``--out`` (see ``update``)."""
    known = {**PROVIDERS, **IMPORTERS}
    by_repo = {spec.repo.lower(): name for name, spec in known.items()}
    clones: dict[str, Path] = {}
    for git_dir in args.git_dirs:
        name = by_repo.get(_repo_of(git_dir).lower())
        if name is None:
            parser.error(f"{git_dir}: not a clone of {', '.join(sorted(by_repo))} (the path names the repository)")
        clones[name] = git_dir
    for name in args.add:
        if name not in known:
            parser.error(f"--add {name}: not one of {', '.join(sorted(known))}")
    document = json.loads(args.out.read_text(encoding="utf-8"))

    def source(name: str, role: dict[str, Package]) -> Source:
        return GitTags(clones[name], role[name]) if name in clones else PyPIWheels(role[name])

    importers = {name: source(name, IMPORTERS) for name in IMPORTERS if name in args.add}
    providers = {name: source(name, PROVIDERS) for name in PROVIDERS if name in args.add}
    # the providers kept, each from the kind of source the table says it was read from (a clone must be given)
    others: dict[str, Callable[[], Source]] = {}
    for name, entry in document["providers"].items():
        if name in PROVIDERS and name not in providers:
            if name in clones or "wheel" in entry.get("source", {}).get("read", ""):
                others[name] = functools.partial(source, name, PROVIDERS)
    command = "python " + " ".join([GENERATOR, *(f"--add {name}" for name in args.add),
                                    *(str(d) for d in args.git_dirs)])
    args.out.write_text(dump(update(document, importers, providers, others, command)), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
