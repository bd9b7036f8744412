"""Score envdoctor's diagnoses on the real cases under tests/cases/: the diagnosis rate per class.

Each case is one JSON file (see tests/cases/README.md): a snapshot written from a public issue thread, and the
findings a correct diagnosis must contain (``expect``: ``[[accepted categories], component]`` pairs, at warn or
fail). A case is diagnosed when every expected pair is matched by one finding.

    python tools/score_cases.py                      # every case, a table per class
    python tools/score_cases.py tests/cases/driver   # one class
    python tools/score_cases.py --misses             # also list what each missed case got
    python tools/score_cases.py --check-floor        # exit 1 when a rate is below tests/cases/floor.json
    python tools/score_cases.py --verified-only      # findings with verified: false do not count
    python tools/score_cases.py --online             # as `envdoctor check --snapshot` runs: packages the bundled
                                                     # tables lack get their facts from PyPI first
    python tools/score_cases.py --gpu-names-only     # each GPU that has a name loses its compute capability, as
                                                     # nvidia-smi's default output and most threads give GPUs
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from envdoctor.checker import run_check  # noqa: E402
from envdoctor.findings import Finding, Report, Severity  # noqa: E402
from envdoctor.matrices import MatrixError  # noqa: E402
from envdoctor.pypi_facts import (  # noqa: E402
    bundled_release_known,
    forget_fetched_facts,
    known_packages,
    read_fetched_facts,
)
from envdoctor.pypi_online import fetch_missing_facts  # noqa: E402
from envdoctor.snapshot import SnapshotError, normalize_name, snapshot_from_dict  # noqa: E402

CASES = REPO / "tests" / "cases"
FLOOR = CASES / "floor.json"
JUDGED = (Severity.WARN, Severity.FAIL)


@dataclass(frozen=True)
class CaseResult:
    path: Path
    case_class: str
    diagnosed: bool
    missing: tuple[str, ...]  # the expected pairs no finding matched
    got: tuple[str, ...]  # the findings at warn or fail, as "category/rule(components)"
    error: str | None = None  # the snapshot or stack was refused


def case_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.rglob("*.json")) if path.is_dir() else [path])
    return [f for f in files if f.name != FLOOR.name]


def matches(finding: Finding, categories: list[str], component: str | None, verified_only: bool = False) -> bool:
    return (finding.severity in JUDGED and finding.category.value in categories
            and (component is None or normalize_name(component) in {normalize_name(c) for c in finding.components})
            and (finding.verified or not verified_only))


def score_case(path: Path, online: bool = False, verified_only: bool = False,
               gpu_names_only: bool = False) -> CaseResult:
    case = json.loads(path.read_text(encoding="utf-8"))
    case_class = case.get("class") or path.parent.name
    if gpu_names_only:
        case["snapshot"] = names_only(case["snapshot"])
    try:
        snapshot = snapshot_from_dict(case["snapshot"], origin=str(path))
        forget_fetched_facts()  # each case as its own `envdoctor check` process: nothing fetched for another
        if online:
            fetched = fetch_missing_facts(snapshot, bundled_release_known, tabled=frozenset(known_packages()))
            read_fetched_facts(fetched.folder, fetched.fetched, fetched.failed)
        with tempfile.TemporaryDirectory() as empty:  # no envdoctor.toml from the current directory
            report: Report = run_check(snapshot, stack=case.get("stack"), cwd=Path(empty))
    except (SnapshotError, MatrixError) as error:
        return CaseResult(path, case_class, False, (), (), error=str(error))
    missing = tuple(
        f"{'/'.join(categories)}:{component}" for categories, component in case["expect"]
        if not any(matches(f, categories, component, verified_only) for f in report.findings)
    )
    got = tuple(f"{f.category.value}/{f.rule}({','.join(f.components)})" for f in report.findings
                if f.severity in JUDGED)
    return CaseResult(path, case_class, not missing, missing, got)


def names_only(snapshot: object) -> object:
    """The snapshot with the compute capability of each GPU that has a name taken out (a copy)."""
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("nvidia"), dict) \
            or not isinstance(snapshot["nvidia"].get("gpus"), list):
        return snapshot
    gpus = [{k: v for k, v in gpu.items() if k != "compute_capability"} if isinstance(gpu, dict) and gpu.get("name")
            else gpu for gpu in snapshot["nvidia"]["gpus"]]
    return {**snapshot, "nvidia": {**snapshot["nvidia"], "gpus": gpus}}


def rates(results: list[CaseResult]) -> dict[str, tuple[int, int]]:
    """class -> (diagnosed, cases), plus 'all'."""
    table: dict[str, tuple[int, int]] = {}
    for result in results:
        hit, total = table.get(result.case_class, (0, 0))
        table[result.case_class] = (hit + result.diagnosed, total + 1)
    table["all"] = (sum(r.diagnosed for r in results), len(results))
    return table


def markdown_table(results: list[CaseResult]) -> str:
    """Per class: all cases, and the held-out ones (collected after the rules were written) apart."""
    held = [r for r in results if _heldout(r.path)]
    every, apart = rates(results), rates(held)
    lines = ["| class | cases | diagnosed | rate | held-out cases | held-out diagnosed |", "|---|---|---|---|---|---|"]
    for name in sorted(every, key=lambda n: (n == "all", n)):
        hit, total = every[name]
        held_hit, held_total = apart.get(name, (0, 0))
        lines.append(f"| {name} | {total} | {hit} | {hit / total:.0%} | {held_total} | {held_hit} |")
    return "\n".join(lines)


def _heldout(path: Path) -> bool:
    return bool(json.loads(path.read_text(encoding="utf-8")).get("heldout"))


def below_floor(table: dict[str, tuple[int, int]], floor: dict[str, float]) -> list[str]:
    return [f"{name}: {hit}/{total} = {hit / total:.0%} < floor {floor[name]:.0%}"
            for name, (hit, total) in table.items() if name in floor and total and hit / total < floor[name]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[CASES])
    parser.add_argument("--misses", action="store_true", help="list each missed case with what it got")
    parser.add_argument("--check-floor", action="store_true", help=f"exit 1 below the rates in {FLOOR}")
    parser.add_argument("--markdown", action="store_true", help="the table as Markdown, with held-out cases apart")
    parser.add_argument("--online", action="store_true", help="fetch PyPI facts of packages the tables lack first")
    parser.add_argument("--verified-only", action="store_true",
                        help="count only findings with verified: true (an unknown fact's warning does not count)")
    parser.add_argument("--gpu-names-only", action="store_true",
                        help="take the compute capability out of every GPU that has a name (nvidia-smi's default)")
    args = parser.parse_args(argv)
    results = [score_case(path, args.online, args.verified_only, args.gpu_names_only)
               for path in case_files(args.paths)]
    table = rates(results)
    if args.markdown:
        print(markdown_table(results))
    else:
        print(f"{'class':<12} {'cases':>5} {'diagnosed':>9} {'rate':>6}")
        for name, (hit, total) in sorted(table.items(), key=lambda item: (item[0] == "all", item[0])):
            print(f"{name:<12} {total:>5} {hit:>9} {hit / total if total else 0:>6.0%}")
    if args.misses:
        for result in results:
            if not result.diagnosed:
                print(f"\nMISS {result.path.relative_to(REPO) if result.path.is_relative_to(REPO) else result.path}")
                print(f"  expected: {', '.join(result.missing) or '-'}")
                print(f"  refused:  {result.error}" if result.error else f"  got: {'; '.join(result.got) or '-'}")
    if args.check_floor:
        problems = below_floor(table, json.loads(FLOOR.read_text(encoding="utf-8")))
        for line in problems:
            print(f"below floor: {line}", file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
