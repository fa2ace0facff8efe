"""Flash attention (no mask) over the first ``kv_len`` rows of a key/value buffer: forward and backward kernels.

Forward: online softmax with fp32 running max/sum and fp32 accumulator; the log-sum-exp of every query row is kept
(base 2) for the backward pass. When there are few query blocks (memory retrieval: 32 queries over a long cache) the
key range is split across programs (flash-decoding) and the partial results are merged in PyTorch.

Backward (FlashAttention-2): one kernel owns a block of keys and walks every query block to accumulate dK/dV, a
second owns a block of queries and walks the keys for dQ. Two kernels instead of atomics keep gradients
deterministic. Keys at or past ``kv_len`` are never loaded (masked loads) and their gradient rows stay zero.

Kernels take arbitrary strides, so the head-split views of the bridge (``(B, N, H, Dh)`` transposed) are read in
place without a copy.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from .._dispatch import interpreting

LOG2E = 1.4426950408889634


@triton.jit
def _dot(a, b, EXACT: tl.constexpr):
    # EXACT: fp32 inputs use IEEE products (not TF32) so that the kernel matches the fp32 reference; the CPU
    # interpreter of Triton 3.8 also returns garbage for bf16 tl.dot, so interpreted runs upcast (bf16 values are
    # exact in fp32, so this only changes the summation order).
    if EXACT:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    return tl.dot(a, b)


@triton.jit
def _fwd_kernel(
    Q, K, V, O, LSE,
    sq_b, sq_h, sq_m, sq_d,
    sk_b, sk_h, sk_n, sk_d,
    sv_b, sv_h, sv_n, sv_d,
    so_s, so_b, so_h, so_m, so_d,
    sl_s, sl_bh,
    n_heads, n_q, kv_len, kv_per_split, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    EXACT: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    pid_s = tl.program_id(2)
    b = pid_bh // n_heads
    h = pid_bh % n_heads
    kv_start = pid_s * kv_per_split
    kv_stop = tl.minimum(kv_start + kv_per_split, kv_len)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    m_ok = offs_m < n_q
    d_ok = offs_d < HEAD_DIM

    q = tl.load(Q + b * sq_b + h * sq_h + offs_m[:, None] * sq_m + offs_d[None, :] * sq_d,
                mask=m_ok[:, None] & d_ok[None, :], other=0.0)  # (BM, BD)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    k_base = K + b * sk_b + h * sk_h
    v_base = V + b * sv_b + h * sv_h
    for start in range(kv_start, kv_stop, BLOCK_N):
        cols = start + offs_n
        n_ok = cols < kv_stop
        kt = tl.load(k_base + cols[None, :] * sk_n + offs_d[:, None] * sk_d,
                     mask=n_ok[None, :] & d_ok[:, None], other=0.0)  # (BD, BN)
        v = tl.load(v_base + cols[:, None] * sv_n + offs_d[None, :] * sv_d,
                    mask=n_ok[:, None] & d_ok[None, :], other=0.0)  # (BN, BD)
        s = _dot(q, kt, EXACT) * qk_scale  # (BM, BN), base-2 logits
        s = tl.where(n_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, EXACT)
        m_i = m_new

    out = acc / l_i[:, None]
    o_ptrs = O + pid_s * so_s + b * so_b + h * so_h + offs_m[:, None] * so_m + offs_d[None, :] * so_d
    tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=m_ok[:, None] & d_ok[None, :])
    tl.store(LSE + pid_s * sl_s + pid_bh * sl_bh + offs_m, m_i + tl.log2(l_i), mask=m_ok)


@triton.jit
def _bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV,
    sq_b, sq_h, sq_m, sq_d,
    sk_b, sk_h, sk_n, sk_d,
    sv_b, sv_h, sv_n, sv_d,
    sdo_b, sdo_h, sdo_m, sdo_d,
    sdk_b, sdk_h, sdk_n, sdk_d,
    sdv_b, sdv_h, sdv_n, sdv_d,
    n_heads, n_q, kv_len, qk_scale, sm_scale,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    EXACT: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // n_heads
    h = pid_bh % n_heads
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_m = tl.arange(0, BLOCK_M)
    n_ok = offs_n < kv_len
    d_ok = offs_d < HEAD_DIM

    k = tl.load(K + b * sk_b + h * sk_h + offs_n[:, None] * sk_n + offs_d[None, :] * sk_d,
                mask=n_ok[:, None] & d_ok[None, :], other=0.0)  # (BN, BD)
    v = tl.load(V + b * sv_b + h * sv_h + offs_n[:, None] * sv_n + offs_d[None, :] * sv_d,
                mask=n_ok[:, None] & d_ok[None, :], other=0.0)  # (BN, BD)
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    q_base = Q + b * sq_b + h * sq_h
    do_base = DO + b * sdo_b + h * sdo_h
    for start in range(0, n_q, BLOCK_M):
        rows = start + offs_m
        m_ok = rows < n_q
        qt = tl.load(q_base + rows[None, :] * sq_m + offs_d[:, None] * sq_d,
                     mask=m_ok[None, :] & d_ok[:, None], other=0.0)  # (BD, BM)
        do = tl.load(do_base + rows[:, None] * sdo_m + offs_d[None, :] * sdo_d,
                     mask=m_ok[:, None] & d_ok[None, :], other=0.0)  # (BM, BD)
        # Padded query rows get lse = +inf, hence probability 0, so they add nothing to dK/dV.
        lse = tl.load(LSE + pid_bh * n_q + rows, mask=m_ok, other=float("inf"))
        delta = tl.load(DELTA + pid_bh * n_q + rows, mask=m_ok, other=0.0)
        st = _dot(k, qt, EXACT) * qk_scale  # (BN, BM): scores transposed
        pt = tl.exp2(st - lse[None, :])
        dv += _dot(pt.to(do.dtype), do, EXACT)
        dpt = _dot(v, tl.trans(do), EXACT)  # (BN, BM)
        dst = pt * (dpt - delta[None, :])
        dk += _dot(dst.to(qt.dtype), tl.trans(qt), EXACT)
    dk = dk * sm_scale
    out_mask = n_ok[:, None] & d_ok[None, :]
    tl.store(DK + b * sdk_b + h * sdk_h + offs_n[:, None] * sdk_n + offs_d[None, :] * sdk_d,
             dk.to(DK.dtype.element_ty), mask=out_mask)
    tl.store(DV + b * sdv_b + h * sdv_h + offs_n[:, None] * sdv_n + offs_d[None, :] * sdv_d,
             dv.to(DV.dtype.element_ty), mask=out_mask)


@triton.jit
def _bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ,
    sq_b, sq_h, sq_m, sq_d,
    sk_b, sk_h, sk_n, sk_d,
    sv_b, sv_h, sv_n, sv_d,
    sdo_b, sdo_h, sdo_m, sdo_d,
    sdq_s, sdq_b, sdq_h, sdq_m, sdq_d,
    n_heads, n_q, kv_len, kv_per_split, qk_scale, sm_scale,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    EXACT: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    pid_s = tl.program_id(2)
    b = pid_bh // n_heads
    h = pid_bh % n_heads
    kv_start = pid_s * kv_per_split
    kv_stop = tl.minimum(kv_start + kv_per_split, kv_len)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    m_ok = offs_m < n_q
    d_ok = offs_d < HEAD_DIM

    q = tl.load(Q + b * sq_b + h * sq_h + offs_m[:, None] * sq_m + offs_d[None, :] * sq_d,
                mask=m_ok[:, None] & d_ok[None, :], other=0.0)  # (BM, BD)
    do = tl.load(DO + b * sdo_b + h * sdo_h + offs_m[:, None] * sdo_m + offs_d[None, :] * sdo_d,
                 mask=m_ok[:, None] & d_ok[None, :], other=0.0)  # (BM, BD)
    lse = tl.load(LSE + pid_bh * n_q + offs_m, mask=m_ok, other=float("inf"))
    delta = tl.load(DELTA + pid_bh * n_q + offs_m, mask=m_ok, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    k_base = K + b * sk_b + h * sk_h
    v_base = V + b * sv_b + h * sv_h
    for start in range(kv_start, kv_stop, BLOCK_N):
        cols = start + offs_n
        n_ok = cols < kv_stop
        kt = tl.load(k_base + cols[None, :] * sk_n + offs_d[:, None] * sk_d,
                     mask=n_ok[None, :] & d_ok[:, None], other=0.0)  # (BD, BN)
        vt = tl.load(v_base + cols[None, :] * sv_n + offs_d[:, None] * sv_d,
                     mask=n_ok[None, :] & d_ok[:, None], other=0.0)  # (BD, BN)
        s = _dot(q, kt, EXACT) * qk_scale
        # Masked keys were loaded as zeros, which would still get weight exp2(-lse): zero them explicitly.
        p = tl.where(n_ok[None, :], tl.exp2(s - lse[:, None]), 0.0)
        dp = _dot(do, vt, EXACT)
        ds = p * (dp - delta[:, None])
        dq += _dot(ds.to(kt.dtype), tl.trans(kt), EXACT)
    dq = dq * sm_scale
    tl.store(DQ + pid_s * sdq_s + b * sdq_b + h * sdq_h + offs_m[:, None] * sdq_m + offs_d[None, :] * sdq_d,
             dq.to(DQ.dtype.element_ty), mask=m_ok[:, None] & d_ok[None, :])


@functools.cache
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


class Blocks(NamedTuple):
    """Tile sizes and launch settings shared by the forward and backward kernels."""

    m: int  # query rows a program holds
    n: int  # key rows a loop step loads
    d: int  # head dim padded to a power of two
    warps: int
    fwd_stages: int
    bwd_stages: int


def _blocks(head_dim: int, n_q: int) -> Blocks:
    """Launch settings measured on an H100 (``benchmarks/kernel_tuning.py``, torch 2.11 / Triton 3.6, bf16, Dh 128):
    64 x 64 tiles with 4 warps were within 9% of the best of 24 forward and 24 backward settings at the bridge size
    (1 and 8 videos x 8 heads x 1184 tokens) and the best for retrieval over short caches. Head dims above 128 keep
    narrower key tiles (untested on a GPU)."""
    block_d = max(16, triton.next_power_of_2(head_dim))
    block_m = min(64, max(16, triton.next_power_of_2(n_q)))
    if block_d <= 128:
        return Blocks(block_m, 64, block_d, 4, 2, 2)
    return Blocks(block_m, 32, block_d, 8, 2, 1)


# Splitting the key range costs a merge in PyTorch (~0.15 ms of launches on the H100); it paid off only for long
# caches: retrieval over 32,000 keys 0.90 ms unsplit -> 0.29-0.43 ms with 4-64 splits, while 320 and 3,200 keys were
# fastest unsplit (0.08 / 0.13 ms vs 0.22+ split).
MIN_KEYS_TO_SPLIT = 8192
MIN_KEYS_PER_SPLIT = 2048


def _splits(q: torch.Tensor, n_q: int, kv_len: int, block_m: int, block_n: int, requested: int | None) -> int:
    """Key-range splits so that a handful of query blocks over a long cache still fill the GPU (flash-decoding)."""
    max_splits = triton.cdiv(kv_len, block_n)
    if requested is not None:
        return max(1, min(requested, max_splits))
    if not q.is_cuda or kv_len < MIN_KEYS_TO_SPLIT:
        return 1
    programs = triton.cdiv(n_q, block_m) * q.shape[0] * q.shape[1]
    # Aim for ~2 programs per SM, each split with at least MIN_KEYS_PER_SPLIT keys of work.
    wanted = triton.cdiv(2 * _sm_count(q.device.index or 0), programs)
    return max(1, min(wanted, triton.cdiv(kv_len, MIN_KEYS_PER_SPLIT)))


def _split_range(kv_len: int, splits: int, block_n: int) -> tuple[int, int]:
    per_split = triton.cdiv(triton.cdiv(kv_len, splits), block_n) * block_n
    return per_split, triton.cdiv(kv_len, per_split)


def _merge_splits(o_parts: torch.Tensor, lse_parts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine per-split softmax results: o_parts (S, B, H, M, Dh), lse_parts (S, B*H, M) base-2 -> o, lse."""
    lse = torch.logsumexp(lse_parts * math.log(2.0), dim=0) / math.log(2.0)  # (B*H, M)
    weights = torch.exp2(lse_parts - lse)  # (S, B*H, M)
    s, b, h, m, _ = o_parts.shape
    o = (weights.view(s, b, h, m, 1) * o_parts).sum(0)  # (B, H, M, Dh)
    return o, lse


def attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_len: int, scale: float,
                      num_kv_splits: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kernel launch. Returns (o (B, H, M, Dh) in q's dtype, lse (B*H, M) fp32 base-2 log-sum-exp)."""
    b, h, n_q, head_dim = q.shape
    blocks = _blocks(head_dim, n_q)
    block_m, block_n, block_d = blocks.m, blocks.n, blocks.d
    per_split, splits = _split_range(kv_len, _splits(q, n_q, kv_len, block_m, block_n, num_kv_splits), block_n)
    exact = interpreting() or q.dtype == torch.float32
    if splits == 1:
        # Written in (B, M, H, Dh) memory order so that merging heads afterwards is a free view.
        o = q.new_empty((b, n_q, h, head_dim)).transpose(1, 2)  # (B, H, M, Dh)
        o_strides = (0, *o.stride())
    else:
        o = q.new_empty((splits, b, h, n_q, head_dim), dtype=torch.float32)  # fp32 partials, merged below
        o_strides = o.stride()
    lse = q.new_empty((splits, b * h, n_q), dtype=torch.float32)
    grid = (triton.cdiv(n_q, block_m), b * h, splits)
    _fwd_kernel[grid](
        q, k, v, o, lse,
        *q.stride(), *k.stride(), *v.stride(), *o_strides, *lse.stride()[:2],
        h, n_q, kv_len, per_split, scale * LOG2E,
        HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d, EXACT=exact,
        num_warps=blocks.warps, num_stages=blocks.fwd_stages,
    )
    if splits == 1:
        return o, lse[0]
    merged, lse_all = _merge_splits(o, lse)
    out = q.new_empty((b, n_q, h, head_dim)).transpose(1, 2)  # (B, H, M, Dh), heads-last memory order
    out.copy_(merged)
    return out, lse_all.contiguous()


def attention_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
                       do: torch.Tensor, kv_len: int, scale: float, num_kv_splits: int | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward kernel launches. Returns dq (like q), dk and dv (like k/v, zero rows at and past ``kv_len``)."""
    b, h, n_q, head_dim = q.shape
    blocks = _blocks(head_dim, n_q)
    block_m, block_n, block_d = blocks.m, blocks.n, blocks.d
    exact = interpreting() or q.dtype == torch.float32
    delta = (do.float() * o.float()).sum(-1).reshape(b * h, n_q)  # (B*H, M) rowsum(dO * O)
    dk = torch.zeros_like(k)
    dv = torch.zeros_like(v)
    common = {"HEAD_DIM": head_dim, "BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_D": block_d, "EXACT": exact,
              "num_warps": blocks.warps, "num_stages": blocks.bwd_stages}
    _bwd_dkdv_kernel[(triton.cdiv(kv_len, block_n), b * h)](
        q, k, v, do, lse, delta, dk, dv,
        *q.stride(), *k.stride(), *v.stride(), *do.stride(), *dk.stride(), *dv.stride(),
        h, n_q, kv_len, scale * LOG2E, scale, **common,
    )
    per_split, splits = _split_range(kv_len, _splits(q, n_q, kv_len, block_m, block_n, num_kv_splits), block_n)
    if splits == 1:
        dq = torch.empty_like(q, memory_format=torch.contiguous_format)
        dq_strides = (0, *dq.stride())
    else:
        dq = q.new_empty((splits, b, h, n_q, head_dim), dtype=torch.float32)
        dq_strides = dq.stride()
    _bwd_dq_kernel[(triton.cdiv(n_q, block_m), b * h, splits)](
        q, k, v, do, lse, delta, dq,
        *q.stride(), *k.stride(), *v.stride(), *do.stride(), *dq_strides,
        h, n_q, kv_len, per_split, scale * LOG2E, scale, **common,
    )
    if splits > 1:
        dq = dq.sum(0).to(q.dtype)
    return dq, dk, dv


class FlashAttention(torch.autograd.Function):
    """Autograd wrapper: ``apply(q, k, v, kv_len, scale, num_kv_splits)``; gradients for q, k and v."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_len: int, scale: float,
                num_kv_splits: int | None) -> torch.Tensor:
        o, lse = attention_forward(q, k, v, kv_len, scale, num_kv_splits)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.kv_len, ctx.scale, ctx.num_kv_splits = kv_len, scale, num_kv_splits
        return o

    @staticmethod
    def backward(ctx, do: torch.Tensor):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(q, k, v, o, lse, do, ctx.kv_len, ctx.scale, ctx.num_kv_splits)
        return dq, dk, dv, None, None, None


def flash_attention_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_len: int, scale: float,
                           num_kv_splits: int | None = None) -> torch.Tensor:
    """Triton attention over the first ``kv_len`` keys; ``num_kv_splits`` overrides the split heuristic (tests)."""
    return FlashAttention.apply(q, k, v, kv_len, scale, num_kv_splits)
