"""--push_to_hub: upload the adapter and, with --merge, the merged model to the Hugging Face Hub (off by default).

Only proven results leave the machine: nothing is pushed unless the run ended well, and the merged model only when
its merge_info.json records a passed logit check and, when --validate ran, validation_report.json a passed
validation. The adapter goes to --hub_model_id (default: the --output_dir name), the merged model to
HUB_MODEL_ID-merged. Uploads use huggingface_hub's HfApi (the token of `hf auth login` or HF_TOKEN).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import CheckFailedError, first_line

MERGE_INFO_FILE = "merge_info.json"  # written by trainer.merge
VALIDATION_REPORT = "validation_report.json"  # written by trainer.validate


class HubPushError(CheckFailedError):
    """An upload that was refused (an unproven model) or failed; the local files are kept."""


@dataclass(frozen=True)
class Upload:
    folder: Path
    repo_id: str
    what: str  # "adapter" or "merged model"


def hub_repo_id(config: Any) -> str:
    return config.hub_model_id or Path(config.output_dir).expanduser().resolve().name


def planned_uploads(config: Any, adapter_dir: Path, merged_dir: Path | None, validated: bool) -> list[Upload]:
    """What --push_to_hub uploads after a run that ended with exit code 0. Raises HubPushError when the merged
    model's proof (merge check, validation) is missing or failed: then nothing is uploaded."""
    repo_id = hub_repo_id(config)
    uploads = [Upload(adapter_dir, repo_id, "adapter")]
    if merged_dir is not None:
        problem = proof_problem(merged_dir, validated)
        if problem:
            raise HubPushError(f"--push_to_hub: nothing pushed, {problem}")
        uploads.append(Upload(merged_dir, f"{repo_id}-merged", "merged model"))
    return uploads


def proof_problem(merged_dir: Path, validated: bool) -> str | None:
    """Why the merged model in merged_dir is not proven good, or None."""
    merge_info = _read_json(merged_dir / MERGE_INFO_FILE)
    if not (merge_info and merge_info.get("check", {}).get("passed") is True):
        return f"the merge check in {merged_dir / MERGE_INFO_FILE} is missing or did not pass"
    if validated:
        report = _read_json(merged_dir / VALIDATION_REPORT)
        if not (report and report.get("passed") is True):
            return f"the validation in {merged_dir / VALIDATION_REPORT} is missing or did not pass"
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def push(uploads: list[Upload], private: bool, log: Any = print) -> list[str]:
    """Create each repository (if needed) and upload its folder; returns the repository URLs. Raises HubPushError."""
    from huggingface_hub import HfApi

    api = HfApi()
    urls = []
    for upload in uploads:
        try:
            repo = api.create_repo(upload.repo_id, private=private, exist_ok=True, repo_type="model")
            api.upload_folder(folder_path=str(upload.folder), repo_id=upload.repo_id, repo_type="model",
                              commit_message=f"Upload {upload.what} trained with envdoctor's trainer")
        except Exception as error:  # noqa: BLE001 - network, authentication and hub errors of every kind
            raise HubPushError(f"--push_to_hub: uploading the {upload.what} to {upload.repo_id} failed "
                               f"({first_line(error)}); it is in {upload.folder}; log in with `hf auth login` "
                               "or set HF_TOKEN, then upload it with `hf upload`") from None
        url = str(getattr(repo, "url", repo) or f"https://huggingface.co/{upload.repo_id}")
        log(f"pushed the {upload.what} in {upload.folder} to {url}")
        urls.append(url)
    return urls


def push_results(config: Any, result: Any, log: Any = print) -> list[str]:
    """--push_to_hub after trainer.pipeline.run_pipeline returned (every stage passed); `result` is its
    PipelineResult. Nothing on ranks other than 0 (no adapter_dir there). Raises HubPushError."""
    if not config.push_to_hub or result.adapter_dir is None:
        return []
    validated = result.validation is not None
    if config.merge and result.merged_dir is None:
        raise HubPushError("--push_to_hub: nothing pushed, --merge was asked for but no merged model was made")
    if config.validate and not validated:
        raise HubPushError("--push_to_hub: nothing pushed, --validate was asked for but did not run")
    uploads = planned_uploads(config, result.adapter_dir, result.merged_dir, validated)
    return push(uploads, config.hub_private_repo, log)
