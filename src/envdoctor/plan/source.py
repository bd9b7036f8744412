"""Where the running envdoctor came from, as something pip can install into the plan's target environment.

The script's last step runs ``envdoctor check`` with the target interpreter (envdoctor checks the interpreter it
runs in), so that environment needs envdoctor too: from the same checkout, wheel, VCS commit or release.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

import envdoctor


def envdoctor_source() -> str:
    """A checkout path, a wheel path or URL, ``git+URL@commit``, or ``envdoctor==VERSION`` (a PyPI release)."""
    checkout = _checkout_root(Path(envdoctor.__file__).resolve())
    if checkout is not None:
        return str(checkout)
    try:
        distribution = metadata.distribution("envdoctor")
    except metadata.PackageNotFoundError:
        return f"envdoctor=={envdoctor.__version__}"
    return _from_direct_url(distribution.read_text("direct_url.json")) or f"envdoctor=={distribution.version}"


def _checkout_root(module_file: Path) -> Path | None:
    """The source checkout (src layout) that ``envdoctor/__init__.py`` lives in; None when installed."""
    root = module_file.parent.parent.parent
    is_checkout = (root / "pyproject.toml").is_file() and module_file.parent.parent.name == "src"
    return root if is_checkout else None


def _from_direct_url(text: str | None) -> str | None:
    """PEP 610 direct_url.json -> a pip requirement for the same artifact; None when not a direct install."""
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return None
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str) or not url:
        return None
    vcs = data.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("commit_id"):
        return f"envdoctor @ {vcs.get('vcs', 'git')}+{url}@{vcs['commit_id']}"
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" else f"envdoctor @ {url}"
