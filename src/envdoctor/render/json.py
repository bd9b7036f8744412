"""``--json``: the report as ``envdoctor.report/1`` JSON."""

from __future__ import annotations

import json

from envdoctor.findings import Report
from envdoctor.untrusted import json_escape_invisible


def render_json(report: Report, ascii_only: bool = False) -> str:
    """``Report.to_dict()`` with indent 2 and a trailing newline; control and invisible format characters (bidi
    overrides...) are always ``\\u`` escapes, and every non-ASCII character too when ``ascii_only``."""
    return json_escape_invisible(json.dumps(report.to_dict(), indent=2, ensure_ascii=ascii_only)) + "\n"
