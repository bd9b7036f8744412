"""The finding id registry as text: the list ``envdoctor explain`` prints, one id in full, and docs/findings.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from envdoctor.finding_ids import FindingId
from envdoctor.untrusted import markdown_text

if TYPE_CHECKING:
    from envdoctor.matrices import Matrices

UNVERIFIED_NOTE = "any id may also come at info with verified: false, when a fact it needs was unknown"
DOC_HEADER = """# Finding ids

Every id `envdoctor check` can report (the `rule` of each finding), from `src/envdoctor/finding_ids.toml`.
Written by `envdoctor explain --markdown > docs/findings.md`; `tests/test_finding_ids.py` keeps it in step.
Besides the severities listed, {note}.

| id | category | severities | what it means | sources | supersedes |
| --- | --- | --- | --- | --- | --- |
"""


def render_ids(entries: Mapping[str, FindingId]) -> str:
    """One line per id: id, categories, summary (columns as wide as one id and one category)."""
    width = max((len(entry.id) for entry in entries.values()), default=0)
    kind_width = max((len(kind.value) for entry in entries.values() for kind in entry.categories), default=0)
    return "".join(f"{entry.id:<{width}}  {_words(entry.categories):<{kind_width}}  {entry.summary}\n"
                   for entry in sorted(entries.values(), key=lambda e: e.id))


def render_id(entry: FindingId, matrices: Matrices) -> str:
    """One id in full: what it means, where it is reported, its sources (with their addresses) and, for an id
    defined by matrix data, the file and the message and fix written there."""
    lines = [
        entry.id,
        f"  means:      {entry.summary}",
        f"  category:   {_words(entry.categories)}",
        f"  severities: {_words(entry.severities)} ({UNVERIFIED_NOTE})",
    ]
    known = matrices.sources
    for source_id in entry.sources:
        source = known.get(source_id)
        where = f"{source.title}, {source.url}" if source and source.url else (source.title if source else "unknown")
        lines.append(f"  source:     {source_id}: {where}")
    if entry.supersedes:
        lines.append(f"  supersedes: {', '.join(entry.supersedes)} (on the same components)")
    lines.extend(_defined_by(entry.id, matrices))
    return "\n".join(lines) + "\n"


def _defined_by(finding_id: str, matrices: Matrices) -> list[str]:
    for rule in matrices.rules:
        if rule.id == finding_id:
            lines = [f"  rule:       {rule.origin}", f"  message:    {rule.message}"]
            return lines + ([f"  fix:        {rule.fix}"] if rule.fix else [])
    for pattern in matrices.smoke:
        if pattern.id == finding_id:
            return [f"  smoke:      {matrices.root / 'smoke.toml'} (--deep: matches {pattern.pattern.pattern!r})",
                    f"  fix:        {pattern.fix}"]
    return []


def render_ids_markdown(entries: Mapping[str, FindingId]) -> str:
    """docs/findings.md: the whole registry as one Markdown table."""
    rows = [
        f"| `{entry.id}` | {_words(entry.categories)} | {_words(entry.severities)} | {markdown_text(entry.summary)} "
        f"| {', '.join(entry.sources)} | {', '.join(f'`{other}`' for other in entry.supersedes)} |\n"
        for entry in sorted(entries.values(), key=lambda e: e.id)
    ]
    return DOC_HEADER.format(note=UNVERIFIED_NOTE) + "".join(rows)


def _words(values: tuple) -> str:
    return ", ".join(value.value for value in values)
