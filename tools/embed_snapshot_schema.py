"""Copy src/envdoctor/schemas/snapshot.json into report.json's ``$defs.snapshot``, so the report schema is whole
on its own (its ``snapshot`` field refers to the embedded copy by ``$id``).

Run after editing snapshot.json: ``python tools/embed_snapshot_schema.py``. tests/test_schemas.py fails while the
copy differs.
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent.parent / "src" / "envdoctor" / "schemas"


def main() -> None:
    snapshot = json.loads((SCHEMAS / "snapshot.json").read_text(encoding="utf-8"))
    report_path = SCHEMAS / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    report["$defs"]["snapshot"] = snapshot
    report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {report_path}")


if __name__ == "__main__":
    main()
