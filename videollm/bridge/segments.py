"""From per-frame patch grids to bridge input: spatial pooling, frame subsampling, segment packing.

The bridge's batched input layout (one layout everywhere):

- ``tokens``: (B, S, L, T, Dv) float, B clips, S segments per clip, L frame slots per segment (L <= F), T = P*P
  pooled tokens per frame, Dv vision width.
- ``frame_mask``: (B, S, L) bool, True where a frame slot holds a real frame. Real frames fill a prefix of each
  segment's slots and real segments a prefix of each clip's segments (padding only at the end).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from videollm.errors import UsageError


def pool_patches(patches: Tensor, pool: int) -> Tensor:
    """Average-pool each frame's patch grid to ``pool x pool`` tokens (AdaptiveAvgPool2d, as published).

    Args:
        patches: (N, gh, gw, D) patch features of N frames.
        pool: output grid side P.

    Returns:
        (N, P*P, D) pooled tokens, row-major over the P x P grid, same dtype as ``patches``.
    """
    if patches.ndim != 4:
        raise UsageError(f"pool_patches expects (N, gh, gw, D) patches, got shape {tuple(patches.shape)}")
    n, _, _, d = patches.shape
    grid = patches.permute(0, 3, 1, 2)  # (N, D, gh, gw)
    pooled = F.adaptive_avg_pool2d(grid, (pool, pool))  # (N, D, P, P)
    return pooled.flatten(2).transpose(1, 2).reshape(n, pool * pool, d)  # (N, P*P, D)


def segment_frame_indices(start: int, end: int, max_frames: int) -> Tensor:
    """Frames of the segment ``start..end`` (inclusive) fed to the bridge.

    Published rule: ``linspace(start, end, min(F, length))`` truncated to integers (so the first and last frame are
    always kept and a segment of at most F frames is kept whole).

    Args:
        start: first frame index of the segment.
        end: last frame index (inclusive), ``end >= start``.
        max_frames: F.

    Returns:
        (min(F, end - start + 1),) int64 frame indices, increasing.
    """
    if end < start or start < 0:
        raise UsageError(f"segment frames {start}..{end} are not a valid range")
    count = min(max_frames, end - start + 1)
    # float64 keeps the truncation exact for any realistic frame count (matches torch.linspace(dtype=int)).
    return torch.linspace(start, end, count, dtype=torch.float64).long()


def segments_from_ends(frame_tokens: Tensor, ends: Sequence[int], max_frames: int) -> list[Tensor]:
    """Cut a clip's pooled frame tokens into bridge segments.

    Args:
        frame_tokens: (N, T, D) pooled tokens of every frame of the clip.
        ends: SceneTiling output: the last frame index of each segment, increasing; segment k is frames
            ``ends[k-1] + 1 .. ends[k]`` (segment 0 starts at frame 0).
        max_frames: F, segments longer than F are subsampled with ``segment_frame_indices``.

    Returns:
        One (L_k, T, D) tensor per segment, L_k = min(F, segment length).
    """
    if len(ends) == 0:
        raise UsageError("a clip needs at least one segment")
    n = frame_tokens.shape[0]
    starts = [0, *[e + 1 for e in ends[:-1]]]
    if any(e < s for s, e in zip(starts, ends, strict=True)) or ends[-1] >= n:
        raise UsageError(f"segment ends {list(ends)} do not fit a clip of {n} frames")
    index = torch.cat([segment_frame_indices(s, e, max_frames) for s, e in zip(starts, ends, strict=True)])
    lengths = [min(max_frames, e - s + 1) for s, e in zip(starts, ends, strict=True)]
    return list(frame_tokens.index_select(0, index.to(frame_tokens.device)).split(lengths))


def pad_segments(clips: Sequence[Sequence[Tensor]], max_frames: int) -> tuple[Tensor, Tensor]:
    """Pack clips of variable segment counts and lengths into the bridge's padded layout.

    Segments longer than ``max_frames`` are subsampled (``segment_frame_indices`` over their frames).

    Args:
        clips: B clips, each a list of S_b segments of shape (L, T, Dv).
        max_frames: F.

    Returns:
        ``(tokens, frame_mask)``: (B, S, Lmax, T, Dv) zero-padded tokens and (B, S, Lmax) bool mask, with
        S = max S_b and Lmax = the longest kept segment.
    """
    if len(clips) == 0 or any(len(c) == 0 for c in clips):
        raise UsageError("every clip needs at least one segment")
    first = clips[0][0]
    if first.ndim != 3:
        raise UsageError(f"segments must be (L, T, D) tensors, got shape {tuple(first.shape)}")
    t, d = first.shape[1:]
    kept = [[_subsample(seg, max_frames, t, d) for seg in clip] for clip in clips]
    b, s = len(kept), max(len(c) for c in kept)
    lmax = max(seg.shape[0] for clip in kept for seg in clip)
    tokens = first.new_zeros(b, s, lmax, t, d)
    frame_mask = torch.zeros(b, s, lmax, dtype=torch.bool, device=first.device)
    # One copy per segment: segments are few (tens) and each copy moves a whole (L, T, D) block.
    for i, clip in enumerate(kept):
        for j, seg in enumerate(clip):
            tokens[i, j, : seg.shape[0]] = seg
            frame_mask[i, j, : seg.shape[0]] = True
    return tokens, frame_mask


def _subsample(segment: Tensor, max_frames: int, t: int, d: int) -> Tensor:
    if segment.ndim != 3 or segment.shape[1:] != (t, d) or segment.shape[0] < 1:
        raise UsageError(f"segments must all be (L>=1, {t}, {d}), got shape {tuple(segment.shape)}")
    if segment.shape[0] <= max_frames:
        return segment
    return segment.index_select(0, segment_frame_indices(0, segment.shape[0] - 1, max_frames).to(segment.device))
