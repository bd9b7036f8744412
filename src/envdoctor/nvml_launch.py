"""Start the NVML child process (``probe/_nvml_child.py``) with nothing else of envdoctor imported.

``envdoctor check`` launches it first thing, so the child's Python start-up, its pynvml import and ``nvmlInit``
run while the parent imports the checker and scans packages; ``probe.nvidia.NvidiaProbe`` then claims it. No
dataclasses or envdoctor modules here: this runs before them.
"""

from __future__ import annotations

import atexit
import subprocess
import sys
from pathlib import Path

CHILD_SCRIPT = Path(__file__).with_name("probe") / "_nvml_child.py"
NVML_LIBRARY = "libnvidia-ml.so.1"  # the name pynvml loads on Linux


class Launch:
    """A started child (``child``), or why none was started (``error``)."""

    def __init__(self, child: subprocess.Popen[str] | None, error: str | None) -> None:
        self.child, self.error = child, error

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.communicate()


_early: Launch | None = None


def library_missing() -> str | None:
    """Why the NVML library cannot be loaded, or None when it can (or when not on Linux: the child decides).

    Loading it runs no driver code; ``nvmlInit``, which can hang, is left to the child.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError as exc:
        return first_line(exc)
    return None


def launch() -> Launch:
    """Start the child now; without a driver library, start none and say so."""
    missing = library_missing()
    if missing:
        return Launch(None, f"NVML unavailable: NVML Shared Library Not Found ({missing})")
    try:
        child = subprocess.Popen([sys.executable, str(CHILD_SCRIPT)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        return Launch(None, f"could not start the NVML probe: {first_line(exc)}")
    return Launch(child, None)


def launch_early() -> None:
    """Launch for a later ``claim()``; a launch nobody claims (bad usage, say) is killed at exit."""
    global _early
    if _early is None:
        _early = launch()
        atexit.register(_stop_unclaimed)


def claim() -> Launch:
    """The early launch if there is one (once), else a new one."""
    global _early
    taken, _early = _early, None
    return taken if taken is not None else launch()


def _stop_unclaimed() -> None:
    if _early is not None:
        _early.stop()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
