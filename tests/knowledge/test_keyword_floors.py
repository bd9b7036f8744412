"""The keyword table (matrices/keyword_floors.json) and the check over it: an importer release that passes a keyword
the installed provider release does not accept fails with the TypeError and a fix; a provider of unknown version
warns, inferred, only when the newest release the importer admits lacks the keyword; ``**kwargs`` and a base class of
another provider that may take the keyword give nothing; a malformed table is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from envdoctor.checker import run_check
from envdoctor.findings import Severity
from envdoctor.keyword_floors import keyword_table, validate_keyword_floors
from envdoctor.matrices import Matrices, MatrixError, default_root, load_matrices
from envdoctor.snapshot import snapshot_from_dict

RULES = ("keyword-missing", "keyword-missing-unknown-version")


def _table() -> dict[str, Any]:
    """A small table: demo releases 1.0 and 2.0 pass max_seq_length to SFTTrainer (2.0 also tokenizer to
    Trainer; 2.0 declares trl<0.13.0); trl 0.8 to 0.12 take it, 0.13 and 1.0 do not; trl's SFTConfig extends
    transformers' TrainingArguments."""
    return {
        "generator": "tools/gen_keyword_breaks.py", "command": "python tools/gen_keyword_breaks.py",
        "generated": "2026-12-06", "what": "test",
        "importers": {"demo": {
            "source": {"url": "https://pypi.org/pypi/demo/json", "newest_release": "3.0"},
            "releases": ["1.0", "2.0", "3.0"], "unparsed": {},
            "requires": {"trl": {"<0.13.0": [["2.0", "2.0"]], "": [["3.0", "3.0"]]}},
            "uses": [
                {"provider": "trl", "callable": "SFTTrainer", "keyword": "max_seq_length", "where": "demo/t.py:9",
                 "releases": [["1.0", "2.0"]]},
                {"provider": "trl", "callable": "SFTConfig", "keyword": "max_length", "where": "demo/t.py:5",
                 "releases": [["3.0", "3.0"]]},
                {"provider": "trl", "callable": "SFTConfig", "keyword": "evaluation_strategy",
                 "where": "demo/t.py:6", "releases": [["3.0", "3.0"]]},
                {"provider": "transformers", "callable": "Trainer", "keyword": "tokenizer", "where": "demo/u.py:3",
                 "releases": [["2.0", "2.0"]]},
            ]}},
        "providers": {
            "trl": {"source": {"url": "https://pypi.org/pypi/trl/json", "newest_release": "1.0.0"},
                    "releases": ["0.8.0", "0.12.0", "0.13.0", "1.0.0"],
                    "callables": {
                        "SFTTrainer": {"kind": "class", "defined": [["0.8.0", "1.0.0"]],
                                       "keywords": {"max_seq_length": [["0.8.0", "0.12.0"]]}},
                        "SFTConfig": {"kind": "class", "defined": [["0.12.0", "1.0.0"]],
                                      "extends": {"transformers:TrainingArguments": [["0.12.0", "1.0.0"]]},
                                      "keywords": {"max_length": [["0.13.0", "1.0.0"]]}}}},
            "transformers": {"source": {"url": "https://pypi.org/pypi/transformers/json"},
                             "releases": ["4.40.0", "4.46.0", "5.0.0"],
                             "callables": {
                                 "Trainer": {"kind": "class", "defined": [["4.40.0", "5.0.0"]],
                                             "keywords": {"tokenizer": [["4.40.0", "4.46.0"]]}},
                                 "TrainingArguments": {"kind": "class", "defined": [["4.40.0", "5.0.0"]],
                                                       "open": [["4.40.0", "4.40.0"]],
                                                       "keywords": {"evaluation_strategy": [["4.46.0", "4.46.0"]]}}}},
        },
    }


def _matrices(tmp_path: Path, table: dict[str, Any] | str) -> Matrices:
    root = tmp_path / "matrices"
    shutil.copytree(default_root(), root)
    (root / "keyword_floors.json").write_text(table if isinstance(table, str) else json.dumps(table))
    return load_matrices(root)


def _findings(tmp_path: Path, packages: dict[str, str | None], matrices: Matrices | None) -> list:
    snapshot = snapshot_from_dict({
        "schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"},
        "python": {"version": "3.11.9"},
        "packages": {name: {"version": version} for name, version in packages.items()},
    })
    report = run_check(snapshot, stack=None, cwd=tmp_path, matrices=matrices)
    return [f for f in report.findings if f.rule in RULES]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Matrices:
    return _matrices(tmp_path_factory.mktemp("kw"), _table())


def test_a_keyword_the_installed_provider_lacks_fails_with_the_typeerror_and_both_fixes(
        tmp_path: Path, synthetic: Matrices) -> None:
    (finding,) = _findings(tmp_path, {"demo": "1.0", "trl": "0.13.0", "transformers": "4.46.0"}, synthetic)
    assert finding.rule == "keyword-missing" and finding.severity is Severity.FAIL and finding.verified
    assert finding.components == ("demo", "trl") and finding.category.value == "version"
    assert "TypeError: SFTTrainer.__init__() got an unexpected keyword argument 'max_seq_length'" in finding.message
    assert "demo/t.py:9" in finding.message and "trl 0.8.0 to 0.12.0 accept max_seq_length" in finding.message
    # demo 2.0 declares trl<0.13.0; 3.0's keywords are all taken by trl 0.13.0 and transformers 4.46.0
    assert finding.fix == 'pip install "trl<0.13.0"   # or: pip install "demo==3.0"'


def test_a_provider_that_accepts_every_keyword_gives_nothing(tmp_path: Path, synthetic: Matrices) -> None:
    assert _findings(tmp_path, {"demo": "1.0", "trl": "0.12.0"}, synthetic) == []


def test_a_base_of_another_provider_is_judged_at_its_installed_release(tmp_path: Path, synthetic: Matrices) -> None:
    assert _findings(tmp_path, {"demo": "3.0", "trl": "1.0.0", "transformers": "4.46.0"}, synthetic) == []
    (finding,) = _findings(tmp_path, {"demo": "3.0", "trl": "1.0.0", "transformers": "5.0.0"}, synthetic)
    assert "evaluation_strategy" in finding.message and "SFTConfig.__init__()" in finding.message


def test_kwargs_in_the_base_and_an_unknown_base_release_give_nothing(tmp_path: Path, synthetic: Matrices) -> None:
    assert _findings(tmp_path, {"demo": "3.0", "trl": "1.0.0", "transformers": "4.40.0"}, synthetic) == []
    # transformers installed without a version: some release of the base takes the keyword, so unknown
    assert _findings(tmp_path, {"demo": "3.0", "trl": "1.0.0", "transformers": None}, synthetic) == []


def test_an_unknown_provider_version_warns_when_the_newest_release_lacks_the_keyword(
        tmp_path: Path, synthetic: Matrices) -> None:
    (finding,) = _findings(tmp_path, {"demo": "1.0", "trl": None}, synthetic)
    assert finding.rule == "keyword-missing-unknown-version" and not finding.verified
    assert finding.severity is Severity.WARN and "trl 1.0.0 (the newest release" in finding.message
    assert "trl<0.13.0" in (finding.fix or "")


def test_a_declared_cap_picks_the_release_pip_chose_and_a_declared_conflict_is_left_to_its_check(
        tmp_path: Path, synthetic: Matrices) -> None:
    # demo 2.0 declares trl<0.13.0: pip chose 0.12.0, which takes max_seq_length; transformers is not capped
    (finding,) = _findings(tmp_path, {"demo": "2.0", "trl": None, "transformers": None}, synthetic)
    assert finding.components == ("demo", "transformers") and "Trainer.__init__()" in finding.message
    assert _findings(tmp_path, {"demo": "2.0", "trl": "1.0.0"}, synthetic) == []


def test_both_versions_unknown_or_a_release_outside_the_table_gives_nothing(
        tmp_path: Path, synthetic: Matrices) -> None:
    assert _findings(tmp_path, {"demo": None, "trl": None}, synthetic) == []
    assert _findings(tmp_path, {"demo": "1.0", "trl": "0.20.0"}, synthetic) == []
    assert _findings(tmp_path, {"demo": None, "trl": "1.0.0", "transformers": "4.46.0"}, synthetic) == []


@pytest.mark.parametrize(("change", "key"), [
    (lambda t: t.update(generated="yesterday"), "generated"),
    (lambda t: t["providers"]["trl"]["callables"]["SFTTrainer"].update(kind="method"), "callables.SFTTrainer"),
    (lambda t: t["importers"]["demo"]["uses"][0].update(callable="Nope"), "uses[0].callable"),
    (lambda t: t["importers"]["demo"]["uses"][0].update(releases=[["1.0", "9.9"]]), "uses[0].releases[0]"),
    (lambda t: t["importers"]["demo"]["requires"].update(trl={"=>1": [["1.0", "1.0"]]}), "requires.trl"),
])
def test_a_malformed_table_is_one_line_naming_the_key(tmp_path: Path, change: Any, key: str) -> None:
    table = _table()
    change(table)
    root = _matrices(tmp_path, table).root
    problems = validate_keyword_floors(root)
    assert problems and key in problems[0]
    with pytest.raises(MatrixError) as raised:
        keyword_table(root)
    assert "\n" not in str(raised.value) and "keyword_floors.json" in str(raised.value)


def test_unreadable_json_is_one_line_naming_the_generator(tmp_path: Path) -> None:
    root = _matrices(tmp_path, "{not json").root
    with pytest.raises(MatrixError, match="gen_keyword_breaks.py"):
        keyword_table(root)


# --- the bundled table (real releases, read from their wheels) --------------------------------------------


BUNDLED = keyword_table()


def test_the_bundled_table_is_valid_and_covers_the_providers() -> None:
    assert BUNDLED is not None and validate_keyword_floors() == []
    assert {"trl", "transformers", "peft", "accelerate"} <= set(BUNDLED.provider_releases)
    assert {"instructlab", "llamafactory", "trl", "sentence-transformers"} <= set(BUNDLED.importer_releases)
    sft = BUNDLED.callables["trl"]["SFTTrainer"]
    assert "0.12.0" in sft.keywords["max_seq_length"] and "0.13.0" not in sft.keywords["max_seq_length"]
    args = BUNDLED.callables["transformers"]["TrainingArguments"]
    assert "4.50.3" in args.keywords["evaluation_strategy"] and "4.51.0" not in args.keywords["evaluation_strategy"]
    lora = BUNDLED.callables["peft"]["LoraConfig"]
    assert "0.8.2" not in lora.keywords["use_dora"] and "0.9.0" in lora.keywords["use_dora"]
    assert not lora.extends  # PushToHubMixin holds no fields: not a base the check consults


def test_instructlab_0_21_2_with_trl_0_13_fails_on_max_seq_length(tmp_path: Path) -> None:
    # instructlab 0.21.2 declares trl>=0.9.4; its linux_train.py passes max_seq_length= to SFTTrainer, which trl
    # 0.12.2 takes and 0.13.0 does not (it moved to SFTConfig)
    found = _findings(tmp_path, {"instructlab": "0.21.2", "trl": "0.13.0", "transformers": "4.46.3"}, None)
    (finding,) = [f for f in found if f.components == ("instructlab", "trl")]
    assert finding.rule == "keyword-missing" and "'max_seq_length'" in finding.message
    assert "SFTTrainer.__init__()" in finding.message and "instructlab/train/linux_train.py" in finding.message
    assert (finding.fix or "").startswith('pip install "trl>=0.9.4,<0.13.0"')


def test_trl_0_11_with_transformers_5_fails_on_the_tokenizer_it_passes_to_trainer(tmp_path: Path) -> None:
    found = [f for f in _findings(tmp_path, {"trl": "0.11.4", "transformers": "5.0.0"}, None)
             if f.components == ("trl", "transformers")]
    assert [f.rule for f in found] == ["keyword-missing"]
    assert "TypeError: Trainer.__init__() got an unexpected keyword argument 'tokenizer'" in found[0].message
    assert _findings(tmp_path, {"trl": "0.11.4", "transformers": "4.46.0"}, None) == []


def test_an_unknown_importer_version_is_judged_as_its_newest_release(tmp_path: Path, synthetic: Matrices) -> None:
    # demo is not in the bundled PyPI tables: the table's newest release, 3.0, is taken as the newest
    (finding,) = _findings(tmp_path, {"demo": None, "trl": "1.0.0", "transformers": "5.0.0"}, synthetic)
    assert finding.rule == "keyword-missing-unknown-version" and not finding.verified
    assert finding.message.startswith("demo is installed with an unknown version; its newest release 3.0 passes")
    assert "evaluation_strategy" in finding.message and "transformers" not in finding.components


def test_a_check_reads_only_the_installed_packages_entries() -> None:
    """The entries of packages not installed are neither read nor checked, the uses of a provider not installed are
    left out, and what is read is what the whole table holds for the installed packages."""
    part = keyword_table(None, ["llamafactory", "trl"])
    assert part is not None and set(part.importer_releases) <= {"llamafactory", "trl"}
    assert set(part.provider_releases) <= {"llamafactory", "trl"}
    assert part.uses["llamafactory"] == tuple(use for use in BUNDLED.uses["llamafactory"] if use.provider == "trl")
    assert part.callables["trl"] == BUNDLED.callables["trl"]
