"""triton as a partner in matrices/import_floors.json, bitsandbytes and llama-recipes as importers: what the
generated table holds for them, and what it leaves out by the generator's rules.

bitsandbytes 0.41.0 to 0.45.0 import ``triton.ops.matmul_perf_model`` (which triton has up to 3.1.0 and lacks from
3.2.0) in the ``else`` of ``if not is_triton_available():`` in ``bitsandbytes/triton/*.py``, modules ``import
bitsandbytes`` loads. That block runs whenever triton is installed, which is when the check compares against triton:
the generator counts triton's imports and attribute chains there (its ``is_<x>_available()`` rule), so the table
records the need, and a bitsandbytes of those releases beside triton 3.2.0 fails. 0.45.1 no longer imports it.
llama-recipes has no ``llama_recipes/__init__.py``: ``import llama_recipes`` loads nothing, and its ``from peft
import prepare_model_for_int8_training`` (``llama_recipes/finetuning.py``) is not what the table covers."""

from __future__ import annotations

from envdoctor.import_floors import import_table

TABLE = import_table()
PERF_MODEL = "triton.ops.matmul_perf_model"


def test_triton_bitsandbytes_and_llama_recipes_are_in_the_table_as_the_generator_reads_them() -> None:
    assert TABLE is not None
    triton = TABLE.partner_releases["triton"]
    assert triton[0] == "2.0.0" and {"3.1.0", "3.2.0"} <= set(triton)
    releases = TABLE.importer_releases["bitsandbytes"]
    assert releases[0] == "0.41.0" and {"0.44.1", "0.45.0", "0.45.1"} <= set(releases)
    # what it takes at import from torch: torch.library.define from 0.46.0, which torch has from 1.13.0 on
    (define,) = [n for n in TABLE.needs_of("bitsandbytes", "0.46.0") if n.key == "torch.library:define"]
    assert define.access == "attribute" and TABLE.status(define, "1.13.0") == "present"
    assert not [n for n in TABLE.needs_of("bitsandbytes", "0.44.1") if n.key == "torch.library:define"]
    # llama-recipes is a namespace package: each need names the module whose import reaches it
    assert TABLE.importer_releases["llama-recipes"][0] == "0.0.1"
    needs = {n for release in TABLE.importer_releases["llama-recipes"]
             for n in TABLE.needs_of("llama-recipes", release)}
    assert needs and all(n.via.startswith("llama_recipes.") for n in needs)


def test_bitsandbytes_before_0_45_1_needs_triton_ops_which_triton_3_2_0_lacks() -> None:
    assert TABLE is not None
    needs = [n for n in TABLE.needs_of("bitsandbytes", "0.44.1") if n.module == PERF_MODEL]
    assert {n.name for n in needs} == {"early_config_prune", "estimate_matmul_time"}
    for need in needs:
        assert need.partner == "triton" and need.access == "import"
        assert need.file.startswith("bitsandbytes/triton/")
        assert TABLE.status(need, "3.1.0") == "present" and TABLE.status(need, "3.2.0") == "absent"
        assert TABLE.having(need)[-1] == "3.1.0"  # triton.ops went with 3.2.0
    # every release from 0.41.0 to 0.45.0 has it; 0.45.1 no longer does
    releases = TABLE.importer_releases["bitsandbytes"]
    before = [r for r in releases if releases.index(r) <= releases.index("0.45.0")]
    assert all(any(n.module == PERF_MODEL for n in TABLE.needs_of("bitsandbytes", r)) for r in before)
    assert not [n for n in TABLE.needs_of("bitsandbytes", "0.45.1") if n.module.startswith("triton.ops")]
    # the triton attributes the same block reads at import (decorators): triton.jit, which every triton has
    (jit,) = [n for n in TABLE.needs_of("bitsandbytes", "0.44.1") if n.key == "triton:jit"]
    assert jit.access == "attribute" and TABLE.status(jit, "3.2.0") == "present"


def test_the_triton_torch_pins_stands_in_for_an_unlisted_one(tmp_path) -> None:
    """pip installs the Triton torch 2.6.0 pins (3.2.0) beside it: an unverified failure, marked inferred."""
    from envdoctor.checker import run_check
    from envdoctor.snapshot import snapshot_from_dict

    def findings(packages: dict) -> list:
        snap = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"},
                                   "packages": packages})
        return [f for f in run_check(snap, cwd=tmp_path).findings if f.rule.startswith("import-name-missing")]

    (known,) = findings({"torch": {"version": "2.6.0"}, "bitsandbytes": {"version": "0.44.1"}})
    assert known.severity.value == "fail" and not known.verified and "what torch 2.6.0 pins" in known.message
    (unknown,) = findings({"torch": {"version": "2.6.0"}, "bitsandbytes": {"version": None}})
    assert unknown.rule == "import-name-missing-unknown-version" and not unknown.verified
    assert findings({"torch": {"version": "2.5.1"}, "bitsandbytes": {"version": "0.44.1"}}) == []  # triton 3.1.0
    assert findings({"torch": {"version": "2.6.0"}, "bitsandbytes": {"version": "0.45.1"}}) == []
