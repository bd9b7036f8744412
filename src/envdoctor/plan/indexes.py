"""The package indexes the user configured, as pip and uv would see them: what ``--verify`` probes and resolves against.

Read, in rising precedence: pip's configuration files (``[global]``, then ``[install]``), ``PIP_CONFIG_FILE``,
then the environment (``PIP_INDEX_URL`` / ``UV_INDEX_URL`` / ``UV_DEFAULT_INDEX``, ``PIP_EXTRA_INDEX_URL`` /
``UV_EXTRA_INDEX_URL`` / ``UV_INDEX``, ``PIP_FIND_LINKS`` / ``UV_FIND_LINKS``). Nothing is configured: PyPI.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PYPI_SIMPLE = "https://pypi.org/simple"
_KEYS = {"index-url": "index_url", "extra-index-url": "extra_index_urls", "find-links": "find_links"}
_ENV = (  # (environment variable, field); later entries win for the primary index
    ("PIP_INDEX_URL", "index_url"), ("UV_INDEX_URL", "index_url"), ("UV_DEFAULT_INDEX", "index_url"),
    ("PIP_EXTRA_INDEX_URL", "extra_index_urls"), ("UV_EXTRA_INDEX_URL", "extra_index_urls"),
    ("UV_INDEX", "extra_index_urls"), ("PIP_FIND_LINKS", "find_links"), ("UV_FIND_LINKS", "find_links"),
)


@dataclass(frozen=True)
class IndexConfig:
    """The primary index, the extra indexes and find-links locations, and where the primary one was set."""

    index_url: str = PYPI_SIMPLE
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    origin: str = "default"  # "PIP_INDEX_URL", "/etc/pip.conf", ... or "default"

    @property
    def host(self) -> str:
        """``pypi.org`` for https://pypi.org/simple; the path for a file:// index."""
        rest = self.index_url.split("://", 1)[-1]
        return rest if self.index_url.startswith("file:") else rest.split("/", 1)[0]


def pip_config_files(environ: Mapping[str, str]) -> list[Path]:
    """pip's configuration files in the order pip reads them (a later file overrides an earlier one); none when
    ``PIP_CONFIG_FILE`` is the null device, as in pip."""
    if environ.get("PIP_CONFIG_FILE") == os.devnull:
        return []
    xdg_dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    home = Path(environ.get("HOME") or Path.home())
    xdg_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs.split(os.pathsep) if d]
    files += [Path("/etc/pip.conf"), home / ".pip" / "pip.conf", xdg_home / "pip" / "pip.conf",
              Path(sys.prefix) / "pip.conf"]
    if environ.get("PIP_CONFIG_FILE"):
        files.append(Path(environ["PIP_CONFIG_FILE"]))
    return files


def configured_indexes(environ: Mapping[str, str] | None = None, files: list[Path] | None = None) -> IndexConfig:
    """The indexes pip and uv would use here; unreadable or invalid configuration files are skipped."""
    environ = os.environ if environ is None else environ
    values: dict[str, tuple[str, ...]] = {}
    origin = "default"
    for path in pip_config_files(environ) if files is None else files:
        for key, value in _read_config(path).items():
            values[_KEYS[key]] = tuple(value.split())
            if key == "index-url":
                origin = str(path)
    for variable, name in _ENV:
        if environ.get(variable, "").strip():
            values[name] = tuple(environ[variable].split())
            if name == "index_url":
                origin = variable
    primary = values.get("index_url", ())
    return IndexConfig(
        index_url=primary[0] if primary else PYPI_SIMPLE,
        extra_index_urls=tuple(dict.fromkeys(values.get("extra_index_urls", ()))),
        find_links=tuple(dict.fromkeys(values.get("find_links", ()))),
        origin=origin if primary else "default",
    )


def _read_config(path: Path) -> dict[str, str]:
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return {}
    found: dict[str, str] = {}
    for section in ("global", "install"):
        if parser.has_section(section):
            found.update({k: v for k, v in parser.items(section) if k in _KEYS and v.strip()})
    return found
