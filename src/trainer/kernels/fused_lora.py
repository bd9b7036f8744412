"""Fused LoRA projections: the projections that read one input (q, k, v; gate, up) computed in one autograd op.

PEFT's LoRA linear computes `base(x) + lora_B(lora_A(dropout(x))) * scaling` per projection, with the adapter in
fp32 (PEFT upcasts it), so each projection re-reads its input for lora_A, materialises the rank-r product at the
output width, scales and adds it in extra passes, and backward mirrors all of that. Here, per group of projections
that share an input:
- one matmul gives x @ [A_q; A_k; A_v] (the rank-r activations of the whole group), in the input's dtype;
- each output is the base matmul with the rank-r product added by one `addmm` (beta = 1: cuBLAS reads the base output
  in its epilogue, after ATen copies it into the result: the profile's "Memcpy DtoD"; under `--torch_compile_mode`
  max-autotune-no-cudagraphs Inductor runs these `addmm` as Triton GEMMs with the add, and the RoPE or SwiGLU after
  it, in their epilogue, and the copies are gone), not by a separate product, scale and add;
- backward takes d(x) from one chain of `addmm_` (base weights, then the stacked A), and d(A) of the whole group from
  one matmul; only the input (or its dropout), the rank-r activations and the small adapter matrices are saved.
The adapter parameters stay fp32 (master weights); they are cast to the input's dtype for the matmuls, as autocast
does; autocast is off inside (the base weights' dtype throughout). Dropout (lora_dropout > 0) draws one mask per
group (q, k and v see the same dropped input; PEFT draws one per projection). Modules that are not plain LoRA
linears (DoRA or other variants, several active adapters, a quantized base) keep PEFT's forward, and so do fused
ones while their adapters are merged or disabled.

The module tree and state dict are unchanged (each fused module's class becomes a subclass of PEFT's LoRA linear
with the group forward), so adapters save, load and merge as before; `disable_fused_lora` restores PEFT's class.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch

# Projections of one parent module that read the same input, in the order the model calls them.
SHARED_INPUT_GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"), ("query", "key", "value"))


class _SharedInputLoRA(torch.autograd.Function):
    """outputs_i = x @ W_i^T (+ bias_i) + scaling * (dropped @ A^T)[:, block i] @ B_i^T, for i in the group.

    x, dropped: (tokens, d_in), dropped is None without dropout (then x is used); stacked_a: (n * r, d_in);
    params: W_1..W_n, bias_1..bias_n (or None), B_1..B_n with B_i: (d_out_i, r). W and bias are frozen."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dropped: torch.Tensor | None, stacked_a: torch.Tensor, scaling: float,
                *params: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        count = len(params) // 3
        weights, biases, lora_b = params[:count], params[count:2 * count], params[2 * count:]
        lora_input = x if dropped is None else dropped
        rank_acts = lora_input @ stacked_a.t()
        outputs = _group_forward(x, rank_acts, scaling, weights, biases, lora_b)
        ctx.save_for_backward(lora_input, rank_acts, stacked_a, *weights, *lora_b)
        ctx.scaling, ctx.count, ctx.rank = scaling, count, stacked_a.shape[0] // count
        ctx.has_dropout = dropped is not None
        ctx.device_type = x.device.type
        return outputs

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        with torch.autocast(ctx.device_type, enabled=False):  # backward may run in the autocast caller's thread
            return _SharedInputLoRA._backward(ctx, *grads)

    @staticmethod
    def _backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        lora_input, rank_acts, stacked_a, *rest = ctx.saved_tensors
        count = ctx.count
        weights, lora_b = rest[:count], rest[count:]
        grads, grad_rank, grad_b = _group_grads(ctx, grads, rank_acts, weights, lora_b)
        grad_a = grad_rank.t() @ lora_input if ctx.needs_input_grad[2] else None
        grad_x = _base_input_grad(grads, weights) if ctx.needs_input_grad[0] else None
        if grad_x is not None and not ctx.has_dropout:
            grad_x.addmm_(grad_rank, stacked_a)
        grad_dropped = grad_rank @ stacked_a if ctx.has_dropout and ctx.needs_input_grad[1] else None
        return (grad_x, grad_dropped, grad_a, None, *([None] * (2 * count)), *grad_b)


class _SharedInputLoRAKernelDropout(torch.autograd.Function):
    """_SharedInputLoRA with LoRA dropout p drawn inside the rank-r product from `seed` (trainer.kernels.lora_dropout):
    x: (tokens, d_in); seed: one int64 (new per call); p in (0, 1). Keeps x, the seed and the rank-r activations, no
    dropped copy of x and no mask: backward draws the same mask again for d(A) and for the dropout's share of d(x)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, seed: torch.Tensor, p: float, stacked_a: torch.Tensor, scaling: float,
                *params: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        count = len(params) // 3
        weights, biases, lora_b = params[:count], params[count:2 * count], params[2 * count:]
        rank_acts = torch.ops.trainer_lora.dropout_rank(x, stacked_a, seed, p)
        outputs = _group_forward(x, rank_acts, scaling, weights, biases, lora_b)
        ctx.save_for_backward(x, seed, rank_acts, stacked_a, *weights, *lora_b)
        ctx.scaling, ctx.count, ctx.rank, ctx.p = scaling, count, stacked_a.shape[0] // count, p
        ctx.device_type = x.device.type
        return outputs

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        with torch.autocast(ctx.device_type, enabled=False):
            return _SharedInputLoRAKernelDropout._backward(ctx, *grads)

    @staticmethod
    def _backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        x, seed, rank_acts, stacked_a, *rest = ctx.saved_tensors
        count = ctx.count
        weights, lora_b = rest[:count], rest[count:]
        grads, grad_rank, grad_b = _group_grads(ctx, grads, rank_acts, weights, lora_b)
        need_x, need_a = ctx.needs_input_grad[0], ctx.needs_input_grad[3]
        grad_x = grad_a = None
        if need_x or need_a:
            base = _base_input_grad(grads, weights) if need_x else None
            grad_a, grad_x = torch.ops.trainer_lora.dropout_rank_backward(grad_rank, x, stacked_a, seed, ctx.p, base,
                                                                          need_x)
        return (grad_x if need_x else None, None, None, grad_a if need_a else None, None, *([None] * (2 * count)),
                *grad_b)


def _group_forward(x: torch.Tensor, rank_acts: torch.Tensor, scaling: float, weights: tuple, biases: tuple,
                   lora_b: tuple) -> tuple[torch.Tensor, ...]:
    """Each projection's output: its base matmul with its block of the rank-r product added by one addmm."""
    rank = rank_acts.shape[1] // len(weights)
    outputs = []
    for index, (weight, bias, b) in enumerate(zip(weights, biases, lora_b, strict=True)):
        base = x @ weight.t() if bias is None else torch.addmm(bias, x, weight.t())
        # out of place: torch 2.11's compile of an autograd.Function loses every gradient after an in-place op
        # on a tensor made in forward (tests/trainer/test_fused_lora.py); cuBLAS moves the same bytes either way
        outputs.append(torch.addmm(base, rank_acts[:, index * rank:(index + 1) * rank], b.t(), alpha=scaling))
    return tuple(outputs)


def _group_grads(ctx: Any, grads: tuple, rank_acts: torch.Tensor, weights: list,
                 lora_b: list) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, list[torch.Tensor]]:
    """(the outputs' gradients, None made zeros; d(rank activations) of all blocks side by side, (tokens, n * r),
    scaled; d(B) of each projection)."""
    rank, scaling = ctx.rank, ctx.scaling
    grads = tuple(torch.zeros(rank_acts.shape[0], w.shape[0], dtype=rank_acts.dtype, device=rank_acts.device)
                  if g is None else g.reshape(-1, w.shape[0]) for g, w in zip(grads, weights, strict=True))
    grad_rank = torch.cat([g @ b for g, b in zip(grads, lora_b, strict=True)], dim=1).mul_(scaling)
    grad_b = [(g.t() @ rank_acts[:, i * rank:(i + 1) * rank]).mul_(scaling) for i, g in enumerate(grads)]
    return grads, grad_rank, grad_b


def _base_input_grad(grads: tuple[torch.Tensor, ...], weights: list) -> torch.Tensor:
    """d(x) through the frozen base weights: one chain of addmm_."""
    grad_x = grads[0] @ weights[0]
    for g, weight in zip(grads[1:], weights[1:], strict=True):
        grad_x.addmm_(g, weight)
    return grad_x


@dataclass(frozen=True)
class FusedLoRAReport:
    fused_modules: int
    groups: int
    kept: dict[str, str]  # module name -> why PEFT's forward was kept
    kernel_dropout: bool = False  # LoRA dropout drawn inside the rank-r product (trainer.kernels.lora_dropout)

    def describe(self) -> str:
        text = f"fused LoRA on {self.fused_modules} projections in {self.groups} groups"
        if self.kernel_dropout:
            text += " (dropout masks drawn in the LoRA kernel)"
        if self.kept:
            reasons = sorted(set(self.kept.values()))
            text += f"; {len(self.kept)} kept PEFT's forward ({'; '.join(reasons)})"
        return text


def plain_lora_problem(module: Any) -> str | None:
    """Why this module cannot take the fused path, or None when it is a plain single-adapter LoRA linear."""
    from peft.tuners.lora import Linear as LoraLinear

    if not isinstance(module, LoraLinear):
        return "not a PEFT LoRA linear"
    if type(module) not in (LoraLinear, fused_lora_class()):
        return f"{type(module).__name__}, a subclass of PEFT's LoRA linear"
    base = module.get_base_layer()
    if type(base) is not torch.nn.Linear or not base.weight.dtype.is_floating_point:
        return f"base layer is {type(base).__name__}, not a plain torch Linear"
    adapters = [name for name in module.active_adapters if name in module.lora_A]
    if len(adapters) != 1:
        return f"{len(adapters)} active adapters"
    if adapters[0] in getattr(module, "lora_variant", {}):
        return "a LoRA variant (DoRA or similar)"
    if getattr(module, "fan_in_fan_out", False):
        return "fan_in_fan_out weights"
    dropout = module.lora_dropout[adapters[0]]
    if not isinstance(dropout, (torch.nn.Dropout, torch.nn.Identity)):
        return f"dropout module {type(dropout).__name__}"
    return None


def kernel_dropout_available() -> bool:
    """Whether LoRA dropout can be drawn inside the rank-r product here: CUDA and Triton (trainer.kernels.lora_dropout,
    imported by this call, which registers its ops)."""
    if not torch.cuda.is_available():
        return False
    try:
        import trainer.kernels.lora_dropout  # noqa: F401
    except ImportError:  # no Triton
        return False
    return True


def enable_fused_lora(model: torch.nn.Module, kernel_dropout: bool = False) -> FusedLoRAReport:
    """Switch every plain LoRA linear of `model` (a PEFT model, possibly wrapped) to the fused path. kernel_dropout:
    where CUDA and Triton are there, LoRA dropout in training is drawn inside the rank-r product from a seed
    (trainer.kernels.lora_dropout: nothing but the input and the seed kept for backward) instead of by torch's
    dropout; elsewhere, and for inputs not on a CUDA device, torch's dropout as before."""
    from peft.tuners.lora import Linear as LoraLinear

    disable_fused_lora(model)
    names = {module: name for name, module in model.named_modules()}
    kept: dict[str, str] = {}
    groups: list[list[Any]] = []
    for parent in model.modules():
        children = dict(parent.named_children())
        for member_names in _groups_of(children):
            members = []
            for module in (children[name] for name in member_names):
                problem = plain_lora_problem(module)
                if problem is None:
                    members.append(module)
                elif isinstance(module, LoraLinear):
                    kept[names[module]] = problem
            if len({_settings(module) for module in members}) == 1:
                groups.append(members)
            else:  # members that differ (rank, dropout, input width, ...) each run alone
                groups.extend([module] for module in members)
    fused_class = fused_lora_class()
    dropout_op = _SharedInputLoRAKernelDropout if kernel_dropout and kernel_dropout_available() else None
    for members in groups:
        for position, module in enumerate(members):
            module.__class__ = fused_class
            # plain attributes (not submodules): the module tree and the state dict stay as they were
            vars(module).update(_fused_members=tuple(members), _fused_position=position, _fused_ready=None,
                                _fused_ready_for=None, _fused_dropout_op=dropout_op)
    return FusedLoRAReport(sum(len(g) for g in groups), len(groups), kept, dropout_op is not None)


def disable_fused_lora(model: torch.nn.Module) -> int:
    """Give every fused module PEFT's LoRA linear back; returns how many were fused."""
    from peft.tuners.lora import Linear as LoraLinear

    restored = 0
    for module in model.modules():
        if type(module) is fused_lora_class():
            module.__class__ = LoraLinear
            for name in _FUSED_ATTRIBUTES:
                vars(module).pop(name, None)
            restored += 1
    return restored


_FUSED_ATTRIBUTES = ("_fused_members", "_fused_position", "_fused_ready", "_fused_ready_for", "_fused_dropout_op")


# where the kernel dropout runs (Triton on CUDA; tests add "cpu" under Triton's interpreter)
_KERNEL_DROPOUT_DEVICES = ("cuda",)


@cache
def fused_lora_class() -> type:
    """PEFT's LoRA linear with the group forward. One class for all modules (not a per-module bound function), so
    a compiled decoder layer's guards match every layer and one graph serves them all."""
    from peft.tuners.lora import Linear as LoraLinear

    class FusedLoRALinear(LoraLinear):
        def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            """Hand out the output the group computed for this input, else compute the whole group."""
            if args or kwargs or self.disable_adapters or self.merged:
                return super().forward(x, *args, **kwargs)
            if self._fused_ready is not None and self._fused_ready_for is x:
                out = self._fused_ready
                self._fused_ready = self._fused_ready_for = None
                return out
            outputs = _group_outputs(self._fused_members, x)
            for member, out in zip(self._fused_members, outputs, strict=True):
                if member is not self:
                    member._fused_ready, member._fused_ready_for = out, x
            return outputs[self._fused_position]

        def __repr__(self) -> str:
            return "fused_" + super().__repr__()

    FusedLoRALinear.__module__ = __name__
    return FusedLoRALinear


def _groups_of(children: dict[str, Any]) -> Iterable[list[str]]:
    """Names of the parent's children in shared-input groups (in call order), then every other child alone."""
    grouped: set[str] = set()
    for names in SHARED_INPUT_GROUPS:
        present = [name for name in names if name in children]
        if present:
            grouped.update(present)
            yield present
    for name in children:
        if name not in grouped:
            yield [name]


def _settings(module: Any) -> tuple[Any, ...]:
    adapter = _adapter(module)
    base = module.get_base_layer()
    dropout = module.lora_dropout[adapter]
    return (adapter, base.in_features, module.r[adapter], float(module.scaling[adapter]), getattr(dropout, "p", 0.0),
            base.weight.dtype, base.weight.device, module.lora_A[adapter].weight.dtype)


def _adapter(module: Any) -> str:
    return next(name for name in module.active_adapters if name in module.lora_A)


def _group_outputs(members: tuple[Any, ...], x: torch.Tensor) -> list[torch.Tensor]:
    first = members[0]
    adapter = _adapter(first)
    dropout = first.lora_dropout[adapter]
    flat = x.reshape(-1, x.shape[-1])
    drops = isinstance(dropout, torch.nn.Dropout) and dropout.training and 0 < dropout.p < 1
    dropout_op = first._fused_dropout_op if drops and flat.device.type in _KERNEL_DROPOUT_DEVICES else None
    dropped = dropout(flat) if drops and dropout_op is None else None
    compute_dtype = first.get_base_layer().weight.dtype
    flat = flat.to(compute_dtype)
    dropped = dropped.to(compute_dtype) if dropped is not None else None
    stacked_a = torch.cat([m.lora_A[adapter].weight for m in members]).to(compute_dtype)
    bases = [m.get_base_layer() for m in members]
    params = ([b.weight for b in bases] + [b.bias for b in bases]
              + [m.lora_B[adapter].weight.to(compute_dtype) for m in members])
    scaling = float(first.scaling[adapter])
    with torch.autocast(flat.device.type, enabled=False):  # one dtype throughout, whatever autocast would pick
        if dropout_op is not None:  # the mask drawn inside the rank-r product from a seed of torch's generator
            seed = torch.randint(0, 2 ** 62, (1,), device=flat.device, dtype=torch.int64)
            outputs = dropout_op.apply(flat, seed, float(dropout.p), stacked_a, scaling, *params)
        else:
            outputs = _SharedInputLoRA.apply(flat, dropped, stacked_a, scaling, *params)
    return [out.reshape(*x.shape[:-1], out.shape[-1]).to(x.dtype) for out in outputs]
