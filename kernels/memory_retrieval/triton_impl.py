"""Retrieval on the shared flash-attention kernels with ``kv_len = length``.

With M = 32 memory queries there is a single query block per (batch, head), so the forward pass and dQ split the
cache across programs (flash-decoding, see ``flash_attention.triton_impl``); dK/dV are already parallel over the
cache. Cache rows at and past ``length`` are never loaded and get zero gradient.
"""

from __future__ import annotations

import torch

from ..flash_attention.triton_impl import flash_attention_triton


def memory_retrieval_triton(q: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor, length: int,
                            scale: float, num_kv_splits: int | None = None) -> torch.Tensor:
    """Triton retrieval; ``num_kv_splits`` overrides the split heuristic (used by the tests)."""
    return flash_attention_triton(q, cache_k, cache_v, length, scale, num_kv_splits)
