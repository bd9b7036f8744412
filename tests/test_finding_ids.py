"""The finding id registry (src/envdoctor/finding_ids.toml), linted in one place.

Every id the code or the matrices emit is registered with the category and severity it is emitted at; every
registered id is emitted somewhere; its sources exist; docs/findings.md is in step. The emitted ids are found by
reading the source (ast): each ``Finding(...)`` call's ``rule``, ``category`` and ``severity``, followed through
module constants, conditional expressions and the helper functions that pass them on, plus the ids of the condition
rules (matrices/rules/*.toml) and smoke patterns (matrices/smoke.toml). Ids that come from data are allowed only
where listed in DATA_DRIVEN.
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from envdoctor.finding_ids import (
    REGISTRY_FILE,
    Category,
    FindingIdError,
    Severity,
    load_registry,
    registration_problem,
    registry,
    supersedes,
)
from envdoctor.findings import Finding
from envdoctor.matrices import MatrixError, default_root, load_matrices
from envdoctor.table_validation import validate_matrices

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src" / "envdoctor"
MATRICES = default_root()
FINDING_FIELDS = ("rule", "category", "severity", "message")
ENUMS = {"Category": Category, "Severity": Severity}
# Finding(rule=...) expressions that carry an id read from data, with the lint that covers those ids.
DATA_DRIVEN = {
    ("rules.py", "rule.id"),  # matrices/rules/*.toml: test_every_matrix_id_is_registered
    ("checks/smoke.py", "pattern.id"),  # matrices/smoke.toml: the same
    ("checks/numpy_abi.py", "finding.rule"),  # the same finding again, unverified: its id was emitted already
}


@dataclass(frozen=True)
class Emitted:
    """One id a ``Finding(...)`` call can make; category or severity None where not written literally."""

    rule: str | None  # None: not a literal (see ``expression``)
    category: str | None
    severity: str | None
    unverified: bool  # verified=False written literally
    where: str
    expression: str


def scan_source(text: str, name: str) -> list[Emitted]:
    """Every (id, category, severity) the ``Finding(...)`` calls in one module's source can make."""
    return _ModuleScan(ast.parse(text), text, name).emitted()


class _ModuleScan:
    def __init__(self, tree: ast.Module, text: str, name: str) -> None:
        self.tree, self.text, self.name = tree, text, name
        self.parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        self.constants = {
            target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        }
        self.calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]

    def emitted(self) -> list[Emitted]:
        out = []
        for call in self.calls:
            if isinstance(call.func, ast.Name) and call.func.id == "Finding":
                out.extend(self._finding(call))
        return out

    def _finding(self, call: ast.Call) -> list[Emitted]:
        bound = self._bind(call, FINDING_FIELDS)
        verified = bound.get("verified")
        unverified = isinstance(verified, ast.Constant) and verified.value is False
        expression = ast.get_source_segment(self.text, bound["rule"]) if "rule" in bound else "?"
        slots = [bound.get("rule"), bound.get("category"), bound.get("severity")]
        return [Emitted(rule, category, severity, unverified, f"{self.name}:{call.lineno}", expression)
                for rule, category, severity in self._combinations(slots, call)]

    def _bind(self, call: ast.Call, names: tuple[str, ...], function: ast.FunctionDef | None = None) -> dict:
        bound: dict[str, ast.expr] = dict(zip(names, call.args, strict=False))
        bound.update({keyword.arg: keyword.value for keyword in call.keywords if keyword.arg})
        if function is not None:
            positional = function.args.posonlyargs + function.args.args
            with_default = positional[len(positional) - len(function.args.defaults):]
            defaults = zip(with_default, function.args.defaults, strict=True)
            keyword_defaults = zip(function.args.kwonlyargs, function.args.kw_defaults, strict=True)
            for parameter, default in [*defaults, *keyword_defaults]:
                if default is not None:
                    bound.setdefault(parameter.arg, default)
        return bound

    def _combinations(self, slots: list, at: ast.AST, depth: int = 0) -> list[tuple[str | None, ...]]:
        """The literal value combinations of ``slots`` (expressions, or value lists already read) at ``at``: a
        parameter of the enclosing helper is read at each call site of the helper, together with the others."""
        function = self._enclosing(at)
        parameters = _parameters(function) if function is not None else ()
        passed = [i for i, slot in enumerate(slots) if isinstance(slot, ast.Name) and slot.id in parameters
                  and slot.id not in self.constants]
        if not passed or depth >= 4:
            return _branches(slots, self._literal)
        read = [slot if isinstance(slot, list) or i in passed else self._literal(slot) for i, slot in enumerate(slots)]
        out = []
        for call in self.calls:
            if isinstance(call.func, ast.Name) and call.func.id == function.name:
                arguments = self._bind(call, parameters, function)
                here = [arguments.get(slots[i].id) if i in passed else slot for i, slot in enumerate(read)]
                out.extend(self._combinations(here, call, depth + 1))
        return out or [tuple(None for _ in slots)]

    def _literal(self, expression: ast.expr | None) -> list[str | None]:
        """The values a literal, a module constant, an enum member or a conditional of those can take; [None] else."""
        if isinstance(expression, ast.Constant) and isinstance(expression.value, str):
            return [expression.value]
        if isinstance(expression, ast.IfExp):
            return self._literal(expression.body) + self._literal(expression.orelse)
        if isinstance(expression, ast.Attribute) and isinstance(expression.value, ast.Name) \
                and expression.value.id in ENUMS and expression.attr in ENUMS[expression.value.id].__members__:
            return [ENUMS[expression.value.id][expression.attr].value]
        if isinstance(expression, ast.Name) and expression.id in self.constants:
            return [self.constants[expression.id]]
        return [None]

    def _enclosing(self, node: ast.AST) -> ast.FunctionDef | None:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node
        return None


def _branches(slots: list, literal: Callable[[ast.expr | None], list[str | None]]) -> list[tuple[str | None, ...]]:
    """Value combinations of ``slots``; conditionals on the same test take the same branch together
    (``rule="a" if x else "b"`` beside ``severity=WARN if x else FAIL`` gives a/WARN and b/FAIL only)."""
    tests = [ast.dump(slot.test) for slot in slots if isinstance(slot, ast.IfExp)]
    if not tests:
        return list(itertools.product(*(slot if isinstance(slot, list) else literal(slot) for slot in slots)))
    same = [isinstance(slot, ast.IfExp) and ast.dump(slot.test) == tests[0] for slot in slots]
    return [combination for branch in ("body", "orelse")
            for combination in _branches(
                [getattr(slot, branch) if on else slot for slot, on in zip(slots, same, strict=True)], literal)]


def _parameters(function: ast.FunctionDef) -> tuple[str, ...]:
    arguments = function.args
    return tuple(p.arg for p in arguments.posonlyargs + arguments.args + arguments.kwonlyargs)


def emitted_in_code() -> list[Emitted]:
    return [emitted for path in sorted(SOURCE.rglob("*.py"))
            for emitted in scan_source(path.read_text(encoding="utf-8"), path.relative_to(SOURCE).as_posix())]


def emitted_by_matrices() -> list[Emitted]:
    """The condition rules' and smoke patterns' ids, read straight from their TOML."""
    out = []
    for path in sorted((MATRICES / "rules").glob("*.toml")):
        for rule in tomllib.loads(path.read_text(encoding="utf-8")).get("rule", []):
            out.append(Emitted(rule["id"], rule["category"], rule["severity"], False, path.name, "[[rule]]"))
    for pattern in tomllib.loads((MATRICES / "smoke.toml").read_text(encoding="utf-8")).get("pattern", []):
        out.append(Emitted(pattern["id"], pattern["category"], "fail", False, "smoke.toml", "[[pattern]]"))
    return out


def test_the_scan_follows_helpers_constants_and_branches() -> None:
    """The lint can fail: an unregistered id is found whether written in the call, in a constant, in a branch or
    passed through a helper, with the category and severity written beside it."""
    source = """
LATE = "not-registered-constant"

def _helper(ctx, rule, severity=Severity.WARN):
    return Finding(rule=rule, category=Category.PIN, severity=severity, message="m")

def check(ctx):
    return [
        Finding("not-registered-direct", Category.ABI, Severity.FAIL, "m", verified=False),
        Finding(rule=LATE if ctx else "not-registered-branch", category=Category.ABI, severity=Severity.INFO),
        _helper(ctx, "not-registered-helper"),
        _helper(ctx, "stack-pin"),
        _helper(ctx, "stack-pin", severity=Severity.FAIL),
        Finding(rule=row.id, category=Category.ABI, severity=Severity.FAIL, message=""),
        Finding("stack-pin" if x else "stack-missing", Category.PIN if x else Category.MISSING,
                Severity.WARN if x else Severity.FAIL, "m"),
    ]
"""
    emitted = scan_source(source, "demo.py")
    assert {(e.rule, e.category, e.severity, e.unverified) for e in emitted} == {
        ("not-registered-direct", "abi", "fail", True),
        ("not-registered-constant", "abi", "info", False),
        ("not-registered-branch", "abi", "info", False),
        ("not-registered-helper", "pin", "warn", False),
        ("stack-pin", "pin", "warn", False),
        ("stack-pin", "pin", "fail", False),
        (None, "abi", "fail", False),
        ("stack-missing", "missing", "fail", False),
    }
    refused = {(e.rule, e.severity) for e in emitted if e.rule is not None and registration_problem(
        e.rule, Category(e.category), Severity(e.severity), not e.unverified)}
    assert refused == {("not-registered-direct", "fail"), ("not-registered-constant", "info"),
                       ("not-registered-branch", "info"), ("not-registered-helper", "warn"),
                       ("stack-pin", "fail")}  # stack-pin is registered at warn only


def test_every_id_the_code_emits_is_registered_for_its_category_and_severity() -> None:
    problems = []
    for emitted in emitted_in_code() + emitted_by_matrices():
        if emitted.rule is None:
            continue
        entry = registry().get(emitted.rule)
        if entry is None:
            problems.append(f"{emitted.where}: {emitted.rule!r} is not in src/envdoctor/finding_ids.toml")
            continue
        if emitted.category is not None and emitted.category not in {c.value for c in entry.categories}:
            problems.append(f"{emitted.where}: {emitted.rule!r} at category {emitted.category!r}, registered for "
                            f"{[c.value for c in entry.categories]}")
        allowed = {s.value for s in entry.severities} | ({"info"} if emitted.unverified else set())
        if emitted.severity is not None and emitted.severity not in allowed:
            problems.append(f"{emitted.where}: {emitted.rule!r} at severity {emitted.severity!r}, registered at "
                            f"{sorted(allowed)}")
    assert problems == []


def test_ids_read_from_data_come_only_from_the_known_places() -> None:
    """A Finding whose id is not literal escapes the scan: allowed only where the data's ids are linted."""
    data_driven = {(e.where.split(":")[0], e.expression) for e in emitted_in_code() if e.rule is None}
    assert data_driven == DATA_DRIVEN


def test_no_registered_id_is_dead() -> None:
    emitted = {e.rule for e in emitted_in_code() + emitted_by_matrices()}
    assert sorted(set(registry()) - emitted) == []


def test_every_matrix_id_is_registered() -> None:
    """Loading the condition rules and smoke patterns checks their ids against the registry (no error here)."""
    matrices = load_matrices()
    assert {rule.id for rule in matrices.rules} <= set(registry())
    assert {pattern.id for pattern in matrices.smoke} <= set(registry())


def test_registered_sources_exist_and_summaries_say_something() -> None:
    sources = load_matrices().sources
    assert [(e.id, s) for e in registry().values() for s in e.sources if s not in sources] == []
    assert [e.id for e in registry().values() if len(e.summary.split()) < 4 or "\n" in e.summary] == []
    assert all(e.categories and e.severities for e in registry().values())


def test_supersedes_come_from_the_registry_and_name_registered_ids() -> None:
    table = supersedes()
    assert table["trl-undeclared-rich"] == ("stack-missing", "stack-requires", "declared-requirement-missing")
    assert table["cpu-torch-on-gpu-machine"] == ("stack-torch-variant",)
    assert {other for others in table.values() for other in others} <= set(registry())


def test_an_unregistered_id_is_refused_naming_it() -> None:
    with pytest.raises(FindingIdError, match="'stack-pinned' is not registered.*nearest: stack-pin"):
        Finding("stack-pinned", Category.PIN, Severity.WARN, "m")


def test_a_category_or_severity_not_registered_is_refused() -> None:
    with pytest.raises(FindingIdError, match="'stack-pin' has category 'abi'.*registers it for pin"):
        Finding("stack-pin", Category.ABI, Severity.WARN, "m")
    with pytest.raises(FindingIdError, match="'stack-pin' has severity 'fail'.*registers it at warn"):
        Finding("stack-pin", Category.PIN, Severity.FAIL, "m")
    with pytest.raises(FindingIdError, match="severity 'info'"):
        Finding("stack-pin", Category.PIN, Severity.INFO, "m")  # info only when unverified
    assert Finding("stack-pin", Category.PIN, Severity.INFO, "m", verified=False).rule == "stack-pin"


RULE = """
[[rule]]
id = "{id}"
category = "numpy"
severity = "{severity}"
when = {{ "packages.numpy" = ">=2" }}
message = "numpy {{packages.numpy}}"
"""


def _matrices_with_rule(tmp_path: Path, rule: str) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "stacks").mkdir()
    (tmp_path / "rules" / "a.toml").write_text(rule, encoding="utf-8")
    return tmp_path


def test_a_rule_with_an_unregistered_id_is_refused_when_the_rules_load(tmp_path: Path) -> None:
    root = _matrices_with_rule(tmp_path, RULE.format(id="numpy-demo-unregistered", severity="fail"))
    with pytest.raises(MatrixError, match=r"a\.toml: rule\[0\]\.id: finding id 'numpy-demo-unregistered' is not "
                                          r"registered in envdoctor/finding_ids\.toml"):
        _ = load_matrices(root).rules
    assert any("'numpy-demo-unregistered' is not registered" in e for e in validate_matrices(root))


def test_a_rule_at_another_severity_than_registered_is_refused(tmp_path: Path) -> None:
    root = _matrices_with_rule(tmp_path, RULE.format(id="numpy2-with-trl-numpy1", severity="warn"))
    with pytest.raises(MatrixError, match="'numpy2-with-trl-numpy1' has severity 'warn'.*registers it at fail"):
        _ = load_matrices(root).rules


def test_a_broken_registry_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "finding_ids.toml"
    path.write_text('[Bad_Id]\ncategories = ["numpy"]\nseverities = ["fail"]\nsummary = "x y z w"\n'
                    '[ok-id]\ncategories = ["colour"]\nseverities = []\nsummary = ""\nsupersedes = ["nowhere"]\n'
                    'colour = 1\n', encoding="utf-8")
    with pytest.raises(FindingIdError) as raised:
        load_registry(path)
    problems = str(raised.value).splitlines()
    assert all(line.startswith(f"{path}: [") for line in problems)
    expected = ("[Bad_Id]: the id is not kebab-case", "[ok-id].colour: unknown key",
                "[ok-id].summary: should be one non-empty line", "[ok-id].severities: should list at least one",
                "[ok-id].categories: 'colour' is not one of", "[ok-id].supersedes: 'nowhere' is not a registered id")
    assert [any(text in line for line in problems) for text in expected] == [True] * len(expected)


def test_the_bundled_registry_is_the_package_file_and_loads() -> None:
    assert REGISTRY_FILE == SOURCE / "finding_ids.toml"
    assert "stack-pin" in load_registry(REGISTRY_FILE)


def test_docs_findings_is_in_step_with_the_registry() -> None:
    from envdoctor.render.finding_ids import render_ids_markdown

    document = (REPO / "docs" / "findings.md").read_text(encoding="utf-8")
    assert document == render_ids_markdown(registry()), "run: envdoctor explain --markdown > docs/findings.md"


def test_explain_lists_every_id_and_explains_one(capsys: pytest.CaptureFixture[str]) -> None:
    from envdoctor.cli import main

    assert main(["explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == sorted(registry())
    assert main(["explain", "trl-undeclared-rich"]) == 0
    out = capsys.readouterr().out
    assert registry()["trl-undeclared-rich"].summary in out and "supersedes: stack-missing" in out
    assert "rules/versions.toml" in out and "fix:        pip install rich" in out  # the rule's own fix
    assert "https://" in out  # its sources, with their addresses


def test_explain_of_an_unknown_id_is_exit_2_naming_the_nearest(capsys: pytest.CaptureFixture[str]) -> None:
    from envdoctor.cli import main

    assert main(["explain", "stack-pinn"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no finding id 'stack-pinn'; nearest: stack-pin" in err
