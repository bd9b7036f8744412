"""torch.compile of a model's decoder layers, one layer at a time (regional compilation)."""

from __future__ import annotations

from typing import Any

from trainer.errors import BadInputError


def compile_decoder_layers(model: Any, backend: str = "inductor", mode: str | None = None,
                           memory_budget: float = 1.0, dynamic: bool | None = None) -> str:
    """torch.compile each decoder layer in place (regional compilation); says what was compiled. `memory_budget`
    below 1 lets the compiler's partitioner recompute activations in backward instead of keeping them (torch's
    activation_memory_budget, a process-wide setting read when the layers compile at their first call). `dynamic`
    is torch.compile's (None: static first, dynamic once a second shape comes). Raises BadInputError for an unknown
    backend.

    All layers run the same code, so Dynamo compiles one graph and reuses it 32 times: minutes faster than compiling
    the whole model (transformers' torch_compile=True), which on an 8B Llama ran past 150 s without finishing its
    first step on the device. Batch shapes are kept few by padding to collator.COMPILE_PAD_MULTIPLE (or packing).
    """
    import torch

    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known:
        raise BadInputError(f"--torch_compile_backend {backend!r}: not a torch.compile backend; use one of "
                            f"{', '.join(sorted(known))}")
    torch._functorch.config.activation_memory_budget = memory_budget
    layers = [module for module in model.modules() if type(module).__name__.endswith("DecoderLayer")]
    options = {"backend": backend, "dynamic": dynamic} | ({"mode": mode} if mode else {})
    how = backend + (f", mode {mode}" if mode else "") + (f", activation memory budget {memory_budget}"
                                                          if memory_budget < 1 else "")
    if not layers:
        model.compile(**options)
        return f"no decoder layers found, so the whole model was compiled ({how})"
    for layer in layers:
        layer.compile(**options)
    tuning = "; the first step tunes each GEMM and kernel (minutes on an 8B model)" if "autotune" in str(mode) else ""
    return f"{len(layers)} {type(layers[0]).__name__} modules compiled with {how} (one graph, reused by each){tuning}"
