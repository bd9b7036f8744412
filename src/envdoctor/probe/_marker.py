"""The line prefix before the snapshot that the ``--python`` child prints (``_interpreter_child`` writes it,
``interpreter`` looks for it). Standard library only, like the child."""

SNAPSHOT_MARKER = "ENVDOCTOR_SNAPSHOT="
