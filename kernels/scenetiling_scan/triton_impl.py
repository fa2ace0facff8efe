"""SceneTiling scan in three passes over T frames, all fp32.

1. ``_sims_kernel``: one program per block of rows; each row's dot product with the next row and both norms,
   accumulated over D in chunks (features are read once per row pair; the second read of a row mostly hits L2).
2. ``_block_resets_kernel``: the peak recurrence is a segmented copy: ``lpeak_i`` is the similarity at the last
   "reset" position ``j <= i`` where ``reset_j = not (s_{j-1} >= s_j)``. Each block reports its last left reset
   and first right reset; an exclusive running max/min over the (few) blocks in PyTorch gives every block its carry.
3. ``_depth_kernel``: block-local ``tl.associative_scan`` (max from the left, min from the right) of reset
   positions, merged with the carry, gathers the peaks and writes ``depth = lpeak + rpeak - 2 s``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .naive import COSINE_EPS

_SCAN_BLOCK = 1024


@triton.jit
def _sims_kernel(F, S, stride_t, stride_d, n_sims, dim, eps,
                 BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    ok = rows < n_sims
    cols = tl.arange(0, BLOCK_D)
    dot = tl.zeros([BLOCK_T], tl.float32)
    norm_a = tl.zeros([BLOCK_T], tl.float32)
    norm_b = tl.zeros([BLOCK_T], tl.float32)
    row_a = F + rows.to(tl.int64)[:, None] * stride_t
    for start in range(0, dim, BLOCK_D):
        c = start + cols
        mask = ok[:, None] & (c < dim)[None, :]
        a = tl.load(row_a + c[None, :] * stride_d, mask=mask, other=0.0).to(tl.float32)  # (BT, BD) frames i
        b = tl.load(row_a + stride_t + c[None, :] * stride_d, mask=mask, other=0.0).to(tl.float32)  # frames i+1
        dot += tl.sum(a * b, 1)
        norm_a += tl.sum(a * a, 1)
        norm_b += tl.sum(b * b, 1)
    denom = tl.maximum(tl.sqrt(norm_a), eps) * tl.maximum(tl.sqrt(norm_b), eps)
    tl.store(S + rows, dot / denom, mask=ok)


@triton.jit
def _resets(S, idx, ok, n):
    s = tl.load(S + idx, mask=ok, other=0.0)
    prev = tl.load(S + idx - 1, mask=ok & (idx > 0), other=0.0)
    nxt = tl.load(S + idx + 1, mask=ok & (idx + 1 < n), other=0.0)
    # Written as not(>=) so that a NaN stops the climb, like the reference and the published loop.
    reset_l = ok & ((idx == 0) | ~(prev >= s))
    reset_r = ok & ((idx == n - 1) | ~(nxt >= s))
    return s, reset_l, reset_r


@triton.jit
def _max(a, b):
    return tl.maximum(a, b)


@triton.jit
def _min(a, b):
    return tl.minimum(a, b)


@triton.jit
def _block_resets_kernel(S, LAST_L, FIRST_R, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    idx = pid * BLOCK + tl.arange(0, BLOCK)
    ok = idx < n
    _, reset_l, reset_r = _resets(S, idx, ok, n)
    tl.store(LAST_L + pid, tl.max(tl.where(reset_l, idx, -1), 0))
    tl.store(FIRST_R + pid, tl.min(tl.where(reset_r, idx, n), 0))


@triton.jit
def _depth_kernel(S, CARRY_L, CARRY_R, DEPTH, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    idx = pid * BLOCK + tl.arange(0, BLOCK)
    ok = idx < n
    s, reset_l, reset_r = _resets(S, idx, ok, n)
    left = tl.associative_scan(tl.where(reset_l, idx, -1), 0, _max)
    left = tl.maximum(left, tl.load(CARRY_L + pid))
    right = tl.associative_scan(tl.where(reset_r, idx, n), 0, _min, reverse=True)
    right = tl.minimum(right, tl.load(CARRY_R + pid))
    lpeak = tl.load(S + left, mask=ok, other=0.0)
    rpeak = tl.load(S + right, mask=ok, other=0.0)
    tl.store(DEPTH + idx, lpeak + rpeak - 2.0 * s, mask=ok)


def similarities_triton(features: torch.Tensor) -> torch.Tensor:
    """(T, D) features, T >= 2 -> (T-1,) fp32 cosine similarities of neighbouring rows."""
    t, dim = features.shape
    n = t - 1
    sims = torch.empty(n, dtype=torch.float32, device=features.device)
    block_t = 64
    block_d = min(128, max(16, triton.next_power_of_2(dim)))
    _sims_kernel[(triton.cdiv(n, block_t),)](features, sims, features.stride(0), features.stride(1), n, dim,
                                             COSINE_EPS, BLOCK_T=block_t, BLOCK_D=block_d, num_warps=4)
    return sims


def depth_scores_triton(sims: torch.Tensor) -> torch.Tensor:
    """(N,) contiguous fp32 similarities, N >= 1 -> (N,) fp32 depth scores."""
    n = sims.shape[0]
    depth = torch.empty_like(sims)
    blocks = triton.cdiv(n, _SCAN_BLOCK)
    last_l = torch.empty(blocks, dtype=torch.int32, device=sims.device)
    first_r = torch.empty(blocks, dtype=torch.int32, device=sims.device)
    _block_resets_kernel[(blocks,)](sims, last_l, first_r, n, BLOCK=_SCAN_BLOCK, num_warps=4)
    # Exclusive running max from the left / min from the right over blocks (position 0 and N-1 always reset, so
    # the -1 and N sentinels never survive into a valid position).
    carry_l = torch.cat([last_l.new_full((1,), -1), last_l.cummax(0).values[:-1]])  # (blocks,)
    carry_r = torch.cat([first_r.flip(0).cummin(0).values.flip(0)[1:], first_r.new_full((1,), n)])  # (blocks,)
    _depth_kernel[(blocks,)](sims, carry_l, carry_r, depth, n, BLOCK=_SCAN_BLOCK, num_warps=4)
    return depth


def scenetiling_scan_triton(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton SceneTiling scan; same contract as ``videollm_kernels.scenetiling_scan``."""
    if features.shape[0] < 2:
        empty = torch.empty(0, dtype=torch.float32, device=features.device)
        return empty, empty.clone()
    sims = similarities_triton(features)  # (T-1,)
    return sims, depth_scores_triton(sims)
