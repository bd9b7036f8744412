"""The shipped JSON Schemas: valid, in step with the dataclasses, and every snapshot and report envdoctor emits
validates against them (jsonschema is a test dependency only; envdoctor never imports it)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import types
import typing
from pathlib import Path

import jsonschema
import pytest
from tests.conftest import ROOT, SNAPSHOTS, python_env, run_envdoctor

from envdoctor.checker import run_check
from envdoctor.findings import Category, Finding, Report, ScoreLine, Severity
from envdoctor.render import render
from envdoctor.schemas import SCHEMA_NAMES, schema_path, schema_text
from envdoctor.snapshot import Snapshot, load_snapshot, snapshot_from_dict

CASES = sorted(p for p in (ROOT / "tests" / "cases").rglob("*.json") if p.name != "floor.json")
SNAPSHOT_FILES = sorted(p for p in SNAPSHOTS.glob("*.json") if p.name != "expected.json")


def _schema(name: str) -> dict:
    return json.loads(schema_text(name))


SNAPSHOT_VALIDATOR = jsonschema.Draft202012Validator(_schema("snapshot"))
REPORT_VALIDATOR = jsonschema.Draft202012Validator(_schema("report"))


def _errors(validator: jsonschema.Draft202012Validator, data: object) -> list[str]:
    return [f"{error.json_path}: {error.message[:200]}" for error in validator.iter_errors(data)]


# --- the schemas themselves -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12_and_printed_by_the_cli(name):
    jsonschema.Draft202012Validator.check_schema(_schema(name))
    done = run_envdoctor("schema", name)
    assert done.returncode == 0, done.stderr
    assert done.stdout == schema_path(name).read_text(encoding="utf-8")


def test_unknown_schema_name_is_a_one_line_usage_error():
    done = run_envdoctor("schema", "plan")
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "snapshot" in done.stderr


def test_report_schema_embeds_the_snapshot_schema_verbatim():
    # tools/embed_snapshot_schema.py refreshes the copy after snapshot.json changes
    assert _schema("report")["$defs"]["snapshot"] == _schema("snapshot")


# --- in step with the dataclasses -------------------------------------------------------------------------------


def _resolve(node: dict, root: dict) -> dict:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].split("/")[-1]]
    return node


def _dataclass_in(hint: object) -> type | None:
    """The dataclass inside ``X | None``, ``tuple[X, ...]`` or ``dict[str, X]``; None when there is none."""
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    for arg in typing.get_args(hint):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None


def _node_of_field(node: dict, hint: object, root: dict) -> dict:
    """The schema node that holds the dataclass inside ``hint``: through array items or object values."""
    node = _resolve(node, root)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in typing.get_args(hint) if a is not type(None))
        return _node_of_field(node, inner, root)
    if origin is tuple:
        return _resolve(node["items"], root)
    if origin is dict:
        values = node["additionalProperties"]
        return _resolve(values["anyOf"][0] if "anyOf" in values else values, root)
    return node


def _missing(cls: type, node: dict, root: dict, where: str) -> list[str]:
    """Dataclass fields with no schema property, and schema properties with no field, recursively."""
    node = _resolve(node, root)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.metadata.get("in_file", True)}
    properties = node.get("properties", {})
    problems = [f"{where}.{n}: field not in the schema" for n in sorted(names - set(properties))]
    problems += [f"{where}.{n}: in the schema, not a field of {cls.__name__}" for n in sorted(set(properties) - names)
                 if not (where == "snapshot" and n == "schema")]
    for name in sorted(names & set(properties)):
        inner = _dataclass_in(hints[name])
        if inner is not None:
            problems += _missing(inner, _node_of_field(properties[name], hints[name], root), root, f"{where}.{name}")
    return problems


def test_snapshot_schema_names_every_dataclass_field_and_no_other():
    root = _schema("snapshot")
    assert _missing(Snapshot, root, root, "snapshot") == []


def test_report_schema_names_every_field_the_report_writes():
    root = _schema("report")
    pin = Finding("stack-pin", Category.PIN, Severity.WARN, "m")
    report = Report("s", "why", (pin,), _score(), snapshot=Snapshot())
    assert set(root["properties"]) == set(report.to_dict()) and set(root["required"]) == set(report.to_dict())
    finding = root["$defs"]["finding"]
    assert set(finding["properties"]) == {f.name for f in dataclasses.fields(Finding)} == set(finding["required"])
    score_line = root["properties"]["score_lost"]["items"]
    assert set(score_line["properties"]) == {f.name for f in dataclasses.fields(ScoreLine)}
    assert finding["properties"]["category"]["enum"] == [c.value for c in Category]
    assert root["$defs"]["severity"]["enum"] == [s.value for s in Severity]


def _score():
    from envdoctor.findings import Score

    return Score(90, (ScoreLine("r", Severity.WARN, 10),), "100 - 10")


# --- the schemas say something ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    {},  # no schema
    {"schema": "envdoctor.snapshot/2"},
    {"schema": "envdoctor.snapshot/1", "nvidia": "none"},
    {"schema": "envdoctor.snapshot/1", "python": {"venv": "yes"}},
    {"schema": "envdoctor.snapshot/1", "nvidia": {"gpus": [{"memory_mib": "80 GB"}]}},
    {"schema": "envdoctor.snapshot/1", "packages": {"torch": 2}},
    {"schema": "envdoctor.snapshot/1", "packages": {"bad name!": "1.0"}},
    {"schema": "envdoctor.snapshot/1", "smoke": {"torch": {"error": "boom"}}},
])
def test_snapshot_schema_refuses_what_the_reader_refuses(bad):
    assert _errors(SNAPSHOT_VALIDATOR, bad)
    with pytest.raises(ValueError):
        snapshot_from_dict(bad, require_schema=True)


def test_snapshot_schema_allows_unknown_fields_and_unknown_versions():
    data = {"schema": "envdoctor.snapshot/1", "future_block": {"x": 1}, "env": {"NEW_VAR": ""}, "host": {"os": "win32"},
            "nvidia": {"cuda_driver": 12.4, "gpus": [{"index": 0, "memory_used_mib": 100}]},
            "packages": {"flash_attn": None, "torch": "2.3.1", "numpy": {}, "rich": {"version": None}}}
    assert _errors(SNAPSHOT_VALIDATOR, data) == []
    snapshot_from_dict(data, require_schema=True)


def test_report_schema_refuses_an_unknown_status():
    report = json.loads(render(run_check(load_snapshot(SNAPSHOT_FILES[0]), cwd=ROOT), "json"))
    assert _errors(REPORT_VALIDATOR, report) == []
    assert _errors(REPORT_VALIDATOR, {**report, "status": "red"})
    assert _errors(REPORT_VALIDATOR, {**report, "snapshot": {"schema": "envdoctor.snapshot/1", "torch": []}})


# --- everything emitted validates ---------------------------------------------------------------------------------


def test_this_machines_probe_and_check_validate(tmp_path):
    probe = run_envdoctor("probe", "--json")
    assert probe.returncode == 0, probe.stderr
    assert _errors(SNAPSHOT_VALIDATOR, json.loads(probe.stdout)) == []
    check = subprocess.run([sys.executable, "-m", "envdoctor", "check", "--json"], capture_output=True, text=True,
                           cwd=tmp_path, env=python_env(), timeout=120, check=False)
    assert check.returncode in (0, 1), check.stderr
    assert _errors(REPORT_VALIDATOR, json.loads(check.stdout)) == []


@pytest.mark.parametrize("path", SNAPSHOT_FILES, ids=lambda p: p.stem)
def test_example_snapshot_and_its_report_validate(path: Path):
    assert _errors(SNAPSHOT_VALIDATOR, json.loads(path.read_text(encoding="utf-8"))) == []
    report = json.loads(render(run_check(load_snapshot(path), cwd=ROOT), "json"))  # what check --json prints
    assert _errors(REPORT_VALIDATOR, report) == []


def test_example_snapshot_checked_by_the_cli_validates():
    done = run_envdoctor("check", "--json", "--snapshot", str(SNAPSHOT_FILES[0]))
    assert done.returncode in (0, 1), done.stderr
    assert _errors(REPORT_VALIDATOR, json.loads(done.stdout)) == []


def test_every_real_case_snapshot_and_its_report_validate():
    assert len(CASES) >= 80
    problems = []
    for path in CASES:
        case = json.loads(path.read_text(encoding="utf-8"))
        name = path.relative_to(ROOT)
        problems += [f"{name} snapshot {e}" for e in _errors(SNAPSHOT_VALIDATOR, case["snapshot"])]
        snapshot = snapshot_from_dict(case["snapshot"], origin=str(name), require_schema=True)
        report = json.loads(render(run_check(snapshot, stack=case.get("stack"), cwd=ROOT), "json"))
        problems += [f"{name} report {e}" for e in _errors(REPORT_VALIDATOR, report)]
    assert problems == []


@pytest.mark.slow
@pytest.mark.network
def test_the_wheel_ships_the_schemas(tmp_path):
    import zipfile

    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("envdoctor-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in SCHEMA_NAMES:
        assert f"envdoctor/schemas/{name}.json" in names
