"""Reference SceneTiling scan (docs/design.md §2), vectorised PyTorch: similarities, hill-climb peaks, depths."""

from __future__ import annotations

import torch

# Norms are clamped to this before dividing, like torch.cosine_similarity: an all-zero frame has similarity 0.
COSINE_EPS = 1e-8


def last_reset_index(reset: torch.Tensor) -> torch.Tensor:
    """For every position, the index of the last ``True`` at or before it (``reset[0]`` must be True).

    The peak recurrence ``peak_i = peak_{i-1} if not reset_i else s_i`` copies the value at the most recent reset,
    so it is a running maximum of the reset positions.

    Args:
        reset: (N,) bool.

    Returns:
        (N,) int64 indices.
    """
    positions = torch.arange(reset.shape[0], device=reset.device)  # (N,)
    return torch.where(reset, positions, 0).cummax(0).values


def similarities_ref(features: torch.Tensor) -> torch.Tensor:
    """``s_i = cos(f_i, f_{i+1})`` in fp32 (norms clamped to ``COSINE_EPS``).

    Args:
        features: (T, D), T >= 2.

    Returns:
        (T-1,) float32.
    """
    feats = features.float()  # (T, D)
    norms = torch.linalg.vector_norm(feats, dim=-1).clamp_min(COSINE_EPS)  # (T,)
    # A batched (1, D) @ (D, 1) product per pair avoids materialising a (T-1, D) temporary.
    dots = torch.bmm(feats[:-1].unsqueeze(1), feats[1:].unsqueeze(2)).view(-1)  # (T-1,)
    return dots / (norms[:-1] * norms[1:])


def depth_scores_ref(sims: torch.Tensor) -> torch.Tensor:
    """``depth_i = lpeak_i + rpeak_i - 2 s_i`` with the hill-climb peaks of docs/design.md §2.

    ``lpeak_i = lpeak_{i-1} if s_{i-1} >= s_i else s_i`` (a NaN also stops the climb); ``rpeak`` is the mirror
    image scanning from the right.

    Args:
        sims: (N,) similarities, N >= 1.

    Returns:
        (N,) depth scores in the dtype of ``sims``.
    """
    n = sims.shape[0]
    reset_left = torch.ones(n, dtype=torch.bool, device=sims.device)
    reset_left[1:] = ~(sims[:-1] >= sims[1:])
    reset_right = torch.ones(n, dtype=torch.bool, device=sims.device)
    reset_right[:-1] = ~(sims[1:] >= sims[:-1])
    lpeak = sims[last_reset_index(reset_left)]
    # The right climb is the left climb of the reversed sequence.
    rpeak = sims[(n - 1) - last_reset_index(reset_right.flip(0))].flip(0)
    return lpeak + rpeak - 2 * sims


def scenetiling_scan_ref(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarity of consecutive frames and their TextTiling depth scores, in fp32.

    Args:
        features: (T, D) one feature vector per frame.

    Returns:
        sims (max(T-1, 0),) and depth (max(T-1, 0),), both float32 on the features' device.
    """
    if features.shape[0] < 2:
        empty = features.new_zeros(0, dtype=torch.float32)
        return empty, empty.clone()
    sims = similarities_ref(features)  # (T-1,)
    return sims, depth_scores_ref(sims)
