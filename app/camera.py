"""A visitor's own camera streamed from the browser: frames in, scene captions out (the Live captions tab's live mode).

The browser sends a frame every ``stream_every`` seconds while the visitor films; each one is pushed into the
visitor's ``videollm.io.PushedFrames`` (resampled to the model's fps by arrival time, bounded backlog), and one
``captioning.stream_captions`` session per stream reads it in a background thread: the same streaming path as
``videollm stream``, each frame encoded once. Handlers show ``rows``, the scenes captioned so far.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from videollm.errors import ModelError, VideollmError
from videollm.io import PushedFrames


class CameraStream:
    """One camera stream: its frame queue, the captioning session reading it, and the scenes captioned so far.

    Args:
        model: a ``VideoLLM`` (the app's shared model).
        memory_file: where the stream's memory is saved after every scene (so it can be downloaded at any time).
        max_seconds: stream seconds after which frames are refused and the stream ends (its open scene captioned).
        backlog_seconds: seconds of frames (at the model's fps) that may wait for the model; later ones are
            dropped until it catches up. 8 s absorbs a caption's burst of work (about 3 s with the shipped model on
            2 CPU cores) without drops; 16 frames of 640x480 are 15 MB.
        idle_timeout: the stream ends when no frame came for this long (the visitor left without stopping).

    Attributes:
        rows: one ``[scene number, start s, end s, caption, latency s]`` per captioned scene.
        error: what ended the captioning early (None while it runs and after a normal end).
        limit_reached: True once ``max_seconds`` of stream were taken.
        released: set by the handler that ended the stream: the visitor's next frame starts a new stream.
        shown: the number of rows the visitor's page shows (handlers send the table only when it changed).
    """

    def __init__(self, model, memory_file: str | os.PathLike, max_seconds: float, backlog_seconds: float = 8.0,
                 idle_timeout: float = 10.0) -> None:
        from videollm import captioning

        fps = model.config.segmentation.fps
        self.frames = PushedFrames(fps, backlog=max(1, math.ceil(backlog_seconds * fps)), idle_timeout=idle_timeout)
        self.memory_file = Path(memory_file)
        self.max_seconds = max_seconds
        self.rows: list[list[Any]] = []
        self.error: BaseException | None = None
        self.limit_reached = False
        self.released = False
        self.shown = -1
        self._reported = False
        self._session = captioning.stream_captions(model, self.frames)
        self._thread = threading.Thread(target=self._caption, name="videollm-camera", daemon=True)
        self._thread.start()

    def push(self, frame: np.ndarray, t: float | None = None) -> bool:
        """Offer one (H, W, 3) uint8 RGB frame that arrived at ``t`` (seconds, default now); see ``PushedFrames.push``.

        Returns:
            Whether the frame was queued for the model.
        """
        queued = self.frames.push(frame, t)
        if self.frames.kept and self.frames.seconds >= self.max_seconds:
            self.limit_reached = True
            self.frames.close()
        return queued

    def finish(self, timeout: float | None = None) -> bool:
        """End the stream: no more frames; the frames waiting and the open scene are captioned.

        Args:
            timeout: seconds to wait for the last caption (None: as long as it takes).

        Returns:
            True once the captioning has ended.
        """
        self.frames.close()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """True while the captioning session runs (frames may still come, or wait to be captioned)."""
        return self._thread.is_alive()

    def check(self) -> None:
        """Raise what ended the captioning early, as an error a visitor can read (once; ``status`` says it after)."""
        if self.error is None or self._reported:
            return
        self._reported = True
        if isinstance(self.error, VideollmError):
            raise self.error
        raise ModelError(f"the live stream stopped: {type(self.error).__name__}: {self.error}")

    def status(self) -> str:
        """One sentence on the stream: seconds taken, scenes captioned, frames dropped or refused."""
        seconds, scenes = self.frames.seconds, len(self.rows)
        if self.running and not self.frames.closed:
            text = f"Live from your camera: **{seconds:.1f} s** streamed, {scenes} scenes captioned."
        elif self.running:
            text = f"{seconds:.1f} s streamed; captioning the last scene…"
        else:
            text = f"Camera stream ended after {seconds:.1f} s: {scenes} scenes."
        if self.error is not None:
            text += f" The captioning stopped early: {self.error}"
        if self.frames.dropped:
            text += (f" The server fell behind: {self.frames.dropped} frames were dropped (their moments are not "
                     f"captioned).")
        if self.limit_reached:
            text += (f" A stream is limited to {self.max_seconds:.0f} s on this server: press Record again for a "
                     f"new one.")
        elif self.frames.closed and not self.running and not self.released:
            text += " No frame arrived for a while: press Stop under the camera, then Record, to stream again."
        return text

    def _caption(self) -> None:
        try:
            for sc in self._session:
                # Saved after every scene so that the download works whenever the visitor stops.
                self._session.save_memory(self.memory_file)
                self.rows = [*self.rows, [sc.index + 1, round(sc.start, 2), round(sc.end, 2), sc.shown.strip(),
                                          round(sc.latency, 3)]]
        except Exception as err:  # noqa: BLE001 (kept in self.error: the visitor's next request reports it)
            self.error = err
        finally:
            self.frames.close()  # frames still arriving are refused, not queued for nobody
