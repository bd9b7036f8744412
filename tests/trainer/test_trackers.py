"""--report_to: every tracker transformers supports, checked by name and package before training
(trainer.trackers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trainer.cli import main
from trainer.trackers import TRACKERS, is_installed, report_to_problem, transformers_report_to


def test_the_table_is_transformers_own_list() -> None:
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    assert set(TRACKERS) == set(INTEGRATION_TO_CALLBACK)


def test_the_table_finds_what_transformers_finds() -> None:
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    found = {name for name, tracker in TRACKERS.items() if is_installed(tracker)}
    assert found == set(get_available_reporting_integrations())


def test_jsonl_alone_adds_no_tracker_and_trackers_pass_through() -> None:
    assert transformers_report_to(["jsonl"]) == "none"
    assert transformers_report_to(["none"]) == "none"
    assert transformers_report_to(["tensorboard", "mlflow"]) == ["tensorboard", "mlflow"]
    assert report_to_problem(["jsonl"]) is None
    assert report_to_problem(["tensorboard"]) is None  # a [train] dependency


def test_unknown_and_mixed_names() -> None:
    assert report_to_problem(["tensorbord"]).startswith("--report_to tensorbord: not a tracker transformers "
                                                        "reports to; use any of azure_ml, clearml,")
    assert report_to_problem(["jsonl", "tensorboard"]) == ("--report_to jsonl tensorboard: jsonl/none mean no "
                                                           "tracker; name the trackers alone")


def test_a_tracker_whose_package_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # find_spec raises for a module blocked this way
    missing = [name for name, tracker in TRACKERS.items() if not is_installed(tracker) and not tracker.env]
    assert "wandb" in missing
    assert report_to_problem(["wandb"]) == "--report_to wandb: not installed here; pip install wandb, or drop it " \
                                           "from --report_to"


def test_kubeflow_needs_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEFLOW_TRAINER_SERVER_URL", raising=False)
    assert "needs the environment variable KUBEFLOW_TRAINER_SERVER_URL" in report_to_problem(["kubeflow"])


@pytest.mark.parametrize(("log_model", "refused"), [(None, True), ("TRUE", True), ("FALSE", False), ("0", False)])
def test_clearml_offline_needs_checkpoint_uploads_off(monkeypatch: pytest.MonkeyPatch, log_model: str | None,
                                                      refused: bool) -> None:
    """transformers uploads each checkpoint to ClearML by default; an offline session fails at the first save."""
    monkeypatch.setenv("CLEARML_OFFLINE_MODE", "1")
    if log_model is None:
        monkeypatch.delenv("CLEARML_LOG_MODEL", raising=False)
    else:
        monkeypatch.setenv("CLEARML_LOG_MODEL", log_model)
    problem = report_to_problem(["tensorboard", "clearml"]) or ""
    assert ("set CLEARML_LOG_MODEL=FALSE" in problem) is refused
    monkeypatch.delenv("CLEARML_OFFLINE_MODE")
    assert "CLEARML_LOG_MODEL" not in (report_to_problem(["clearml"]) or "")


def test_the_cli_exits_2_with_one_line_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n', encoding="utf-8")
    code = main(["--model_name", "m", "--dataset_path", str(data), "--output_dir", str(tmp_path / "o"),
                 "--report_to", "tensorboard", "wandb"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["error: --report_to wandb: not installed here; pip install wandb, or drop it from --report_to"]
