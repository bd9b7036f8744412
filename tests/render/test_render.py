import json
from pathlib import Path

from report_fixture import fixed_report

from envdoctor.render import render
from envdoctor.render.table import render_table

GOLDEN = Path(__file__).parent / "golden"


def test_table_golden():
    assert render(fixed_report(), "table") == (GOLDEN / "table.txt").read_text(encoding="utf-8")


def test_table_colors_only_when_asked():
    plain = render_table(fixed_report(), color=False)
    colored = render_table(fixed_report(), color=True)
    assert "\x1b[" not in plain
    assert "\x1b[" in colored
    assert "FAIL" in colored


def test_markdown_golden():
    assert render(fixed_report(), "markdown") == (GOLDEN / "report.md").read_text(encoding="utf-8")


def test_json_is_report_to_dict():
    text = render(fixed_report(), "json")
    assert text.endswith("}\n")
    data = json.loads(text)
    assert data == fixed_report().to_dict()
    assert data["status"] == "fail"
    assert text.splitlines()[1] == '  "schema": "envdoctor.report/1",'


def test_empty_report_renders():
    from envdoctor.findings import Report, Score
    from envdoctor.snapshot import Snapshot

    empty = Report(None, "no stack given", (), Score(100), Snapshot())
    assert "No findings." in render(empty, "table")
    markdown = render(empty, "markdown")
    assert "No problems found." in markdown
    assert "- **Driver**: unknown" in markdown


def test_gpus_without_an_index_are_listed_without_one():
    """A snapshot pasted from a report names the GPU but not its index: no 'None:' in front of it."""
    from envdoctor.findings import Report, Score
    from envdoctor.snapshot import snapshot_from_dict

    snapshot = snapshot_from_dict({"nvidia": {"gpus": [{"name": "NVIDIA GB10", "compute_capability": "12.1"}]}})
    table = render(Report(None, "no stack given", (), Score(100), snapshot), "table")
    assert "gpus: NVIDIA GB10 (CC 12.1, unknown MiB)" in table and "None:" not in table
