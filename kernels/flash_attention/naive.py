"""Reference attention without a mask over the first ``kv_len`` keys, softmax in fp32 (plain PyTorch autograd)."""

from __future__ import annotations

import torch


def flash_attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_len: int, scale: float) -> torch.Tensor:
    """``softmax(q k[:kv_len]^T * scale) v[:kv_len]`` per (batch, head), computed in fp32.

    Args:
        q: (B, H, M, Dh) queries.
        k, v: (B, H, Kmax, Dh) keys/values; only rows ``< kv_len`` are read (slicing, so NaN beyond is harmless).
        kv_len: number of valid key rows, 1 <= kv_len <= Kmax.
        scale: softmax temperature applied to the scores.

    Returns:
        (B, H, M, Dh) in the dtype of ``q``.
    """
    keys = k[:, :, :kv_len].float()  # (B, H, L, Dh)
    values = v[:, :, :kv_len].float()  # (B, H, L, Dh)
    scores = torch.matmul(q.float(), keys.transpose(-1, -2)) * scale  # (B, H, M, L)
    return torch.matmul(scores.softmax(dim=-1), values).to(q.dtype)  # (B, H, M, Dh)
