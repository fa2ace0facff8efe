"""Video input: validated file readers (decord, PyAV fallback), live sources and frame preprocessing.

Public API:
    open_video(path, backend="auto", max_side=8192) -> VideoReader
    open_source(source, fps=None, realtime=False, batch_size=1) -> Iterator[FrameBatch]
    PushedFrames(fps, backlog=8, idle_timeout=10.0): frames pushed by another thread (a browser's camera)
    resize_center_crop(frames, size) -> torch.Tensor
    VideoMeta, FrameBatch, VideoReader
"""

from videollm.io.reader import SEQUENTIAL_BACKEND, VideoReader, open_video, uniform_indices
from videollm.io.source import open_source
from videollm.io.transforms import resize_center_crop
from videollm.io.meta import FrameBatch, VideoMeta
from videollm.io.pushed import PushedFrames

__all__ = [
    "SEQUENTIAL_BACKEND",
    "FrameBatch",
    "PushedFrames",
    "VideoMeta",
    "VideoReader",
    "open_source",
    "open_video",
    "resize_center_crop",
    "uniform_indices",
]
