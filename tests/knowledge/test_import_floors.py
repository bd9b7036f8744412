"""The bundled import table (matrices/import_floors.json) and the check over it: a release that imports a name the
installed partner lacks fails, naming the module, the name, the partner releases that have it and a fix; an
unknown importer version whose newest releases all break warns, inferred; a pair api_breaks.toml judges is left to
it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.findings import Severity
from envdoctor.import_floors import import_table, validate_import_floors
from envdoctor.matrices import Matrices, MatrixError, default_root, load_matrices
from envdoctor.snapshot import snapshot_from_dict
from envdoctor.table_validation import validate_matrices

TABLE = import_table()
RULES = ("import-name-missing", "import-name-missing-unknown-version")


def _findings(tmp_path: Path, packages: dict[str, str | None], rules: tuple[str, ...] = RULES,
              matrices: Matrices | None = None) -> list:
    snapshot = snapshot_from_dict({
        "schema": "envdoctor.snapshot/1",
        "host": {"os": "linux", "arch": "x86_64"},
        "python": {"version": "3.11.9"},
        "packages": {name: {"version": version} for name, version in packages.items()},
    })
    report = run_check(snapshot, stack=None, cwd=tmp_path, matrices=matrices)
    return [f for f in report.findings if f.rule in rules]


def _needs(importer: str, release: str, key: str) -> list:
    assert TABLE is not None
    return [n for n in TABLE.needs_of(importer, release) if n.key == key]


def test_the_bundled_table_loads_is_valid_and_covers_every_importer_and_partner() -> None:
    assert TABLE is not None and validate_import_floors() == []
    assert {"peft", "trl", "diffusers", "accelerate", "sentence-transformers", "rfdetr", "auto-gptq", "autoawq",
            "vllm", "unsloth", "datasets", "flagembedding"} <= set(TABLE.importer_releases)
    assert {"transformers", "huggingface-hub", "accelerate"} <= set(TABLE.partner_releases)
    assert TABLE.partner_releases["transformers"][0] == "4.26.0"
    assert len(TABLE.partner_releases["transformers"]) > 100
    assert all(TABLE.needs[name] for name in ("peft", "trl", "diffusers", "sentence-transformers"))


def test_the_table_has_the_facts_of_the_known_breaks() -> None:
    assert TABLE is not None
    (storage,) = _needs("peft", "0.6.1", "transformers.pytorch_utils:id_tensor_storage")
    assert TABLE.status(storage, "4.28.1") == "absent" and TABLE.status(storage, "4.30.0") == "present"
    (layers,) = _needs("peft", "0.18.0", "transformers.modeling_layers:GradientCheckpointingLayer")
    assert TABLE.status(layers, "4.51.3") == "absent"
    (download,) = _needs("diffusers", "0.28.2", "huggingface_hub:cached_download")
    assert TABLE.status(download, "0.25.2") == "present" and TABLE.status(download, "0.26.0") == "absent"
    assert not _needs("diffusers", "0.29.0", "huggingface_hub:cached_download")


def test_peft_0_6_1_with_transformers_4_28_1_fails_on_id_tensor_storage(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, {"peft": "0.6.1", "transformers": "4.28.1"})
    assert finding.rule == "import-name-missing" and finding.severity is Severity.FAIL and finding.verified
    assert finding.category.value == "version" and finding.components == ("peft", "transformers")
    assert "id_tensor_storage from transformers.pytorch_utils" in finding.message
    assert "transformers 4.28.1 lacks" in finding.message and "peft/peft_model.py" in finding.message
    assert "pip install" in (finding.fix or "") and "transformers>=" in (finding.fix or "")
    assert "peft==" in (finding.fix or "")  # or the nearest peft release whose imports 4.28.1 meets


def test_peft_0_18_with_transformers_4_51_3_fails_on_modeling_layers(tmp_path: Path) -> None:
    found = _findings(tmp_path, {"peft": "0.18.0", "transformers": "4.51.3"})
    assert [f.rule for f in found] == ["import-name-missing"]
    assert "transformers.modeling_layers" in found[0].message


def test_old_peft_with_transformers_5_fails_on_a_removed_name(tmp_path: Path) -> None:
    assert TABLE is not None
    (hybrid,) = _needs("peft", "0.17.1", "transformers:HybridCache")
    assert TABLE.status(hybrid, "4.57.1") == "present" and TABLE.status(hybrid, "5.0.0") == "absent"
    (finding,) = _findings(tmp_path, {"peft": "0.17.1", "transformers": "5.0.0"})
    assert "HybridCache from transformers" in finding.message and "transformers 5.0.0 lacks" in finding.message
    assert 'transformers>=4.44.0,<5.0.0"' in (finding.fix or "") and 'peft==0.18.0"' in (finding.fix or "")


def test_rfdetr_1_4_with_transformers_5_fails_on_a_removed_pytorch_utils_helper(tmp_path: Path) -> None:
    assert TABLE is not None
    (prune,) = _needs("rfdetr", "1.4.0", "transformers.pytorch_utils:find_pruneable_heads_and_indices")
    assert TABLE.status(prune, "4.57.1") == "present" and TABLE.status(prune, "5.0.0") == "absent"
    assert not _needs("rfdetr", "1.6.0", "transformers.pytorch_utils:find_pruneable_heads_and_indices")
    (finding,) = _findings(tmp_path, {"rfdetr": "1.4.0", "transformers": "5.0.0"})
    assert finding.rule == "import-name-missing" and finding.components == ("rfdetr", "transformers")
    assert "find_pruneable_heads_and_indices from transformers.pytorch_utils" in finding.message
    assert "`import rfdetr` fails" in finding.message and 'transformers<5.0.0"' in (finding.fix or "")
    assert _findings(tmp_path, {"rfdetr": "1.4.0", "transformers": "4.57.1"}) == []


def test_the_message_names_the_import_name_not_the_distribution(tmp_path: Path) -> None:
    assert TABLE is not None
    (init,) = _needs("auto-gptq", "0.7.1", "transformers.modeling_utils:no_init_weights")
    assert TABLE.status(init, "5.0.0") == "absent" and init.file.startswith("auto_gptq/")
    (finding,) = _findings(tmp_path, {"auto-gptq": "0.7.1", "transformers": "5.0.0"})
    assert "`import auto_gptq` fails" in finding.message and "no_init_weights" in finding.message
    (cache,) = _needs("flagembedding", "1.4.2", "transformers.cache_utils:Cache")
    assert TABLE.status(cache, "4.35.2") == "absent" and TABLE.status(cache, "4.36.0") == "present"
    (finding,) = _findings(tmp_path, {"flagembedding": "1.4.2", "transformers": "4.35.2"})
    assert "`import FlagEmbedding` fails" in finding.message and 'transformers>=4.36.0' in (finding.fix or "")


def test_a_local_build_tag_is_matched_and_only_the_tables_release_is_quoted(tmp_path: Path) -> None:
    (finding,) = _findings(tmp_path, {"peft": "0.6.1", "transformers": "4.28.1+cu118"})
    assert "transformers 4.28.1 lacks" in finding.message and "+cu118" not in finding.message


def test_a_pair_api_breaks_judges_is_left_to_it(tmp_path: Path) -> None:
    found = _findings(tmp_path, {"diffusers": "0.28.2", "huggingface-hub": "0.26.0"},
                      rules=(*RULES, "api-break"))
    assert [f.rule for f in found] == ["api-break"]


def test_a_declared_conflict_is_left_to_the_declared_requirements_check(tmp_path: Path) -> None:
    assert TABLE is not None
    (revision,) = _needs("diffusers", "0.42.1", "huggingface_hub:resolve_revision")
    assert TABLE.status(revision, "0.30.0") == "absent"  # but diffusers 0.42.1 declares huggingface-hub>=1.32.0
    found = _findings(tmp_path, {"diffusers": "0.42.1", "huggingface-hub": "0.30.0"},
                      rules=(*RULES, "declared-requirement-conflict"))
    assert [f.rule for f in found] == ["declared-requirement-conflict"]


@pytest.mark.parametrize("packages", [
    {"peft": "0.6.1", "transformers": "4.35.0"},  # the partner has every name
    {"peft": "0.21.2", "transformers": None},  # unknown partner, a floor long before the importer's release
    {"peft": "0.0.1", "transformers": "4.28.1"},  # a release the table does not cover
    {"peft": "0.6.1"},  # no partner installed
])
def test_nothing_is_said_without_a_missing_name(tmp_path: Path, packages: dict[str, str | None]) -> None:
    assert _findings(tmp_path, packages) == []


def _matrices_with(tmp_path: Path, change: Callable[[dict], None]) -> Matrices:
    """The bundled matrices with ``change`` applied to a copy of import_floors.json."""
    root = tmp_path / "matrices"
    shutil.copytree(default_root(), root)
    document = json.loads((root / "import_floors.json").read_text())
    change(document)
    (root / "import_floors.json").write_text(json.dumps(document))
    return load_matrices(root)


def _newest_peft_needs_modeling_layers(document: dict) -> None:
    for need in document["importers"]["peft"]["needs"]:
        if need["module"] == "transformers.modeling_layers":
            need["releases"] = [["0.18.0", document["importers"]["peft"]["releases"][-1]]]


def test_an_unknown_importer_version_warns_inferred_when_its_newest_releases_break(tmp_path: Path) -> None:
    matrices = _matrices_with(tmp_path, _newest_peft_needs_modeling_layers)
    found = _findings(tmp_path, {"peft": None, "transformers": "4.51.3"}, matrices=matrices)
    assert [f.rule for f in found] == ["import-name-missing-unknown-version"]
    finding = found[0]
    assert finding.severity is Severity.WARN and not finding.verified and "(inferred, not verified)" in finding.message
    assert "releases 0.18.0 to" in finding.message and "transformers 4.51.3 lacks" in finding.message
    assert 'transformers>=4.52.0"' in (finding.fix or "") and 'peft<0.18.0"' in (finding.fix or "")
    # with peft's version known, a release before the break is fine
    assert _findings(tmp_path, {"peft": "0.17.1", "transformers": "4.51.3"}, matrices=matrices) == []


def test_an_unknown_importer_version_warns_for_a_run_of_releases_made_around_the_partner(tmp_path: Path) -> None:
    # only peft 0.18.0 (2025-11, after transformers 4.51.3) imports transformers.modeling_layers at import
    found = _findings(tmp_path, {"peft": None, "transformers": "4.51.3"})
    assert [f.rule for f in found] == ["import-name-missing-unknown-version"]
    assert "its release 0.18.0 imports from transformers" in found[0].message and not found[0].verified
    assert 'peft>=0.18.1"' in (found[0].fix or "")
    # peft 0.16.0 to 0.17.1 import transformers' HybridCache, which 5.x lacks: 9 months before 5.9.0, a warning
    found = _findings(tmp_path, {"peft": None, "transformers": "5.9.0"})
    assert [f.rule for f in found] == ["import-name-missing-unknown-version"]
    assert "releases 0.16.0 to 0.17.1 each import" in found[0].message
    assert 'peft>=0.18.0"' in (found[0].fix or "")


def test_an_unknown_importer_version_is_silent_for_releases_long_before_the_partner(tmp_path: Path) -> None:
    # the same peft releases beside transformers 5.25.0 (2026-12-01): over a year older, no warning
    assert _findings(tmp_path, {"peft": None, "transformers": "5.25.0"}) == []


def test_an_unknown_importer_version_is_silent_when_the_newest_release_works(tmp_path: Path) -> None:
    assert TABLE is not None
    newest = TABLE.partner_releases["transformers"][-1]
    assert _findings(tmp_path, {"peft": None, "transformers": newest}) == []


def test_a_malformed_table_is_one_error_per_key(tmp_path: Path) -> None:
    bundled = json.loads((Path(__file__).resolve().parents[2] / "matrices" / "import_floors.json").read_text())
    bundled["importers"]["peft"]["needs"][0]["releases"] = [["9.9.9", "0.3.0"]]
    bundled["generated"] = "today"
    (tmp_path / "import_floors.json").write_text(json.dumps(bundled))
    errors = validate_import_floors(tmp_path)
    assert any("import_floors.json: generated" in e for e in errors)
    assert any("importers.peft.needs[0].releases[0]" in e for e in errors)
    assert any("import_floors.json" in e for e in validate_matrices(tmp_path))
    with pytest.raises(MatrixError, match="importers.peft.needs"):
        import_table(tmp_path)
    with pytest.raises(MatrixError, match="importers.peft.needs"):  # the entries a check reads are checked too
        import_table(tmp_path, ["peft", "accelerate"])
    bundled["generated"] = "2026-12-07"
    (tmp_path / "import_floors.json").write_text(json.dumps(bundled))
    assert import_table(tmp_path, ["accelerate"]) is not None  # peft's entry is not read when peft is absent


def test_a_check_reads_only_the_installed_packages_entries() -> None:
    """The entries of packages not installed are neither read nor checked; the needs on a partner that is not
    installed are left out; what is read is what the whole table holds for those packages."""
    part = import_table(None, ["peft", "transformers"])
    assert part is not None and set(part.importer_releases) <= {"peft", "transformers", "triton"}
    assert set(part.partner_releases) <= {"peft", "transformers", "triton"}
    assert all(need.partner in {"peft", "transformers", "triton"} for need in part.needs_of("peft", "0.6.1"))
    whole = [need for need in TABLE.needs_of("peft", "0.6.1") if need.partner == "transformers"]
    assert [need for need in part.needs_of("peft", "0.6.1") if need.partner == "transformers"] == whole


def _torch_table(document: dict) -> None:
    """An importer whose 2.0.0 reads torch.xpu at import, beside torch releases of which only 2.4.0 has it."""
    torch = ["2.0.1", "2.3.1", "2.4.0"]
    document["importers"] = {"xpu-reader": {
        "source": {}, "floor": "1.0.0", "releases": ["1.0.0", "2.0.0"], "unparsed": {},
        "needs": [{"partner": "torch", "module": "torch", "name": "xpu", "file": "xpu_reader/utils.py",
                   "access": "attribute", "releases": [["2.0.0", "2.0.0"]]},
                  {"partner": "torch", "module": "torch.xpu", "name": "empty_cache", "file": "xpu_reader/utils.py",
                   "access": "attribute", "releases": [["2.0.0", "2.0.0"]]},
                  {"partner": "torch", "module": "torch.optim.lr_scheduler", "name": "LRScheduler",
                   "file": "xpu_reader/train.py", "releases": [["1.0.0", "2.0.0"]]}]}}
    document["providers"] = {"torch": {
        "source": {"url": "https://pypi.org/pypi/torch/json", "newest_release": "2.4.0"}, "floor": "2.0.1",
        "releases": torch, "names": {"torch:xpu": {"present": [["2.4.0", "2.4.0"]]},
                                     "torch.xpu:empty_cache": {"present": [["2.4.0", "2.4.0"]]},
                                     "torch.optim.lr_scheduler:LRScheduler": {"present": [["2.0.1", "2.4.0"]],
                                                                              "unknown": []}}}}


def test_an_attribute_torch_lacks_fails_with_the_attribute_error_local_tag_and_all(tmp_path: Path) -> None:
    matrices = _matrices_with(tmp_path, _torch_table)
    (finding,) = _findings(tmp_path, {"xpu-reader": "2.0.0", "torch": "2.0.1+cu118"}, matrices=matrices)
    assert finding.rule == "import-name-missing" and finding.verified and finding.components == ("xpu-reader", "torch")
    assert "xpu-reader 2.0.0 reads torch.xpu, torch.xpu.empty_cache when it is imported" in finding.message
    assert "torch 2.0.1 lacks" in finding.message and "+cu118" not in finding.message
    assert finding.message.endswith("AttributeError: module 'torch' has no attribute 'xpu'")
    assert 'torch>=2.4.0"' in (finding.fix or "") and 'xpu-reader==1.0.0"' in (finding.fix or "")
    assert _findings(tmp_path, {"xpu-reader": "2.0.0", "torch": "2.4.0+cu121"}, matrices=matrices) == []
    assert _findings(tmp_path, {"xpu-reader": "2.0.0", "torch": None}, matrices=matrices) == []


def test_an_unknown_importer_version_beside_an_old_torch_warns_inferred(tmp_path: Path) -> None:
    matrices = _matrices_with(tmp_path, _torch_table)
    (finding,) = _findings(tmp_path, {"xpu-reader": None, "torch": "2.3.1"}, matrices=matrices)
    assert finding.rule == "import-name-missing-unknown-version" and not finding.verified
    assert "AttributeError: module 'torch' has no attribute 'xpu'" in finding.message


def test_a_bad_access_is_one_error(tmp_path: Path) -> None:
    def bad(document: dict) -> None:
        _torch_table(document)
        document["importers"]["xpu-reader"]["needs"][0]["access"] = "call"

    root = tmp_path / "m"
    root.mkdir()
    document: dict = {"generator": "g", "command": "c", "generated": "2026-12-06", "what": "w"}
    bad(document)
    (root / "import_floors.json").write_text(json.dumps(document))
    errors = validate_import_floors(root)
    assert len(errors) == 1 and "importers.xpu-reader.needs[0].access" in errors[0] and "'call'" in errors[0]


def test_a_known_importer_beside_a_partner_of_unknown_version(tmp_path: Path) -> None:
    """peft 0.18.0 (2025-11-13) imports transformers.modeling_layers, which transformers has only from 4.52.0
    (2025-05-20) and peft does not require: an older transformers set up before is likely (inferred)."""
    [finding] = _findings(tmp_path, {"peft": "0.18.0", "transformers": None})
    assert finding.components == ("peft", "transformers") and finding.verified is False
    assert "only from 4.52.0" in finding.message and finding.fix == 'pip install "transformers>=4.52.0"'
    # peft 0.6.1 and id_tensor_storage (transformers 4.30.0, 154 days before it); a version that is not PEP 440
    # is an unknown one
    for partner in (None, "not a version"):
        [older] = _findings(tmp_path, {"peft": "0.6.1", "transformers": partner})
        assert "id_tensor_storage" in older.message and "only from 4.30.0" in older.message


def _storage_need(document: dict, **extra: str) -> None:
    for need in document["importers"]["peft"]["needs"]:
        if need["module"] == "transformers.pytorch_utils" and need["name"] == "id_tensor_storage":
            need.update(extra)


def test_a_need_of_a_namespace_module_warns_naming_that_module(tmp_path: Path) -> None:
    matrices = _matrices_with(tmp_path, lambda document: _storage_need(document, via="peft.tuners"))
    (finding,) = _findings(tmp_path, {"peft": "0.6.1", "transformers": "4.28.1"}, matrices=matrices)
    assert finding.rule == "import-name-missing" and finding.severity is Severity.WARN and finding.verified
    assert "when peft.tuners is imported" in finding.message and "`import peft.tuners` fails" in finding.message


def test_a_need_that_runs_beside_another_partner_counts_only_where_that_one_is_installed(tmp_path: Path) -> None:
    matrices = _matrices_with(tmp_path, lambda document: _storage_need(document, when="torch"))
    assert _findings(tmp_path, {"peft": "0.6.1", "transformers": "4.28.1"}, matrices=matrices) == []
    (finding,) = _findings(tmp_path, {"peft": "0.6.1", "transformers": "4.28.1", "torch": "2.1.2"},
                           matrices=matrices)
    assert finding.severity is Severity.FAIL and "id_tensor_storage" in finding.message


@pytest.mark.parametrize(("key", "value"), [("via", "not a module!"), ("when", "numpy")])
def test_a_bad_via_or_when_is_one_error(tmp_path: Path, key: str, value: str) -> None:
    document = json.loads((default_root() / "import_floors.json").read_text())
    _storage_need(document, **{key: value})
    root = tmp_path / "m"
    root.mkdir()
    (root / "import_floors.json").write_text(json.dumps(document))
    errors = validate_import_floors(root)
    assert len(errors) == 1 and f".{key}" in errors[0] and repr(value) in errors[0]


def test_a_namespace_package_run_as_a_module_warns_on_the_name_its_module_imports(tmp_path: Path) -> None:
    """llama-recipes has no __init__.py; `python -m llama_recipes.finetuning` imports peft's
    prepare_model_for_int8_training, which peft 0.10.0 removed."""
    (finding,) = _findings(tmp_path, {"llama-recipes": "0.0.1", "peft": "0.10.0"})
    assert finding.severity is Severity.WARN and finding.components == ("llama-recipes", "peft")
    assert "prepare_model_for_int8_training from peft when llama_recipes.finetuning is imported" in finding.message
    assert "`import llama_recipes.finetuning` fails" in finding.message
    assert _findings(tmp_path, {"llama-recipes": "0.0.1", "peft": "0.9.0"}) == []


def test_jinja2_2_11_with_markupsafe_2_1_fails_on_soft_unicode(tmp_path: Path) -> None:
    """The table is not only the ML stack: MarkupSafe 2.1.0 removed soft_unicode, which Jinja2 before 3.0 imports."""
    (finding,) = _findings(tmp_path, {"jinja2": "2.11.3", "markupsafe": "2.1.0"})
    assert finding.severity is Severity.FAIL and finding.components == ("jinja2", "markupsafe")
    assert "soft_unicode from markupsafe" in finding.message and "`import jinja2` fails" in finding.message
    assert 'markupsafe<2.1.0"' in (finding.fix or "")
    assert _findings(tmp_path, {"jinja2": "2.11.3", "markupsafe": "2.0.1"}) == []
    assert _findings(tmp_path, {"jinja2": "3.1.4", "markupsafe": "2.1.0"}) == []
