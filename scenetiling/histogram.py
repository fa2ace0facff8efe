"""Colour-histogram frame features: a per-frame feature for SceneTiling that needs no neural encoder.

Each frame becomes the square root of its normalised HSV colour histogram, so the cosine similarity of two frames
that SceneTiling computes is their Bhattacharyya coefficient (1 for the same colour distribution, 0 for disjoint
ones). Frames are read on a grid of at most ``grid`` x ``grid`` evenly spaced pixels: a histogram needs a sample of
the pixels, not all of them, and reading a few thousand keeps the cost independent of the frame size.

The computation is NumPy (``hsv_histogram_array``), so a process that only cuts scenes never imports torch;
``hsv_histograms`` returns the same values as a tensor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Hue, saturation, value. 8 value bins, not 4: grey pictures (no hue, no saturation) differ only in value, and with 4
# bins cuts between two grey photographs fell below the depth threshold of long videos (7 of 96 cuts missed in the
# 8x / 32x evaluation videos; 3 with 8 bins; an unshipped measurement, docs/experiments.md).
DEFAULT_BINS = (8, 4, 8)
DEFAULT_GRID = 64


def hsv_histogram_array(frames: np.ndarray, bins: tuple[int, int, int] = DEFAULT_BINS,
                        grid: int = DEFAULT_GRID) -> np.ndarray:
    """Square-rooted, normalised joint HSV histograms of RGB frames.

    Args:
        frames: (B, H, W, 3) uint8 RGB.
        bins: number of hue, saturation and value bins (hue covers the colour circle, the others [0, 1]).
        grid: pixels are sampled on at most ``grid`` rows x ``grid`` columns, evenly spaced.

    Returns:
        (B, prod(bins)) float32; every row has unit L2 norm.
    """
    x = np.asarray(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must have shape (B, H, W, 3), got {tuple(x.shape)}")
    if x.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 RGB, got {x.dtype}")
    if min(bins) < 1 or grid < 1:
        raise ValueError(f"bins and grid must be >= 1, got bins={bins}, grid={grid}")
    n_h, n_s, n_v = bins
    count, height, width, _ = x.shape
    rows = np.linspace(0, height - 1, min(grid, height)).round().astype(np.intp)
    cols = np.linspace(0, width - 1, min(grid, width)).round().astype(np.intp)
    x = x[:, rows][:, :, cols].astype(np.float32) / np.float32(255.0)  # (B, h, w, 3)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    high, argmax = x.max(-1), x.argmax(-1)
    chroma = high - x.min(-1)
    safe = np.maximum(chroma, np.float32(1e-12))
    # Hue in sixths of the colour circle, [0, 6): which channel is largest decides the sector.
    hue = np.where(argmax == 0, np.remainder((g - b) / safe, np.float32(6.0)),
                   np.where(argmax == 1, (b - r) / safe + np.float32(2.0), (r - g) / safe + np.float32(4.0)))
    hue = np.where(chroma > 0, hue, np.float32(0.0))
    sat = np.where(high > 0, chroma / np.maximum(high, np.float32(1e-12)), np.float32(0.0))
    h_bin = np.clip((hue * np.float32(n_h / 6.0)).astype(np.int64), 0, n_h - 1)
    s_bin = np.clip((sat * np.float32(n_s)).astype(np.int64), 0, n_s - 1)
    v_bin = np.clip((high * np.float32(n_v)).astype(np.int64), 0, n_v - 1)
    size = n_h * n_s * n_v
    index = ((h_bin * n_s + s_bin) * n_v + v_bin).reshape(count, -1)  # (B, h*w)
    per_frame = index.shape[1]
    index += np.arange(count)[:, None] * size  # one bincount for the whole batch
    hist = np.bincount(index.ravel(), minlength=count * size).reshape(count, size).astype(np.float32)
    return np.sqrt(hist / np.float32(per_frame))


def hsv_histograms(frames: np.ndarray | torch.Tensor, bins: tuple[int, int, int] = DEFAULT_BINS,
                   grid: int = DEFAULT_GRID) -> torch.Tensor:
    """``hsv_histogram_array`` as a CPU float32 tensor (frames may be a tensor on any device)."""
    import torch

    if isinstance(frames, torch.Tensor):
        frames = frames.cpu().numpy()
    return torch.from_numpy(hsv_histogram_array(frames, bins, grid))
