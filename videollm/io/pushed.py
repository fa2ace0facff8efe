"""Frames pushed in by another thread (a browser's camera in the web app), read as a live ``FrameBatch`` source."""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Iterator

import numpy as np

from videollm.io.meta import FrameBatch


class PushedFrames:
    """A live source fed by ``push``, resampled to ``fps`` by arrival time, with a bounded backlog.

    One producer thread pushes frames as they arrive (the web app: one call per frame the browser sends); one
    consumer iterates, e.g. ``captioning.stream_captions(model, frames)``, and gets one-frame batches. As for a
    webcam read by ``open_source``, stream time is the arrival time since the first kept frame, and of the frames
    arriving within one 1/fps slot only the first is kept. When ``backlog`` frames already wait for the consumer,
    the next ones are dropped (``push`` returns False, ``dropped`` counts them): memory stays bounded, and a
    consumer that falls behind skips those moments instead of lagging further and further behind.

    The iteration ends once ``close`` was called and the waiting frames are consumed, or when no frame came for
    ``idle_timeout`` seconds (a producer that went away without closing).

    Args:
        fps: sampling rate in frames per second (the model's ``config.segmentation.fps``).
        backlog: most frames waiting for the consumer (each a (H, W, 3) uint8 frame).
        idle_timeout: seconds without a pushed frame after which the iteration ends.
    """

    def __init__(self, fps: float, backlog: int = 8, idle_timeout: float = 10.0) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if backlog < 1:
            raise ValueError(f"backlog must be >= 1, got {backlog}")
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be > 0, got {idle_timeout}")
        self.fps = fps
        self.idle_timeout = idle_timeout
        self.kept = 0
        self.dropped = 0
        self.seconds = 0.0
        self._queue: queue.Queue[FrameBatch] = queue.Queue(maxsize=backlog)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._first: float | None = None
        self._next_slot = 0.0
        self._position = 0
        self._last_push = time.monotonic()

    def push(self, frame: np.ndarray, t: float | None = None) -> bool:
        """Offer one frame.

        Args:
            frame: (H, W, 3) uint8 RGB.
            t: its arrival time in seconds on any clock that only moves forward (default ``time.monotonic()``).

        Returns:
            True when the frame was queued; False when it was not needed (its 1/fps slot has a frame already), when
            the backlog is full (counted in ``dropped``) or after ``close``.
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
        now = time.monotonic()
        t = now if t is None else t
        with self._lock:
            self._last_push = now
            position, self._position = self._position, self._position + 1
            if self._closed.is_set():
                return False
            if self._first is None:
                self._first = t
            stream_time = t - self._first
            if stream_time < self._next_slot - 1e-9:
                return False
            # A copy: the producer may reuse its buffer, and a read-only array (a decoded upload) cannot go to torch.
            batch = FrameBatch(indices=np.asarray([position], dtype=np.int64),
                               times=np.asarray([stream_time], dtype=np.float64), frames=frame[None].copy())
            try:
                self._queue.put_nowait(batch)
            except queue.Full:
                # The slot stays open: a later frame of the same slot gets in if the consumer catches up.
                self.dropped += 1
                return False
            self._next_slot = (math.floor(stream_time * self.fps + 1e-9) + 1) / self.fps
            self.kept += 1
            self.seconds = stream_time
            return True

    def close(self) -> None:
        """No more frames: the iteration ends once the frames already queued are consumed. Idempotent."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        """True after ``close`` (or once the iteration ended on ``idle_timeout``)."""
        return self._closed.is_set()

    @property
    def waiting(self) -> int:
        """Frames queued and not yet consumed."""
        return self._queue.qsize()

    def __iter__(self) -> Iterator[FrameBatch]:
        while True:
            try:
                yield self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._closed.is_set():
                    if self._queue.empty():  # a frame pushed just before close is still read
                        return
                    continue
                if time.monotonic() - self._last_push > self.idle_timeout:
                    self.close()
                    return
