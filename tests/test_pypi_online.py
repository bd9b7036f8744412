"""Facts fetched from a package index for packages the bundled tables lack (envdoctor.pypi_online): a local HTTP
server plays the index (its JSON API and a wheel read by range requests); the network test asks PyPI itself."""

from __future__ import annotations

import functools
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_envdoctor
from envdoctor.checker import run_check
from envdoctor.pypi_facts import bundled_release_known, forget_fetched_facts, read_fetched_facts, release_facts
from envdoctor.pypi_online import fetch_missing_facts
from envdoctor.snapshot import snapshot_from_dict

METADATA = "Metadata-Version: 2.1\nName: demo-kernels\nVersion: 1.0\nRequires-Python: >=3.8\n" \
           "Requires-Dist: torch (==2.3.1)\nRequires-Dist: pytest ; extra == 'test'\n"


def wheel_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr("demo_kernels/__init__.py", "")
        wheel.writestr("demo_kernels-1.0.dist-info/METADATA", METADATA)
    return buffer.getvalue()


def index_document(base: str, size: int) -> dict:
    wheel = {"filename": "demo_kernels-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "packagetype": "bdist_wheel",
             "requires_python": ">=3.8", "size": size, "upload_time_iso_8601": "2024-06-07T10:00:00Z",
             "url": "../../files/demo_kernels-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",  # relative, as mirrors do
             "yanked": False}
    newer = dict(wheel, filename="demo_kernels-2.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                 upload_time_iso_8601="2025-01-07T10:00:00Z", url=f"{base}/files/none.whl")
    return {"info": {"version": "2.0", "requires_dist": ["torch>=2.5", "rich ; extra == 'cli'"]},
            "releases": {"1.0": [wheel], "2.0": [newer]}}


@pytest.fixture
def index(tmp_path: Path) -> Iterator[str]:
    """A package index on localhost: /pypi/demo-kernels/json and the 1.0 wheel; any other name is a 404."""
    served = tmp_path / "served"
    (served / "pypi" / "demo-kernels").mkdir(parents=True)
    (served / "files").mkdir()
    data = wheel_bytes()
    (served / "files" / "demo_kernels-1.0-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(data)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    (served / "pypi" / "demo-kernels" / "json").write_text(json.dumps(index_document(base, len(data))))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base + "/pypi/{name}/json"
    server.shutdown()
    forget_fetched_facts()


def snapshot(**packages: str | None):  # noqa: ANN201
    return snapshot_from_dict({"host": {"os": "linux", "arch": "x86_64"}, "python": {"version": "3.12.4"},
                               "packages": {name: {"version": v} for name, v in packages.items()}})


def test_a_package_the_tables_lack_is_judged_on_its_fetched_facts(index: str, tmp_path: Path) -> None:
    snap = snapshot(**{"demo-kernels": "1.0", "not-on-the-index": "0.1"})
    fetched = fetch_missing_facts(snap, bundled_release_known, tmp_path / "cache", index=index)
    assert fetched.fetched == ("demo-kernels",) and fetched.failed == {"not-on-the-index": "not on PyPI"}
    read_fetched_facts(fetched.folder, fetched.fetched, fetched.failed)
    release = release_facts("demo-kernels", "1.0")
    assert release is not None and release.requires == ("torch (==2.3.1)",)  # from the wheel, extras left out
    assert release_facts("demo-kernels", "2.0").requires == ("torch>=2.5",)  # the newest, from the index's info
    report = run_check(snap, cwd=tmp_path)
    rules = {f.rule: f for f in report.findings}
    assert "demo-kernels" in rules["no-wheel-for-python"].components  # cp311 only, Python 3.12 here
    assert rules["pypi-facts-fetched"].components == ("demo-kernels",)
    unavailable = rules["pypi-facts-unavailable"]
    assert unavailable.components == ("not-on-the-index",) and not unavailable.verified


def test_a_release_below_a_bundled_tables_floor_is_fetched(index: str, tmp_path: Path) -> None:
    """pandas' bundled table starts at 1.0; 0.25.3 (a made-up Requires-Python <3.8 here) comes from the index."""
    folder = tmp_path / "served" / "pypi" / "pandas"  # the fixture's index serves this folder
    folder.mkdir(parents=True)
    sdist = {"filename": "pandas-0.25.3.tar.gz", "packagetype": "sdist", "requires_python": ">=3.6,<3.8",
             "size": 1, "upload_time_iso_8601": "2019-06-18T09:13:03Z", "url": "x", "yanked": False}
    (folder / "json").write_text(json.dumps({"info": {"version": "2.3.3"}, "releases": {"0.25.3": [sdist]}}))
    snap = snapshot(pandas="0.25.3")
    assert not bundled_release_known("pandas", "0.25.3") and bundled_release_known("pandas", "1.0.0")
    fetched = fetch_missing_facts(snap, bundled_release_known, tmp_path / "cache", index=index)
    assert fetched.fetched == ("pandas",)
    read_fetched_facts(fetched.folder, fetched.fetched, fetched.failed)
    assert release_facts("pandas", "0.25.3").requires_python == ">=3.6,<3.8"
    assert release_facts("pandas", "1.0.0").date  # the bundled table still answers for its own releases
    excluded = [f for f in run_check(snap, cwd=tmp_path).findings if f.rule == "requires-python-excluded"]
    assert excluded and "pandas" in excluded[0].components


def test_the_cache_is_reused_and_a_dead_index_gives_unverified_facts(index: str, tmp_path: Path) -> None:
    snap = snapshot(**{"demo-kernels": "1.0"})
    cache = tmp_path / "cache"
    assert fetch_missing_facts(snap, lambda *_: False, cache, index=index).fetched == ("demo-kernels",)
    dead = "http://127.0.0.1:9/pypi/{name}/json"  # nothing listens on the discard port
    never = lambda *_: False  # noqa: E731
    assert fetch_missing_facts(snap, never, cache, index=dead).fetched == ("demo-kernels",)  # from the cache
    failed = fetch_missing_facts(snapshot(other="1.0"), never, cache, index=dead, total_timeout_s=5).failed
    assert failed["other"].startswith("PyPI not reachable")


def test_a_cache_that_cannot_be_written_is_named_as_such(index: str, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    failed = fetch_missing_facts(snapshot(**{"demo-kernels": "1.0"}), lambda *_: False, blocker / "pypi",
                                 index=index).failed
    assert failed["demo-kernels"].startswith("cannot write the cache (") and str(blocker) in failed["demo-kernels"]


def test_check_offline_reads_no_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"schema": "envdoctor.snapshot/1", "python": {"version": "3.12.4"},
                                "packages": {"demo-kernels": {"version": "1.0"}}}))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    result = run_envdoctor("check", "--snapshot", str(path), "--offline", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["findings"] is not None
    assert "pypi-facts" not in result.stdout and not (tmp_path / "xdg" / "envdoctor" / "pypi").exists()


@pytest.mark.network
def test_check_of_a_snapshot_reads_pypi_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """vllm-flash-attn is not in the bundled tables; 2.5.9.post1 has no CPython 3.12 wheel (bentoml/OpenLLM#1068)."""
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"},
                                "python": {"version": "3.12.3"},
                                "packages": {"vllm-flash-attn": {"version": "2.5.9.post1"}}}))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    findings = json.loads(run_envdoctor("check", "--snapshot", str(path), "--json").stdout)["findings"]
    rules = {f["rule"] for f in findings if "vllm-flash-attn" in f["components"]}
    assert {"pypi-facts-fetched", "no-wheel-for-python"} <= rules


def _serve_sdists(tmp_path: Path, name: str, releases: dict[str, tuple[str, str]]) -> None:
    """Release -> (Requires-Python, upload date) as the index's JSON lists them (sdists only)."""
    folder = tmp_path / "served" / "pypi" / name
    folder.mkdir(parents=True)
    files = {version: [{"filename": f"{name}-{version}.tar.gz", "packagetype": "sdist", "requires_python": python,
                        "size": 1, "upload_time_iso_8601": f"{date}T10:00:00Z", "url": "x", "yanked": False}]
             for version, (python, date) in releases.items()}
    newest = list(releases)[-1]
    (folder / "json").write_text(json.dumps({"info": {"version": newest}, "releases": files}))


def _python_findings(index: str, tmp_path: Path, python: str, **packages: str | None) -> list:
    snap = snapshot_from_dict({"host": {"os": "linux", "arch": "x86_64"}, "python": {"version": python},
                               "packages": {name: {"version": v} for name, v in packages.items()}})
    fetched = fetch_missing_facts(snap, bundled_release_known, tmp_path / "cache", index=index)
    read_fetched_facts(fetched.folder, fetched.fetched, fetched.failed)
    return [f for f in run_check(snap, cwd=tmp_path).findings if f.rule == "requires-python-excluded"]


def test_a_python_cap_added_later_warns_for_an_unknown_version(index: str, tmp_path: Path) -> None:
    """The releases that admit Python 3.12 predate the cap that excludes it (metagpt 0.8.1 -> 0.8.2 '<3.12')."""
    _serve_sdists(tmp_path, "capped-agents", {"0.8.1": (">=3.9", "2024-04-22"), "0.8.2": ("<3.12,>=3.9", "2025-03-09")})
    (capped,) = _python_findings(index, tmp_path, "3.12", **{"capped-agents": None})
    assert (capped.severity.value, capped.verified) == ("warn", False) and "the cap came after 0.8.1" in capped.message
    assert not _python_findings(index, tmp_path, "3.11", **{"capped-agents": None})


def test_a_floor_raised_later_is_only_information_for_an_unknown_version(index: str, tmp_path: Path) -> None:
    _serve_sdists(tmp_path, "floored-lib", {"1.0": (">=3.8", "2024-04-22"), "1.1": (">=3.9", "2024-06-01")})
    (floored,) = _python_findings(index, tmp_path, "3.8.10", **{"floored-lib": None})
    assert floored.severity.value == "info"


def test_a_build_older_than_the_first_upload_is_judged_on_every_release(index: str, tmp_path: Path) -> None:
    """unsloth 2024.1 (a git build) on Python 3.8: every upload since 2024.8 requires >=3.9."""
    _serve_sdists(tmp_path, "early-lib", {"2024.8": (">=3.9", "2024-08-04"), "2024.9": (">=3.9", "2024-09-16")})
    (early,) = _python_findings(index, tmp_path, "3.8.10", **{"early-lib": "2024.1"})
    assert (early.severity.value, early.verified) == ("warn", False) and "older than its first release" in early.message
    assert not _python_findings(index, tmp_path, "3.9.7", **{"early-lib": "2024.1"})


def test_the_installed_pre_releases_code_is_read_for_the_python_it_needs(index: str, tmp_path: Path) -> None:
    """A pure wheel that declares Requires-Python >=3.8 but evaluates ``list[str]`` at import (aibrix 0.1.0rc1):
    the installed release is read even as a pre-release, and on Python 3.8 its import fails."""
    served = tmp_path / "served"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr("typed_app/__init__.py", "def names() -> list[str]:\n    return []\n")
        wheel.writestr("typed_app-0.1.0rc1.dist-info/METADATA",
                       "Metadata-Version: 2.1\nName: typed-app\nVersion: 0.1.0rc1\nRequires-Python: >=3.8\n")
    (served / "files" / "typed_app-0.1.0rc1-py3-none-any.whl").write_bytes(buffer.getvalue())
    name = "typed_app-0.1.0rc1-py3-none-any.whl"
    files = [{"filename": name, "packagetype": "bdist_wheel", "requires_python": ">=3.8",
              "size": len(buffer.getvalue()), "yanked": False, "upload_time_iso_8601": "2024-09-10T10:00:00Z",
              "url": f"{index.split('/pypi/')[0]}/files/{name}"}]
    (served / "pypi" / "typed-app").mkdir()
    (served / "pypi" / "typed-app" / "json").write_text(json.dumps({"info": {"version": "0.1.0rc1"},
                                                                      "releases": {"0.1.0rc1": files}}))
    snap = snapshot_from_dict({"host": {"os": "linux", "arch": "x86_64"}, "python": {"version": "3.8.10"},
                               "packages": {"typed-app": {"version": "0.1.0rc1"}}})
    fetched = fetch_missing_facts(snap, bundled_release_known, tmp_path / "cache", index=index)
    read_fetched_facts(fetched.folder, fetched.fetched, fetched.failed)
    release = release_facts("typed-app", "0.1.0rc1")
    assert release is not None and (release.python_floor, release.python_floor_from) == ("3.9",
                                                                                         "typed_app/__init__.py:1")
    [finding] = [f for f in run_check(snap, cwd=tmp_path).findings if f.rule == "code-needs-newer-python"]
    assert finding.components == ("typed-app",) and "Python 3.9" in finding.message


def _serve_pure_wheel(index: str, tmp_path: Path, name: str, version: str, modules: dict[str, str]) -> None:
    """One release of ``name`` on the local index: a pure-Python wheel holding ``modules`` (path -> text)."""
    served = tmp_path / "served"
    buffer = io.BytesIO()
    dist = name.replace("-", "_")
    with zipfile.ZipFile(buffer, "w") as wheel:
        for path, text in modules.items():
            wheel.writestr(path, text)
        wheel.writestr(f"{dist}-{version}.dist-info/METADATA",
                       f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Dist: numpy\n")
    filename = f"{dist}-{version}-py3-none-any.whl"
    (served / "files" / filename).write_bytes(buffer.getvalue())
    files = [{"filename": filename, "packagetype": "bdist_wheel", "requires_python": ">=3.8",
              "size": len(buffer.getvalue()), "yanked": False, "upload_time_iso_8601": "2024-05-10T10:00:00Z",
              "url": f"{index.split('/pypi/')[0]}/files/{filename}"}]
    (served / "pypi" / name).mkdir()
    (served / "pypi" / name / "json").write_text(json.dumps({"info": {"version": version},
                                                             "releases": {version: files}}))


def _numpy_findings(index: str, tmp_path: Path, **packages: str | None) -> list:
    snap = snapshot_from_dict({"host": {"os": "linux", "arch": "x86_64"}, "python": {"version": "3.11"},
                               "packages": {name: {"version": v} for name, v in packages.items()}})
    fetched = fetch_missing_facts(snap, bundled_release_known, tmp_path / "cache", index=index)
    read_fetched_facts(fetched.folder, fetched.fetched, fetched.failed)
    return [f for f in run_check(snap, cwd=tmp_path).findings if f.rule.startswith("numpy-removed-name")]


def test_a_package_the_tables_lack_is_read_for_removed_numpy_names(index: str, tmp_path: Path) -> None:
    """A pure wheel whose module assigns ``np.float_`` at import (chromadb 0.5.0's types.py), beside NumPy 2.0: the
    installed release, or the newest when the version is unknown, is read for the names NumPy removed."""
    _serve_pure_wheel(index, tmp_path, "vector-store", "0.5.0", {
        "vector_store/__init__.py": "import numpy as np\nFloat = np.float_\n",
        "vector_store/tests/test_it.py": "import numpy as np\nnp.NaN\n"})
    [used] = _numpy_findings(index, tmp_path, **{"vector-store": "0.5.0", "numpy": "2.0.0"})
    assert used.rule == "numpy-removed-name-used" and used.severity.value == "fail" and used.verified
    assert "np.float_" in used.message and "NaN" not in used.message  # tests are not shipped code
    assert not _numpy_findings(index, tmp_path, **{"vector-store": "0.5.0", "numpy": "1.26.4"})
    forget_fetched_facts()
    [unknown] = _numpy_findings(index, tmp_path, **{"vector-store": None, "numpy": "2.0.0"})
    assert not unknown.verified and unknown.rule == "numpy-removed-name-unknown-version"


def _stdlib_findings(index: str, tmp_path: Path, python: str, **packages: str | None) -> list:
    snap = snapshot_from_dict({"host": {"os": "linux", "arch": "x86_64"}, "python": {"version": python},
                               "packages": {name: {"version": v} for name, v in packages.items()}})
    fetched = fetch_missing_facts(snap, bundled_release_known, tmp_path / "cache", index=index)
    read_fetched_facts(fetched.folder, fetched.fetched, fetched.failed)
    return [f for f in run_check(snap, cwd=tmp_path).findings if f.rule.startswith("stdlib-removed-module")]


def test_a_package_the_tables_lack_is_read_for_removed_stdlib_modules(index: str, tmp_path: Path) -> None:
    """A pure wheel that imports ``imp`` at import and ``audioop`` in a function: on Python 3.12 the import fails
    (``imp``); on 3.13 ``audioop`` is gone too; on 3.11 nothing is missing. A guarded import counts for nothing."""
    _serve_pure_wheel(index, tmp_path, "brain-tools", "1.2.0", {
        "brain_tools/__init__.py": "import imp\ntry:\n    import asyncore\nexcept ImportError:\n    asyncore = None\n",
        "brain_tools/sound.py": "def level(data):\n    import audioop\n    return audioop.rms(data, 2)\n"})
    [on_312] = _stdlib_findings(index, tmp_path, "3.12", **{"brain-tools": "1.2.0"})
    assert on_312.rule == "stdlib-removed-module-imported" and on_312.severity.value == "fail" and on_312.verified
    assert "imp (removed in Python 3.12)" in on_312.message and "asyncore" not in on_312.message
    assert "brain_tools/__init__.py:1" in on_312.message
    forget_fetched_facts()
    [on_313] = _stdlib_findings(index, tmp_path, "3.13", **{"brain-tools": "1.2.0"})
    assert "audioop (removed in Python 3.13)" in on_313.message
    forget_fetched_facts()
    assert not _stdlib_findings(index, tmp_path, "3.11", **{"brain-tools": "1.2.0"})
    forget_fetched_facts()
    [unknown] = _stdlib_findings(index, tmp_path, "3.12", **{"brain-tools": None})
    assert unknown.rule == "stdlib-removed-module-unknown-version" and not unknown.verified


def test_a_cached_document_of_another_facts_format_is_fetched_again(index: str, tmp_path: Path) -> None:
    _serve_pure_wheel(index, tmp_path, "brain-tools", "1.2.0", {"brain_tools/__init__.py": "import imp\n"})
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "brain-tools.json").write_text(json.dumps({
        "package": "brain-tools", "generator": "envdoctor check --online", "generated": "2026-12-07",
        "source": {}, "floor": None, "requires_only": False,
        "releases": {"1.2.0": {"date": "2024-05-10", "requires_python": None, "yanked": False, "requires": [],
                               "wheels": ["py3-any"]}}}))
    assert _stdlib_findings(index, tmp_path, "3.12", **{"brain-tools": "1.2.0"})
