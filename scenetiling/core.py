"""Offline SceneTiling, vectorised: O(T) work, no Python loop over frames.

The published VideoLLaMB rule (docs/design.md §2): similarities of neighbouring frames, TextTiling depth scores by
hill climbing, a ``mean + alpha * std`` threshold, and at most ``max_cuts`` cuts. With ``min_len=1`` every function
here returns exactly what the published nested-loop code returns (``scenetiling.reference`` transcribes it and the
tests compare the two bit for bit); the only deliberate difference is ``T == 0``, where the published code returns
``[-1]`` and this returns ``[]``.
"""

from __future__ import annotations

import numpy as np
import torch

from scenetiling.numpy_rule import COSINE_EPS, check_selection, keep_with_min_len

# Rows normalised and multiplied per chunk so the temporaries stay in cache; chunking does not change any result
# because every row is computed by the same element-wise ops either way.
_CHUNK_ROWS = 2048


def as_features(features: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Return ``features`` as a floating (T, D) tensor, keeping its device and floating dtype.

    Args:
        features: (T, D) tensor or array; integer and bool inputs become the default float dtype.

    Returns:
        (T, D) floating tensor (no copy when the input already is one).
    """
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(np.ascontiguousarray(features))
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"features must be a torch.Tensor or numpy.ndarray, got {type(features).__name__}")
    if features.dim() != 2:
        raise ValueError(f"features must have shape (T, D), got {tuple(features.shape)}")
    if not features.is_floating_point():
        features = features.to(torch.get_default_dtype())
    return features


def _as_scores(scores: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    if isinstance(scores, np.ndarray):
        scores = torch.from_numpy(np.ascontiguousarray(scores))
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(scores).__name__}")
    if scores.dim() != 1:
        raise ValueError(f"{name} must have shape (N,), got {tuple(scores.shape)}")
    if not scores.is_floating_point():
        scores = scores.to(torch.get_default_dtype())
    return scores


def similarities(features: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Cosine similarity of each frame with the next one.

    Each row is normalised once (norm clamped to ``COSINE_EPS``) and neighbouring rows are multiplied and summed.
    These are the very element-wise operations ``torch.cosine_similarity`` performs, so the values are bitwise equal
    to the published ``torch.cosine_similarity(f[:-1], f[1:])`` (checked in the tests), at half the work.

    Args:
        features: (T, D) one feature vector per frame (tensor or array).

    Returns:
        (max(T - 1, 0),) tensor, ``s[i] = cosine(f[i], f[i + 1])``, dtype and device of the features.
    """
    feats = as_features(features)  # (T, D)
    t = feats.shape[0]
    if t < 2:
        return feats.new_zeros(0)
    out = feats.new_empty(t - 1)  # (T-1,)
    for start in range(0, t - 1, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, t - 1)
        block = feats[start : stop + 1]  # (C+1, D): one row of overlap with the next chunk
        unit = block / torch.linalg.vector_norm(block, dim=-1, keepdim=True).clamp_min(COSINE_EPS)
        out[start:stop] = (unit[:-1] * unit[1:]).sum(-1)
    return out


def _left_peak_index(sims: torch.Tensor) -> torch.Tensor:
    """Index of the left hill-climb peak of every position (the segmented running maximum).

    Climbing left from ``i`` goes on while the next value is >= the running peak. The running peak is always the
    last value accepted, so the climb from ``i`` passes ``i - 1`` exactly when ``s[i-1] >= s[i]`` and then continues
    as the climb from ``i - 1`` did: positions split into runs at every ``i`` with ``not (s[i-1] >= s[i])`` (written
    that way so a NaN stops the climb, as in the loop), and the peak of ``i`` is the first value of its run.
    """
    n = sims.shape[0]
    positions = torch.arange(n, device=sims.device)  # (N,)
    run_start = torch.ones(n, dtype=torch.bool, device=sims.device)
    run_start[1:] = ~(sims[:-1] >= sims[1:])
    return torch.where(run_start, positions, 0).cummax(0).values  # (N,)


def depth_scores(sims: torch.Tensor | np.ndarray) -> torch.Tensor:
    """TextTiling depth score of every similarity: ``lpeak + rpeak - 2 * s``.

    ``lpeak``/``rpeak`` are the hill-climbing peaks (climb while the next value is >= the running peak, stop at the
    first decrease; a climb that reaches the array end stops there). O(N), same arithmetic and dtype as the loop.

    Args:
        sims: (N,) similarities (tensor or array).

    Returns:
        (N,) depth scores, dtype and device of ``sims``.
    """
    s = _as_scores(sims, "sims")  # (N,)
    if s.shape[0] == 0:
        return s.clone()
    lpeak = s[_left_peak_index(s)]
    # Climbing right is climbing left on the reversed sequence.
    flipped = s.flip(0)
    rpeak = flipped[_left_peak_index(flipped)].flip(0)
    return lpeak + rpeak - 2 * s


def threshold(depth: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """The published cut threshold ``mean + alpha * std`` (unbiased std, as ``torch.std_mean`` computes it).

    Args:
        depth: (N,) depth scores, N >= 2 (fewer gives NaN, which no depth exceeds).

    Returns:
        0-d tensor in the dtype of ``depth``.
    """
    if depth.shape[0] < 2:
        return depth.new_tensor(float("nan"))
    std, mean = torch.std_mean(depth)
    return mean + alpha * std


def _apply_min_len(depth: torch.Tensor, candidates: torch.Tensor, n_sims: int, min_len: int, limit: int | None) -> list[int]:
    """Keep candidates deepest first (equal depths: lower index first) while every segment stays >= ``min_len``
    frames; stop at ``limit`` cuts (``scenetiling.numpy_rule.keep_with_min_len``). The loop runs over candidate
    cuts (bounded by the threshold, usually a handful), not frames.
    """
    if candidates.numel() == 0:
        return []
    order = torch.sort(depth[candidates], descending=True, stable=True).indices
    return keep_with_min_len(candidates[order].tolist(), n_sims, min_len, limit)


def boundaries_from_depth(
    depth: torch.Tensor | np.ndarray,
    alpha: float = 0.5,
    max_cuts: int | None = 15,
    top_k: int | None = None,
    min_len: int = 1,
) -> list[int]:
    """Select the cuts from depth scores (published rule; ``min_len`` is ours).

    Threshold mode (``top_k=None``): every ``i`` with ``depth[i] > mean + alpha * std``; if more than ``max_cuts``
    pass, the ``max_cuts`` deepest are kept, chosen by ``torch.topk`` over all depths exactly as the published code
    does (so among equal depths ``torch.topk`` decides which survive). ``max_cuts=None`` keeps all.
    Top-k mode: the ``top_k`` deepest (``torch.topk``), no threshold; ``top_k`` larger than N keeps all N.
    ``min_len > 1``: the candidates of either mode are visited deepest first (ties: lower index first) and each is kept
    only if no segment gets shorter than ``min_len`` frames, until ``max_cuts`` (or ``top_k``) are kept; in top-k mode
    every index is a candidate, so fewer than ``top_k`` cuts come back only when the length rule allows no more.

    Args:
        depth: (N,) depth scores of a T = N + 1 frame sequence.
        alpha: threshold = mean + alpha * std; larger alpha gives fewer cuts.
        max_cuts: most cuts kept in threshold mode (published: 15); None for no cap.
        top_k: if given, keep this many deepest cuts instead of thresholding.
        min_len: shortest allowed segment in frames (1 = published behaviour).

    Returns:
        Ascending cut indices ``i`` in ``0..N-1``; cut ``i`` means a segment ends at frame ``i``.
    """
    d = _as_scores(depth, "depth")  # (N,)
    n = d.shape[0]
    check_selection(max_cuts, top_k, min_len)
    if n == 0:
        return []
    if top_k is not None:
        k = min(top_k, n)
        if min_len > 1:
            return _apply_min_len(d, torch.arange(n, device=d.device), n, min_len, k) if k > 0 else []
        return torch.topk(d, k).indices.sort().values.tolist()
    passing = (d > threshold(d, alpha)).nonzero().squeeze(-1)
    if min_len > 1:
        return _apply_min_len(d, passing, n, min_len, max_cuts)
    if max_cuts is not None and passing.numel() > max_cuts:
        passing = torch.topk(d, max_cuts).indices.sort().values
    return passing.tolist()


def segment_ends(
    features: torch.Tensor | np.ndarray,
    alpha: float = 0.5,
    max_cuts: int | None = 15,
    top_k: int | None = None,
    min_len: int = 1,
) -> list[int]:
    """Split a frame sequence into scenes with SceneTiling; return the last frame of every segment.

    Boundary ``i`` (similarity between frames ``i`` and ``i + 1``) means a segment ends at frame ``i``; the last
    frame always closes the final segment. See ``boundaries_from_depth`` for the selection options.

    Args:
        features: (T, D) one feature vector per frame (the vision encoder's [CLS]); tensor or numpy array.
        alpha: threshold = mean + alpha * std of the depth scores (published: 0.5).
        max_cuts: most cuts in threshold mode (published: 15); None for no cap.
        top_k: keep the ``top_k`` deepest cuts instead of thresholding.
        min_len: shortest segment in frames; 1 (default) is the published rule.

    Returns:
        Ascending frame indices, the last one ``T - 1``; ``[]`` for ``T == 0`` and ``[0]`` for ``T == 1``.
    """
    feats = as_features(features)  # (T, D)
    t = feats.shape[0]
    if t == 0:
        return []
    cuts = boundaries_from_depth(depth_scores(similarities(feats)), alpha, max_cuts, top_k, min_len)
    return [*cuts, t - 1]
