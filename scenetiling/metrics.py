"""Boundary agreement between two cut lists (for comparing SceneTiling variants and other scene-cut detectors)."""

from __future__ import annotations

from collections.abc import Iterable


def match_cuts(pred: Iterable[float], ref: Iterable[float], tol: float) -> list[tuple[int, int]]:
    """One-to-one matching of predicted to reference cuts at most ``tol`` apart, in any unit (frames, seconds).

    The two-pointer sweep over both sorted lists finds a maximum matching (every cut's allowed partners form an
    interval, and the intervals are ordered like the cuts).

    Returns:
        (index into sorted ``pred``, index into sorted ``ref``) of every matched pair.
    """
    p, r = sorted(pred), sorted(ref)
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < len(p) and j < len(r):
        if r[j] < p[i] - tol:
            j += 1
        elif r[j] > p[i] + tol:
            i += 1
        else:
            pairs.append((i, j))
            i += 1
            j += 1
    return pairs


def boundary_f1(pred: Iterable[int], ref: Iterable[int], tol: int = 1) -> float:
    """F1 of predicted cut frames against reference cut frames, matching one-to-one within ``tol`` frames.

    A predicted cut matches an unmatched reference cut at most ``tol`` frames away; each cut matches at most once
    (``match_cuts``). Pass cuts only: if both lists end with the last frame
    of the video (as ``segment_ends`` does), drop it first or it counts as a free match.

    Args:
        pred: predicted cut frame indices (any order, duplicates ignored).
        ref: reference cut frame indices.
        tol: largest allowed |pred - ref| for a match, in frames (>= 0).

    Returns:
        2 * matches / (len(pred) + len(ref)) in [0, 1]; 1.0 when both are empty.
    """
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    p = sorted(set(int(x) for x in pred))
    r = sorted(set(int(x) for x in ref))
    if not p and not r:
        return 1.0
    matches = len(match_cuts(p, r, tol))
    return 2.0 * matches / (len(p) + len(r))
