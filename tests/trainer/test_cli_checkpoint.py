"""CLI config precedence, divergence guard, checkpoint completeness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainer.callbacks import DivergenceGuard
from trainer.checkpoint import COMPLETE_MARKER, CheckpointError, resolve_resume
from trainer.cli import ConfigError, build_config, build_parser, normalize_argv
from trainer.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def parse(argv: list[str]) -> TrainConfig:
    return build_config(TrainConfig, build_parser().parse_args(normalize_argv(argv)))


def test_yaml_then_flags_override() -> None:
    config = parse(["--config", str(REPO / "configs/training_config.yaml"), "--save_steps", "7", "--no-torch_compile"])
    assert config.model_name == "meta-llama/Meta-Llama-3.1-8B-Instruct" and config.gradient_accumulation_steps == 2
    assert config.save_steps == 7 and config.torch_compile is False and config.dataloader_num_workers == 4


def test_seed_flags_parse_with_default_train_subcommand() -> None:
    config = parse(["--model_name", "m", "--dataset_path", "d", "--num_train_epochs", "3", "--torch_compile",
                    "--target_modules", "q_proj", "v_proj"])
    assert config.torch_compile and config.num_train_epochs == 3.0 and config.target_modules == ["q_proj", "v_proj"]


def test_bad_yaml_key_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("lora_rank: 8\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'lora_rank'"):
        parse(["--config", str(path)])
    path.write_text("lora_r: eight\n")
    with pytest.raises(ConfigError, match=r"key 'lora_r' must be int"):
        parse(["--config", str(path)])


@pytest.mark.parametrize("logs", [{"loss": float("nan")}, {"loss": 1.0, "grad_norm": float("inf")},
                                  {"loss": 1.0, "grad_norm": 5e4}])
def test_divergence_guard_stops(logs: dict) -> None:
    assert DivergenceGuard(grad_norm_limit=1e4).check(logs, step=3) is not None
    assert DivergenceGuard(grad_norm_limit=1e4).check({"loss": 1.0, "grad_norm": 2.0}, step=3) is None


def test_resume_auto_skips_incomplete_checkpoints(tmp_path: Path) -> None:
    for step in (10, 20, 30):
        (tmp_path / f"checkpoint-{step}").mkdir()
    for step in (10, 20):
        (tmp_path / f"checkpoint-{step}" / COMPLETE_MARKER).write_text("ok")
    assert resolve_resume("auto", tmp_path) == tmp_path / "checkpoint-20"
    with pytest.raises(CheckpointError, match="incomplete"):
        resolve_resume(str(tmp_path / "checkpoint-30"), tmp_path)
    assert resolve_resume("auto", tmp_path / "nothing-yet") is None


def test_distributed_launch_sets_the_nccl_multicast_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.distributed import DISTRIBUTED_ENV_DEFAULTS, configure_distributed_env

    for name in DISTRIBUTED_ENV_DEFAULTS:
        monkeypatch.setenv(name, "unset-marker")
        monkeypatch.delenv(name)
    monkeypatch.setenv("WORLD_SIZE", "1")
    configure_distributed_env()
    assert not any(name in os.environ for name in DISTRIBUTED_ENV_DEFAULTS)  # one process: nothing changes
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "1")  # what the user exported wins
    configure_distributed_env()
    assert os.environ["NCCL_NVLS_ENABLE"] == "1"
    assert os.environ["TORCH_SYMM_MEM_DISABLE_MULTICAST"] == "1" and os.environ["NVSHMEM_DISABLE_NVLS"] == "1"
