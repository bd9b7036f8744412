"""LoRA dropout inside the rank-r product: Triton kernels that draw the mask from a seed (Philox) as they go.

PEFT's LoRA dropout (and fused_lora's torch path) makes `dropped = dropout(x)` before the rank-r product and keeps it,
or its bool mask, for backward: on the Llama-3.1-8B shape at 4 x 2,048 tokens that is 218M elements a layer. Here

    rank = (x * keep / (1 - p)) @ A^T                       (forward; keeps x and an 8-byte seed, nothing else)
    d(A) = grad_rank^T @ (x * keep / (1 - p))              (backward, the same mask made again from the seed)
    d(x) = base + ((grad_rank @ A) * keep / (1 - p))       (base: d(x) of the base projections, added in the kernel)

keep(m, k) is a pure function of (seed, m, k) whatever the kernels' tile sizes: the columns of a row are cut into
four quarters of width KQ = ceil(K / 4); element (m, k) takes lane k // KQ of the 4 x 32-bit Philox-4x32-10 output
for the counter (k % KQ, m, 0, 0) and the key `seed`, and is kept when that 32-bit word is >= round(p * 2**32). The
keep probability is therefore 1 - p to within 2**-33 (torch's CUDA dropout compares a float from the same Philox
with p), and the kept values are scaled by exactly 1 / (1 - p).

The kernels are torch.library custom ops (`torch.ops.trainer_lora.*`) with fake implementations, so torch.compile
(Dynamo + Inductor, as the trainer compiles each decoder layer) keeps them as opaque calls. `keep_mask` gives the
mask itself (for tests and references). Importing this module needs Triton; fused_lora imports it only when CUDA
and Triton are there.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

PHILOX_ROUNDS = 10  # Philox-4x32-10, as curand's (torch's CUDA dropout) and Triton's tl.rand


def keep_threshold(p: float) -> int:
    """The 32-bit word at or above which an element is kept: P(keep) = 1 - threshold / 2**32."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"dropout probability {p} is not in (0, 1)")
    return min(round(p * 2 ** 32), 2 ** 32 - 1)


# ---------------------------------------------------------------- kernels


@triton.jit
def _randoms(seed, rows, cols, ROUNDS: tl.constexpr):
    """Four blocks of random uint32, [rows, cols]: Philox of the counter (col, row, 0, 0) under the key seed."""
    zero = (rows[:, None] * 0 + cols[None, :] * 0).to(tl.uint32)
    c0 = zero + cols[None, :].to(tl.uint32)
    c1 = zero + rows[:, None].to(tl.uint32)
    return tl.philox(seed, c0, c1, zero, zero, ROUNDS)


@triton.jit
def _fwd_lane(acc, x_rows, row_ok, a_ptr, stride_am, ns, N, cols, lane_start, KQ, K, r, threshold,
              PRECISION: tl.constexpr):
    ks = lane_start + cols
    k_ok = (cols < KQ) & (ks < K)
    x = tl.load(x_rows + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
    # times 0 or 1, not tl.where: Triton 3.6 fails to lower a select on this layout for sm_90 (an assertion in
    # applyLinearLayout once the loads are 16-byte aligned)
    x = x * (r >= threshold).to(x.dtype)
    a = tl.load(a_ptr + ns[None, :] * stride_am + ks[:, None], mask=(ns[None, :] < N) & k_ok[:, None], other=0.0)
    return tl.dot(x, a, acc, input_precision=PRECISION)


@triton.jit
def _rank_fwd_kernel(x_ptr, a_ptr, out_ptr, seed_ptr, M, N, K, KQ, stride_xm, stride_am, stride_om, threshold, scale,
                     BM: tl.constexpr, BN: tl.constexpr, BKQ: tl.constexpr, ROUNDS: tl.constexpr,
                     PRECISION: tl.constexpr):
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    ns = tl.arange(0, BN)
    row_ok = rows < M
    seed = tl.load(seed_ptr)
    threshold = threshold.to(tl.uint32)
    x_rows = x_ptr + rows[:, None].to(tl.int64) * stride_xm
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for c0 in range(0, KQ, BKQ):
        cols = c0 + tl.arange(0, BKQ)
        r0, r1, r2, r3 = _randoms(seed, rows, cols, ROUNDS)
        acc = _fwd_lane(acc, x_rows, row_ok, a_ptr, stride_am, ns, N, cols, 0 * KQ, KQ, K, r0, threshold, PRECISION)
        acc = _fwd_lane(acc, x_rows, row_ok, a_ptr, stride_am, ns, N, cols, 1 * KQ, KQ, K, r1, threshold, PRECISION)
        acc = _fwd_lane(acc, x_rows, row_ok, a_ptr, stride_am, ns, N, cols, 2 * KQ, KQ, K, r2, threshold, PRECISION)
        acc = _fwd_lane(acc, x_rows, row_ok, a_ptr, stride_am, ns, N, cols, 3 * KQ, KQ, K, r3, threshold, PRECISION)
    out = out_ptr + rows[:, None].to(tl.int64) * stride_om + ns[None, :]
    tl.store(out, (acc * scale).to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & (ns[None, :] < N))


@triton.jit
def _bwd_lane(acc, g, rows, row_ok, x_ptr, stride_xm, a_ptr, stride_am, base_ptr, stride_bm, dx_ptr, stride_dm, ns,
              N, cols, lane_start, KQ, K, r, threshold, scale, HAS_BASE: tl.constexpr, NEED_DX: tl.constexpr,
              PRECISION: tl.constexpr):
    ks = lane_start + cols
    k_ok = (cols < KQ) & (ks < K)
    tile_ok = row_ok[:, None] & k_ok[None, :]
    rows64 = rows[:, None].to(tl.int64)
    keep = (r >= threshold).to(tl.float32)  # 0 or 1 (a select fails to lower: see _fwd_lane)
    x = tl.load(x_ptr + rows64 * stride_xm + ks[None, :], mask=tile_ok, other=0.0)
    x = x * keep.to(x.dtype)
    acc = tl.dot(tl.trans(g), x, acc, input_precision=PRECISION)  # [BN, BM] @ [BM, BKQ]
    if NEED_DX:
        a = tl.load(a_ptr + ns[:, None] * stride_am + ks[None, :], mask=(ns[:, None] < N) & k_ok[None, :], other=0.0)
        dx = tl.dot(g, a, input_precision=PRECISION)  # [BM, BN] @ [BN, BKQ], fp32
        dx = dx * (keep * scale)
        if HAS_BASE:
            dx += tl.load(base_ptr + rows64 * stride_bm + ks[None, :], mask=tile_ok, other=0.0).to(tl.float32)
        tl.store(dx_ptr + rows64 * stride_dm + ks[None, :], dx.to(dx_ptr.dtype.element_ty), mask=tile_ok)
    return acc


@triton.jit
def _bwd_store(part_ptr, acc, ns, N, cols, lane_start, KQ, K, scale):
    ks = lane_start + cols
    ok = (ns[:, None] < N) & ((cols < KQ) & (ks < K))[None, :]
    tl.store(part_ptr + ns[:, None] * K + ks[None, :], acc * scale, mask=ok)


@triton.jit
def _rank_bwd_kernel(g_ptr, x_ptr, a_ptr, base_ptr, dx_ptr, part_ptr, seed_ptr, M, N, K, KQ, ROWS,
                     stride_gm, stride_xm, stride_am, stride_bm, stride_dm, threshold, scale,
                     HAS_BASE: tl.constexpr, NEED_DX: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                     BKQ: tl.constexpr, ROUNDS: tl.constexpr, PRECISION: tl.constexpr):
    """Program (i, s): columns [i * BKQ, (i + 1) * BKQ) of each quarter, rows [s * ROWS, (s + 1) * ROWS). Writes
    d(x) of those rows and columns, and its rows' share of d(A) to part[s]."""
    cols = tl.program_id(0) * BKQ + tl.arange(0, BKQ)
    split = tl.program_id(1)
    ns = tl.arange(0, BN)
    seed = tl.load(seed_ptr)
    threshold = threshold.to(tl.uint32)
    acc0 = tl.zeros((BN, BKQ), dtype=tl.float32)
    acc1 = tl.zeros((BN, BKQ), dtype=tl.float32)
    acc2 = tl.zeros((BN, BKQ), dtype=tl.float32)
    acc3 = tl.zeros((BN, BKQ), dtype=tl.float32)
    row_end = tl.minimum(split * ROWS + ROWS, M)
    for m0 in range(split * ROWS, row_end, BM):
        rows = m0 + tl.arange(0, BM)
        row_ok = rows < row_end
        g = tl.load(g_ptr + rows[:, None].to(tl.int64) * stride_gm + ns[None, :],
                    mask=row_ok[:, None] & (ns[None, :] < N), other=0.0)
        r0, r1, r2, r3 = _randoms(seed, rows, cols, ROUNDS)
        acc0 = _bwd_lane(acc0, g, rows, row_ok, x_ptr, stride_xm, a_ptr, stride_am, base_ptr, stride_bm, dx_ptr,
                         stride_dm, ns, N, cols, 0 * KQ, KQ, K, r0, threshold, scale, HAS_BASE, NEED_DX, PRECISION)
        acc1 = _bwd_lane(acc1, g, rows, row_ok, x_ptr, stride_xm, a_ptr, stride_am, base_ptr, stride_bm, dx_ptr,
                         stride_dm, ns, N, cols, 1 * KQ, KQ, K, r1, threshold, scale, HAS_BASE, NEED_DX, PRECISION)
        acc2 = _bwd_lane(acc2, g, rows, row_ok, x_ptr, stride_xm, a_ptr, stride_am, base_ptr, stride_bm, dx_ptr,
                         stride_dm, ns, N, cols, 2 * KQ, KQ, K, r2, threshold, scale, HAS_BASE, NEED_DX, PRECISION)
        acc3 = _bwd_lane(acc3, g, rows, row_ok, x_ptr, stride_xm, a_ptr, stride_am, base_ptr, stride_bm, dx_ptr,
                         stride_dm, ns, N, cols, 3 * KQ, KQ, K, r3, threshold, scale, HAS_BASE, NEED_DX, PRECISION)
    part_ptr += split.to(tl.int64) * N * K
    _bwd_store(part_ptr, acc0, ns, N, cols, 0 * KQ, KQ, K, scale)
    _bwd_store(part_ptr, acc1, ns, N, cols, 1 * KQ, KQ, K, scale)
    _bwd_store(part_ptr, acc2, ns, N, cols, 2 * KQ, KQ, K, scale)
    _bwd_store(part_ptr, acc3, ns, N, cols, 3 * KQ, KQ, K, scale)


@triton.jit
def _keep_mask_kernel(out_ptr, seed_ptr, M, K, KQ, threshold, BM: tl.constexpr, BKQ: tl.constexpr,
                      ROUNDS: tl.constexpr):
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    cols = tl.program_id(1) * BKQ + tl.arange(0, BKQ)
    seed = tl.load(seed_ptr)
    threshold = threshold.to(tl.uint32)
    r0, r1, r2, r3 = _randoms(seed, rows, cols, ROUNDS)
    out_rows = out_ptr + rows[:, None].to(tl.int64) * K
    row_ok = (rows < M)[:, None]
    _store_keep(out_rows, row_ok, cols, 0 * KQ, KQ, K, r0 >= threshold)
    _store_keep(out_rows, row_ok, cols, 1 * KQ, KQ, K, r1 >= threshold)
    _store_keep(out_rows, row_ok, cols, 2 * KQ, KQ, K, r2 >= threshold)
    _store_keep(out_rows, row_ok, cols, 3 * KQ, KQ, K, r3 >= threshold)


@triton.jit
def _store_keep(out_rows, row_ok, cols, lane_start, KQ, K, keep):
    ks = lane_start + cols
    tl.store(out_rows + ks[None, :], keep.to(tl.int8), mask=row_ok & ((cols < KQ) & (ks < K))[None, :])


# ---------------------------------------------------------------- launch settings


def _block_n(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"  # fp32 as torch's default matmul; bf16/fp16 ignore it


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def forward_config(m: int, n: int, k: int) -> dict[str, int]:
    """Tile sizes of the forward kernel (TRAINER_LORA_DROPOUT_FWD_BM/BKQ/WARPS/STAGES override them, for probes).
    Philox's state for a whole tile lives in registers: larger tiles spill (ptxas for sm_90, Triton 3.6). Defaults:
    the fastest of lora_dropout_probe.py's settings on an H100 (forward 32,32,4,3; backward 64,16,4,2)."""
    return {"BM": _env_int("TRAINER_LORA_DROPOUT_FWD_BM", 32), "BKQ": _env_int("TRAINER_LORA_DROPOUT_FWD_BKQ", 32),
            "num_warps": _env_int("TRAINER_LORA_DROPOUT_FWD_WARPS", 4),
            "num_stages": _env_int("TRAINER_LORA_DROPOUT_FWD_STAGES", 3)}


def backward_config(m: int, n: int, k: int) -> dict[str, int]:
    """Tile sizes of the backward kernel (TRAINER_LORA_DROPOUT_BWD_*): four d(A) accumulators of (BN, BKQ) beside
    Philox's state, so narrow column blocks."""
    return {"BM": _env_int("TRAINER_LORA_DROPOUT_BWD_BM", 64), "BKQ": _env_int("TRAINER_LORA_DROPOUT_BWD_BKQ", 16),
            "num_warps": _env_int("TRAINER_LORA_DROPOUT_BWD_WARPS", 4),
            "num_stages": _env_int("TRAINER_LORA_DROPOUT_BWD_STAGES", 2)}


def _programs_wanted(device: torch.device) -> int:
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def _backward_splits(m: int, col_programs: int, block_m: int, wanted: int) -> tuple[int, int]:
    """(rows per split, splits): enough programs to fill the GPU, each split a whole number of row blocks."""
    splits = max(1, min(triton.cdiv(wanted, col_programs), triton.cdiv(m, block_m)))
    rows = triton.cdiv(triton.cdiv(m, splits), block_m) * block_m
    return rows, triton.cdiv(m, rows)


# ---------------------------------------------------------------- ops


def _check(x: torch.Tensor, a: torch.Tensor, seed: torch.Tensor) -> None:
    if x.dim() != 2 or a.dim() != 2 or x.shape[1] != a.shape[1]:
        raise ValueError(f"x {tuple(x.shape)} and A {tuple(a.shape)}: want (tokens, d_in) and (n * r, d_in)")
    if seed.numel() != 1 or seed.dtype != torch.int64:
        raise ValueError("seed: one int64 element")
    if x.shape[0] >= 2 ** 32:
        raise ValueError(f"{x.shape[0]} rows: the Philox counter takes the row as 32 bits")


@torch.library.custom_op("trainer_lora::dropout_rank", mutates_args=())
def dropout_rank(x: torch.Tensor, a: torch.Tensor, seed: torch.Tensor, p: float) -> torch.Tensor:
    """(x * keep / (1 - p)) @ a^T with keep drawn from `seed`: (tokens, d_in), (n * r, d_in) -> (tokens, n * r)."""
    _check(x, a, seed)
    x, a = x.contiguous(), a.contiguous()
    m, k = x.shape
    n = a.shape[0]
    out = torch.empty(m, n, dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    config = forward_config(m, n, k)
    kq = triton.cdiv(k, 4)
    grid = (triton.cdiv(m, config["BM"]),)
    _rank_fwd_kernel[grid](x, a, out, seed, m, n, k, kq, x.stride(0), a.stride(0), out.stride(0), keep_threshold(p),
                           1.0 / (1.0 - p), BM=config["BM"], BN=_block_n(n), BKQ=config["BKQ"], ROUNDS=PHILOX_ROUNDS,
                           PRECISION=_precision(x.dtype), num_warps=config["num_warps"],
                           num_stages=config["num_stages"])
    return out


@dropout_rank.register_fake
def _(x: torch.Tensor, a: torch.Tensor, seed: torch.Tensor, p: float) -> torch.Tensor:
    return x.new_empty(x.shape[0], a.shape[0])


@torch.library.custom_op("trainer_lora::dropout_rank_backward", mutates_args=())
def dropout_rank_backward(grad_rank: torch.Tensor, x: torch.Tensor, a: torch.Tensor, seed: torch.Tensor, p: float,
                          base: torch.Tensor | None, need_dx: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(d(a) in a's dtype, d(x) = base + (grad_rank @ a) * keep / (1 - p)); d(x) is empty when not needed."""
    _check(x, a, seed)
    grad_rank, x, a = grad_rank.contiguous(), x.contiguous(), a.contiguous()
    m, k = x.shape
    n = a.shape[0]
    has_base = need_dx and base is not None
    base = base.contiguous() if has_base else x
    dx = torch.empty_like(x) if need_dx else x.new_empty(0)
    if m == 0:
        return torch.zeros_like(a), (torch.zeros_like(x) if need_dx and not has_base else
                                     base.clone() if has_base else dx)
    config = backward_config(m, n, k)
    kq = triton.cdiv(k, 4)
    col_programs = triton.cdiv(kq, config["BKQ"])
    rows, splits = _backward_splits(m, col_programs, config["BM"], _programs_wanted(x.device))
    part = torch.empty(splits, n, k, dtype=torch.float32, device=x.device)
    _rank_bwd_kernel[(col_programs, splits)](
        grad_rank, x, a, base, dx if need_dx else x, part, seed, m, n, k, kq, rows,
        grad_rank.stride(0), x.stride(0), a.stride(0), base.stride(0), dx.stride(0) if need_dx else 0,
        keep_threshold(p), 1.0 / (1.0 - p), HAS_BASE=has_base, NEED_DX=need_dx, BM=config["BM"], BN=_block_n(n),
        BKQ=config["BKQ"], ROUNDS=PHILOX_ROUNDS, PRECISION=_precision(x.dtype), num_warps=config["num_warps"],
        num_stages=config["num_stages"])
    grad_a = (part[0] if splits == 1 else part.sum(0)).to(a.dtype)
    return grad_a, dx


@dropout_rank_backward.register_fake
def _(grad_rank: torch.Tensor, x: torch.Tensor, a: torch.Tensor, seed: torch.Tensor, p: float,
      base: torch.Tensor | None, need_dx: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(a), (torch.empty_like(x) if need_dx else x.new_empty(0))


def keep_mask(seed: torch.Tensor, rows: int, cols: int, p: float) -> torch.Tensor:
    """The bool mask (rows, cols) that the ops above draw from `seed` for a (rows, cols) input."""
    out = torch.empty(rows, cols, dtype=torch.int8, device=seed.device)
    if rows == 0 or cols == 0:
        return out.view(torch.bool)
    kq = triton.cdiv(cols, 4)
    block_m, block_kq = 32, 64
    grid = (triton.cdiv(rows, block_m), triton.cdiv(kq, block_kq))
    _keep_mask_kernel[grid](out, seed, rows, cols, kq, keep_threshold(p), BM=block_m, BKQ=block_kq,
                            ROUNDS=PHILOX_ROUNDS)
    return out.view(torch.bool)


def new_seed(device: torch.device) -> torch.Tensor:
    """One int64 seed drawn from torch's generator of `device` (so torch.manual_seed makes the masks repeat)."""
    return torch.randint(0, 2 ** 62, (1,), device=device, dtype=torch.int64)
