"""Multi-head retrieval cross-attention of the memory over a growing, preallocated memory cache."""

from __future__ import annotations

import math
import numbers

import torch

from .._dispatch import use_triton
from .._validate import check_same_device, check_same_dtype, check_tensor
from .naive import memory_retrieval_ref

__all__ = ["memory_retrieval", "memory_retrieval_ref"]


def memory_retrieval(q: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor, length: int,
                     scale: float | None = None) -> torch.Tensor:
    """Attention of M memory queries over the first ``length`` rows of a preallocated key/value cache.

    The cache is allocated once at (B, H, Kmax, Dh) and filled segment by segment; only rows ``< length`` are
    read, so it never needs re-packing. Residual and LayerNorm of the retriever are not included: compose with
    ``videollm_kernels.add_layer_norm`` after the out-projection.

    Args:
        q: (B, H, M, Dh) projected memory queries, float32/bfloat16/float16, any strides.
        cache_k, cache_v: (B, H, Kmax, Dh) projected cache, same dtype and device as ``q``.
        length: valid rows, an int (Python or NumPy) with 1 <= length <= Kmax (not a tensor: reading one would sync the GPU).
        scale: score scale, default ``1 / sqrt(Dh)``.

    Returns:
        (B, H, M, Dh) in the dtype of ``q``; differentiable in q, cache_k and cache_v (zero gradient past
        ``length``).

    Raises:
        ValueError, TypeError: malformed inputs. videollm.errors.UsageError: bad ``VIDEOLLM_KERNELS`` value.
    """
    check_tensor("q", q, 4)
    check_tensor("cache_k", cache_k, 4)
    check_tensor("cache_v", cache_v, 4)
    check_same_device(q=q, cache_k=cache_k, cache_v=cache_v)
    check_same_dtype(q=q, cache_k=cache_k, cache_v=cache_v)
    b, h, _, head_dim = q.shape
    if cache_k.shape != cache_v.shape or cache_k.shape[:2] != (b, h) or cache_k.shape[3] != head_dim:
        raise ValueError(f"cache_k and cache_v must be (B, H, Kmax, Dh) matching q {tuple(q.shape)}, "
                         f"got {tuple(cache_k.shape)} and {tuple(cache_v.shape)}")
    if isinstance(length, (torch.Tensor, bool)) or not isinstance(length, numbers.Integral):
        raise TypeError(f"length must be an int, got {type(length).__name__}")
    length = int(length)
    if not 1 <= length <= cache_k.shape[2]:
        raise ValueError(f"length must be in [1, {cache_k.shape[2]}], got {length}")
    if not 1 <= head_dim <= 256:
        raise ValueError(f"head dim must be in [1, 256], got {head_dim}")
    scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
    if q.shape[2] == 0:
        return q.new_empty(q.shape)
    if use_triton(q, cache_k, cache_v):
        from .triton_impl import memory_retrieval_triton

        return memory_retrieval_triton(q, cache_k, cache_v, length, scale)
    return memory_retrieval_ref(q, cache_k, cache_v, length, scale)
