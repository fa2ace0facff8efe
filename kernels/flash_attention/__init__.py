"""Unmasked multi-head attention over the first ``kv_len`` rows of a key/value buffer (Triton or reference)."""

from __future__ import annotations

import math

import torch

from .._dispatch import use_triton
from .._validate import check_same_device, check_same_dtype, check_tensor
from .naive import flash_attention_ref

__all__ = ["flash_attention", "flash_attention_ref"]


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_len: int | None = None,
                    scale: float | None = None) -> torch.Tensor:
    """Bidirectional (no mask) scaled dot-product attention, differentiable in q, k and v.

    Args:
        q: (B, H, M, Dh) queries, float32/bfloat16/float16, any strides.
        k, v: (B, H, Kmax, Dh) keys/values, same dtype and device as ``q``.
        kv_len: attend to rows ``[0, kv_len)`` only; rows past it are never read (default: all Kmax rows).
        scale: score scale, default ``1 / sqrt(Dh)``.

    Returns:
        (B, H, M, Dh) in the dtype of ``q``. Gradients of k/v are zero at rows ``>= kv_len``.

    Raises:
        ValueError, TypeError: malformed inputs. videollm.errors.UsageError: bad ``VIDEOLLM_KERNELS`` value.
    """
    check_tensor("q", q, 4)
    check_tensor("k", k, 4)
    check_tensor("v", v, 4)
    check_same_device(q=q, k=k, v=v)
    check_same_dtype(q=q, k=k, v=v)
    b, h, _, head_dim = q.shape
    if k.shape != v.shape or k.shape[:2] != (b, h) or k.shape[3] != head_dim:
        raise ValueError(f"k and v must be (B, H, Kmax, Dh) matching q {tuple(q.shape)}, "
                         f"got {tuple(k.shape)} and {tuple(v.shape)}")
    if not 1 <= head_dim <= 256:
        raise ValueError(f"head dim must be in [1, 256], got {head_dim}")
    kv_len = k.shape[2] if kv_len is None else int(kv_len)
    if not 1 <= kv_len <= k.shape[2]:
        raise ValueError(f"kv_len must be in [1, {k.shape[2]}], got {kv_len}")
    scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
    if q.shape[2] == 0:
        return q.new_empty(q.shape)
    if use_triton(q, k, v):
        from .triton_impl import flash_attention_triton

        return flash_attention_triton(q, k, v, kv_len, scale)
    return flash_attention_ref(q, k, v, kv_len, scale)
