"""Which standard-library modules CPython removed, and names removed from modules that remain, a Python file uses,
read with ``ast``; also modules a distribution stopped providing (``pkg_resources``, setuptools 82.0.0).

Shared by ``tools/gen_stdlib_removals.py`` (the bundled table, every release of the packages it lists) and
``check --online`` (the installed release of a package the table lacks). A use is ``import X``, ``import X.sub`` or
``from X[.sub] import ...`` with ``X`` a removed module, or ``module.name`` / ``from module import name`` for a name
removed from a module that remains. It runs at import when it is reached without calling a function; guarded imports
are left out (in a ``try`` catching ``ImportError``/``Exception``, under an ``if`` looking at a version,
``TYPE_CHECKING``, ``__main__`` or a Python 2/3 switch), and so are removed names used in an ``except`` block.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from envdoctor.numpy_name_scan import GUARD_HANDLERS, Use, _UseFinder, catches, module_bindings, scanned_once

# module -> (the CPython release that removed it, the id of the source in matrices/sources_facts.toml)
_PEP594_313 = ("aifc audioop cgi cgitb chunk crypt imghdr mailcap msilib nis nntplib ossaudiodev pipes sndhdr spwd "
               "sunau telnetlib uu xdrlib")
REMOVED: dict[str, tuple[str, str]] = {
    "distutils": ("3.12", "python-3-12-removed-distutils"),
    "imp": ("3.12", "python-3-12-removed-modules"),
    **{module: ("3.12", "python-3-12-removed-modules") for module in ("asynchat", "asyncore", "smtpd")},
    **{module: ("3.13", "python-3-13-removed-modules") for module in _PEP594_313.split()},
    "lib2to3": ("3.13", "python-3-13-removed-modules"),
}
# module.name -> (the CPython release that removed that name from the module, the source id): names of modules that
# remain, used as ``module.name`` or ``from module import name`` ("AttributeError: module 'pkgutil' has no attribute
# 'ImpImporter'", "ImportError: cannot import name 'Mapping' from 'collections'").
_COLLECTIONS_ABCS = ("Awaitable Coroutine AsyncIterable AsyncIterator AsyncGenerator Hashable Iterable Iterator "
                     "Generator Reversible Sized Container Callable Collection Set MutableSet Mapping MutableMapping "
                     "MappingView KeysView ItemsView ValuesView Sequence MutableSequence ByteString")
REMOVED_NAMES: dict[str, tuple[str, str]] = {
    **{f"collections.{name}": ("3.10", "python-3-10-removed-names") for name in _COLLECTIONS_ABCS.split()},
    **{name: ("3.11", "python-3-11-removed-names")
       for name in ("inspect.getargspec", "inspect.formatargspec", "asyncio.coroutine")},
    **{name: ("3.12", "python-3-12-removed-names")
       for name in ("pkgutil.ImpImporter", "pkgutil.ImpLoader", "configparser.SafeConfigParser", "ssl.wrap_socket",
                    "ssl.match_hostname", "locale.format")},
    **{name: ("3.13", "python-3-13-removed-names")
       for name in ("locale.resetlocale", "unittest.makeSuite", "unittest.findTestCases", "unittest.getTestCaseNames")},
    **{name: ("3.14", "python-3-14-removed-names")
       for name in ("ast.Num", "ast.Str", "ast.Bytes", "ast.NameConstant", "ast.Ellipsis", "pkgutil.find_loader",
                    "pkgutil.get_loader")},
}


@dataclass(frozen=True)
class Provided:
    """A module distribution ``provider`` installed until its release ``removed_in`` (``source``: the id in
    matrices/sources*.toml of the provider's word; ``wheels_source``: that of its wheels, which the generator
    reads)."""

    provider: str
    removed_in: str
    source: str
    wheels_source: str


PROVIDED: dict[str, Provided] = {
    "pkg_resources": Provided("setuptools", "82.0.0", "setuptools-82-removed-pkg-resources",
                              "setuptools-wheels-pkg-resources"),
}
PY2_SWITCH = re.compile(r"py(thon)?_?[23]", re.I)
# A file can import a removed module only where an import line names one: most files are passed over unparsed.
_MAY_IMPORT = re.compile(r"^[ \t]*(?:from|import)[ \t][^\n]*\b(?:" + "|".join([*REMOVED, *PROVIDED]) + r")\b"
                         r"|\b(?:" + "|".join(sorted({n.split(".")[1] for n in REMOVED_NAMES})) + r")\b", re.M)




class _ImportFinder(_UseFinder):
    """``_UseFinder``'s walk (at import or deferred, guarded code left out), recording imports of removed
    modules and uses of names removed from modules that remain (``pkgutil.ImpImporter``, ``from collections import
    Mapping``); ``modules``: the file's names bound to such modules (name -> module)."""

    removed = {*REMOVED, *PROVIDED, *REMOVED_NAMES}

    def __init__(self, modules: dict[str, str]) -> None:
        super().__init__(set(modules), lazy_annotations=True)
        self.modules = modules

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._record(alias.name.split(".")[0], node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            self._record(node.module.split(".")[0], node.lineno)
            for alias in node.names:
                self._record(f"{node.module}.{alias.name}", node.lineno)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in self.numpy:
            self._record(f"{self.modules[node.value.id]}.{node.attr}", node.lineno)
        self.generic_visit(node)

    in_handler = False  # inside an ``except`` block: removed names used there are not recorded

    def _record(self, name: str, line: int) -> None:
        if "." in name and self.in_handler:
            return  # a compatibility fallback (``except NameError: from collections import Callable``)
        super()._record(name, line)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        saved, self.in_handler = self.in_handler, True
        self.generic_visit(node)
        self.in_handler = saved

    def visit_Try(self, node: ast.Try) -> None:
        """In a ``try`` that catches a failed import, neither the body nor the handlers count: the handlers are a
        fallback for the body (``try: from html import escape`` / ``except ImportError: from cgi import escape``).
        Names removed from remaining modules (``collections.Callable``) are not counted in any ``except`` block."""
        if catches(node, GUARD_HANDLERS):
            self._visit_all([*node.orelse, *node.finalbody])
        else:
            super().visit_Try(node)

    visit_TryStar = visit_Try

    def visit_If(self, node: ast.If) -> None:
        """Neither branch of a Python 2/3 switch (``if PY2:``, ``if py3k:``) counts, as for a version test."""
        if not PY2_SWITCH.search(ast.unparse(node.test)):
            super().visit_If(node)


NAMED_MODULES = frozenset(name.split(".")[0] for name in REMOVED_NAMES)


def scan_source(text: str) -> dict[str, Use]:
    """The removed modules a Python file imports, and the removed names of remaining modules it uses (raises
    SyntaxError when it does not parse)."""
    tree = ast.parse(text)
    finder = _ImportFinder(module_bindings(tree, NAMED_MODULES))
    finder.visit(tree)
    return finder.uses




def scan_if_it_may_import(text: str) -> dict[str, Use] | None:
    """``scan_source`` of a file whose text names a removed module or name; {} without parsing otherwise (None: it
    does not parse)."""
    return scanned_once(text, scan_source) if _MAY_IMPORT.search(text) else {}
