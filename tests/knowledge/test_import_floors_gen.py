"""tools/gen_import_floors.py on small git repositories built here: which imports count (the closure of the
package's own module-level imports from its __init__, guarded ones left out), and how a partner release is read
(bound names, lazy structures, star imports; unknown where a structure is built at run time)."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gen_import_floors", ROOT / "tools" / "gen_import_floors.py")
assert _spec is not None and _spec.loader is not None
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_import_floors"] = gen
_spec.loader.exec_module(gen)


def _repo(tmp_path: Path, name: str, tags: dict[str, dict[str, str]]) -> Path:
    """A git repository under ``tmp_path/<owner>+<name>`` with one commit and tag per entry of ``tags``."""
    work = tmp_path / f"huggingface+{name}"
    work.mkdir()

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(work), *args], check=True, capture_output=True,
                       env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                            "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})

    git("init", "-q")
    for tag, files in tags.items():
        for old in work.glob("src"):
            subprocess.run(["rm", "-rf", str(old)], check=True)
        for path, text in files.items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git("add", "-A")
        git("commit", "-q", "--allow-empty", "-m", tag)
        git("tag", tag)
    return work / ".git"


PEFT_FILES = {
    "src/peft/__init__.py": (
        "from typing import TYPE_CHECKING\n"
        "from .peft_model import PeftModel\n"
        "from . import utils\n"
        "if TYPE_CHECKING:\n    from transformers import GuardedByTypeChecking\n"
        "try:\n    from transformers import GuardedByTry\nexcept ImportError:\n    pass\n"
        "def later():\n    from transformers import InsideFunction\n"
    ),
    "src/peft/peft_model.py": (
        "import torch\n"
        "import transformers.modeling_layers\n"
        "from transformers.pytorch_utils import id_tensor_storage\n"
        "from .utils.other import helper\n"
        "if is_bnb_available():\n    from transformers import GuardedByAvailability\n"
        "class PeftModel:\n    from transformers import InsideClass\n"
    ),
    "src/peft/utils/__init__.py": "",
    "src/peft/utils/other.py": "from huggingface_hub import cached_download\nhelper = 1\n",
    "src/peft/never_imported.py": "from transformers import NotLoaded\n",
}


def test_the_closure_follows_module_level_imports_and_leaves_guarded_ones_out(tmp_path: Path) -> None:
    git_dir = _repo(tmp_path, "peft", {"v0.6.1": PEFT_FILES})
    needs, unparsed = gen.import_closure(gen.GitTags(git_dir, gen.IMPORTERS["peft"]), "v0.6.1", "peft")
    assert unparsed == []
    assert {(n.partner, n.key, n.file) for n in needs} == {
        ("transformers", "transformers.modeling_layers", "peft/peft_model.py"),
        ("transformers", "transformers.pytorch_utils:id_tensor_storage", "peft/peft_model.py"),
        ("huggingface-hub", "huggingface_hub:cached_download", "peft/utils/other.py"),
    }


def test_release_runs_and_the_document_name_each_need(tmp_path: Path) -> None:
    newer = {**PEFT_FILES, "src/peft/utils/other.py": "helper = 1\n"}
    git_dir = _repo(tmp_path, "peft", {"v0.6.0": PEFT_FILES, "v0.6.1": PEFT_FILES, "v0.7.0": newer,
                                       "v0.7.0rc1": newer})
    source = gen.GitTags(git_dir, gen.IMPORTERS["peft"])
    entry = gen.read_importer("peft", source)
    assert entry["releases"] == ["0.6.0", "0.6.1", "0.7.0"]  # the release candidate is not a release
    runs = {(n["module"], n["name"]): n["releases"] for n in entry["needs"]}
    assert runs[("huggingface_hub", "cached_download")] == [["0.6.0", "0.6.1"]]
    assert runs[("transformers.pytorch_utils", "id_tensor_storage")] == [["0.6.0", "0.7.0"]]


def test_ranges_are_runs_of_consecutive_releases() -> None:
    versions = ["1.0", "1.1", "1.2", "2.0", "2.1"]
    assert gen.ranges(versions, {"1.0", "1.1", "2.0"}) == [["1.0", "1.1"], ["2.0", "2.0"]]
    assert gen.ranges(versions, set()) == []


TRANSFORMERS_FILES = {
    "src/transformers/__init__.py": (
        "_import_structure = {'pytorch_utils': ['Conv1D'], 'models.auto': ['AutoModel']}\n"
        "try:\n    pass\nexcept OptionalDependencyNotAvailable:\n    pass\nelse:\n"
        "    _import_structure['modeling_utils'] = ['PreTrainedModel']\n"
        "    _import_structure['models.llama'].extend(['LlamaModel'])\n"
        "sys.modules[__name__] = _LazyModule(__name__, globals()['__file__'], _import_structure)\n"
    ),
    "src/transformers/pytorch_utils.py": (
        "from .utils import *\n"
        "if is_torch_greater_or_equal_than_1_13:\n    def id_tensor_storage(t):\n        return t\n"
    ),
    "src/transformers/utils/__init__.py": "from .hub import cached_file as cached_file\n",
    "src/transformers/shims.py": "def __getattr__(name):\n    raise AttributeError(name)\n",
    "src/transformers/models/__init__.py": "",
    "src/transformers/models/auto/__init__.py": "",
}


def test_a_partner_release_answers_present_absent_or_unknown(tmp_path: Path) -> None:
    git_dir = _repo(tmp_path, "transformers", {"v4.30.0": TRANSFORMERS_FILES})
    release = gen.ProviderRelease(gen.GitTags(git_dir, gen.PROVIDERS["transformers"]), "v4.30.0")
    assert release.status("transformers", "PreTrainedModel") == "present"  # in the lazy structure
    assert release.status("transformers", "LlamaModel") == "present"  # added by .extend
    assert release.status("transformers", "top_k_top_p_filtering") == "absent"
    assert release.status("transformers", "models") == "present"  # a submodule
    assert release.status("transformers.pytorch_utils", "id_tensor_storage") == "present"  # under an `if`
    assert release.status("transformers.pytorch_utils", "cached_file") == "present"  # through `from .utils import *`
    assert release.status("transformers.pytorch_utils", "missing") == "absent"
    assert release.status("transformers.modeling_layers", "") == "absent"  # no such module
    assert release.status("transformers.modeling_layers", "GradientCheckpointingLayer") == "absent"
    assert release.status("transformers.shims", "anything") == "unknown"  # a module __getattr__


SCIPY_FILES = {
    "scipy/__init__.py": "",
    "scipy/linalg/__init__.py": "from ._matfuncs import *\nfrom ._basic import *\nfrom ._decomp_update import *\n",
    # a Cython module: every name it binds is a string in its binary, so a word missing there is not bound
    "scipy/linalg/_decomp_update.cpython-311-x86_64-linux-gnu.so": "\x7fELF\x00__pyx_mstate\x00qr_update\x00",
    # binds triu (for its own use) but exports only what __all__ lists: scipy 1.13's scipy.linalg has no triu
    "scipy/linalg/_matfuncs.py": "from numpy import triu, tril\n__all__ = ['expm']\ndef expm(a):\n    return a\n",
    # no __all__: every public name goes through `import *`, an underscored one does not
    "scipy/linalg/_basic.py": "from numpy import solve_banded\n_private = 1\n",
    # an __all__ built up at run time: a name the module binds may be exported (read as present, never absent)
    "scipy/linalg/_built.py": "from numpy import triu\n__all__ = ['lstsq']\n__all__ += _more()\n",
}


def test_a_star_import_takes_what_the_modules_all_lists(tmp_path: Path) -> None:
    built_init = "from ._matfuncs import *\nfrom ._basic import *\nfrom ._built import *\n"
    git_dir = _repo(tmp_path, "scipy", {"v1.12.0": {**SCIPY_FILES, "scipy/linalg/__init__.py": built_init},
                                        "v1.13.0": SCIPY_FILES})
    built = gen.ProviderRelease(gen.GitTags(git_dir, gen.PROVIDERS["scipy"]), "v1.12.0")
    assert built.status("scipy.linalg", "expm") == "present"
    assert built.status("scipy.linalg", "solve_banded") == "present"
    assert built.status("scipy.linalg", "triu") == "present"  # not from _matfuncs; _built may export it
    assert built.status("scipy.linalg", "_private") == "absent"  # bound nowhere but in _basic, which has no __all__
    release = gen.ProviderRelease(gen.GitTags(git_dir, gen.PROVIDERS["scipy"]), "v1.13.0")
    assert release.status("scipy.linalg", "expm") == "present"
    assert release.status("scipy.linalg", "triu") == "absent"
    assert release.status("scipy.linalg", "_private") == "absent"
    assert release.status("scipy.linalg._matfuncs", "triu") == "present"  # imported from the module itself
    assert release.status("scipy.linalg", "qr_update") == "unknown"  # the Cython module may bind it


def test_a_compiled_module_that_is_not_cython_may_supply_any_name(tmp_path: Path) -> None:
    files = {**SCIPY_FILES, "scipy/linalg/_decomp_update.cpython-311-x86_64-linux-gnu.so": "\x7fELF\x00qr_update\x00"}
    git_dir = _repo(tmp_path, "scipy", {"v1.13.0": files})
    release = gen.ProviderRelease(gen.GitTags(git_dir, gen.PROVIDERS["scipy"]), "v1.13.0")
    assert release.status("scipy.linalg", "triu") == "unknown"  # a C/C++ binding's names live elsewhere


def test_a_structure_built_at_run_time_is_read_from_the_folder_it_scans(tmp_path: Path) -> None:
    files = {
        "src/transformers/__init__.py": (
            "_import_structure = {'cache_utils': ['DynamicCache']}\n"
            "if TYPE_CHECKING:\n    from .models import *\nelse:\n"
            "    import_structure = define_import_structure(Path(__file__).parent / 'models', prefix='models')\n"
        ),
        "src/transformers/cache_utils.py": "class DynamicCache: ...\n",
        "src/transformers/models/__init__.py": "",
        "src/transformers/models/llama/modeling_llama.py": (
            "class LlamaModel: ...\n@export()\nclass LlamaHelper: ...\n__all__ = ['LlamaModel']\n"
        ),
        "src/transformers/generation/utils.py": "def top_k_top_p_filtering(): ...\n",
    }
    git_dir = _repo(tmp_path, "transformers", {"v5.0.0": files})
    release = gen.ProviderRelease(gen.GitTags(git_dir, gen.PROVIDERS["transformers"]), "v5.0.0")
    assert release.status("transformers", "DynamicCache") == "present"  # the static part
    assert release.status("transformers", "LlamaModel") == "present"  # in __all__ of a scanned file
    assert release.status("transformers", "LlamaHelper") == "unknown"  # there, but exported another way
    assert release.status("transformers", "top_k_top_p_filtering") == "absent"  # nowhere in the scanned folder


def test_a_structure_whose_folder_cannot_be_read_gives_unknown_never_absent() -> None:
    tree = ast.parse("_import_structure = define_import_structure(find_folder())\n")
    names = gen.module_names(tree, "transformers", "transformers/__init__.py")
    assert names.open_ended and "LlamaModel" not in names.bound


def test_a_module_getattr_leaves_a_name_unknown_unless_a_lazy_structure_serves_it() -> None:
    hub = ast.parse("_SUBMOD_ATTRS = {'file_download': ['hf_hub_download']}\n"
                    "__getattr__, __dir__, __all__ = _attach(__name__, submodules=[], submod_attrs=_SUBMOD_ATTRS)\n")
    names = gen.module_names(hub, "huggingface_hub", "huggingface_hub/__init__.py")
    assert "hf_hub_download" in names.bound and not names.open_ended  # cached_download there would be absent
    shim = gen.module_names(ast.parse("__getattr__ = deprecated_names({'old': 'new'})\n"), "x", "x/__init__.py")
    assert shim.open_ended


def test_the_document_lists_partner_runs_for_every_need(tmp_path: Path) -> None:
    importer = _repo(tmp_path, "peft", {"v0.6.1": PEFT_FILES})
    newer = {**TRANSFORMERS_FILES, "src/transformers/modeling_layers.py": "class GradientCheckpointingLayer: ...\n"}
    provider = _repo(tmp_path, "transformers", {"v4.30.0": TRANSFORMERS_FILES, "v4.31.0": newer})
    document = gen.generate({"peft": gen.GitTags(importer, gen.IMPORTERS["peft"])},
                            {"transformers": gen.GitTags(provider, gen.PROVIDERS["transformers"])},
                            command="test", today="2026-12-06")
    names = json.loads(gen.dump(document))["providers"]["transformers"]["names"]
    assert names["transformers.modeling_layers"] == {"present": [["4.31.0", "4.31.0"]]}
    assert names["transformers.pytorch_utils:id_tensor_storage"] == {"present": [["4.30.0", "4.31.0"]]}


@pytest.mark.parametrize("text", ["{", "[]"])
def test_the_loader_rejects_an_unreadable_table_in_one_line(tmp_path: Path, text: str) -> None:
    from envdoctor.import_floors import validate_import_floors

    (tmp_path / "import_floors.json").write_text(text)
    errors = validate_import_floors(tmp_path)
    assert len(errors) == 1 and "import_floors.json" in errors[0]


ATTRIBUTE_READER = (
    "import torch\n"
    "import torch.utils._pytree as pytree\n"
    "empty = torch.xpu.empty_cache\n"
    "pytree.register_pytree_node(object)\n"
    "torch.assigned = 1\n"
    "version = torch.__version__\n"
    "def later():\n    torch.inside_function\n"
    "if hasattr(torch, 'hasattr_guard'):\n    torch.hasattr_guard.empty_cache()\n"
    "try:\n    torch.try_guard\nexcept AttributeError:\n    pass\n"
    "ok = torch.cuda.is_available() and torch.and_guard\n"
    "pick = torch.ifexp_guard if ok else None\n"
    "class Model(torch.nn.Module):\n"
    "    dtype = torch.float16\n"
    "    @torch.no_grad()\n"
    "    def forward(self, x=torch.default_value):\n        return torch.inside_method\n"
    "if is_torch_available():\n    import torch\n    table = {'xpu': torch.xpu.device_count}\n"
    "if is_transformers_available():\n    other = torch.under_another_guard\n"
)


def test_attribute_chains_read_at_import_are_needs_and_guarded_ones_are_not() -> None:
    needs = gen.attribute_needs(ast.parse(ATTRIBUTE_READER).body, "pkg/reader.py")
    assert {n.key for n in needs if n.partner == "torch" and n.access == "attribute"} == {
        "torch:xpu", "torch.xpu:empty_cache",  # one need per link of the chain
        "torch.utils._pytree:register_pytree_node",  # through `import torch.utils._pytree as pytree`
        "torch:cuda", "torch.cuda:is_available",  # the first operand of `and` runs; the rest may not
        "torch:nn", "torch.nn:Module", "torch:float16", "torch:no_grad", "torch:default_value",  # class body,
        "torch.xpu:device_count",  # decorator, default value; under `if is_torch_available():`
    }



AVAILABILITY_FILES = {
    "src/peft/__init__.py": "from . import kernels\n",
    "src/peft/kernels.py": (
        "import torch\n"
        "if not is_transformers_available():\n"
        "    from transformers import WhenAbsent\n"
        "else:\n"
        "    import transformers.models.llama as llama\n"
        "    from transformers.pytorch_utils import Conv1D\n"
        "    from huggingface_hub import OtherPartner\n"
        "    from .guarded_module import helper\n"
        "    import torch\n"
        "    table = {'fast': torch.fast_path, 'llama': llama.LlamaModel}\n"
        "    if version_switch:\n        from transformers import NestedIf\n"
        "if is_transformers_available():\n"
        "    from transformers.modeling_utils import PreTrainedModel\n"
        "else:\n"
        "    from transformers import ElseOfAvailable\n"
        "if not is_transformers_available():\n    pass\nelif version_switch:\n"
        "    from transformers import InElif\n"
        "if not is_torch_available() or other:\n    pass\nelse:\n    from transformers import NotBare\n"
    ),
    "src/peft/guarded_module.py": "from transformers import NotLoaded\nhelper = 1\n",
}


def test_imports_that_run_whenever_the_partner_is_installed_are_needs_on_it(tmp_path: Path) -> None:
    git_dir = _repo(tmp_path, "peft", {"v0.6.1": AVAILABILITY_FILES})
    needs, unparsed = gen.import_closure(gen.GitTags(git_dir, gen.IMPORTERS["peft"]), "v0.6.1", "peft")
    assert unparsed == []
    # the else of `if not is_transformers_available():` and the body of `if is_transformers_available():` run
    # whenever transformers is installed: its imports and attribute chains there are needs on it, and another
    # partner's imports there are needs on that one when transformers is installed; the package's own modules,
    # nested ifs, the other branches and elifs are left out
    assert {(n.partner, n.key, n.access, n.when) for n in needs} == {
        ("transformers", "transformers.models.llama", "import", ""),
        ("transformers", "transformers.pytorch_utils:Conv1D", "import", ""),
        ("transformers", "transformers.modeling_utils:PreTrainedModel", "import", ""),
        ("transformers", "transformers.models.llama:LlamaModel", "attribute", ""),
        ("huggingface-hub", "huggingface_hub:OtherPartner", "import", "transformers"),
    }
    assert all(n.file == "peft/kernels.py" and n.via == "" for n in needs)


NAMESPACE_FILES = {  # no src/peft/__init__.py: `import peft` loads nothing; users import its modules
    "src/peft/finetuning.py": "from peft.utils import helper\nfrom transformers import Trainer\n",
    "src/peft/utils/__init__.py": "from transformers.pytorch_utils import Conv1D\nhelper = 1\n",
    "src/peft/quant/__init__.py": (
        "from peft.utils import helper\n"
        "if is_torch_available():\n    from transformers.pytorch_utils import is_torch_less_than_1_11\n"
    ),
    "src/peft/_private.py": "from transformers import Hidden\n",
    "src/peft/tests/__init__.py": "from transformers import TestOnly\n",
}


def test_a_namespace_package_is_read_from_each_public_module_and_needs_record_which() -> None:
    files = {path.removeprefix("src/") for path in NAMESPACE_FILES}
    assert gen.namespace_roots(files, "peft") == ["peft.finetuning", "peft.quant", "peft.utils"]
    assert gen.namespace_roots({"peft/__init__.py", *files}, "peft") == []  # a regular package: `import peft`


def test_namespace_needs_name_the_module_that_reaches_them(tmp_path: Path) -> None:
    git_dir = _repo(tmp_path, "peft", {"v0.6.1": NAMESPACE_FILES})
    needs, unparsed = gen.import_closure(gen.GitTags(git_dir, gen.IMPORTERS["peft"]), "v0.6.1", "peft")
    assert unparsed == []
    # peft.utils is reached first from peft.finetuning (roots in order), so its need records that root
    assert {(n.key, n.via, n.when) for n in needs} == {
        ("transformers:Trainer", "peft.finetuning", ""),
        ("transformers.pytorch_utils:Conv1D", "peft.finetuning", ""),
        ("transformers.pytorch_utils:is_torch_less_than_1_11", "peft.quant", "torch"),
    }


TORCH_FILES = {
    "src/torch/__init__.py": (
        "from torch._C import *\n"
        "if TYPE_CHECKING:\n    from torch._C._VariableFunctions import *\n"
        "for name in dir(_C._VariableFunctions):\n    globals()[name] = getattr(_C._VariableFunctions, name)\n"
        "from torch import cuda as cuda\nfrom . import library\n"
    ),
    "src/torch/_C/__init__.pyi": "class dtype: ...\nfloat16: dtype = ...\n",
    "src/torch/_C/_VariableFunctions.pyi": "def add(a, b): ...\n",
    "src/torch/cuda/__init__.py": "class Stream: ...\ndef empty_cache(): ...\n",
    "src/torch/library.py": "class Library: ...\n",
    "src/torch/utils/__init__.py": "",
    "src/torch/utils/_pytree.py": "def _register_pytree_node(): ...\n",
    "src/torch/hub.py": "def __getattr__(name): ...\n",
}
TORCH_2_4 = {**TORCH_FILES, "src/torch/xpu/__init__.py": "def empty_cache(): ...\n",
             "src/torch/library.py": "class Library: ...\ndef register_fake(): ...\n",
             "src/torch/utils/_pytree.py": "def register_pytree_node(): ...\n"}


def test_a_torch_like_provider_is_read_with_its_stubs_and_compiled_names(tmp_path: Path) -> None:
    source = gen.GitTags(_repo(tmp_path, "torch", {"v2.0.1": TORCH_FILES, "v2.4.0": TORCH_2_4}),
                         gen.PROVIDERS["torch"])
    old = gen.ProviderRelease(source, "v2.0.1", frozenset({"torch.xpu"}))
    assert old.status("torch", "float16", "attribute") == "present"  # declared by the compiled module's stub
    assert old.status("torch", "add", "attribute") == "unknown"  # copied from a compiled object: not listed
    assert old.status("torch", "xpu", "attribute") == "absent"  # a Python module of torch in another release
    assert gen.ProviderRelease(source, "v2.0.1").status("torch", "xpu", "attribute") == "unknown"
    assert old.status("torch.xpu", "empty_cache", "attribute") == "absent"
    assert old.status("torch.xpu", "empty_cache") == "absent"  # `from torch.xpu import empty_cache`
    assert old.status("torch.cuda.Stream", "wait_event", "attribute") == "unknown"  # an object's attribute
    assert old.status("torch.cuda.Missing", "x", "attribute") == "absent"
    assert old.status("torch.library", "register_fake", "attribute") == "absent"
    assert old.status("torch.utils._pytree", "register_pytree_node", "attribute") == "absent"
    assert old.status("torch.hub", "anything", "attribute") == "unknown"  # a module __getattr__
    assert old.status("torch._C", "", "import") == "present"  # a compiled module, known by its stub
    new = gen.ProviderRelease(source, "v2.4.0", frozenset({"torch.xpu"}))
    assert new.status("torch.xpu", "empty_cache", "attribute") == "present"
    assert new.status("torch.library", "register_fake", "attribute") == "present"


def test_the_document_marks_attribute_needs_and_reads_them_from_the_torch_releases(tmp_path: Path) -> None:
    importer = _repo(tmp_path, "peft", {"v0.6.1": {**PEFT_FILES, "src/peft/utils/__init__.py": ATTRIBUTE_READER}})
    provider = _repo(tmp_path, "torch", {"v2.0.1": TORCH_FILES, "v2.4.0": TORCH_2_4})
    document = json.loads(gen.dump(gen.generate({"peft": gen.GitTags(importer, gen.IMPORTERS["peft"])},
                                                {"torch": gen.GitTags(provider, gen.PROVIDERS["torch"])},
                                                command="test", today="2026-12-06")))
    needs = {(n["module"], n["name"]): n for n in document["importers"]["peft"]["needs"] if n["partner"] == "torch"}
    assert needs[("torch", "xpu")]["access"] == "attribute" and "access" not in needs[("torch.utils._pytree", "")]
    names = document["providers"]["torch"]["names"]
    assert names["torch:xpu"] == {"present": [["2.4.0", "2.4.0"]]}
    assert names["torch.utils._pytree:register_pytree_node"] == {"present": [["2.4.0", "2.4.0"]]}
    assert names["torch:float16"] == {"present": [["2.0.1", "2.4.0"]]}
