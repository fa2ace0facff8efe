"""How the frame stream is cut into segments before the bridge: SceneTiling (default) or uniform chunks.

The uniform mode is the ablation of the published model's segmentation (same downstream code path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from videollm.configs import JsonConfig
from videollm.errors import UsageError

MODES = ("scenetiling", "uniform")
# What SceneTiling runs on: the vision encoder's penultimate-layer CLS (published) or each frame's square-rooted HSV
# colour histogram (``scenetiling.hsv_histograms``: on the scene-cut benchmark it found the true cuts of real and
# synthetic videos where the CLS over-cut, and the model's captions are scored per scene).
FEATURES = ("cls", "histogram")


@dataclass
class SegmentationConfig(JsonConfig):
    """Sampling rate and segmentation rule.

    Attributes:
        fps: frames per second sampled from the video before encoding.
        num_frames: if set, a video file watched offline is sampled at exactly this many frames spread evenly over
            it instead (``linspace(0, frames - 1, num_frames)`` truncated: the published inference, 16 frames);
            streams, whose length is unknown, are still sampled at ``fps``.
        mode: "scenetiling" (docs/design.md §2) or "uniform" (fixed-length chunks, an ablation).
        feature: per-frame feature SceneTiling runs on: "cls" (published) or "histogram" (colour histogram).
        alpha: SceneTiling threshold: cut where depth > mean + alpha * std (larger alpha, fewer cuts).
        max_cuts: keep at most this many deepest cuts (published 15); None for no limit.
        top_k: if set, keep exactly the k deepest cuts instead of thresholding.
        min_len: minimum segment length in frames (1 = the published rule, no minimum).
        uniform_len: frames per segment in uniform mode.
    """

    _label: ClassVar[str] = "segmentation config"

    fps: float = 2.0
    num_frames: int | None = None
    mode: str = "scenetiling"
    feature: str = "cls"
    alpha: float = 0.5
    max_cuts: int | None = 15
    top_k: int | None = None
    min_len: int = 1
    uniform_len: int = 8

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"segmentation mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.feature not in FEATURES:
            raise UsageError(f"segmentation feature must be one of {', '.join(FEATURES)}, got {self.feature!r}")
        if not self.fps > 0:
            raise UsageError(f"sampling fps must be > 0, got {self.fps!r}")
        if self.min_len < 1 or self.uniform_len < 1:
            raise UsageError("min_len and uniform_len must be >= 1")
        if self.num_frames is not None and (isinstance(self.num_frames, bool) or not isinstance(self.num_frames, int)
                                            or self.num_frames < 1):
            raise UsageError(f"num_frames must be a positive integer or None, got {self.num_frames!r}")
        if self.max_cuts is not None and self.max_cuts < 0:
            raise UsageError(f"max_cuts must be >= 0 or None, got {self.max_cuts!r}")
        self.fps = float(self.fps)
        self.alpha = float(self.alpha)


def segment_ends(cls_features, cfg: SegmentationConfig) -> list[int]:
    """Frame index of the last frame of each segment for one clip.

    Args:
        cls_features: (T, D) per-frame features (``cfg.feature``: the encoder's penultimate-layer CLS or the frames'
            colour histograms, as ``VideoLLM.encode_frames`` returns them). A tensor runs the published rule
            (``scenetiling.segment_ends``); a NumPy array runs the same rule in NumPy without importing torch
            (``scenetiling.numpy_rule``: equal cuts up to float rounding, see there).
        cfg: segmentation settings.

    Returns:
        Ascending end indices; the last is always T-1; [] when T == 0.
    """
    num_frames = int(cls_features.shape[0])
    if cfg.mode == "uniform":
        if num_frames == 0:
            return []
        ends = np.arange(cfg.uniform_len - 1, num_frames, cfg.uniform_len)
        return sorted(set(ends.tolist()) | {num_frames - 1})
    if isinstance(cls_features, np.ndarray):
        from scenetiling import numpy_rule as rule
    else:
        import scenetiling as rule

    max_cuts = cfg.max_cuts if cfg.max_cuts is not None else num_frames
    return rule.segment_ends(cls_features, alpha=cfg.alpha, max_cuts=max_cuts, top_k=cfg.top_k, min_len=cfg.min_len)
