"""Frames → vision features, streamed: decode a batch, encode it, keep only what later stages need.

A video is never held in memory as frames: each batch of decoded frames is encoded and dropped; callers keep the
per-frame CLS vectors (for SceneTiling) and, when asked, the patch grid pooled to ``pool × pool`` tokens (for the
bridge), which is what bounds memory for long videos.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from videollm.io import FrameBatch


@dataclass
class FeatureBatch:
    """Encoded frames.

    Attributes:
        indices: (B,) int64 frame indices in the source video.
        times: (B,) float64 seconds.
        cls: (B, D) penultimate-layer CLS features (float32).
        tokens: (B, P*P, D) pooled patch tokens, or None when pooling was not requested.
    """

    indices: np.ndarray
    times: np.ndarray
    cls: torch.Tensor
    tokens: torch.Tensor | None


def encode_batches(batches: Iterable[FrameBatch], encoder, pool: int | None = None) -> Iterator[FeatureBatch]:
    """Encode each decoded batch once.

    Args:
        batches: decoded frame batches (``VideoReader.iter_fps`` or ``open_source``).
        encoder: a ``videollm.vision.VisionEncoder``.
        pool: pool each frame's patch grid to ``pool × pool`` tokens; None keeps CLS only.

    Yields:
        One ``FeatureBatch`` per input batch.
    """
    from videollm.bridge import pool_patches

    for batch in batches:
        out = encoder.encode(batch.frames)
        tokens = pool_patches(out.patches.float(), pool) if pool else None  # (B, P*P, D)
        yield FeatureBatch(batch.indices, batch.times, out.cls.float(), tokens)


def collect(features: Iterable[FeatureBatch]) -> FeatureBatch:
    """Concatenate feature batches (CLS and pooled tokens are small; frames are never kept)."""
    parts = list(features)
    if not parts:
        return FeatureBatch(np.zeros(0, np.int64), np.zeros(0), torch.zeros(0, 0), None)
    tokens = None if parts[0].tokens is None else torch.cat([p.tokens for p in parts])
    return FeatureBatch(np.concatenate([p.indices for p in parts]), np.concatenate([p.times for p in parts]),
                        torch.cat([p.cls for p in parts]), tokens)
