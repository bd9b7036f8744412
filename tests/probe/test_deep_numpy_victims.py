"""``--deep`` imports pandas, scipy, scikit-learn and matplotlib too, and their errors classify via smoke.toml."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.probe.deep import SMOKE_TESTS, run_smoke_tests
from envdoctor.snapshot import snapshot_from_dict

VICTIMS = {"pandas": "pandas", "scipy": "scipy", "scikit-learn": "sklearn", "matplotlib": "matplotlib"}
NUMPY2_ERROR = ("A module that was compiled using NumPy 1.x cannot be run in\n"
                "NumPy 2.0.0 as it may crash. To support both 1.x and 2.x")


def test_the_usual_victims_of_a_numpy_switch_are_smoke_tested() -> None:
    tested = {test.name: test.code for test in SMOKE_TESTS}
    for dist, module in VICTIMS.items():
        assert f"import {module}" in tested[dist]


@pytest.mark.parametrize(("dist", "module"), sorted(VICTIMS.items()))
def test_a_numpy_abi_break_in_each_is_classified(tmp_path: Path, monkeypatch, dist: str, module: str) -> None:
    fake = tmp_path / module
    fake.mkdir()
    (fake / "__init__.py").write_text(f"raise ImportError({NUMPY2_ERROR!r})\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    result = run_smoke_tests({dist, "not-installed-here"}, timeout=30)
    assert set(result.smoke) == {dist} and result.smoke[dist].ok is False
    snap = snapshot_from_dict({"packages": {dist: "1.0", "numpy": "2.0.0"},
                               "smoke": {dist: {"ok": False, "error": result.smoke[dist].error}}})
    report = run_check(snap, stack="cpu-test", cwd=tmp_path)
    finding = next(f for f in report.findings if f.rule.startswith("smoke-") and dist in f.components)
    assert (finding.rule, finding.category.value, finding.severity.value) == ("smoke-numpy2-abi", "numpy", "fail")


@pytest.mark.parametrize("dist", [d for d, m in VICTIMS.items() if importlib.util.find_spec(m)])
def test_the_installed_ones_import_cleanly_here(dist: str) -> None:
    result = run_smoke_tests({dist}, timeout=60)
    assert result.smoke[dist].ok, textwrap.shorten(result.smoke[dist].error or "", 300)
