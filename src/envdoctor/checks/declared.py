"""Read Requires-Dist lines without ``packaging.requirements`` (its import alone costs ~50 ms of a 0.3 s check).

Lines and markers of the common shapes are handled here; anything else falls back to ``packaging``, so the
result is always what pip would decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from envdoctor.snapshot import normalize_name

_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[^\]]*\])?\s*")
_TERM = re.compile(
    r"""\s*(?:([a-z_]+)\s*(<=|>=|==|!=|~=|<|>|not\s+in|in)\s*(['"])(.*?)\3"""
    r"""|(['"])(.*?)\5\s*(<=|>=|==|!=|not\s+in|in)\s*([a-z_]+))\s*"""
)
_JOIN = re.compile(r"\s*(and|or)\s+")
_VERSION_VARS = {"python_version", "python_full_version", "implementation_version"}
# ``torch==2.3.1`` and the older metadata form ``torch (==2.0.1)``, with or without a marker
_TORCH_PIN = re.compile(r"^torch\s*(?:\(\s*===?\s*([0-9][^;,\s)]*)\s*\)|===?\s*([0-9][^;,\s]*))\s*(;.*)?$")


def exact_torch_pin(requires: tuple[str, ...] | None) -> str | None:
    """The torch release a Requires-Dist pins exactly (``torch==2.3.1``), or None."""
    for line in requires or ():
        match = _TORCH_PIN.match(line.strip())
        if match:
            return match.group(1) or match.group(2)
    return None


@dataclass(frozen=True)
class Declared:
    """One Requires-Dist line: the required project, its specifier text ('' for any) and the raw marker."""

    name: str
    specifier: str
    marker: str | None


def required_names(lines: tuple[str, ...] | None) -> frozenset[str]:
    """The normalized names Requires-Dist ``lines`` require outside extras (other markers not evaluated)."""
    declared = (parse_declared(line) for line in lines or ())
    return frozenset(normalize_name(d.name) for d in declared if d is not None and "extra" not in (d.marker or ""))


def parse_declared(line: str) -> Declared | None:
    """``"numpy (>=1.17) ; python_version < '3.12'"`` -> Declared('numpy', '>=1.17', "python_version < '3.12'")."""
    body, _, marker = line.partition(";")
    match = _NAME.match(body)
    if not match:
        return None
    rest = body[match.end():].strip()
    if rest.startswith("@"):  # a direct URL: no version to compare
        rest = ""
    spec = rest.strip("()").replace(" ", "")
    return Declared(match.group(1), spec, marker.strip() or None)


def marker_applies(marker: str | None, environment: dict[str, str]) -> bool:
    """PEP 508 marker evaluation: a fast path for flat and/or chains of comparisons, packaging for the rest."""
    if marker is None:
        return True
    clauses = _split(marker)
    if clauses is None:
        return _packaging_applies(marker, environment)
    try:
        return any(all(_term(term, environment) for term in group) for group in clauses)
    except KeyError:  # a variable this environment lacks: let packaging decide
        return _packaging_applies(marker, environment)


def _split(marker: str) -> list[list[re.Match[str]]] | None:
    """``a and b or c`` -> [[a, b], [c]]; None when the marker has another shape (parentheses...)."""
    groups: list[list[re.Match[str]]] = [[]]
    position = 0
    while True:
        term = _TERM.match(marker, position)
        if term is None:
            return None
        groups[-1].append(term)
        position = term.end()
        if position == len(marker):
            return groups
        join = _JOIN.match(marker, position)
        if join is None:
            return None
        if join.group(1) == "or":
            groups.append([])
        position = join.end()


def _term(term: re.Match[str], environment: dict[str, str]) -> bool:
    if term.group(1):
        variable, op, literal = term.group(1), term.group(2), term.group(4)
        left, right = environment[variable], literal
    else:
        variable, op, literal = term.group(8), term.group(7), term.group(6)
        left, right = literal, environment[variable]
    op = " ".join(op.split())
    if op in ("in", "not in"):
        return (left in right) == (op == "in")
    if variable in _VERSION_VARS and op not in ("==", "!=") or op == "~=":
        return _compare_versions(left, op, right)
    if op in ("==", "!="):  # a string comparison (PEP 508), never a version parse
        return (left == right) == (op == "==")
    return _compare_versions(left, op, right)


def _compare_versions(left: str, op: str, right: str) -> bool:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(f"{op}{right}").contains(left, prereleases=True)
    except InvalidSpecifier:
        raise KeyError(op) from None


def _packaging_applies(marker: str, environment: dict[str, str]) -> bool:
    from packaging.markers import InvalidMarker, Marker, UndefinedEnvironmentName

    try:
        return Marker(marker).evaluate(environment)
    except (InvalidMarker, UndefinedEnvironmentName):
        return False
