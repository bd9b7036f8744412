"""The light Requires-Dist reader must decide exactly as packaging does."""

from __future__ import annotations

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from envdoctor.checks.declared import marker_applies, parse_declared

ENV = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
       "os_name": "posix", "extra": ""}

LINES = [
    "numpy>=1.17",
    "numpy (>=1.17,<2)",
    "torch==2.3.1; platform_system == 'Linux' and platform_machine == 'x86_64'",
    "triton==2.3.1 ; platform_system == \"Linux\" and platform_machine == \"x86_64\" and python_version < \"3.12\"",
    "importlib-metadata; python_version < '3.8'",
    "tomli>=1.1.0; python_version < '3.11'",
    "tomli>=1.1.0; python_version <= '3.11'",
    "exceptiongroup; python_version < '3.11' or sys_platform == 'win32'",
    "pywin32; sys_platform == 'win32'",
    "colorama; os_name == 'nt'",
    "uvloop; 'linux' in sys_platform",
    "xformers @ https://download.pytorch.org/whl/cu121/xformers-0.0.27-cp311-cp311-linux_x86_64.whl",
    "fsspec[http]<=2024.3.1,>=2023.1.0",
    "nvidia-cublas-cu12==12.1.3.1; platform_system == 'Linux' and (platform_machine == 'x86_64' or "
    "platform_machine == 'aarch64')",
    "dataclasses; python_full_version < '3.7.0'",
    "numpy<2.6,>=2.0",
    "typing-extensions>=4.10.0; python_version ~= '3.10'",
]


@pytest.mark.parametrize("line", LINES)
def test_same_name_specifier_and_decision_as_packaging(line: str) -> None:
    reference = Requirement(line)
    mine = parse_declared(line)
    assert mine is not None
    assert mine.name == reference.name
    assert mine.specifier == ("" if reference.url else str(reference.specifier)) or \
        set(mine.specifier.split(",")) == set(str(reference.specifier).split(","))
    expected = True if reference.marker is None else reference.marker.evaluate(ENV)
    assert marker_applies(mine.marker, ENV) is expected


@pytest.mark.parametrize("python", ["3.9", "3.10", "3.11", "3.12", "3.13"])
def test_python_version_comparisons_are_versions_not_strings(python: str) -> None:
    env = {**ENV, "python_version": python, "python_full_version": f"{python}.1"}
    for marker in ("python_version < '3.10'", "python_version >= '3.9'", "python_full_version > '3.10.0'"):
        assert marker_applies(marker, env) is Marker(marker).evaluate(env)


@pytest.mark.parametrize("marker", ["sys_platform != 'emscripten'", 'platform_system == "Windows"',
                                    "sys_platform == 'emscripten' and python_version >= '3.12'",
                                    'platform_machine == "x86_64" or platform_machine == "aarch64"'])
def test_flat_markers_take_the_fast_path(marker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """String comparisons (== and !=) never fall back to packaging.markers, whose import costs the check ~50 ms."""
    from envdoctor.checks import declared

    def fallback(marker: str, environment: dict[str, str]) -> bool:
        raise AssertionError(f"fell back to packaging for {marker!r}")

    monkeypatch.setattr(declared, "_packaging_applies", fallback)
    assert marker_applies(marker, ENV) is Marker(marker).evaluate(ENV)
