"""Fuzzing the inputs a user hands envdoctor: snapshots and envdoctor.toml, through the CLI entry in-process.

Every example asserts: no exception escapes ``main``, the exit code is 0, 1, 2 or 3, and an input that is garbage
(a wrong type, a value that is not what the field holds, nesting where a value belongs, a needed fact blanked)
never yields status ``ok``. Text that is merely odd (control characters, any Unicode, huge) in free-text fields
must still give a report, with no raw escape character in the table.

Snapshots are random mutations of a snapshot that is green against a GPU stack, so a false green is visible.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envdoctor.cli import main
from envdoctor.matrices import load_matrices
from rules.synth import stack_snapshot

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

pytestmark = pytest.mark.slow  # about 25 s of CPU for the three fuzz tests on a 2-core machine; run in CI
MATRICES = load_matrices()
GPU_STACK = "lora-cu130-2026.11"
CPU_STACK = "cpu-test"
EXIT_CODES = {0, 1, 2, 3}
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _green(stack_name: str) -> dict[str, Any]:
    stack = MATRICES.stack(stack_name)
    return stack_snapshot(stack, stack.variants[0]).to_dict()


GPU_BASE = _green(GPU_STACK)
CPU_BASE = _green(CPU_STACK)
WORKDIR = Path(tempfile.mkdtemp(prefix="envdoctor-fuzz-"))


def _check(snapshot_text: str, *args: str, cwd: Path = WORKDIR) -> tuple[int, str]:
    """(exit code, stdout) of ``envdoctor check --snapshot FILE ARGS`` run in-process in ``cwd``."""
    path = cwd / "snapshot.json"
    path.write_text(snapshot_text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["check", "--snapshot", str(path), *args])
    finally:
        os.chdir(before)
    assert code in EXIT_CODES, (code, err.getvalue())
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue()


def _status(code: int, out: str) -> str:
    """The report's status, or 'refused' when the input was refused (exit 2 or 3, nothing on stdout)."""
    if code in (2, 3):
        assert out == ""
        return "refused"
    return json.loads(out)["status"]


def test_the_base_snapshots_are_green() -> None:
    assert _status(*_check(json.dumps(GPU_BASE), "--stack", GPU_STACK, "--json")) == "ok"
    assert _status(*_check(json.dumps(CPU_BASE), "--stack", CPU_STACK, "--json")) == "ok"


# --- snapshot mutations -------------------------------------------------------------------------------------


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a non-null value in the snapshot (dict keys and list indices)."""
    found = []
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return found
    for key, child in items:
        if key == "schema" and not prefix:
            continue
        if child is not None:
            found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


def _set(data: Any, path: tuple, value: Any) -> Any:
    data = json.loads(json.dumps(data))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def _get(data: Any, path: tuple) -> Any:
    for key in path:
        data = data[key]
    return data


PATHS = _paths(GPU_BASE)
PACKAGES = sorted(GPU_BASE["packages"])
# A value of another JSON kind than the field's: none of these is what a snapshot field holds.
WRONG_KINDS = {
    str: [["x"], {"x": 1}, True, []],
    int: ["lots", [1], {"n": 1}, True, 1.5],
    bool: ["yes", 1, [True], {"b": True}],
    list: ["x", {"x": 1}, 3, True],
    dict: [["x"], 3, False, 2.5],
}
NOT_A_VERSION = ["latest", "banana", "twelve", "2.3.1 ; rm -rf x", "999.0\ntouch /tmp/x #", "1.0+cu121+x",
                 "\x1b[31m1.0", "NaN", "1.0" * 3000, " ", "1..0", "v", "-1"]
NOT_A_COMPUTE_CAPABILITY = [*NOT_A_VERSION, "75", "7.5.1", "abc", "7", "-7.5"]
VERSION_PATHS = [("packages", name, "version") for name in PACKAGES] + [
    ("nvidia", "driver"), ("nvidia", "cuda_driver"), ("torch", "cuda"), ("python", "version")]
FREE_TEXT_PATHS = [("note",), ("host", "distro"), ("python", "executable"), ("nvidia", "gpus", 0, "name"),
                   ("cuda_toolkit", "home")]
ODD_TEXT = st.one_of(st.text(max_size=300), st.text(alphabet=st.characters(max_codepoint=0x20), max_size=40),
                     st.just("\x1b[2J\x1b[31mRED\n| forged | row |\r"), st.just("é" * 100_000))


@st.composite
def garbage_snapshot(draw: st.DrawFn) -> tuple[str, str]:
    """(what was done, snapshot JSON text) for a mutation that makes the snapshot garbage."""
    kind = draw(st.sampled_from(["wrong-type", "not-a-version", "nesting", "blanked", "memory", "duplicate"]))
    data: Any = GPU_BASE
    if kind == "wrong-type":
        path = draw(st.sampled_from(PATHS))
        original = _get(GPU_BASE, path)
        value = draw(st.sampled_from(WRONG_KINDS[type(original)]))
        data = _set(data, path, value)
    elif kind == "not-a-version":
        path = draw(st.sampled_from([*VERSION_PATHS, ("nvidia", "gpus", 0, "compute_capability")]))
        choices = NOT_A_COMPUTE_CAPABILITY if path[-1] == "compute_capability" else NOT_A_VERSION
        value = draw(st.sampled_from(choices))
        data = _set(data, path, value)
    elif kind == "nesting":
        path = draw(st.sampled_from(PATHS))
        depth = draw(st.integers(min_value=2, max_value=3000))
        data = json.loads(json.dumps(GPU_BASE))
        nested = "[" * depth + "]" * depth
        text = json.dumps(_set(data, path, "__NESTED__")).replace('"__NESTED__"', nested)
        return f"nesting {depth} at {path}", text
    elif kind == "blanked":
        which = draw(st.sampled_from(["driver+cuda_driver", "compute_capability", "gpus"]))
        if which == "driver+cuda_driver":
            data = _set(_set(data, ("nvidia", "driver"), None), ("nvidia", "cuda_driver"), None)
        elif which == "compute_capability":  # the name too: a listed model's name gives its capability
            data = _set(_set(data, ("nvidia", "gpus", 0, "compute_capability"), None), ("nvidia", "gpus", 0, "name"),
                        None)
        else:
            data = _set(data, ("nvidia", "gpus"), None)
        path, value = (which,), None
    elif kind == "memory":
        path, value = ("nvidia", "gpus", 0, "memory_mib"), draw(st.integers(max_value=0))
        data = _set(data, path, value)
    else:  # another spelling of an installed package, with another version
        name = draw(st.sampled_from(PACKAGES))
        spelling = draw(st.sampled_from([name.upper(), name.replace("-", "_"), name.title()]).filter(
            lambda s: s != name))
        path, value = ("packages", spelling), {"version": "0.0.1"}
        data = _set(data, path, value)
    return f"{kind} {path} = {value!r:.80}", json.dumps(data)


@FUZZ
@given(garbage_snapshot())
def test_a_garbage_snapshot_is_never_green(case: tuple[str, str]) -> None:
    what, text = case
    code, out = _check(text, "--stack", GPU_STACK, "--json")
    assert _status(code, out) != "ok", what


ODD_BASE = {**CPU_BASE, "cuda_toolkit": {"nvcc": None, "home": "/usr/local/cuda"},
            "nvidia": {"driver": "580.159.04", "cuda_driver": "13.0", "gpus": [{"index": 0, "name": "NVIDIA H100"}]}}


@settings(FUZZ, max_examples=500)  # snapshots get 1,500 examples in all, with the garbage ones above
@given(st.data())
def test_odd_text_in_a_snapshot_is_reported_escaped(data: st.DataObject) -> None:
    """Free text (notes, names, paths, package names) of any kind: reported, with nothing raw on the terminal.
    (On the CPU stack, whose check is quicker; the text fields are the same.)"""
    snapshot = ODD_BASE
    if data.draw(st.booleans(), label="package name"):
        name = data.draw(st.text(min_size=1, max_size=60), label="name")
        snapshot = _set(snapshot, ("packages", name), {"version": "1.0"})
    else:
        path = data.draw(st.sampled_from(FREE_TEXT_PATHS), label="path")
        snapshot = _set(snapshot, path, data.draw(ODD_TEXT, label="text"))
    fmt = data.draw(st.sampled_from([[], ["--markdown"], ["--json"]]), label="format")
    code, out = _check(json.dumps(snapshot), "--stack", CPU_STACK, *fmt)
    if code in (0, 1):
        assert "\x1b" not in out and "\r" not in out
        if fmt == ["--json"]:
            json.loads(out)


# --- envdoctor.toml -----------------------------------------------------------------------------------------

STACK_NAMES = MATRICES.stack_names()
TOML_VALUE = st.recursive(
    st.one_of(st.text(max_size=30), st.integers(), st.booleans(), st.floats(allow_nan=False),
              st.sampled_from(STACK_NAMES)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                                                                inner, max_size=3),
    max_leaves=6,
)


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string for these characters
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {_toml_literal(v)}" for k, v in value.items()) + "}"


@st.composite
def project_file(draw: st.DrawFn) -> bytes:
    shape = draw(st.sampled_from(["text", "bytes", "stack", "other-keys"]))
    if shape == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    if shape == "bytes":
        return draw(st.binary(max_size=200))
    if shape == "stack":
        return f"stack = {_toml_literal(draw(TOML_VALUE))}\n".encode()
    keys = draw(st.dictionaries(st.from_regex(r"[a-z_]{1,10}", fullmatch=True), TOML_VALUE, max_size=4))
    return "".join(f"{key} = {_toml_literal(value)}\n" for key, value in keys.items()).encode()


PROJECT_DIR = Path(tempfile.mkdtemp(prefix="envdoctor-fuzz-toml-"))


@FUZZ
@given(project_file())
def test_any_envdoctor_toml_is_read_or_refused_in_one_line(content: bytes) -> None:
    (PROJECT_DIR / "envdoctor.toml").write_bytes(content)
    try:
        parsed: Any = tomllib.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        parsed = None
    code, out = _check(json.dumps(CPU_BASE), "--json", cwd=PROJECT_DIR)
    if parsed is None:
        assert code == 2, content
    elif "stack" not in parsed:
        assert "has no 'stack' key" in json.loads(out)["stack_reason"]
    elif isinstance(parsed["stack"], str) and parsed["stack"] in STACK_NAMES:
        assert json.loads(out)["stack"] == parsed["stack"]
    else:
        assert code == 2, content


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_envdoctor_toml_that_is_not_a_file_is_refused(kind: str, tmp_path: Path) -> None:
    project = tmp_path / "envdoctor.toml"
    project.mkdir() if kind == "directory" else os.mkfifo(project)
    code, out = _check(json.dumps(CPU_BASE), "--json", cwd=tmp_path)
    assert code == 2 and out == ""
