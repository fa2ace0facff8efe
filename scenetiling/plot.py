"""A picture of one SceneTiling decision: similarity curve, depth scores, threshold and cuts."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from scenetiling.core import _as_scores, as_features, depth_scores, similarities, threshold


def plot(
    features_or_sims: torch.Tensor | np.ndarray,
    ends: Sequence[int],
    path: str | os.PathLike,
    times: Sequence[float] | np.ndarray | None = None,
    alpha: float = 0.5,
) -> str:
    """Write a PNG with the similarity curve (top) and depth scores with the threshold line (bottom).

    Similarity ``i`` sits between frames ``i`` and ``i + 1``; a cut (segment end ``e``, the final frame excluded)
    is drawn as a vertical line between frames ``e`` and ``e + 1``. matplotlib is imported here only (Agg backend).

    Args:
        features_or_sims: (T, D) features or (T - 1,) similarities.
        ends: segment end frames as ``segment_ends`` returns them.
        path: where to write the PNG.
        times: optional (T,) frame times in seconds for the x axis (frame indices otherwise).
        alpha: the threshold weight the dashed line is drawn for.

    Returns:
        ``path`` as a string.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = features_or_sims
    is_sims = (data.ndim == 1) if isinstance(data, (torch.Tensor, np.ndarray)) else False
    sims = _as_scores(data, "sims") if is_sims else similarities(as_features(data))
    sims = sims.detach().cpu()  # (N,)
    depth = depth_scores(sims)
    n = sims.shape[0]
    frames = np.arange(n + 1, dtype=np.float64)
    if times is not None:
        frames = np.asarray(times, dtype=np.float64)
        if frames.shape != (n + 1,):
            raise ValueError(f"times must have one entry per frame ({n + 1}), got shape {frames.shape}")
    between = (frames[:-1] + frames[1:]) / 2  # (N,) x position of each similarity
    cut_x = [between[e] for e in ends if 0 <= e < n]

    fig, (ax_sim, ax_depth) = plt.subplots(2, 1, sharex=True, figsize=(10, 5), constrained_layout=True)
    ax_sim.plot(between, sims.double().numpy(), lw=1.0, color="tab:blue")
    ax_sim.set_ylabel("cosine(f[i], f[i+1])")
    ax_depth.plot(between, depth.double().numpy(), lw=1.0, color="tab:orange", label="depth")
    if n >= 2:
        ax_depth.axhline(threshold(depth, alpha).item(), ls="--", color="tab:red", label=f"mean + {alpha} std")
    for x in cut_x:
        ax_sim.axvline(x, color="tab:green", lw=0.8, alpha=0.7)
        ax_depth.axvline(x, color="tab:green", lw=0.8, alpha=0.7)
    ax_depth.set_ylabel("depth")
    ax_depth.set_xlabel("time (s)" if times is not None else "frame")
    ax_depth.legend(loc="upper right", fontsize="small")
    ax_sim.set_title(f"SceneTiling: {len(cut_x)} cuts, {n + 1} frames")
    fig.savefig(os.fspath(path), format="png", dpi=100)
    plt.close(fig)
    return os.fspath(path)
