"""One error base: every exception class envdoctor defines is an EnvdoctorError, so the CLI catches them by class."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import envdoctor
from envdoctor.errors import EXIT_USAGE, EnvdoctorError

PACKAGE = Path(envdoctor.__file__).parent


def _error_classes() -> list[type]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_interpreter_child.py":  # runs inside another interpreter, with no envdoctor around it
            continue
        names = [node.name for node in ast.parse(path.read_text(encoding="utf-8")).body
                 if isinstance(node, ast.ClassDef) and node.name.endswith("Error")]
        if names:
            module = importlib.import_module(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
            found += [getattr(module, name) for name in names]
    return found


def test_every_error_class_is_an_envdoctor_error() -> None:
    classes = _error_classes()
    assert len(classes) >= 10
    assert [cls.__qualname__ for cls in classes if not issubclass(cls, EnvdoctorError)] == []


def test_an_input_error_is_one_line_and_exit_2(capsys) -> None:
    from envdoctor.cli import main

    assert main(["check", "--snapshot", str(PACKAGE / "__init__.py")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("envdoctor: error: ") and err.count("\n") == 1 and "Traceback" not in err
