"""Live sources (files played in real time, webcams, network streams) behind one FrameBatch iterator."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from videollm.errors import VideoError
from videollm.io.reader import SEQUENTIAL_BACKEND, VideoReader, open_video
from videollm.io.meta import FrameBatch

_URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


def open_source(
    source: str | os.PathLike | int,
    fps: float | None = None,
    realtime: bool = False,
    batch_size: int = 1,
) -> Iterator[FrameBatch]:
    """Frames from a file, a webcam or a network stream, as one lazy iterator.

    Args:
        source: a video file path; a webcam index (int or a digit string such as "0"); or an rtsp/rtmp/http(s)
            URL. Webcams and URLs are read with OpenCV.
        fps: sampling rate in frames per second; None keeps every frame the source delivers.
        realtime: for files, play at the video's own pace (frame at time t is yielded no earlier than t seconds
            after iteration starts); otherwise as fast as decoding allows. Live sources always run at their pace.
        batch_size: frames per yielded batch.

    Returns:
        An iterator of FrameBatch; ``times`` are seconds of stream time (wall-clock seconds since the first frame
        for webcams). For a file it also has ``duration``, the file's length in seconds (a live source has none),
        and ``close()`` releases the source at once.

    Raises:
        VideoError: the source cannot be opened (raised by this call, before any iteration).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()):
        return _iter_capture(_open_capture(int(source)), int(source), fps, batch_size, wall_clock=True)
    if isinstance(source, str) and source.lower().startswith(_URL_SCHEMES):
        return _iter_capture(_open_capture(source), source, fps, batch_size, wall_clock=False)
    return FileSource(open_video(source, backend=SEQUENTIAL_BACKEND), fps, realtime, batch_size)


class FileSource:
    """A video file played as a source: an iterator of ``FrameBatch`` that also knows the file's ``duration``."""

    def __init__(self, reader: VideoReader, fps: float | None, realtime: bool, batch_size: int) -> None:
        self.duration = float(reader.meta.duration)
        self._batches = _iter_file(reader, fps, realtime, batch_size)

    def __iter__(self) -> FileSource:
        return self

    def __next__(self) -> FrameBatch:
        return next(self._batches)

    def close(self) -> None:
        """Release the file (the iteration ends)."""
        self._batches.close()


def _iter_file(reader: VideoReader, fps: float | None, realtime: bool, batch_size: int) -> Iterator[FrameBatch]:
    with reader:
        start = time.monotonic()
        for batch in reader.iter_fps(fps, batch_size=batch_size):
            if realtime:
                # The batch is complete only once its last frame is due.
                delay = start + float(batch.times[-1]) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield batch


def _open_capture(source: str | int) -> Any:
    import cv2

    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        capture.release()
        what = f"cannot open webcam {source}" if isinstance(source, int) else "cannot open stream"
        raise VideoError(source, what)
    return capture


def _iter_capture(
    capture: Any, source: str | int, fps: float | None, batch_size: int, wall_clock: bool
) -> Iterator[FrameBatch]:
    """Read an opened OpenCV VideoCapture, keeping at most one frame per 1/fps slot of stream time.

    Args:
        capture: an opened cv2.VideoCapture (released when the iterator ends or is closed).
        source: what the caller named, for error messages.
        fps: sampling rate, None for every frame.
        batch_size: frames per batch.
        wall_clock: time frames by the clock (webcams report no useful stream position).
    """
    import cv2

    try:
        start = time.monotonic()
        next_slot = 0.0
        position = 0
        indices: list[int] = []
        times: list[float] = []
        frames: list[np.ndarray] = []
        while True:
            ok, bgr = capture.read()
            if not ok:
                if position == 0:
                    raise VideoError(source, "opened, but no frame could be read")
                break
            now = time.monotonic() - start
            stream_time = now if wall_clock else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if not wall_clock and position > 0 and stream_time <= 0:
                stream_time = now  # some network backends report no position: fall back to the clock
            keep = fps is None or stream_time >= next_slot - 1e-9
            if keep:
                if fps is not None:
                    next_slot = (math.floor(stream_time * fps + 1e-9) + 1) / fps
                indices.append(position)
                times.append(stream_time)
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                if len(frames) == batch_size:
                    yield _batch(indices, times, frames)
                    indices, times, frames = [], [], []
            position += 1
        if frames:
            yield _batch(indices, times, frames)
    finally:
        capture.release()


def _batch(indices: list[int], times: list[float], frames: list[np.ndarray]) -> FrameBatch:
    return FrameBatch(
        indices=np.asarray(indices, dtype=np.int64),
        times=np.asarray(times, dtype=np.float64),
        frames=np.stack(frames),  # (B, H, W, 3)
    )
