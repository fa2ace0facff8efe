"""Offline SceneTiling in NumPy alone, for processes that run no neural network.

``videollm scenes`` on colour histograms needs neither torch nor an encoder; importing torch alone costs about 3 s,
more than decoding and cutting a two-minute video. This module is the rule of ``scenetiling.core`` written in
NumPy: the same steps, in float32. Its similarities agree with core's up to the last bits of rounding (NumPy and
torch reduce a row norm in different orders), so the cuts agree except where a depth score sits within rounding
of the threshold or of another depth (the tests compare them on random, tied and real features). One choice is
documented rather than shared: with ``min_len=1`` and more passing cuts than ``max_cuts``, equal depths are kept
lower index first, where core follows ``torch.topk`` as the published code does.

``keep_with_min_len`` is the one implementation of the minimum-length selection; core uses it too.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import numpy as np

COSINE_EPS = 1e-8  # as scenetiling.core: an all-zero frame has similarity 0 with anything


def keep_with_min_len(ordered: Iterable[int], n_sims: int, min_len: int, limit: int | None) -> list[int]:
    """Keep candidate cuts, visited in the given (deepest-first) order, while every segment stays >= ``min_len``.

    Segment ``k`` spans frames ``cut[k-1] + 1 .. cut[k]`` with ``cut[-1] = -1`` and frame ``n_sims`` closing the
    final segment, so a cut ``c`` is allowed when ``c - previous >= min_len`` and ``next - c >= min_len`` against the
    cuts kept so far. Stops at ``limit`` kept cuts (None: no limit). Returns them ascending.
    """
    kept: list[int] = []
    if limit == 0:
        return kept
    for cut in ordered:
        pos = bisect.bisect_left(kept, cut)
        previous = kept[pos - 1] if pos > 0 else -1
        following = kept[pos] if pos < len(kept) else n_sims
        if cut - previous >= min_len and following - cut >= min_len:
            kept.insert(pos, cut)
            if limit is not None and len(kept) >= limit:
                break
    return kept


def check_selection(max_cuts: int | None, top_k: int | None, min_len: int) -> None:
    """ValueError unless max_cuts and top_k are None or >= 0 and min_len >= 1 (both rules' selection options)."""
    if max_cuts is not None and max_cuts < 0:
        raise ValueError(f"max_cuts must be >= 0 or None, got {max_cuts}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0 or None, got {top_k}")
    if min_len < 1:
        raise ValueError(f"min_len must be >= 1, got {min_len}")


def similarities(features: np.ndarray) -> np.ndarray:
    """(T, D) features -> (max(T - 1, 0),) cosine similarity of each frame with the next, float32."""
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 2:
        raise ValueError(f"features must have shape (T, D), got {feats.shape}")
    if len(feats) < 2:
        return np.zeros(0, np.float32)
    unit = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), np.float32(COSINE_EPS))
    return np.einsum("ij,ij->i", unit[:-1], unit[1:])


def _left_peaks(sims: np.ndarray) -> np.ndarray:
    """The left hill-climb peak of every position (``scenetiling.core._left_peak_index``, as values)."""
    run_start = np.ones(len(sims), bool)
    run_start[1:] = ~(sims[:-1] >= sims[1:])
    return sims[np.maximum.accumulate(np.where(run_start, np.arange(len(sims)), 0))]


def depth_scores(sims: np.ndarray) -> np.ndarray:
    """TextTiling depth ``lpeak + rpeak - 2 * s`` of every similarity (``scenetiling.core.depth_scores``)."""
    s = np.asarray(sims)
    if len(s) == 0:
        return s.copy()
    return _left_peaks(s) + _left_peaks(s[::-1])[::-1] - 2 * s


def boundaries_from_depth(depth: np.ndarray, alpha: float = 0.5, max_cuts: int | None = 15,
                          top_k: int | None = None, min_len: int = 1) -> list[int]:
    """The cuts chosen from depth scores, as ``scenetiling.core.boundaries_from_depth`` (ties: lower index first)."""
    d = np.asarray(depth)
    n = len(d)
    check_selection(max_cuts, top_k, min_len)
    if n == 0:
        return []
    if top_k is not None:
        candidates, limit = np.arange(n), min(top_k, n)
    else:
        thresh = d.mean() + alpha * d.std(ddof=1) if n >= 2 else np.nan  # unbiased, as torch.std_mean
        candidates, limit = np.flatnonzero(d > thresh), max_cuts
    deepest_first = candidates[np.argsort(-d[candidates], kind="stable")]
    if min_len > 1:
        return keep_with_min_len(deepest_first.tolist(), n, min_len, limit)
    return sorted(deepest_first[:limit].tolist())


def segment_ends(features: np.ndarray, alpha: float = 0.5, max_cuts: int | None = 15, top_k: int | None = None,
                 min_len: int = 1) -> list[int]:
    """Last frame of every scene of a (T, D) feature sequence (``scenetiling.core.segment_ends`` in NumPy)."""
    feats = np.asarray(features)
    if feats.ndim != 2:
        raise ValueError(f"features must have shape (T, D), got {feats.shape}")
    if len(feats) == 0:
        return []
    cuts = boundaries_from_depth(depth_scores(similarities(feats)), alpha, max_cuts, top_k, min_len)
    return [*cuts, len(feats) - 1]
