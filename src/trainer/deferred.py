"""Scalars read off the GPU without stalling it: the per-step loss and gradient norm the divergence guard checks.

`float(loss)` on a CUDA tensor waits until the GPU has run everything queued before it, so the GPU then idles while
the host prepares the next step. `defer` copies the scalar into pinned host memory behind an event instead; the
guard reads it once the copy has landed (`ready`), or waits for it (`value`) only before a save, a log or the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class DeferredScalar:
    """One step's scalar on its way to the host; `event` is None when it was already there."""

    name: str
    step: int
    host: Any  # a float, or a pinned one-element CPU tensor the copy lands in
    event: Any = None

    def ready(self) -> bool:
        return self.event is None or bool(self.event.query())

    def value(self) -> float:
        if self.event is not None:
            self.event.synchronize()
        return float(self.host)


def defer(name: str, value: Any, step: int) -> DeferredScalar:
    """A CUDA tensor is copied without waiting; anything else (a float, a CPU tensor) is read now."""
    device = getattr(value, "device", None)
    if device is None or device.type != "cuda":
        return DeferredScalar(name, step, float(value))
    import torch

    host = torch.empty((), dtype=value.dtype, pin_memory=True)
    host.copy_(value.detach(), non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return DeferredScalar(name, step, host, event)
