"""JSON Schemas (draft 2020-12) of envdoctor's public formats, shipped as data files next to this module.

``snapshot.json`` is ``envdoctor.snapshot/1``; ``report.json`` is ``envdoctor.report/1`` with the snapshot schema
embedded. ``envdoctor schema NAME`` prints them. Nothing here validates: envdoctor's own readers do that.
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_NAMES = ("snapshot", "report")


def schema_path(name: str) -> Path:
    if name not in SCHEMA_NAMES:
        raise ValueError(f"no schema {name!r}; the schemas are {', '.join(SCHEMA_NAMES)}")
    return Path(__file__).parent / f"{name}.json"


def schema_text(name: str) -> str:
    """The schema file's text, as shipped."""
    return schema_path(name).read_text(encoding="utf-8")
