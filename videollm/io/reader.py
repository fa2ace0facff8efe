"""Random-access and fps-sampled reading of video files."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from types import TracebackType

import numpy as np

from videollm.errors import VideoError
from videollm.interrupts import held
from videollm.io.decoders import Decoder, DecoderUnsuitable, DecordDecoder, PyAVDecoder
from videollm.io.probe import StreamIndex, probe
from videollm.io.meta import FrameBatch, VideoMeta

BACKENDS = ("auto", "decord", "pyav")
#: The backend for reading a file forward while a model computes (watching, streaming a file). decord's reads,
#: interleaved with torch compute in one process, ran 3.4x slower on a 25 fps file sampled at 2 fps and grew the
#: process by ~35 MB a scene; PyAV's stayed flat at the same speed as decord alone (docs/experiments.md).
SEQUENTIAL_BACKEND = "pyav"


def uniform_indices(num_frames: int, n: int) -> np.ndarray:
    """Indices of ``n`` evenly spaced frames: the centre frame of ``n`` equal chunks of the video.

    Args:
        num_frames: frames in the video.
        n: frames wanted (>= 1).

    Returns:
        (min(n, num_frames),) int64 sorted unique indices; every frame when ``n >= num_frames``.
    """
    if n < 1:
        raise ValueError(f"number of frames to sample must be >= 1, got {n}")
    if n >= num_frames:
        return np.arange(num_frames, dtype=np.int64)
    # Centre of chunk k is (k + 0.5) * num_frames / n; integer arithmetic avoids float rounding at chunk edges.
    return (2 * np.arange(n, dtype=np.int64) + 1) * num_frames // (2 * n)


def fps_indices(times: np.ndarray, duration: float, fps: float | None) -> np.ndarray:
    """Frames shown at the instants 0, 1/fps, 2/fps, ... (each frame at most once).

    Args:
        times: (N,) float64 sorted frame start times in seconds, ``times[0] == 0``.
        duration: video duration in seconds.
        fps: sampling rate; None (or a rate at or above the video's) gives every frame.

    Returns:
        (M,) int64 sorted unique indices.
    """
    if fps is None:
        return np.arange(times.shape[0], dtype=np.int64)
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    instants = np.arange(int(np.ceil(duration * fps - 1e-6)), dtype=np.float64) / fps  # (M',)
    # The frame on screen at instant t is the last one that started at or before t.
    shown = np.searchsorted(times, instants + 1e-9, side="right") - 1
    return np.unique(np.clip(shown, 0, times.shape[0] - 1)).astype(np.int64)


class VideoReader:
    """An opened video file. Create with ``open_video``; use as a context manager or call ``close()``.

    Attributes:
        meta: the video's VideoMeta.
    """

    def __init__(self, meta: VideoMeta, index: StreamIndex, decoder: Decoder):
        self.meta = meta
        self._index = index
        self._decoder = decoder

    @property
    def times(self) -> np.ndarray:
        """(num_frames,) float64 start time in seconds of every frame, the first at 0."""
        return self._index.times

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Decode frames by index.

        Args:
            indices: (N,) frame indices in any order, repeats allowed; each in ``[0, num_frames)``.

        Returns:
            (N, H, W, 3) uint8 RGB frames, in the order asked for.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)  # (N,)
        n = self.meta.num_frames
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx[(idx < 0) | (idx >= n)][0])
            raise IndexError(f"frame index {bad} out of range for {self.meta.path} ({n} frames)")
        if idx.size == 0:
            return np.empty((0, self.meta.height, self.meta.width, 3), np.uint8)
        if np.all(idx[1:] > idx[:-1]):
            return self._read_sorted(idx)
        # Decoders read forward best: decode each distinct frame once, in order, then restore the caller's order.
        unique, inverse = np.unique(idx, return_inverse=True)
        return self._read_sorted(unique)[inverse]

    def _read_sorted(self, indices: np.ndarray) -> np.ndarray:
        with held():  # Ctrl-C / SIGTERM unwind once the decoder has returned (videollm.interrupts)
            return self._decoder.read_sorted(indices)

    def uniform_indices(self, n: int) -> np.ndarray:
        """(min(n, num_frames),) int64 indices of ``n`` evenly spaced frames (centres of ``n`` equal chunks)."""
        return uniform_indices(self.meta.num_frames, n)

    def sample_uniform(self, n: int) -> FrameBatch:
        """Decode ``n`` evenly spaced frames over the whole video (every frame if ``n >= num_frames``).

        Args:
            n: frames wanted (>= 1).

        Returns:
            FrameBatch with B = min(n, num_frames).
        """
        idx = self.uniform_indices(n)
        return FrameBatch(indices=idx, times=self._index.times[idx], frames=self.read(idx))

    def iter_count(self, n: int, batch_size: int = 16) -> Iterator[FrameBatch]:
        """Decode ``n`` frames spread over the whole video the published way, in batches: indices
        ``linspace(0, num_frames - 1, n)`` truncated to integers (a video shorter than ``n`` frames repeats some).
        """
        if n < 1 or batch_size < 1:
            raise ValueError(f"n and batch_size must be >= 1, got {n}, {batch_size}")
        wanted = np.linspace(0, self.meta.num_frames - 1, n).astype(np.int64)  # (n,)
        for start in range(0, n, batch_size):
            idx = wanted[start : start + batch_size]
            yield FrameBatch(indices=idx, times=self._index.times[idx], frames=self.read(idx))

    def iter_fps(self, fps: float | None = None, batch_size: int = 16) -> Iterator[FrameBatch]:
        """Lazily decode the frames on screen at 0, 1/fps, 2/fps, ... seconds, in batches.

        Frames are decoded in order and only the wanted ones are kept, so memory holds one batch whatever the
        video's length. A frame is yielded at most once: an ``fps`` above the video's rate yields every frame.

        Args:
            fps: sampling rate in frames per second; None for the video's own rate (every frame).
            batch_size: frames per yielded batch (the last one may be shorter).

        Yields:
            FrameBatch of up to ``batch_size`` frames with their indices and times (seconds).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        wanted = fps_indices(self._index.times, self.meta.duration, fps)  # (M,)
        for start in range(0, wanted.shape[0], batch_size):
            idx = wanted[start : start + batch_size]
            yield FrameBatch(indices=idx, times=self._index.times[idx], frames=self._read_sorted(idx))

    def close(self) -> None:
        """Release the file; later reads raise VideoError."""
        with held():
            self._decoder.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __len__(self) -> int:
        return self.meta.num_frames

    def __repr__(self) -> str:
        m = self.meta
        return (f"VideoReader({m.path!r}, {m.num_frames} frames, {m.fps:.3g} fps, {m.width}x{m.height}, "
                f"{m.backend})")


def open_video(path: str | os.PathLike, backend: str = "auto", max_side: int = 8192) -> VideoReader:
    """Open and validate a video file.

    The file is checked up front (one demux pass, no decoding): missing, empty, unreadable, audio-only,
    truncated and oversized files raise here rather than at the first read.

    Args:
        path: video file.
        backend: "auto" (decord, or PyAV where decord cannot read the file faithfully), "decord" or "pyav".
        max_side: largest accepted frame width or height in pixels.

    Returns:
        An open VideoReader.

    Raises:
        VideoError: the file cannot be used; the message names the path and a short reason.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    index = probe(path, max_side)
    name = os.fspath(path)
    decoder: Decoder
    if backend == "pyav":
        decoder = PyAVDecoder(name, index)
    else:
        try:
            decoder = DecordDecoder(name, index)
        except DecoderUnsuitable as why:
            if backend == "decord":
                raise VideoError(path, f"{why}; backend='pyav' can read it") from None
            decoder = PyAVDecoder(name, index)
    meta = VideoMeta(
        path=str(path),
        fps=index.num_frames / index.duration if index.duration > 0 else 0.0,
        num_frames=index.num_frames,
        duration=index.duration,
        width=index.width,
        height=index.height,
        backend=decoder.name,
    )
    return VideoReader(meta, index, decoder)
