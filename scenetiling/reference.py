"""The published SceneTiling rule, transcribed loop for loop (docs/design.md §2). For tests and benchmarks only.

This is the readable statement of the rule the fast code in ``scenetiling.core`` must reproduce: nested Python loops
over 0-d tensors, O(N^2) in the worst case (a steadily falling or rising similarity curve), arithmetic in the
similarities' dtype. It keeps the published code's behaviour everywhere except ``T == 0`` (``[]`` here, ``[-1]``
there) and ``top_k > N`` (clamped here, an error there).
"""

from __future__ import annotations

import warnings

import torch


def similarities_reference(features: torch.Tensor) -> torch.Tensor:
    """Published similarities: ``torch.cosine_similarity(f[:-1], f[1:])`` over the feature dim.

    Args:
        features: (T, D) floating tensor.

    Returns:
        (max(T - 1, 0),) tensor.
    """
    return torch.cosine_similarity(features[:-1, :], features[1:, :], dim=1)


def depth_scores_reference(sims: torch.Tensor) -> torch.Tensor:
    """Published hill-climbing depth scores with the nested loops.

    Args:
        sims: (N,) similarities.

    Returns:
        (N,) ``lpeak + rpeak - 2 * s`` in the dtype of ``sims``.
    """
    n = sims.shape[0]
    depth = torch.zeros(sims.size(), dtype=sims.dtype, device=sims.device)
    for i in range(n):
        lpeak = sims[i]
        for li in range(i - 1, -1, -1):
            if sims[li] >= lpeak:
                lpeak = sims[li]
            else:
                break
        rpeak = sims[i]
        for ri in range(i + 1, n):
            if sims[ri] >= rpeak:
                rpeak = sims[ri]
            else:
                break
        depth[i] = lpeak + rpeak - 2 * sims[i]
    return depth


def boundaries_reference(
    depth: torch.Tensor, alpha: float = 0.5, max_cuts: int | None = 15, top_k: int | None = None
) -> list[int]:
    """Published cut selection: threshold ``mean + alpha * std`` (unbiased), trimmed to the ``max_cuts`` deepest.

    Args:
        depth: (N,) depth scores.
        alpha: threshold weight on the std.
        max_cuts: published 15; None for no cap.
        top_k: top-k mode instead of the threshold.

    Returns:
        Ascending cut indices (segment end frames), without the final frame.
    """
    if top_k is not None:
        return torch.topk(depth, min(top_k, depth.shape[0])).indices.sort()[0].tolist()
    with warnings.catch_warnings():
        # Fewer than two depths: torch warns and returns a NaN std, which no depth exceeds (published behaviour).
        warnings.simplefilter("ignore", UserWarning)
        std, mean = torch.std_mean(depth)
    thresh = mean + alpha * std
    cuts = (depth > thresh).nonzero().squeeze(-1)
    if max_cuts is not None and len(cuts) > max_cuts:
        cuts = torch.topk(depth, max_cuts).indices.sort()[0]
    return cuts.tolist()


def segment_ends_reference(
    features: torch.Tensor, alpha: float = 0.5, max_cuts: int | None = 15, top_k: int | None = None
) -> list[int]:
    """Published ``segment``: cut frames plus the last frame.

    Args:
        features: (T, D) floating tensor.
        alpha, max_cuts, top_k: as in ``boundaries_reference``.

    Returns:
        Ascending segment end frames; ``[]`` for T == 0.
    """
    t = features.shape[0]
    if t == 0:
        return []
    cuts = boundaries_reference(depth_scores_reference(similarities_reference(features)), alpha, max_cuts, top_k)
    return [*cuts, t - 1]
