"""Which NumPy names that NumPy removed a Python file uses (``np.float``, ``np.NaN``, ``np.bool8`` ...), read with
``ast``, and whether a use runs at import or only when a function is called.

Shared by ``tools/gen_numpy_aliases.py`` (the bundled table, every release of the packages it lists) and
``check --online`` (the installed release of a package the table lacks). A use is ``X.<name>`` where ``X`` is a name
the file binds to the numpy module and to nothing else, or ``from numpy import <name>``. A use runs at import when
it is reached without calling a function: module and class bodies, decorators, default values and (without ``from
__future__ import annotations``) annotations. Guarded uses are left out: in a ``try`` whose handlers catch
``AttributeError``/``ImportError``/``Exception`` (or everything), and under an ``if``/``else`` whose test looks at a
version, ``hasattr`` or ``TYPE_CHECKING``, or runs a module as a script.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass


def catches(node: ast.Try, exceptions: set[str]) -> bool:
    """Whether a handler of ``node`` catches one of ``exceptions`` (by class name) or everything."""
    for handler in node.handlers:
        if handler.type is None:
            return True
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(ast.unparse(kind).rsplit(".", 1)[-1] in exceptions for kind in kinds):
            return True
    return False


@dataclass(frozen=True)
class Removal:
    """NumPy ``removed_in`` dropped the name; ``missing_in`` is the NumPy releases that lack it (``np.bool`` and
    ``np.long`` came back in 2.0 with new meanings); ``source`` is an id in matrices/sources_facts.toml."""

    removed_in: str
    missing_in: str
    source: str


def _removals(names: str, removal: Removal) -> dict[str, Removal]:
    return {name: removal for name in names.split()}


# NumPy 1.20 release notes ("Using the aliases of builtin types like np.int is deprecated") and 1.24 release notes
# (expired deprecations); numpy/__init__.py of v1.24.0 (``__former_attrs__``, ``__future_scalars__``, ``del long,
# unicode``).
REMOVED: dict[str, Removal] = {
    **_removals("int float complex object str unicode", Removal("1.24", ">=1.24", "numpy-1-24-expired-aliases")),
    **_removals("bool long", Removal("1.24", ">=1.24,<2.0", "numpy-1-24-expired-aliases")),
    # NumPy 2.0 migration guide ("Main namespace" removed members and internal enums), numpy/_expired_attrs_2_0.py
    # of v2.0.0, and the 2.0.0 release notes (expired deprecations: product, cumproduct, sometrue, alltrue, msort,
    # the "0"-suffixed scalar aliases and bool8 deprecated in 1.24). ``compat`` is left out: ``import numpy.compat``
    # still binds it in 2.0.
    **_removals("add_docstring add_newdoc add_newdoc_ufunc alltrue asfarray byte_bounds cast cfloat charrarray "
                "clongfloat compare_chararrays complex_ cumproduct DataSource deprecate deprecate_with_doc "
                "fastCopyAndTranspose find_common_type format_parser get_array_wrap float_ geterrobj Inf Infinity "
                "infty issctype issubclass_ issubsctype mat maximum_sctype NaN nbytes NINF NZERO longcomplex "
                "longfloat lookfor obj2sctype PINF product PZERO recfromcsv recfromtxt round_ safe_eval sctype2char "
                "sctypes seterrobj set_numeric_ops set_string_function singlecomplex string_ sometrue source "
                "tracemalloc_domain unicode_ who msort bool8 int0 uint0 object0 str0 bytes0 void0 "
                "FLOATING_POINT_SUPPORT FPE_DIVIDEBYZERO FPE_INVALID FPE_OVERFLOW FPE_UNDERFLOW "
                "UFUNC_BUFSIZE_DEFAULT UFUNC_PYVALS_NAME CLIP WRAP RAISE BUFSIZE ALLOW_THREADS MAXDIMS "
                "MAY_SHARE_EXACT MAY_SHARE_BOUNDS", Removal("2.0", ">=2.0", "numpy-2-0-removed-members")),
    # NumPy 2.4.0 release notes: numpy.in1d and numpy.trapz (deprecated in 2.0) removed.
    **_removals("in1d trapz", Removal("2.4", ">=2.4", "numpy-2-4-removals")),
}
GUARD_HANDLERS = {"AttributeError", "ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
# Tests of an ``if`` whose branches depend on the NumPy at hand, or that run only as a script (``__main__``).
GUARD_TEST = re.compile(r"version|hasattr|getattr|TYPE_CHECKING|np_?2|numpy_?2|numpy_?v?ge|_np2|is_numpy|__name__",
                        re.I)
# Path parts of what is not the package's code: tests, examples (``pl_examples/``, ``example_arma.py``), docs.
TEST_PART = re.compile(r"^(tests?|testing_data|docs?|benchmarks?|conftest\.py|test_[^/]*\.py|[^/]*_test\.py"
                       r"|([^/]*_)?examples?(_[^/]*)?(\.py)?)$")


# --- the scan of one file (no network) --------------------------------------------------------------


@dataclass(frozen=True)
class Use:
    """The first use of one removed name in a file: whether any use there runs at import, and where."""

    name: str
    at_import: bool
    line: int


def numpy_bindings(tree: ast.AST) -> set[str]:
    """Names the file binds to the numpy module and never to anything else (``import numpy.linalg`` binds
    ``numpy`` too)."""
    return set(module_bindings(tree, frozenset({"numpy"}), through_submodules=True))


def module_bindings(tree: ast.AST, modules: frozenset[str], through_submodules: bool = False) -> dict[str, str]:
    """Names the file binds to one of ``modules`` (``import numpy as np``, ``import pkgutil``) and never to anything
    else: name -> module. ``through_submodules``: ``import X.sub`` counts as binding ``X`` (else it is left out)."""
    bound: dict[str, str] = {}
    other: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if alias.asname and alias.name in modules:
                    bound[alias.asname] = alias.name
                elif not alias.asname and top in modules and (top == alias.name or through_submodules):
                    bound[top] = top
                else:
                    other.add(alias.asname or top)
        elif isinstance(node, ast.ImportFrom):
            other.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            other.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.arg):
            other.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            other.add(node.name)
    return {name: module for name, module in bound.items() if name not in other}


class _UseFinder(ast.NodeVisitor):
    removed: Container[str] = REMOVED  # the names recorded
    guard_test: re.Pattern[str] = GUARD_TEST  # an ``if`` whose test matches is a guard

    def __init__(self, numpy: set[str], lazy_annotations: bool) -> None:
        self.numpy, self.lazy_annotations = numpy, lazy_annotations
        self.at_import = True
        self.uses: dict[str, Use] = {}

    def _record(self, name: str, line: int) -> None:
        if name not in self.removed:
            return
        first = self.uses.get(name)
        if first is None or (self.at_import and not first.at_import):
            self.uses[name] = Use(name, self.at_import, line)

    def _visit_all(self, nodes: Iterable[ast.AST | None]) -> None:
        for node in nodes:
            if node is not None:
                self.visit(node)

    def _deferred(self, nodes: Iterable[ast.AST]) -> None:
        saved, self.at_import = self.at_import, False
        self._visit_all(nodes)
        self.at_import = saved

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in self.numpy:
            self._record(node.attr, node.lineno)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "numpy" and not node.level:
            for alias in node.names:
                self._record(alias.name, node.lineno)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """Decorators, defaults and (unless postponed) annotations run when the ``def`` runs; the body later."""
        arguments = node.args
        self._visit_all([*node.decorator_list, *arguments.defaults, *arguments.kw_defaults])
        if not self.lazy_annotations:
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
            self._visit_all([a.annotation for a in every if a is not None] + [node.returns])
        self._deferred(node.body)

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_all([*node.args.defaults, *node.args.kw_defaults])
        self._deferred([node.body])

    def visit_Try(self, node: ast.Try) -> None:
        if not catches(node, GUARD_HANDLERS):
            self._visit_all(node.body)
        self._visit_all([*node.handlers, *node.orelse, *node.finalbody])

    visit_TryStar = visit_Try

    def visit_If(self, node: ast.If) -> None:
        if self.guard_test.search(ast.unparse(node.test)):
            return  # both branches depend on the NumPy at hand, or run only as a script
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        if not self.guard_test.search(ast.unparse(node.test)):
            self.generic_visit(node)


def scan_source(text: str) -> dict[str, Use]:
    """The removed NumPy names a Python file uses (raises SyntaxError when it does not parse)."""
    tree = ast.parse(text)
    numpy = numpy_bindings(tree)
    lazy = any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(alias.name == "annotations" for alias in node.names) for node in tree.body)
    finder = _UseFinder(numpy, lazy)
    finder.visit(tree)
    return finder.uses


@dataclass(frozen=True)
class ReleaseScan:
    """Per removed name used: whether a use runs at import, and the file:line of one use (an at-import one when
    there is one)."""

    uses: dict[str, tuple[bool, str]]
    files: int
    unparsed: int


# Scans of file texts already read (most files are the same from one release to the next): sha256 -> uses, or
# None when the text does not parse.
_SCANNED: dict[str, dict[str, Use] | None] = {}


# A file can use a removed name only where it names numpy and has ``.<name>`` or ``from numpy import``: most files
# are passed over without parsing.
_MAY_USE = re.compile(r"\.\s*(?:" + "|".join(REMOVED) + r")\b|from\s+numpy\s+import")


def scanned_once(text: str, scan: Callable[[str], dict[str, Use]]) -> dict[str, Use] | None:
    """``scan(text)``, computed once per text and scanner; None when the text does not parse."""
    key = hashlib.sha256(f"{scan.__module__}.{scan.__qualname__}\0{text}".encode(errors="replace")).hexdigest()
    if key not in _SCANNED:
        try:
            _SCANNED[key] = scan(text)
        except (SyntaxError, ValueError, RecursionError):
            _SCANNED[key] = None
    return _SCANNED[key]


def _scan_once(text: str) -> dict[str, Use] | None:
    if "numpy" not in text or not _MAY_USE.search(text):
        return {}
    return scanned_once(text, scan_source)


def scan_files(files: Iterable[tuple[str, str]],
               scan_once: Callable[[str], dict[str, Use] | None] = _scan_once) -> ReleaseScan:
    """Per name found by ``scan_once`` in any file: whether a use runs at import, and one use's file:line."""
    uses: dict[str, tuple[bool, str]] = {}
    count = unparsed = 0
    for path, text in files:
        count += 1
        found = scan_once(text)
        if found is None:
            unparsed += 1
            continue
        for use in found.values():
            known = uses.get(use.name)
            if known is None or (use.at_import and not known[0]):
                uses[use.name] = (use.at_import, f"{path}:{use.line}")
    return ReleaseScan(dict(sorted(uses.items())), count, unparsed)


def shipped_code(path: str) -> bool:
    """A ``.py`` file that installs as the package's code (not tests, examples, docs or setup scripts)."""
    parts = path.split("/")
    if not path.endswith(".py") or any(TEST_PART.match(part) for part in parts):
        return False
    setup_script = len(parts) <= 2 and parts[-1] in ("setup.py", "versioneer.py", "ez_setup.py", "distribute_setup.py")
    # ``__setup__.py`` (Lightning's packages ship one per package) is read by their setup.py only, never imported
    return not setup_script and parts[-1] != "__setup__.py" and ".dist-info/" not in path
