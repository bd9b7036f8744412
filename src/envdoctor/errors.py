"""envdoctor's exit codes and its one error base class; imports nothing of envdoctor, so every module can use it.

The CLI (``envdoctor.cli``) catches ``EnvdoctorError`` by class and exits with ``error.exit_code``; nothing else
maps errors to exit codes.
"""

from __future__ import annotations

EXIT_OK = 0  # green (warnings allowed unless --fail-on warn)
EXIT_FAIL = 1  # a failing finding (or warning, with --fail-on warn), a matrix problem, no working plan, a conflict
EXIT_USAGE = 2  # bad usage or unreadable input: one line on stderr, never a traceback
EXIT_IO = 74  # EX_IOERR (sysexits.h): stdout could not be written (closed, full, a broken pipe)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class EnvdoctorError(Exception):
    """Base of every error envdoctor reports to the user as one line; ``exit_code`` is the status it exits with."""

    exit_code = EXIT_USAGE


class UsageError(EnvdoctorError):
    """Bad usage or an unacceptable command-line value; exit 2."""
