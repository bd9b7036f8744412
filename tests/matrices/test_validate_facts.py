"""One validator covers every file of matrices/, the fact tables included; a broken table is one line at check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from envdoctor.facts import FactsError, default_matrices_root
from envdoctor.matrices import MatrixError
from envdoctor.table_validation import validate_matrices

SNAPSHOT = Path(__file__).parents[1] / "data" / "snapshots" / "old-driver.json"


def _broken_copy(tmp_path: Path) -> Path:
    root = tmp_path / "matrices"
    shutil.copytree(default_matrices_root(), root)
    torch = root / "torch.toml"
    torch.write_text(torch.read_text().replace('variants = ["cu118", "cu121"]', 'variants = "cu118"', 1))
    return root


def test_the_bundled_matrices_validate() -> None:
    assert validate_matrices() == []


def test_a_broken_fact_table_fails_validation(tmp_path: Path) -> None:
    problems = validate_matrices(_broken_copy(tmp_path))
    assert any("torch.toml" in line and "variants" in line for line in problems), problems


def test_facts_errors_are_matrix_errors() -> None:
    assert issubclass(FactsError, MatrixError)


def test_check_with_a_broken_fact_table_is_one_line(tmp_path: Path) -> None:
    root = _broken_copy(tmp_path)
    (root / "torch.toml").write_text("[releases\n")  # not TOML at all
    code = ("import sys; from pathlib import Path; import envdoctor.facts as f, envdoctor.matrices as m; "
            f"m.default_root = lambda: Path({str(root)!r}); f.default_matrices_root = lambda: Path({str(root)!r}); "
            "from envdoctor.cli import main; sys.exit(main(['check', '--snapshot', sys.argv[1], '--json']))")
    done = subprocess.run([sys.executable, "-c", code, str(SNAPSHOT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1 and "torch.toml" in done.stderr
