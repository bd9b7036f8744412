"""checker.drop_superseded: the indexed version keeps exactly what the definition keeps (checked against a
direct pairwise reading of it on random findings), and stays linear in the number of findings."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from envdoctor.checker import drop_superseded
from envdoctor.finding_ids import registry
from envdoctor.findings import Category, Finding, Severity

# Registered ids reported at several severities, so severity ranks matter; each with its registered category.
RULES = ("driver-too-old-for-torch-cuda", "gpu-arch-not-in-torch", "numpy2-abi-numpy1-build",
         "requires-python-excluded")
COMPONENTS = ("torch", "numpy", "rich", "trl")


def by_definition(findings: list[Finding], supersedes: dict[str, tuple[str, ...]]) -> list[Finding]:
    """Drop a finding when another verified finding, at least as severe, whose rule supersedes its rule, holds
    all of its components (quadratic: the definition, read literally)."""
    return [
        f for f in findings
        if not any(
            f.rule in supersedes.get(other.rule, ()) and other.verified
            and other.severity.rank >= f.severity.rank and set(f.components) <= set(other.components)
            for other in findings if other is not f
        )
    ]


finding = st.sampled_from(RULES).flatmap(lambda rule: st.builds(
    Finding,
    rule=st.just(rule),
    category=st.just(registry()[rule].categories[0]),
    severity=st.sampled_from(registry()[rule].severities),
    message=st.just("m"),
    components=st.lists(st.sampled_from(COMPONENTS), max_size=3).map(tuple),
    verified=st.booleans(),
))
supersession = st.dictionaries(st.sampled_from(RULES), st.lists(st.sampled_from(RULES), max_size=3).map(tuple))


@settings(max_examples=500, deadline=None)
@given(st.lists(finding, max_size=12), supersession)
def test_indexed_dedup_keeps_what_the_definition_keeps(findings: list[Finding],
                                                       supersedes: dict[str, tuple[str, ...]]) -> None:
    assert drop_superseded(findings, supersedes) == by_definition(findings, supersedes)


def test_duplicates_do_not_supersede_each_other_away() -> None:
    one = Finding("stack-requires", Category.VERSION, Severity.FAIL, "m", ("torch",))
    twin = Finding("stack-requires", Category.VERSION, Severity.FAIL, "m", ("torch",))
    table = {"stack-requires": ("stack-requires",)}
    assert drop_superseded([one, twin], table) == []  # each supersedes the other, as defined
    assert drop_superseded([one], table) == [one]  # never itself


def test_work_grows_linearly_with_the_findings() -> None:
    """The supersession table is consulted once per finding (building the index), not once per pair: with
    2,000 findings a pairwise reading asks it about 4 million times."""

    class CountingTable(dict):
        asked = 0

        def get(self, key, default=None):  # type: ignore[override]
            CountingTable.asked += 1
            return super().get(key, default)

    findings = [Finding("stack-missing", Category.MISSING, Severity.FAIL, "m", (f"pkg-{i}",)) for i in range(2_000)]
    findings.append(Finding("trl-undeclared-rich", Category.MISSING, Severity.FAIL, "m", ("pkg-7", "trl")))
    kept = drop_superseded(findings, CountingTable({"trl-undeclared-rich": ("stack-missing",)}))
    assert len(kept) == 2_000 and all(f.components != ("pkg-7",) for f in kept)
    assert CountingTable.asked <= 2 * len(findings)
