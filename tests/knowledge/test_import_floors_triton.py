"""triton as a partner in matrices/import_floors.json, bitsandbytes and llama-recipes as importers: what the
generated table holds for them, and what it leaves out by the generator's rules.

bitsandbytes 0.41.0 to 0.45.0 import ``triton.ops.matmul_perf_model`` (which triton has up to 3.1.0 and lacks from
3.2.0) only in the ``else`` of ``if not is_triton_available():`` in ``bitsandbytes/triton/*.py``; the generator
counts no import under an ``if`` (its ``is_<x>_available()`` rule covers attribute chains in the body of a bare
``if is_<x>_available():`` only), so the table records no triton name for them. llama-recipes has no
``llama_recipes/__init__.py``: ``import llama_recipes`` loads nothing, and its ``from peft import
prepare_model_for_int8_training`` (``llama_recipes/finetuning.py``) is not what the table covers."""

from __future__ import annotations

from envdoctor.import_floors import import_table

TABLE = import_table()


def test_triton_bitsandbytes_and_llama_recipes_are_in_the_table_as_the_generator_reads_them() -> None:
    assert TABLE is not None
    triton = TABLE.partner_releases["triton"]
    assert triton[0] == "2.0.0" and {"3.1.0", "3.2.0"} <= set(triton)
    releases = TABLE.importer_releases["bitsandbytes"]
    assert releases[0] == "0.41.0" and {"0.44.1", "0.45.0", "0.45.1"} <= set(releases)
    # the guarded triton.ops import of 0.44.1 is left out: bitsandbytes takes nothing from triton at import
    assert all(need.partner != "triton" for release in releases for need in TABLE.needs_of("bitsandbytes", release))
    # what it does take at import, from torch: torch.library.define from 0.46.0, which torch has from 1.13.0 on
    (define,) = [n for n in TABLE.needs_of("bitsandbytes", "0.46.0") if n.key == "torch.library:define"]
    assert define.access == "attribute" and TABLE.status(define, "1.13.0") == "present"
    assert not [n for n in TABLE.needs_of("bitsandbytes", "0.44.1") if n.key == "torch.library:define"]
    assert TABLE.importer_releases["llama-recipes"][0] == "0.0.1"
    assert not [n for release in TABLE.importer_releases["llama-recipes"]
                for n in TABLE.needs_of("llama-recipes", release)]
