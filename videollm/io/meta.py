"""Plain data carried out of the video input layer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VideoMeta:
    """What is known about an opened video before any frame is decoded.

    Attributes:
        path: the path as the caller gave it.
        fps: average frame rate, ``num_frames / duration`` (equal to the nominal rate for constant-rate video).
        num_frames: number of frames that can be read (indices ``0 .. num_frames - 1``).
        duration: seconds from the first frame's start to the last frame's end.
        width: frame width in pixels.
        height: frame height in pixels.
        backend: the decoder in use, "decord" or "pyav".
    """

    path: str
    fps: float
    num_frames: int
    duration: float
    width: int
    height: int
    backend: str


@dataclass
class FrameBatch:
    """A batch of decoded frames with their position in the video.

    Attributes:
        indices: (B,) int64 frame indices in the source video (a running frame counter for live sources).
        times: (B,) float64 presentation times in seconds, the first frame of the stream at 0.
        frames: (B, H, W, 3) uint8 RGB frames.
    """

    indices: np.ndarray
    times: np.ndarray
    frames: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.shape[0])
