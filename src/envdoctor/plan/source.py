"""What the plan's check step installs into the target environment when that environment lacks envdoctor.

The script's last step runs ``envdoctor check`` with the target interpreter (envdoctor checks the interpreter it
runs in), so that environment needs envdoctor too. A plan runs on another machine, so nothing local to the machine
that wrote it is named: a VCS install gives ``envdoctor @ git+URL@commit`` and a wheel from an http(s) URL gives
that URL; a checkout, a local wheel or an ordinary install give the release, ``envdoctor==VERSION``. The script's
``ENVDOCTOR_SOURCE`` overrides it.
"""

from __future__ import annotations

import json
from importlib import metadata

import envdoctor


def envdoctor_source() -> str:
    """``envdoctor @ git+URL@commit``, ``envdoctor @ https://...whl`` or ``envdoctor==VERSION``."""
    release = f"envdoctor=={envdoctor.__version__}"
    try:
        distribution = metadata.distribution("envdoctor")
    except metadata.PackageNotFoundError:
        return release
    return _from_direct_url(distribution.read_text("direct_url.json")) or release


def _from_direct_url(text: str | None) -> str | None:
    """PEP 610 direct_url.json -> a requirement that any machine can install; None for a local path."""
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return None
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://", "ssh://")):
        return None
    vcs = data.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("commit_id"):
        return f"envdoctor @ {vcs.get('vcs', 'git')}+{url}@{vcs['commit_id']}"
    return None if isinstance(data.get("dir_info"), dict) else f"envdoctor @ {url}"
