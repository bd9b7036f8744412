"""The Hugging Face conventions end to end: TRL / LLaMA-Factory key names, a base model without a chat template
trained on a Parquet dataset with custom columns and a bundled template, TensorBoard and MLflow tracking, merge,
validation and the (recorded) hub upload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import FAST_FLAGS
from hf_data import build_base_model_dir, renamed_chat_rows, write_dataset_file

from trainer.cli import ConfigError, build_config, build_parser, main, normalize_argv
from trainer.config import TrainConfig

# The same run in this project's key names and in TRL's (trl sft --config) / LLaMA-Factory's.
OWN_KEYS = {"model_name": "MODEL", "dataset_name": "DATA", "dataset_split": "train", "messages_field": "conversation",
            "chat_template": "llama3", "max_seq_length": 48, "target_modules": ["q_proj", "v_proj"],
            "report_to": ["tensorboard", "mlflow"], "push_to_hub": True, "hub_model_id": "me/tiny-chat"}
TRL_KEYS = {"model_name_or_path": "MODEL", "dataset_name": "DATA", "dataset_train_split": "train",
            "messages_field": "conversation", "chat_template_path": "llama3", "max_length": 48,
            "lora_target_modules": ["q_proj", "v_proj"], "report_to": ["tensorboard", "mlflow"], "push_to_hub": True,
            "hub_model_id": "me/tiny-chat"}


def write_config(path: Path, keys: dict[str, Any], model: Path, data: Path) -> Path:
    values = {key: str(model) if value == "MODEL" else str(data) if value == "DATA" else value
              for key, value in keys.items()}
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def parsed(argv: list[str]) -> TrainConfig:
    return build_config(TrainConfig, build_parser().parse_args(normalize_argv(argv)))


def test_trl_key_names_give_the_same_config(tmp_path: Path) -> None:
    own = parsed(["--config", str(write_config(tmp_path / "own.yaml", OWN_KEYS, Path("m"), Path("d.parquet")))])
    trl = parsed(["--config", str(write_config(tmp_path / "trl.yaml", TRL_KEYS, Path("m"), Path("d.parquet")))])
    assert own == trl
    assert trl.model_name == "m" and trl.max_seq_length == 48 and trl.chat_template == "llama3"


def test_trl_flag_names_on_the_command_line() -> None:
    config = parsed(["--model_name_or_path", "m", "--dataset_name", "org/data", "--dataset_train_split", "train[:90%]",
                     "--max_length", "64", "--lora_target_modules", "q_proj", "--dataset_text_field", "body"])
    assert (config.model_name, config.dataset_split, config.max_seq_length) == ("m", "train[:90%]", 64)
    assert (config.target_modules, config.text_field) == (["q_proj"], "body")


def test_a_key_given_under_both_names_is_refused(tmp_path: Path) -> None:
    both = tmp_path / "both.yaml"
    both.write_text("model_name: a\nmodel_name_or_path: b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="keys 'model_name_or_path' and 'model_name' name the same setting"):
        parsed(["--config", str(both)])


def test_the_aliases_are_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for pair in ("--model_name MODEL_NAME, --model_name_or_path MODEL_NAME", "--max_seq_length MAX_SEQ_LENGTH, "
                 "--max_length MAX_SEQ_LENGTH", "--chat_template CHAT_TEMPLATE, --chat_template_path CHAT_TEMPLATE"):
        assert pair in shown


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base_model_dir(tmp_path_factory.mktemp("base"))


@pytest.fixture
def hub_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    from huggingface_hub import HfApi

    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: f"https://huggingface.co/{repo_id}")
    monkeypatch.setattr(HfApi, "upload_folder",
                        lambda self, **kw: calls.append((kw["repo_id"], Path(kw["folder_path"]).name)))
    return calls


@pytest.mark.slow
def test_a_base_model_trains_on_parquet_chat_with_a_template_trackers_merge_validate_push(
        base_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_calls: list[tuple[str, str]]) -> None:
    """In TRL's key names; test_trl_key_names_give_the_same_config shows the project's names make the same run."""
    import mlflow

    data = write_dataset_file(renamed_chat_rows(96), tmp_path / "chat.parquet", "parquet")
    config = write_config(tmp_path / "run.yaml", TRL_KEYS, base_model, data)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    output = tmp_path / "out"
    code = main(["--config", str(config), "--output_dir", str(output), *FAST_FLAGS, "--max_steps", "30",
                 "--merge", "--validate", "--eval_split", "0.1"])
    assert code == 0
    assert not (tmp_path / "base" / "chat_template.jinja").exists()
    assert "<|start_header_id|>" in (output / "merged" / "chat_template.jinja").read_text(encoding="utf-8")
    assert json.loads((output / "merged" / "validation_report.json").read_text(encoding="utf-8"))["passed"] is True
    assert list((output / "runs").rglob("events.out.tfevents.*"))  # TensorBoard
    mlflow.set_tracking_uri(tracking)
    runs = mlflow.search_runs(search_all_experiments=True)
    assert len(runs) == 1 and runs["metrics.loss"].iloc[0] < 1.0  # MLflow
    assert (output / "metrics.jsonl").is_file() and (output / "loss.png").is_file()  # always written
    assert hub_calls == [("me/tiny-chat", "adapter"), ("me/tiny-chat-merged", "merged")]
