"""The ``envdoctor`` command line: every subcommand's flags and printing. Only this module prints or exits.

Exit codes (``envdoctor.errors``): 0 green (warnings allowed unless ``--fail-on warn``), 1 any failure (or warning,
with ``--fail-on warn``), 2 bad usage or unreadable input (one ``envdoctor: error: ...`` line on stderr, never a
traceback), 74 stdout could not be written (closed, full, a broken pipe). ``plan``: 1 no working plan or a conflict,
2 bad input (one ``envdoctor plan: ...`` line).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from envdoctor.errors import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EnvdoctorError, UsageError
from envdoctor.stdout import BOX_SAMPLE, OutputError, can_show, write_stderr, write_stdout

if TYPE_CHECKING:
    from envdoctor.findings import Report
    from envdoctor.snapshot import Snapshot


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + message
        raise UsageError(f"{message} (see '{self.prog} --help')")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if _probes_this_machine(argv):
        from envdoctor.nvml_launch import launch_early

        launch_early()  # NVML's child process runs while the parser, the probe and the checker load
        python = _python_option(argv)
        if python:
            from envdoctor.probe.interpreter import launch_early as launch_interpreter_early

            launch_interpreter_early(python, deep="--deep" in argv)  # so does --python's interpreter
    try:
        try:
            args = build_parser(with_plan=argv[:1] == ["plan"]).parse_args(argv)
        except SystemExit as exc:  # --help and --version print, then exit: the print must have reached stdout
            if sys.stdout is not None:
                write_stdout("")
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        return args.handler(args)
    except UsageError as exc:
        return _fail(str(exc))
    except OutputError as exc:
        write_stderr(f"envdoctor: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except EnvdoctorError as exc:  # about the user's input (snapshot, matrices, stack name, model...): one line
        return _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.exit_code)


def _probes_this_machine(argv: list[str]) -> bool:
    """``check`` or ``probe`` that will query NVML here (not ``--snapshot FILE``, not ``--help``)."""
    if argv[:1] not in (["check"], ["probe"]):
        return False
    return not any(arg in ("-h", "--help") or arg.startswith("--snapshot") for arg in argv[1:])


def _python_option(argv: list[str]) -> str | None:
    """The value of ``--python PATH`` / ``--python=PATH``, read before parsing; the parser has the last word."""
    for index, arg in enumerate(argv):
        if arg == "--python" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--python="):
            return arg.removeprefix("--python=")
    return None


def build_parser(with_plan: bool = False) -> argparse.ArgumentParser:
    """The argument parser; the plan subcommand's options are added only when it runs (keeps startup fast)."""
    parser = _Parser(prog="envdoctor", description="Diagnose LLM fine-tuning environments without importing torch.")
    parser.add_argument("--version", action="version", version=f"envdoctor {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{check,probe,stacks,plan,schema,explain}",
                                     parser_class=_Parser)
    _add_check(commands)
    _add_probe(commands)
    _add_stacks(commands)
    _add_plan(commands, with_plan)
    _add_schema(commands)
    _add_explain(commands)
    return parser


def _add_check(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser("check", help="probe (or read) an environment and check it against a stack")
    formats = check.add_mutually_exclusive_group()
    formats.add_argument("--json", dest="fmt", action="store_const", const="json", help="envdoctor.report/1 JSON")
    formats.add_argument("--markdown", dest="fmt", action="store_const", const="markdown",
                         help="compact report to paste into a GitHub issue")
    check.add_argument("--snapshot", metavar="FILE", help="check this snapshot JSON instead of probing")
    check.add_argument("--stack", metavar="NAME", help="stack to check against (default: envdoctor.toml or closest)")
    check.add_argument("--model", metavar="PATH_OR_ID", help="also check this base model (local dir or hub id)")
    check.add_argument("--deep", action="store_true", help="also import compiled extensions in subprocesses")
    check.add_argument("--python", metavar="PATH", help="check this interpreter's environment (e.g. a venv's "
                       "bin/python) instead of envdoctor's own; nothing is installed into it")
    online = check.add_mutually_exclusive_group()
    online.add_argument("--online", dest="online", action="store_true", default=None,
                        help="read the release facts of packages the bundled tables lack from PyPI (the default "
                        "with --snapshot; cached for a week)")
    online.add_argument("--offline", dest="online", action="store_false",
                        help="never contact PyPI (also: ENVDOCTOR_OFFLINE=1)")
    check.add_argument("--fail-on", choices=("warn", "fail"), default="fail",
                       help="exit 1 when the worst finding reaches this level (default: fail)")
    check.add_argument("--no-color", action="store_true", help="plain text even on a terminal")
    check.set_defaults(handler=run_check_command, fmt="table")


def _add_probe(commands: argparse._SubParsersAction) -> None:
    probe = commands.add_parser("probe", help="print this environment's snapshot (envdoctor.snapshot/1 JSON)")
    probe.add_argument("--json", action="store_true", help="JSON output (the only format; accepted for symmetry)")
    probe.add_argument("--deep", action="store_true", help="also import compiled extensions in subprocesses")
    probe.add_argument("--python", metavar="PATH", help="probe this interpreter's environment (e.g. a venv's "
                       "bin/python) instead of envdoctor's own; nothing is installed into it")
    probe.add_argument("-o", "--output", metavar="FILE", help="write the snapshot here (atomically)")
    probe.set_defaults(handler=run_probe_command)


def _add_stacks(commands: argparse._SubParsersAction) -> None:
    stacks = commands.add_parser("stacks", help="list the bundled stacks")
    stacks.add_argument("--validate", action="store_true", help="lint the matrices; exit 1 on any problem")
    stacks.add_argument("--json", action="store_true", help="JSON list of {name, summary}")
    stacks.set_defaults(handler=run_stacks_command)


def _add_plan(commands: argparse._SubParsersAction, with_plan: bool) -> None:
    plan = commands.add_parser("plan", help="write an install script for a stack (see 'envdoctor plan --help')",
                               add_help=with_plan)
    if with_plan:
        _add_plan_arguments(plan)
    plan.set_defaults(handler=run_plan_command)


def _add_plan_arguments(plan: argparse.ArgumentParser) -> None:
    from envdoctor.plan.command import DEFAULT_STACK, FORMATS, INSTALLERS

    plan.add_argument("--cuda", help="CUDA version the target driver supports (nvidia-smi 'CUDA Version')")
    plan.add_argument("--python", help="target Python, e.g. 3.10 (default: this interpreter)")
    plan.add_argument("--stack", help=f"bundled stack name (default: {DEFAULT_STACK})")
    plan.add_argument("--gpu-arch", dest="gpu_arch", help="target GPU compute capability, e.g. 8.0")
    plan.add_argument("--from-probe", dest="from_probe", action="store_true",
                      help="take CUDA, Python and GPU from this machine's probe")
    plan.add_argument("--format", dest="plan_format", choices=FORMATS, default="script")
    plan.add_argument("--constraints", default="constraints.txt",
                      help="where --format requirements writes the constraints file (default: constraints.txt)")
    plan.add_argument("--venv", help="create this virtual environment and install into it")
    plan.add_argument("--installer", choices=INSTALLERS,
                      help="what the script installs with (default: uv when the target interpreter has no pip and"
                           " uv is on PATH, else pip); --verify: pip forces pip's resolver")
    plan.add_argument("--verify", action="store_true",
                      help="resolve every step (no install) for the target with uv pip compile when uv is found,"
                           " else pip; report per step")
    plan.add_argument("--steps", help="only these step ids, comma-separated (e.g. packages); see --format json")
    plan.add_argument("--matrices", help=argparse.SUPPRESS)


# --- commands ------------------------------------------------------------------------------


def run_check_command(args: argparse.Namespace) -> int:
    if args.model is not None and not args.model.strip():
        raise UsageError("--model is empty; pass a model directory or a hub id (org/name)")
    if args.python is not None and args.snapshot is not None:
        raise UsageError("--python probes an interpreter; it cannot be combined with --snapshot")
    pending = _start_probe(args.snapshot, args.deep, args.python)
    from envdoctor.checker import run_check  # imported while the NVML child process runs
    from envdoctor.render import render

    snapshot = pending.finish() if pending else _load_or_probe(args.snapshot, args.deep)
    if _reads_pypi(args):
        _fetch_missing_facts(snapshot)
    report = run_check(snapshot, stack=args.stack, model=args.model, cwd=Path.cwd())
    color = args.fmt == "table" and _wants_color(args.no_color)
    write_stdout(render(report, args.fmt, color=color, ascii_only=not can_show(BOX_SAMPLE)))
    if not _stdout_is_terminal():
        write_stderr(_summary_line(report) + "\n")
    return _exit_code(report, args.fail_on)


def _reads_pypi(args: argparse.Namespace) -> bool:
    """--online/--offline as given; else online for a snapshot (the tables are all it has to go on) unless
    ENVDOCTOR_OFFLINE is set. A probed environment has its packages' own metadata and stays offline."""
    if args.online is not None:
        return args.online
    return args.snapshot is not None and os.environ.get("ENVDOCTOR_OFFLINE", "") in ("", "0")


def _fetch_missing_facts(snapshot: Snapshot) -> None:
    from envdoctor.pypi_facts import bundled_release_known, known_packages, read_fetched_facts
    from envdoctor.pypi_online import fetch_missing_facts

    online = fetch_missing_facts(snapshot, bundled_release_known, tabled=frozenset(known_packages()))
    read_fetched_facts(online.folder, online.fetched, online.failed)


def run_probe_command(args: argparse.Namespace) -> int:
    from envdoctor.probe import probe

    text = probe(deep=args.deep, python=args.python).to_json()
    if args.output:
        write_atomically(Path(args.output), text)
    else:
        write_stdout(text)
    return EXIT_OK


def run_stacks_command(args: argparse.Namespace) -> int:
    from envdoctor.matrices import load_matrices

    if args.validate:
        return _validate_matrices()
    found = load_matrices().stacks  # the contract says a dict; the engine currently has a method returning a list
    stacks = sorted(found() if callable(found) else found.values(), key=lambda s: s.name)
    if args.json:
        import json

        write_stdout(json.dumps([{"name": s.name, "summary": s.summary} for s in stacks], indent=2) + "\n")
    else:
        width = max((len(s.name) for s in stacks), default=0)
        write_stdout("".join(f"{s.name:<{width}}  {s.summary}\n" for s in stacks))
    return EXIT_OK


def _add_schema(commands: argparse._SubParsersAction) -> None:
    schema = commands.add_parser("schema", help="print the JSON Schema of envdoctor.snapshot/1 or envdoctor.report/1")
    schema.add_argument("name", choices=("snapshot", "report"), help="which format")
    schema.set_defaults(handler=run_schema_command)


def run_schema_command(args: argparse.Namespace) -> int:
    from envdoctor.schemas import schema_text

    write_stdout(schema_text(args.name))
    return EXIT_OK


def _add_explain(commands: argparse._SubParsersAction) -> None:
    explain = commands.add_parser("explain", help="what a finding id means (every id, one a line, when none is given)")
    explain.add_argument("id", nargs="?", metavar="ID", help="a finding id, as in the rule column of check")
    explain.add_argument("--markdown", action="store_true", help="every id as one Markdown table (docs/findings.md)")
    explain.set_defaults(handler=run_explain_command)


def run_explain_command(args: argparse.Namespace) -> int:
    from envdoctor.finding_ids import registry
    from envdoctor.render.finding_ids import render_id, render_ids, render_ids_markdown

    entries = registry()
    if args.id is None:
        write_stdout(render_ids_markdown(entries) if args.markdown else render_ids(entries))
        return EXIT_OK
    if args.markdown:
        raise UsageError("--markdown prints every id; give no ID with it")
    if args.id not in entries:
        import difflib

        near = difflib.get_close_matches(args.id, list(entries), n=3, cutoff=0.4)
        hint = f"; nearest: {', '.join(near)}" if near else "; 'envdoctor explain' lists every id"
        raise UsageError(f"no finding id {args.id!r}{hint}")
    from envdoctor.matrices import load_matrices

    write_stdout(render_id(entries[args.id], load_matrices()))
    return EXIT_OK


def run_plan_command(args: argparse.Namespace) -> int:
    """Every input is validated before anything is printed; ``--verify`` names its resolver on stderr first."""
    from envdoctor.plan.command import PlanInputError, make_plan, plan_text, verify, verify_resolver
    from envdoctor.plan.model import PlanError

    try:
        plan = make_plan(args)
        if not args.verify:
            write_stdout(plan_text(plan, args))
            return EXIT_OK
        resolver = verify_resolver(args.installer)
        write_stderr(f"envdoctor plan --verify: resolving with {resolver.label} ({resolver.reason})\n")
        text, conflict = verify(plan, resolver, args.plan_format)
    except (PlanInputError, PlanError) as exc:
        return _fail(str(exc), exc.exit_code, prefix="envdoctor plan: ")
    write_stdout(text)
    return EXIT_FAIL if conflict else EXIT_OK


# --- helpers -------------------------------------------------------------------------------


def _validate_matrices() -> int:
    from envdoctor.table_validation import validate_matrices

    problems = validate_matrices()
    write_stdout("".join(f"{problem}\n" for problem in problems))
    write_stderr(f"envdoctor: {len(problems)} problem(s) in the matrices\n" if problems
                 else "envdoctor: matrices OK\n")
    return EXIT_FAIL if problems else EXIT_OK


def _start_probe(path: str | None, deep: bool, python: str | None = None):  # -> PendingProbe | None
    if path is not None:
        return None
    from envdoctor.probe import start_probe

    return start_probe(deep=deep, python=python)


def _exit_code(report: Report, fail_on: str) -> int:
    """1 when the worst finding is at least ``fail_on`` (``warn`` or ``fail``), else 0."""
    from envdoctor.findings import Severity

    return EXIT_FAIL if report.status.rank >= Severity(fail_on).rank else EXIT_OK


def _load_or_probe(path: str | None, deep: bool) -> Snapshot:
    if path is None:
        from envdoctor.probe import probe

        return probe(deep=deep)
    if deep:
        raise UsageError("--deep probes this machine; it cannot be combined with --snapshot")
    from envdoctor.snapshot import load_snapshot

    return load_snapshot(path)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; an unwritable path is a UsageError (exit 2), not a traceback."""
    from envdoctor.atomic import write_atomic

    try:
        write_atomic(path, text)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _wants_color(no_color: bool) -> bool:
    """--no-color and NO_COLOR turn colour off; else FORCE_COLOR (any non-empty value) turns it on; else colour
    only on a terminal whose TERM is not ``dumb``."""
    if no_color or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return _stdout_is_terminal() and os.environ.get("TERM") != "dumb"


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except (OSError, ValueError):
        return False


def _summary_line(report: Report) -> str:
    counts = {level: sum(1 for f in report.findings if f.severity.value == level) for level in ("fail", "warn")}
    return (f"envdoctor: {report.status.value} (score {report.score.percent}/100, "
            f"{counts['fail']} fail, {counts['warn']} warn)")


def _version() -> str:
    from envdoctor import __version__

    return __version__


def _fail(message: str, code: int = EXIT_USAGE, prefix: str = "envdoctor: error: ") -> int:
    from envdoctor.untrusted import escape_control

    write_stderr(f"{prefix}{escape_control(message)}\n")
    return code

