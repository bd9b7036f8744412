"""Probe another Python interpreter's environment (``--python PATH``) without installing anything into it.

The interpreter runs ``python -c BOOTSTRAP``: the bootstrap loads envdoctor's own ``envdoctor`` package from this
installation's directory (nothing else of this installation goes on its ``sys.path``), runs the probe there
(``_interpreter_child``, standard library only), and prints the snapshot as one JSON line after a marker. The
interpreter keeps its own environment (``PYTHONPATH``, user site, ``.pth`` files), as a training script run with it
would; only the working directory that ``-c`` puts first on ``sys.path`` is removed. NVML and nvcc are machine-wide
and are queried by the caller, from envdoctor's own interpreter.

Anything that makes the path unusable (missing, not executable, not a Python, too old, a probe that fails or does
not finish) raises ``InterpreterError`` with one line that names the path.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
from pathlib import Path

from envdoctor.errors import EnvdoctorError
from envdoctor.probe._marker import SNAPSHOT_MARKER
from envdoctor.probe.deep import SMOKE_TIMEOUT_S
from envdoctor.snapshot import Snapshot, SnapshotError, snapshot_from_dict

MIN_PYTHON = (3, 9)  # the oldest Python whose grammar and standard library the probe modules use
PROBE_TIMEOUT_S = 30.0  # a cold start of a large environment on a network file system can take seconds
TOO_OLD_MARKER = "ENVDOCTOR_PYTHON_TOO_OLD="
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # this installation's envdoctor/ directory
# Python 2 grammar too, so that a too-old interpreter gets to say its version instead of a SyntaxError.
BOOTSTRAP = """\
import sys
minimum = tuple(int(part) for part in sys.argv[2].split("."))
if sys.version_info[:2] < minimum:
    sys.stdout.write("%s%d.%d.%d\\n" % ((sys.argv[3],) + tuple(sys.version_info[:3])))
    sys.exit(3)
if sys.path and sys.path[0] == "":
    del sys.path[0]
import importlib.util
spec = importlib.util.spec_from_file_location(
    "envdoctor", sys.argv[1] + "/__init__.py", submodule_search_locations=[sys.argv[1]])
package = importlib.util.module_from_spec(spec)
sys.modules["envdoctor"] = package
spec.loader.exec_module(package)
from envdoctor.probe._interpreter_child import main
main(sys.argv[4:])
"""


class InterpreterError(EnvdoctorError, ValueError):
    """``--python PATH`` names something that cannot be probed; the message is one line naming PATH."""


def resolve_interpreter(path: str) -> Path:
    """The interpreter to run: ``path`` itself, or ``path/bin/python`` for a venv directory."""
    given = Path(path).expanduser()
    if given.is_dir():
        inside = next((given / name for name in ("bin/python", "Scripts/python.exe") if (given / name).exists()), None)
        if inside is None:
            raise InterpreterError(f"--python {path}: is a directory without bin/python; pass the interpreter itself "
                                   "(e.g. /path/to/venv/bin/python)")
        given = inside
    if not given.exists():
        raise InterpreterError(f"--python {path}: no such file; pass a Python interpreter "
                               "(e.g. /path/to/venv/bin/python or the output of 'which python')")
    if not os.access(given, os.X_OK):
        raise InterpreterError(f"--python {path}: not executable; pass the interpreter itself "
                               "(e.g. /path/to/venv/bin/python)")
    return given


class PendingInterpreterProbe:
    """The other interpreter's probe, started; ``finish()`` waits for its snapshot."""

    def __init__(self, path: str, deep: bool, smoke_timeout: float, timeout: float,
                 minimum: tuple[int, int] = MIN_PYTHON) -> None:
        self.path = path
        self.timeout = timeout + (smoke_timeout + 5 if deep else 0)
        python = resolve_interpreter(path)
        argv = [str(python), "-c", BOOTSTRAP, str(PACKAGE_DIR), ".".join(map(str, minimum)), TOO_OLD_MARKER,
                "deep" if deep else "plain", f"{smoke_timeout:g}"]
        try:
            self.child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise InterpreterError(f"--python {path}: cannot run it ({exc.strerror or exc}); pass a Python "
                                   "interpreter") from None

    def finish(self) -> Snapshot:
        try:
            out, err = self.child.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.child)
            raise InterpreterError(f"--python {self.path}: the probe did not finish within {self.timeout:g} s; "
                                   f"check that '{self.path} -c pass' starts") from None
        return self._snapshot(out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def _snapshot(self, out: str, err: str) -> Snapshot:
        lines = out.splitlines()
        old = next((line[len(TOO_OLD_MARKER):] for line in lines if line.startswith(TOO_OLD_MARKER)), None)
        if old is not None:
            oldest = ".".join(map(str, MIN_PYTHON))
            raise InterpreterError(f"--python {self.path}: Python {old.strip()[:20]} is older than {oldest}, the "
                                   f"oldest envdoctor can probe; pass the interpreter of a Python {oldest}+ env")
        found = next((line[len(SNAPSHOT_MARKER):] for line in reversed(lines) if line.startswith(SNAPSHOT_MARKER)),
                     None)
        if found is None:
            why = _last_line(err) or f"exit status {self.child.returncode}, no output"
            raise InterpreterError(f"--python {self.path}: printed no snapshot ({why}); is it a Python interpreter?")
        try:
            return snapshot_from_dict(json.loads(found), origin=f"--python {self.path}")
        except (ValueError, SnapshotError) as exc:  # JSONDecodeError is a ValueError
            why = _last_line(str(exc))
            raise InterpreterError(f"--python {self.path}: printed an unreadable snapshot ({why})") from None


def start_interpreter_probe(path: str, deep: bool = False, smoke_timeout: float = SMOKE_TIMEOUT_S,
                            timeout: float = PROBE_TIMEOUT_S) -> PendingInterpreterProbe:
    """Start probing the interpreter at ``path`` (or take the probe ``launch_early`` started for the same
    arguments); raises ``InterpreterError`` when it cannot be started."""
    early = _early.pop((path, deep), None)
    if early is not None and (smoke_timeout, timeout) == (SMOKE_TIMEOUT_S, PROBE_TIMEOUT_S):
        return early
    if early is not None:
        _kill_group(early.child)
    return PendingInterpreterProbe(path, deep, smoke_timeout, timeout)


_early: dict[tuple[str, bool], PendingInterpreterProbe] = {}


def launch_early(path: str, deep: bool) -> None:
    """Start the probe of ``path`` before the command line is parsed, so the other interpreter starts while envdoctor
    loads; ``start_interpreter_probe`` with the same arguments takes it. A path that cannot be started is left for
    that call to report; a probe nobody takes (bad usage, say) is killed at exit."""
    if (path, deep) in _early:
        return
    try:
        _early[(path, deep)] = PendingInterpreterProbe(path, deep, SMOKE_TIMEOUT_S, PROBE_TIMEOUT_S)
    except InterpreterError:
        return
    if len(_early) == 1:
        atexit.register(_stop_unclaimed)


def _stop_unclaimed() -> None:
    while _early:
        _kill_group(_early.popitem()[1].child)


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except OSError:
        pass
    child.communicate()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
