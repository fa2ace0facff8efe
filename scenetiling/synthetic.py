"""Synthetic scene-structured feature sequences with known cuts, for tests and benchmarks of the rule."""

from __future__ import annotations

import numpy as np
import torch


def scene_features(seed: int, t: int, d: int, noise: float = 0.3, lo: int = 10,
                   hi: int = 120) -> tuple[torch.Tensor, list[int]]:
    """Piecewise-constant scene means (sharing a common component) plus Gaussian noise.

    Args:
        seed: generator seed (the same seed always gives the same sequence).
        t: frames.
        d: feature width.
        noise: standard deviation of the per-frame noise (scene means are unit normal).
        lo, hi: scene lengths are uniform in ``[lo, hi]`` frames.

    Returns:
        (t, d) float32 features and the true cuts (index of the last frame of every scene but the final one).
    """
    rng = np.random.default_rng(seed)
    lengths: list[int] = []
    while sum(lengths) < t:
        lengths.append(int(rng.integers(lo, hi + 1)))
    base = rng.normal(size=d)
    parts = [0.5 * base + rng.normal(size=d) + noise * rng.normal(size=(n, d)) for n in lengths]
    features = torch.tensor(np.concatenate(parts)[:t], dtype=torch.float32)
    cuts = [int(c) for c in np.cumsum(lengths)[:-1] - 1 if c - 1 < t - 1]
    return features, cuts
