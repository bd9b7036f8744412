"""tools/gen_keyword_breaks.py on synthetic sources: the keywords a provider callable accepts (``__init__``
parameters, dataclass fields through base classes, ``**kwargs`` as "anything", ``@deprecate_kwarg`` old names, a
base of another provider) and the keywords an importer writes at calls of those callables (resolved through its
imports and aliases, ``super().__init__`` in subclasses; spreads and version switches left out)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
_spec = importlib.util.spec_from_file_location("gen_keyword_breaks", ROOT / "tools" / "gen_keyword_breaks.py")
assert _spec is not None and _spec.loader is not None
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_keyword_breaks"] = gen
_spec.loader.exec_module(gen)

TRL_INIT = "from .trainer import SFTTrainer, SFTConfig, DPOTrainer, DPOConfig, RewardTrainer\n"
TRL_TRAINER = '''
from dataclasses import dataclass, field
from typing import ClassVar
from transformers import Trainer, TrainingArguments
from transformers.utils.deprecation import deprecate_kwarg


@dataclass
class BaseConfig(TrainingArguments):
    dataset_text_field: str = "text"
    _private: int = field(init=False, default=0)
    registry: ClassVar[dict] = {}


@dataclass
class SFTConfig(BaseConfig):
    max_length: int = 1024


class SFTTrainer(Trainer):
    @deprecate_kwarg("tokenizer", "0.14.0", "processing_class")
    def __init__(self, model, args=None, *, processing_class=None, peft_config=None):
        super().__init__(model, args)


class DPOTrainer(Trainer):
    def __init__(self, model, beta=0.1, **kwargs):
        super().__init__(model, **kwargs)


class RewardTrainer(SFTTrainer):
    pass
'''


def _release(files: dict[str, str]) -> object:
    return gen.ProviderRelease("trl", files)


def test_a_trainer_takes_its_init_parameters_and_the_old_names_deprecate_kwarg_keeps() -> None:
    release = _release({"trl/__init__.py": TRL_INIT, "trl/trainer.py": TRL_TRAINER})
    accepted = release.accepted("SFTTrainer")
    assert accepted.keywords == {"model", "args", "processing_class", "peft_config", "tokenizer"}
    assert not accepted.open and accepted.is_class


def test_kwargs_means_anything_and_an_init_less_subclass_inherits_its_base() -> None:
    release = _release({"trl/__init__.py": TRL_INIT, "trl/trainer.py": TRL_TRAINER})
    assert release.accepted("DPOTrainer").open
    assert release.accepted("RewardTrainer").keywords == release.accepted("SFTTrainer").keywords


def test_a_dataclass_takes_its_fields_and_its_bases_and_names_a_base_of_another_provider() -> None:
    release = _release({"trl/__init__.py": TRL_INIT, "trl/trainer.py": TRL_TRAINER})
    config = release.accepted("SFTConfig")
    assert config.keywords == {"max_length", "dataset_text_field"}  # no init=False field, no ClassVar
    assert config.extends == (("transformers", "TrainingArguments"),) and not config.open


def test_a_callable_the_package_top_does_not_name_is_not_defined() -> None:
    release = _release({"trl/__init__.py": "from .trainer import SFTTrainer\n", "trl/trainer.py": TRL_TRAINER})
    assert release.accepted("DPOConfig") is None and release.accepted("DPOTrainer") is None


def test_a_function_takes_its_parameters() -> None:
    files = {"peft/__init__.py": "from .mapping import get_peft_model\n",
             "peft/mapping.py": "def get_peft_model(model, peft_config, adapter_name='default', *, mixed=False):\n"
                                "    pass\n"}
    accepted = gen.ProviderRelease("peft", files).accepted("get_peft_model")
    assert accepted.keywords == {"model", "peft_config", "adapter_name", "mixed"} and not accepted.is_class


IMPORTER = '''
import transformers as tf
from trl import SFTTrainer as T, SFTConfig
from peft import LoraConfig


def train(model, data, extra):
    config = SFTConfig(output_dir="out", max_seq_length=2048, **extra)
    trainer = T(model=model, args=config, tokenizer=data, dataset_text_field="text")
    args = tf.TrainingArguments(evaluation_strategy="steps")
    if is_peft_version_greater("0.10"):
        LoraConfig(use_dora=True)
    try:
        LoraConfig(use_rslora=True)
    except TypeError:
        LoraConfig(r=8)
    return trainer, args


class MyTrainer(tf.Trainer):
    def __init__(self, model, **kwargs):
        super().__init__(model=model, tokenizer=None, **kwargs)

    def other(self):
        super().other(tokenizer=None)
'''


def test_the_call_site_reader_resolves_aliases_and_subclasses_and_skips_spreads_and_switches() -> None:
    found = {(u.provider, u.callable, u.keyword) for u in gen.keyword_uses(IMPORTER, gen.TRACKED)}
    assert found == {
        ("trl", "SFTConfig", "output_dir"), ("trl", "SFTConfig", "max_seq_length"),
        ("trl", "SFTTrainer", "model"), ("trl", "SFTTrainer", "args"), ("trl", "SFTTrainer", "tokenizer"),
        ("trl", "SFTTrainer", "dataset_text_field"),
        ("transformers", "TrainingArguments", "evaluation_strategy"),
        ("peft", "LoraConfig", "r"),  # the handler runs when the try's call fails; the guarded calls are left out
        ("transformers", "Trainer", "model"), ("transformers", "Trainer", "tokenizer"),
    }


def test_a_file_that_does_not_import_a_provider_names_nothing() -> None:
    assert gen.keyword_uses("def f():\n    return SFTTrainer(max_seq_length=1)\n", gen.TRACKED) == []


def test_a_module_import_resolves_attribute_calls() -> None:
    text = "import trl\n\ntrl.DPOTrainer(model=1, beta=0.1)\n"
    assert [(u.callable, u.keyword) for u in gen.keyword_uses(text, gen.TRACKED)] == [("DPOTrainer", "model"),
                                                                                      ("DPOTrainer", "beta")]


def test_the_dump_is_valid_json_with_one_row_per_line() -> None:
    import json

    table = gen.document({"x": {"source": {}, "releases": ["1.0"], "unparsed": {}, "uses": [
        {"provider": "trl", "callable": "SFTTrainer", "keyword": "a", "where": "x/a.py:1", "releases": [["1.0", "1.0"]]}
    ]}}, {"trl": {"source": {}, "releases": ["1.0"], "callables": {"SFTTrainer": {
        "kind": "class", "defined": [["1.0", "1.0"]], "keywords": {"a": [["1.0", "1.0"]]}}}}}, "python x", "2026-12-06")
    text = gen.dump(table)
    assert json.loads(text) == table
    assert '        {"provider": "trl"' in text and '            "a": [["1.0", "1.0"]]' in text


@pytest.mark.network
def test_trl_0_12_takes_max_seq_length_and_1_0_does_not(tmp_path: Path) -> None:
    _, found = gen.wheels("trl", "2024-01-01")
    by_version = {w.version: w for w in found}
    old = gen.ProviderRelease("trl", dict(gen.wheel_files(by_version["0.12.0"], tmp_path, None, "trl/")))
    new = gen.ProviderRelease("trl", dict(gen.wheel_files(by_version["1.0.0"], tmp_path, None, "trl/")))
    assert "max_seq_length" in old.accepted("SFTTrainer").keywords
    assert "max_seq_length" not in new.accepted("SFTTrainer").keywords
    assert "max_seq_length" not in new.accepted("SFTConfig").keywords
