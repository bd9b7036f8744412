"""Each bundled rule fires on a snapshot that has the problem and stays quiet on one that does not."""

from __future__ import annotations

import pytest

from envdoctor.findings import Severity
from envdoctor.matrices import load_matrices
from envdoctor.rules import evaluate, matches_specifier

from .synth import snapshot

RULES = {r.id: r for r in load_matrices().rules}

# rule id -> (packages that trigger it, packages that do not, host os)
CASES = {
    "numpy2-with-trl-numpy1": ({"trl": "0.9.6", "numpy": "2.0.1"}, {"trl": "0.9.6", "numpy": "1.26.4"}, "linux"),
    "numpy2-with-trl-windows-numpy1": ({"trl": "0.11.4", "numpy": "2.0.1"}, {"trl": "0.12.0", "numpy": "2.0.1"},
                                       "windows"),
    "transformers-disables-old-torch": ({"transformers": "5.17.0", "torch": "2.4.1+cu121"},
                                        {"transformers": "5.17.0", "torch": "2.5.1+cu124"}, "linux"),
    "transformers-tf-keras-3": ({"transformers": "4.49.0", "tensorflow": "2.18.0"},
                                {"transformers": "4.49.0", "tensorflow": "2.18.0", "tf-keras": "2.18.0"}, "linux"),
    "trl-undeclared-rich": ({"trl": "0.11.4"}, {"trl": "0.11.4", "rich": "13.7.1"}, "linux"),
    "unsloth-ref-predates-llama31": ({"unsloth": {"version": "2024.7", "requested_revision": "July-2024"}},
                                     {"unsloth": {"version": "2024.7", "requested_revision": "July-Llama-2024"}},
                                     "linux"),
}


def test_every_rule_has_a_case() -> None:
    assert set(RULES) == set(CASES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires(rule_id: str) -> None:
    packages, _, os_name = CASES[rule_id]
    findings = evaluate([RULES[rule_id]], snapshot(packages, host={"os": os_name}))
    assert [(f.rule, f.severity) for f in findings] == [(rule_id, RULES[rule_id].severity)]
    assert "{" not in findings[0].message and findings[0].verified


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_stays_quiet(rule_id: str) -> None:
    _, packages, os_name = CASES[rule_id]
    assert evaluate([RULES[rule_id]], snapshot(packages, host={"os": os_name})) == []


def test_unknown_fact_gives_one_could_not_verify() -> None:
    rule = RULES["numpy2-with-trl-numpy1"]
    unknown = snapshot(None)
    unknown = unknown.__class__(host=unknown.host, python=unknown.python, nvidia=unknown.nvidia, packages=None)
    findings = evaluate([rule], unknown)
    assert len(findings) == 1
    assert findings[0].severity is Severity.INFO and not findings[0].verified
    assert "packages.numpy" in findings[0].message


def test_known_false_fact_beats_unknown() -> None:
    rule = RULES["numpy2-with-trl-windows-numpy1"]
    assert evaluate([rule], snapshot({"trl": "0.11.4", "numpy": "2.1.0"}, host={"os": "linux"})) == []
    assert evaluate([rule], snapshot({"trl": "0.11.4", "numpy": "2.1.0"}, host={})) [0].verified is False


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [
        ("2.3.1+cu121", "<2.4", True),
        ("2.3.1+cu121", "==2.3.1", True),
        ("2.6.0.dev1+cu121", ">=2.5", True),
        ("2.0.0rc1", ">=2", False),
        ("2.0.0rc1", ">=2.0.0rc1", True),
        ("1.26.4", "<2", True),
        ("not a version", "<2", False),
    ],
)
def test_specifier_matching(version: str, spec: str, expected: bool) -> None:
    assert matches_specifier(version, spec) is expected
