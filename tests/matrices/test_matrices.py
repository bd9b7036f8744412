"""The bundled matrices are valid; broken matrix files are reported with their path and key, all at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envdoctor.matrices import MatrixError, StackNotFoundError, default_root, load_matrices
from envdoctor.table_validation import validate_matrices

GOOD_RULE = """
[[rule]]
id = "numpy2-with-trl-numpy1"  # a registered id (envdoctor/finding_ids.toml) of this category and severity
category = "numpy"
severity = "fail"
when = { "packages.numpy" = ">=2" }
message = "numpy {packages.numpy}"
"""


def _root(tmp_path: Path, rules: str) -> Path:
    (tmp_path / "rules").mkdir()
    shutil.copytree(default_root() / "stacks", tmp_path / "stacks")
    (tmp_path / "rules" / "a.toml").write_text(rules)
    return tmp_path


def test_bundled_matrices_are_valid() -> None:
    assert validate_matrices() == []


def test_every_error_is_reported_at_once_with_path_and_key(tmp_path: Path) -> None:
    bad = GOOD_RULE + GOOD_RULE.replace('">=2"', '">>2"').replace('severity = "fail"', 'severity = "fail"\ncolour = 1')
    root = _root(tmp_path, bad)
    errors = validate_matrices(root)
    path = str(root / "rules" / "a.toml")
    assert any(path in e and "rule[1].colour" in e and "unknown key" in e for e in errors)
    assert any(path in e and "packages.numpy" in e and "bad version specifier" in e for e in errors)
    assert any(path in e and "rule[1].id" in e and "duplicate rule id 'numpy2-with-trl-numpy1'" in e for e in errors)
    with pytest.raises(MatrixError) as raised:
        _ = load_matrices(root).rules
    assert str(raised.value).splitlines() == errors


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    root = _root(tmp_path, "[[rule]]\nid = \n")
    (errors,) = validate_matrices(root)
    assert str(root / "rules" / "a.toml") in errors and "line 2" in errors


def test_bad_fact_path_and_placeholder(tmp_path: Path) -> None:
    rule = GOOD_RULE.replace('"packages.numpy" = ">=2"', '"gpu.colour" = "red"').replace("{packages.numpy}", "{x.y}")
    errors = validate_matrices(_root(tmp_path, rule))
    assert any("rule[0].when.\"gpu.colour\"" in e and "unknown fact path" in e for e in errors)
    assert any("rule[0].message" in e and "{x.y}" in e for e in errors)


def test_bad_stack_file(tmp_path: Path) -> None:
    root = _root(tmp_path, GOOD_RULE)
    (root / "stacks" / "broken.toml").write_text(
        'name = "broken"\nsummary = "x"\npython = "3.10+"\n[pins]\nnumpy = "one"\n[[variants]]\ncuda = "12.1"\n'
        'torch = "2.3.1"\n'
    )
    errors = [e for e in validate_matrices(root) if "broken.toml" in e]
    assert any(": python:" in e for e in errors)
    assert any("pins.numpy" in e for e in errors)
    assert any("variants[0].cuda" in e for e in errors)


def test_unknown_stack_names_the_nearest() -> None:
    with pytest.raises(StackNotFoundError, match="phase1a-2.0"):
        load_matrices().stack("phase1a-2")


def test_rules_load_lazily(tmp_path: Path) -> None:
    root = _root(tmp_path, GOOD_RULE)
    (root / "stacks" / "zz-broken.toml").write_text("not toml ===")
    assert [r.id for r in load_matrices(root).rules] == ["numpy2-with-trl-numpy1"]
