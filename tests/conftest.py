"""Shared test helpers: run the real CLI in a subprocess, find the example snapshots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "tests" / "data" / "snapshots"


def python_env(extra_path: list[Path] | None = None) -> dict[str, str]:
    """Environment for a child interpreter that imports this checkout's ``src``."""
    env = dict(os.environ)
    parts = [str(p) for p in (extra_path or [])] + [str(ROOT / "src")]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.pop("NO_COLOR", None)
    return env


def run_envdoctor(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m envdoctor ARGS`` as a real process; stdout/stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=python_env(), check=False,
    )


@pytest.fixture(autouse=True)
def _offline_unless_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """`envdoctor check --snapshot` reads PyPI for packages its tables lack; tests stay offline (and their results
    independent of PyPI's day) unless marked network."""
    if request.node.get_closest_marker("network") is None:
        monkeypatch.setenv("ENVDOCTOR_OFFLINE", "1")


@pytest.fixture
def snapshots_dir() -> Path:
    return SNAPSHOTS


@pytest.fixture(autouse=True, scope="session")
def _cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> object:
    """envdoctor caches parsed tables and fetched PyPI facts under $XDG_CACHE_HOME: a test run writes its own
    folder, never the user's ~/.cache, and starts from an empty cache (the child processes inherit it)."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before
