"""Reference retrieval cross-attention over the valid prefix of a preallocated memory cache."""

from __future__ import annotations

import torch


def memory_retrieval_ref(q: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor, length: int,
                         scale: float) -> torch.Tensor:
    """``softmax(q K^T * scale) V`` with K, V the first ``length`` cache rows, softmax in fp32.

    Slicing happens before any arithmetic, so whatever lies past ``length`` (unwritten memory, NaN in the tests)
    cannot reach the result or the gradients.

    Args:
        q: (B, H, M, Dh) memory queries.
        cache_k, cache_v: (B, H, Kmax, Dh) preallocated cache.
        length: number of valid rows.
        scale: score scale.

    Returns:
        (B, H, M, Dh) in the dtype of ``q``.
    """
    keys = cache_k[:, :, :length].float()  # (B, H, L, Dh)
    values = cache_v[:, :, :length].float()  # (B, H, L, Dh)
    weights = (torch.matmul(q.float(), keys.transpose(-1, -2)) * scale).softmax(dim=-1)  # (B, H, M, L)
    return torch.matmul(weights, values).to(q.dtype)  # (B, H, M, Dh)
