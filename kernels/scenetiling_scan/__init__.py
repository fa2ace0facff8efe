"""SceneTiling similarities and depth scores (docs/design.md §2) for long videos, Triton or reference."""

from __future__ import annotations

import torch

from .._dispatch import use_triton
from .._validate import check_tensor
from .naive import scenetiling_scan_ref

__all__ = ["scenetiling_scan", "scenetiling_scan_ref"]


def scenetiling_scan(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarity of consecutive frames and TextTiling depth scores, computed in fp32.

    ``s_i = cos(f_i, f_{i+1})`` (norms clamped to 1e-8); ``lpeak_i = lpeak_{i-1} if s_{i-1} >= s_i else s_i``,
    ``rpeak`` its mirror from the right; ``depth_i = lpeak_i + rpeak_i - 2 s_i``. Not differentiable (segmentation
    only needs values).

    Args:
        features: (T, D) per-frame features, float32/bfloat16/float16, any strides.

    Returns:
        sims (max(T-1, 0),) and depth (max(T-1, 0),), float32 on the features' device.
    """
    check_tensor("features", features, 2)
    if features.shape[1] == 0:
        raise ValueError("features must have at least one column")
    if use_triton(features):
        from .triton_impl import scenetiling_scan_triton

        return scenetiling_scan_triton(features.detach())
    return scenetiling_scan_ref(features.detach())
