"""Run inside the interpreter named by ``--python`` (see ``probe.interpreter``): probe its environment and print
the snapshot as one JSON line after a marker. Standard library and envdoctor's probe modules only: the
interpreter may have neither packaging, rich nor nvidia-ml-py installed. The CUDA toolkit and NVML are machine-wide:
the caller probes them, in parallel."""

from __future__ import annotations

import json
import sys

from envdoctor.probe import probe_this_interpreter
from envdoctor.probe._marker import SNAPSHOT_MARKER


def main(argv: list[str]) -> None:
    """``argv``: ``deep`` or ``plain``, then the smoke-test timeout in seconds."""
    snapshot = probe_this_interpreter(deep=argv[0] == "deep", smoke_timeout=float(argv[1]))
    sys.stdout.write(SNAPSHOT_MARKER + json.dumps(snapshot.to_dict()) + "\n")
    sys.stdout.flush()
