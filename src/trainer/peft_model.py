"""The transformers model inside a PEFT wrapper (the trainer trains through one; settings such as the attention
implementation and the config live on the model inside)."""

from __future__ import annotations

from typing import Any


def base_model(model: Any) -> Any:
    """`model.get_base_model()` for a PEFT wrapper; `model` itself for a plain transformers model."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model
