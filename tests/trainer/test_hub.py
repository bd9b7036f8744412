"""--push_to_hub: what is uploaded where, and that an unproven merged model is never uploaded (trainer.hub). The
upload calls are huggingface_hub.HfApi's, recorded by a local stand-in (no network here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainer.config import TrainConfig
from trainer.hub import HubPushError, push_results
from trainer.pipeline import PipelineResult


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Records HfApi.create_repo / upload_folder calls instead of making them."""
    from huggingface_hub import HfApi

    calls: list[tuple[str, dict[str, Any]]] = []

    def create_repo(self: Any, repo_id: str, **kwargs: Any) -> str:
        calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self: Any, **kwargs: Any) -> str:
        calls.append(("upload_folder", kwargs))
        return "commit"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def run_dirs(tmp_path: Path, merge_passed: bool | None = None, validation_passed: bool | None = None) -> PipelineResult:
    adapter = tmp_path / "run" / "adapter"
    adapter.mkdir(parents=True)
    merged = None
    if merge_passed is not None:
        merged = tmp_path / "run" / "merged"
        merged.mkdir()
        (merged / "merge_info.json").write_text(json.dumps({"check": {"passed": merge_passed}}), encoding="utf-8")
    if validation_passed is not None:
        (merged / "validation_report.json").write_text(json.dumps({"passed": validation_passed}), encoding="utf-8")
    return PipelineResult("done", adapter, merged, object() if validation_passed is not None else None)


def config(tmp_path: Path, **flags: Any) -> TrainConfig:
    return TrainConfig(model_name="m", dataset_path="d.jsonl", output_dir=str(tmp_path / "run"), **flags)


def test_off_by_default(tmp_path: Path, uploads: list[Any]) -> None:
    assert push_results(config(tmp_path), run_dirs(tmp_path)) == []
    assert uploads == []


def test_the_adapter_goes_to_the_output_dir_name_by_default(tmp_path: Path, uploads: list[Any]) -> None:
    result = run_dirs(tmp_path)
    urls = push_results(config(tmp_path, push_to_hub=True), result, log=lambda line: None)
    assert urls == ["https://huggingface.co/run"]
    assert uploads[0] == ("create_repo", {"repo_id": "run", "private": False, "exist_ok": True, "repo_type": "model"})
    assert uploads[1][0] == "upload_folder"
    assert uploads[1][1]["folder_path"] == str(result.adapter_dir)
    assert uploads[1][1]["repo_id"] == "run"


def test_a_proven_merged_model_goes_to_its_own_private_repo(tmp_path: Path, uploads: list[Any]) -> None:
    result = run_dirs(tmp_path, merge_passed=True, validation_passed=True)
    flags = {"push_to_hub": True, "hub_model_id": "me/llama-lora", "hub_private_repo": True, "merge": True,
             "validate": True}
    push_results(config(tmp_path, **flags), result, log=lambda line: None)
    folders = [(call["repo_id"], call["folder_path"]) for name, call in uploads if name == "upload_folder"]
    assert folders == [("me/llama-lora", str(result.adapter_dir)), ("me/llama-lora-merged", str(result.merged_dir))]
    assert all(call["private"] is True for name, call in uploads if name == "create_repo")


@pytest.mark.parametrize(("merge_passed", "validation_passed", "validate", "reason"), [
    (False, None, False, "the merge check in"),
    (True, False, True, "the validation in"),
    (True, None, True, "--validate was asked for but did not run"),
])
def test_nothing_is_pushed_without_the_proofs(tmp_path: Path, uploads: list[Any], merge_passed: bool,
                                              validation_passed: bool | None, validate: bool, reason: str) -> None:
    result = run_dirs(tmp_path, merge_passed=merge_passed, validation_passed=validation_passed)
    flags = {"push_to_hub": True, "merge": True, "validate": validate}
    with pytest.raises(HubPushError, match=reason):
        push_results(config(tmp_path, **flags), result)
    assert uploads == []


def test_a_failed_upload_names_the_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import HfApi

    def refuse(self: Any, repo_id: str, **kwargs: Any) -> None:
        raise OSError("401 Unauthorized")

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    with pytest.raises(HubPushError, match=r"uploading the adapter to run failed \(401 Unauthorized\); it is in "):
        push_results(config(tmp_path, push_to_hub=True), run_dirs(tmp_path))
