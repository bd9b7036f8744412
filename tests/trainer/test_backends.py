"""--backend hf|unsloth|auto on CPU: selection, import order, the missing-package error, the auto rule from the
matrices, and the LoRA settings both backends share. Unsloth cannot run without a GPU: where it must be "installed"
a fake package dir named `unsloth` stands in, for selection and import order only (benchmarks/unsloth_backend.py
runs the real one on the device)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest
from helpers import REPO, TEST_STACK, subprocess_env, trainer_command
from packaging.version import Version
from tiny import build_tiny_model_dir, synthetic_chat_rows, write_jsonl

from envdoctor import load_matrices
from trainer import backends
from trainer.backends import BackendChoice, BackendError, select_backend
from trainer.config import TrainConfig

FAKE_UNSLOTH = textwrap.dedent('''
    """Stand-in for Unsloth in selection/import-order tests: records how it was imported, cannot load models."""
    import json, os, sys
    with open(os.environ["FAKE_UNSLOTH_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"imported": True, "transformers_before": "transformers" in sys.modules}) + "\\n")

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(**kwargs):
            with open(os.environ["FAKE_UNSLOTH_LOG"], "a", encoding="utf-8") as log:
                log.write(json.dumps({"from_pretrained": sorted(kwargs),
                                      "flags": {k: kwargs.get(k) for k in ("load_in_4bit", "load_in_8bit",
                                                "load_in_16bit", "full_finetuning", "dtype")}}, default=str) + "\\n")
            raise RuntimeError("fake unsloth: stands in for selection tests only, it cannot load a model")
''')
REPORT_MODULES = "import sys; print('MODULES', 'unsloth' in sys.modules, 'transformers' in sys.modules)"


@pytest.fixture
def fake_unsloth(tmp_path: Path) -> tuple[Path, Path]:
    """(directory to put on sys.path, the log the fake writes on import)."""
    package = tmp_path / "fake_site" / "unsloth"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_UNSLOTH, encoding="utf-8")
    return package.parent, tmp_path / "fake_unsloth.log"


def run_python(code: str, extra_path: Path | None = None, log: Path | None = None,
               args: list[str] | None = None) -> subprocess.CompletedProcess:
    env = subprocess_env()
    if extra_path:
        env["PYTHONPATH"] = f"{extra_path}:{env['PYTHONPATH']}"
    if log:
        env["FAKE_UNSLOTH_LOG"] = str(log)
    return subprocess.run([sys.executable, "-c", code, *(args or [])], env=env, capture_output=True, text=True,
                          timeout=240, cwd=REPO)


def log_entries(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


# ---- selection -----------------------------------------------------------------------------------------


def test_hf_is_chosen_as_asked_and_imports_nothing_heavy() -> None:
    result = run_python("from trainer.backends import select_backend; print(select_backend('hf', True).name); "
                        + REPORT_MODULES)
    assert result.returncode == 0, result.stderr
    assert "hf\nMODULES False False" in result.stdout


def test_unknown_backend_is_one_line_naming_the_choices() -> None:
    with pytest.raises(BackendError) as error:
        select_backend("fastest", packing=False)
    assert str(error.value) == "--backend 'fastest': choose one of auto, hf, unsloth"


def test_missing_unsloth_is_one_line_with_the_pinned_install_command() -> None:
    code = ("from trainer.backends import select_backend, BackendError\n"
            "try:\n    select_backend('unsloth', False)\nexcept BackendError as e:\n    print('ERROR', e)\n"
            + REPORT_MODULES)
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    error_line = next(line for line in result.stdout.splitlines() if line.startswith("ERROR"))
    assert "Unsloth is not installed" in error_line
    assert 'pip install "unsloth==2026.10.9" "unsloth_zoo==2026.10.9"' in error_line
    assert "MODULES False False" in result.stdout


def test_install_command_pins_the_newest_release_the_matrices_declare() -> None:
    declared = load_matrices().declared
    newest = max((v for p, v in declared if p == "unsloth" and ("unsloth-zoo", v) in declared), key=Version)
    assert backends.unsloth_install_command() == f'pip install "unsloth=={newest}" "unsloth_zoo=={newest}"'


def test_unsloth_is_imported_when_chosen_and_before_transformers(fake_unsloth: tuple[Path, Path]) -> None:
    site, log = fake_unsloth
    result = run_python("from trainer.backends import select_backend; print(select_backend('unsloth', False)); "
                        + REPORT_MODULES, site, log)
    assert result.returncode == 0, result.stderr
    assert "MODULES True False" in result.stdout
    assert log_entries(log) == [{"imported": True, "transformers_before": False}]


def test_unsloth_after_transformers_is_refused_and_says_why(fake_unsloth: tuple[Path, Path]) -> None:
    site, log = fake_unsloth
    code = ("import transformers\nfrom trainer.backends import select_backend, BackendError\n"
            "try:\n    select_backend('unsloth', False)\nexcept BackendError as e:\n    print('ERROR', e)\n"
            "print('AUTO', select_backend('auto', False).reason)\n" + REPORT_MODULES)
    result = run_python(code, site, log)
    assert result.returncode == 0, result.stderr
    assert "ERROR --backend unsloth: transformers was imported before Unsloth" in result.stdout
    assert "AUTO auto for fixed-length rows" in result.stdout and "transformers was imported" in result.stdout
    assert "MODULES False True" in result.stdout and not log.exists()


def test_unsloth_that_fails_to_import_is_one_line(tmp_path: Path) -> None:
    package = tmp_path / "site" / "unsloth"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise NotImplementedError('Unsloth cannot find any torch accelerator? "
                                         "You need a GPU.\\nsecond line')\n", encoding="utf-8")
    code = ("from trainer.backends import select_backend, BackendError\n"
            "try:\n    select_backend('unsloth', False)\nexcept BackendError as e:\n    print('ERROR', repr(str(e)))\n")
    result = run_python(code, package.parent)
    assert "failed to import (NotImplementedError: Unsloth cannot find any torch accelerator? You need a GPU.)" \
        in result.stdout
    assert "second line" not in result.stdout


# ---- the auto rule, from the matrices ------------------------------------------------------------------


def test_auto_follows_the_bundled_rules(fake_unsloth: tuple[Path, Path]) -> None:
    site, log = fake_unsloth
    code = ("from trainer.backends import select_backend\n"
            "for packing in (True, False):\n"
            "    c = select_backend('auto', packing); print('CHOICE', c.name, c.reason)\n")
    installed = run_python(code, site, log).stdout.splitlines()
    missing = run_python(code).stdout.splitlines()
    assert installed[0].startswith("CHOICE hf auto for packed") and "7,746" in installed[0] and "15,136" in installed[0]
    assert installed[1].startswith("CHOICE unsloth auto for fixed-length rows") and "15,770" in installed[1]
    assert missing[0].startswith("CHOICE hf auto for packed")
    assert missing[1].startswith("CHOICE hf auto for fixed-length rows") and "Unsloth is not installed" in missing[1]


def write_rules(root: Path, text: str) -> Path:
    for folder in ("rules", "stacks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "backends.toml").write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def test_auto_reads_the_rule_not_a_built_in_preference(tmp_path: Path) -> None:
    root = write_rules(tmp_path, """
        [[rule]]
        data_shape = "packed"
        backend = "hf"
        source = "test"
        note = "measured: hf wins on packed rows"
    """)
    choice = select_backend("auto", packing=True, matrices=load_matrices(root))
    assert choice == BackendChoice("hf", "auto for packed variable-length rows (--packing): measured: hf wins on "
                                         "packed rows [test]")
    fixed = select_backend("auto", packing=False, matrices=load_matrices(root))
    assert fixed.name == "hf" and "has no fixed rule" in fixed.reason


def test_a_broken_rules_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    root = write_rules(tmp_path, """
        [[rule]]
        data_shape = "ragged"
        backend = "hf"
        source = "test"
    """)
    with pytest.raises(BackendError) as error:
        select_backend("auto", packing=True, matrices=load_matrices(root))
    assert "backends.toml" in str(error.value) and "ragged" in str(error.value) and "\n" not in str(error.value)


# ---- the gate runs first, whatever the backend ---------------------------------------------------------


def cli_has_backend_flag() -> bool:
    return "backend" in {item.name for item in fields(TrainConfig)}


def fake_numpy2(directory: Path) -> Path:
    """A dist-info that makes importlib.metadata report NumPy 2.1.0 (first on sys.path wins); nothing imports it."""
    info = directory / "numpy-2.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: numpy\nVersion: 2.1.0\n", encoding="utf-8")
    return directory


def run_cli_with_fake_unsloth(site: Path, log: Path, args: list[str]) -> subprocess.CompletedProcess:
    """The trainer CLI as helpers.trainer_command runs it, printing at exit whether unsloth/transformers loaded."""
    command = trainer_command(args)
    plain = "import sys; from trainer.cli import main; sys.exit(main(sys.argv[1:]))"
    boot = command[2] if command[1] == "-c" else plain
    report = "import atexit, sys\natexit.register(lambda: print('MODULES', 'unsloth' in sys.modules, " \
        "'transformers' in sys.modules))\n"
    return run_python(report + boot, site, log, args)


@pytest.mark.skipif(not cli_has_backend_flag(), reason="trainer.config has no --backend yet (cli/config owner)")
@pytest.mark.parametrize("refused", ["numpy2", "bnb-4bit-name", "load_in_4bit"])
def test_gate_refuses_before_unsloth_is_imported(refused: str, fake_unsloth: tuple[Path, Path], tmp_path: Path,
                                                 tiny_model: Path, chat_data: Path) -> None:
    site, log = fake_unsloth
    model = tiny_model
    if refused == "bnb-4bit-name":
        model = build_tiny_model_dir(tmp_path / "llama-3-8b-instruct-bnb-4bit")
    if refused == "numpy2":
        fake_numpy2(site)
    extra = ["--load_in_4bit"] if refused == "load_in_4bit" else []
    result = run_cli_with_fake_unsloth(site, log, ["--backend", "unsloth", "--model_name", str(model),
                                                   "--dataset_path", str(chat_data), "--output_dir",
                                                   str(tmp_path / "out"), "--stack", TEST_STACK, *extra])
    assert result.returncode == 3, result.stderr
    expected = {"numpy2": "NumPy 2.1.0", "bnb-4bit-name": "bnb-4bit", "load_in_4bit": "--load_in_4bit"}[refused]
    assert "REFUSED" in result.stderr and expected in result.stderr
    assert "MODULES False" in result.stdout and log_entries(log) == []


@pytest.mark.skipif(not cli_has_backend_flag(), reason="trainer.config has no --backend yet (cli/config owner)")
def test_cli_imports_unsloth_first_and_passes_full_precision(fake_unsloth: tuple[Path, Path], tmp_path: Path,
                                                            tiny_model: Path) -> None:
    site, log = fake_unsloth
    data = write_jsonl(tmp_path / "chat.jsonl", synthetic_chat_rows(16))
    result = run_cli_with_fake_unsloth(site, log, ["--backend", "unsloth", "--model_name", str(tiny_model),
                                                   "--dataset_path", str(data), "--output_dir", str(tmp_path / "out"),
                                                   "--stack", TEST_STACK, "--max_steps", "1"])
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Unsloth cannot load") and "fake unsloth" in last
    entries = log_entries(log)
    assert entries[0] == {"imported": True, "transformers_before": False}
    assert entries[1]["flags"] == {"load_in_4bit": False, "load_in_8bit": False, "load_in_16bit": True,
                                   "full_finetuning": False, "dtype": "torch.bfloat16"}


@pytest.mark.skipif(not cli_has_backend_flag(), reason="trainer.config has no --backend yet (cli/config owner)")
def test_cli_missing_unsloth_exits_2_with_one_line(tmp_path: Path, tiny_model: Path, chat_data: Path) -> None:
    args = ["--backend", "unsloth", "--model_name", str(tiny_model), "--dataset_path", str(chat_data),
            "--output_dir", str(tmp_path / "out"), "--stack", TEST_STACK]
    result = subprocess.run(trainer_command(args), env=subprocess_env(), capture_output=True, text=True,
                            timeout=240, cwd=REPO)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and 'pip install "unsloth==' in lines[0]


# ---- the Unsloth call, and LoRA settings shared by both backends ---------------------------------------


def config_for(model: Path, **overrides) -> TrainConfig:
    settings = {"model_name": str(model), "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "max_seq_length": 64,
                "seed": 3}
    return TrainConfig(**{**settings, **overrides})


def test_unsloth_arguments_are_full_precision_and_the_gated_name(tmp_path: Path) -> None:
    import torch

    arguments = backends.unsloth_load_arguments(config_for(tmp_path, gradient_checkpointing=True))
    assert arguments["dtype"] is torch.bfloat16
    assert (arguments["load_in_4bit"], arguments["load_in_8bit"], arguments["full_finetuning"]) == (False,) * 3
    assert arguments["load_in_16bit"] is True and arguments["use_exact_model_name"] is True
    assert arguments["model_name"] == str(tmp_path) and arguments["trust_remote_code"] is False
    assert arguments["use_gradient_checkpointing"] == "unsloth" and arguments["random_state"] == 3
    with pytest.raises(BackendError, match="load_in_4bit"):
        backends.unsloth_load_arguments(config_for(tmp_path, load_in_4bit=True))


def test_unsloth_peft_arguments_match_the_default_path(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    peft_arguments = backends.unsloth_peft_arguments(config)
    assert {key: peft_arguments[key] for key in backends.lora_settings(config)} == backends.lora_settings(config)
    assert peft_arguments["bias"] == "none" and peft_arguments["use_rslora"] is False


def test_hf_backend_loads_the_peft_model_with_the_shared_lora_settings(tiny_model: Path) -> None:
    import torch

    config = config_for(tiny_model)
    model = backends.load_lora_model_for(BackendChoice("hf", "test"), config)
    lora = model.peft_config["default"]
    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.bias) == (8, 16, 0.05, "none")
    assert set(lora.target_modules) == set(config.target_modules)
    assert next(model.parameters()).dtype == torch.float32 and model.config.use_cache is False  # CPU: fp32


def test_a_different_lora_config_is_caught(tiny_model: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model)),
                           LoraConfig(r=4, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj"]))
    with pytest.raises(BackendError) as error:
        backends.check_lora_settings(model, config_for(tiny_model))
    assert "r=4 (wanted 8)" in str(error.value) and "target_modules" in str(error.value)


def test_hf_adapter_loads_into_the_lora_config_unsloth_builds(tiny_model: Path, tmp_path: Path) -> None:
    """Unsloth 2026.10.9 (models/llama.py get_peft_model) builds LoraConfig(r, lora_alpha, target_modules,
    lora_dropout, bias, task_type=CAUSAL_LM, init_lora_weights=True, use_rslora, modules_to_save=None) from the
    arguments we pass; an adapter saved by the hf path must load into that model with no missing or extra keys."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    config = config_for(tiny_model)
    saved = backends.load_lora_model_for(BackendChoice("hf", "test"), config)
    saved.save_pretrained(str(tmp_path / "adapter"), safe_serialization=True)
    wanted = backends.unsloth_peft_arguments(config)
    unsloth_like = LoraConfig(task_type="CAUSAL_LM", init_lora_weights=True, modules_to_save=None,
                              **{key: wanted[key] for key in (*backends.lora_settings(config), "use_rslora")})
    fresh = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model)), unsloth_like)
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)),
                                       str(tmp_path / "adapter"))
    assert set(fresh.state_dict()) == set(loaded.state_dict())
    backends.check_lora_settings(loaded, config)
