"""GPU time of a piece of work, by CUDA events (the host may run ahead; only the GPU's clock counts)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def cuda_ms(work: Callable[[], object], iters: int) -> float:
    """Milliseconds per call of `work`, averaged over `iters` calls; warm up before calling this."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        work()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters
