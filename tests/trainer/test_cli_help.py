"""`python -m trainer [SUBCOMMAND] --help` renders, and every train/pretokenize flag says what it does."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from helpers import REPO, subprocess_env

from trainer.cli import SUBCOMMANDS, build_parser, main


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return dict(commands.choices)


def test_every_subcommand_is_in_the_parser() -> None:
    assert set(subcommand_parsers()) == set(SUBCOMMANDS)


@pytest.mark.parametrize("argv", [["--help"], *[[name, "--help"] for name in SUBCOMMANDS]])
def test_help_renders(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m trainer")
    if argv[0] == "train":
        assert "97% of the speed" in out  # a help text with a literal %, printed as written


@pytest.mark.parametrize("name", ["train", "pretokenize"])
def test_every_flag_has_help_text(name: str) -> None:
    parser = subcommand_parsers()[name]
    flags = [action for action in parser._actions if action.option_strings and action.dest != "help"]
    assert len(flags) > 10
    silent = [action.option_strings[0] for action in flags if not (action.help or "").strip()]
    assert silent == []


def test_train_help_as_a_process() -> None:
    done = subprocess.run([sys.executable, "-m", "trainer", "train", "--help"], env=subprocess_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--num_train_epochs" in done.stdout and "Traceback" not in done.stderr
