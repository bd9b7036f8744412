"""--report_to: the experiment trackers transformers' Trainer reports to, checked by name and by package before the
gate (torch-free: the packages are found with importlib, as transformers' own is_<tracker>_available does).

OUTPUT_DIR/metrics.jsonl and loss.png are written whatever --report_to says; `jsonl` (the default) or `none` alone
adds no tracker.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Tracker:
    name: str  # transformers' report_to name
    modules: tuple[str, ...]  # import names that must be found (any one of them, for `any_module`)
    install: str  # what to pip install
    any_module: bool = False
    env: str | None = None  # an environment variable the tracker needs instead of a package


# transformers.integrations.integration_utils.INTEGRATION_TO_CALLBACK's keys (tests/trainer/test_trackers.py keeps
# this table in step with the installed transformers), with the modules its is_<name>_available() looks for.
TRACKERS = {tracker.name: tracker for tracker in (
    Tracker("azure_ml", ("azureml.core.run",), "azureml-core"),
    Tracker("clearml", ("clearml",), "clearml"),
    Tracker("codecarbon", ("codecarbon",), "codecarbon"),
    Tracker("comet_ml", ("comet_ml",), "comet_ml"),
    Tracker("dagshub", ("dagshub", "mlflow"), "dagshub mlflow"),
    Tracker("dvclive", ("dvclive",), "dvclive"),
    Tracker("flyte", ("flytekit", "flytekitplugins.deck"), "flytekit flytekitplugins-deck-standard"),
    Tracker("kubeflow", (), "", env="KUBEFLOW_TRAINER_SERVER_URL"),  # set inside a Kubeflow TrainJob
    Tracker("mlflow", ("mlflow",), "mlflow"),
    Tracker("neptune", ("neptune",), "neptune"),
    Tracker("swanlab", ("swanlab",), "swanlab"),
    Tracker("tensorboard", ("tensorboard", "tensorboardX"), "tensorboard", any_module=True),
    Tracker("trackio", ("trackio",), "trackio"),
    Tracker("wandb", ("wandb",), "wandb"),
)}
JSONL_ONLY = ("jsonl", "none")  # no tracker besides the JSONL log


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing, or a broken module spec
        return False


def is_installed(tracker: Tracker) -> bool:
    if tracker.env is not None:
        return bool(os.environ.get(tracker.env))
    found = [_found(module) for module in tracker.modules]
    return any(found) if tracker.any_module else all(found)


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _env_false(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"0", "OFF", "NO", "FALSE"}


def report_to_problem(names: list[str]) -> str | None:
    """Why --report_to NAMES cannot be used (an unknown name, a tracker whose package is missing), or None."""
    unknown = [name for name in names if name not in TRACKERS and name not in JSONL_ONLY]
    if unknown:
        return (f"--report_to {' '.join(unknown)}: not a tracker transformers reports to; use any of "
                f"{', '.join(sorted(TRACKERS))}, or jsonl (the JSONL log alone)")
    if len(names) > 1 and any(name in JSONL_ONLY for name in names):
        return f"--report_to {' '.join(names)}: jsonl/none mean no tracker; name the trackers alone"
    if "clearml" in names and _env_true("CLEARML_OFFLINE_MODE") and not _env_false("CLEARML_LOG_MODEL"):
        return ("--report_to clearml with CLEARML_OFFLINE_MODE set: transformers uploads every checkpoint to ClearML "
                "unless CLEARML_LOG_MODEL is false, and an offline session cannot store one (it fails at the first "
                "save); set CLEARML_LOG_MODEL=FALSE")
    missing = [TRACKERS[name] for name in names if name in TRACKERS and not is_installed(TRACKERS[name])]
    needs_env = [t for t in missing if t.env]
    if needs_env:
        return (f"--report_to {needs_env[0].name}: needs the environment variable {needs_env[0].env}, which is not "
                "set; drop it from --report_to")
    if missing:
        return (f"--report_to {' '.join(t.name for t in missing)}: not installed here; "
                f"pip install {' '.join(t.install for t in missing)}, or drop it from --report_to")
    return None


def transformers_report_to(names: list[str]) -> list[str] | str:
    """The value for TrainingArguments.report_to: the trackers named, or "none"."""
    trackers = [name for name in names if name in TRACKERS]
    return trackers or "none"
