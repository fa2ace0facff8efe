"""Frame decoders behind VideoReader: decord (fast random access) and PyAV (reads what decord cannot).

Both take sorted, unique frame indices and return RGB uint8 arrays; both turn every library error into VideoError.
"""

from __future__ import annotations

import os

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from videollm.errors import VideoError
from videollm.io.probe import StreamIndex

# Frame times from decord and from the demux pass must agree this closely (seconds) for decord to be trusted.
_TIME_TOLERANCE = 2e-3


class Decoder(Protocol):
    """What VideoReader needs from a decoder."""

    name: str

    def read_sorted(self, indices: np.ndarray) -> np.ndarray:
        """Decode frames at sorted, unique, in-range ``indices`` (N,) into an (N, H, W, 3) uint8 RGB array."""
        ...

    def close(self) -> None:
        """Release the file and decoder state."""
        ...


class DecoderUnsuitable(Exception):
    """Internal: this decoder cannot read the file faithfully; the caller may try another one."""


class DecordDecoder:
    """decord's VideoReader on CPU, checked against the demux pass before it is trusted."""

    name = "decord"

    def __init__(self, path: str, index: StreamIndex, num_threads: int = 2):
        if os.environ.get("VIDEOLLM_DEBUG") != "1":
            # decord's "more than 5 frames corrupted and recovered from nearest frames" warning (sparse or lying
            # frame tables) goes to stderr unless this is set before decord is loaded
            os.environ.setdefault("DECORD_DUPLICATE_WARNING_THRESHOLD", "1.0")
        try:
            import decord
        except ImportError:
            # decord ships wheels for fewer platforms than PyAV (none for macOS arm64 or Python builds without
            # them); PyAV reads everything decord does, only seeks more slowly.
            raise DecoderUnsuitable("decord is not installed") from None
        if os.environ.get("VIDEOLLM_DEBUG") != "1":  # decord's own FFmpeg logs (see probe.quiet_ffmpeg)
            decord.logging.set_level(decord.logging.QUIET)

        self._path = path
        # decord raises several undocumented types (DECORDError, RuntimeError, AssertionError) for the same kind
        # of failure, so any exception here means "decord cannot read this file".
        try:
            reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
            count = len(reader)
            starts = np.asarray(reader.get_frame_timestamp(np.arange(count))[:, 0], np.float64) if count else None
        except Exception as err:
            raise DecoderUnsuitable(f"decord cannot open the file ({type(err).__name__})") from None
        # decord trusts container headers for its frame count; a count that disagrees with the packets present
        # makes it read past the end (and sometimes hang), so such files go to PyAV.
        if count != index.num_frames:
            raise DecoderUnsuitable(f"decord sees {count} frames, the stream holds {index.num_frames}")
        if index.pts is not None and starts is not None:
            drift = np.abs((starts - starts[0]) - index.times).max()
            if drift > _TIME_TOLERANCE:
                raise DecoderUnsuitable(f"decord frame times differ from the stream's by {drift:.3f} s")
        self._reader: Any = reader

    def read_sorted(self, indices: np.ndarray) -> np.ndarray:
        if self._reader is None:
            raise VideoError(self._path, "reader is closed")
        try:
            batch = self._reader.get_batch(indices)
        except Exception:
            raise VideoError(self._path, "cannot decode the requested frames (file may be corrupt)") from None
        # decord's bridge is process-global state that other code may switch to torch; accept either.
        return batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)

    def close(self) -> None:
        self._reader = None


class PyAVDecoder:
    """Sequential PyAV decoding with key-frame seeks, indexing frames by their presentation timestamps."""

    name = "pyav"

    def __init__(self, path: str, index: StreamIndex, num_threads: int = 2):
        self._path = path
        self._index = index
        self._threads = num_threads
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self._next = 0  # index the decoder yields next (valid while self._frames is live)
        self._closed = False

    def _restart(self, key: int) -> None:
        """Position the decoder so that the next frame it yields is key frame ``key`` (0 reopens the file)."""
        import av

        try:
            if self._container is None or key == 0 or self._index.pts is None:
                if self._container is not None:
                    self._container.close()
                self._container = av.open(self._path)
                stream = self._container.streams[self._index.stream_index]
                # Threading can only be set before the codec opens, i.e. on a fresh container.
                stream.thread_type = "AUTO"
                stream.codec_context.thread_count = self._threads
                key = 0
            stream = self._container.streams[self._index.stream_index]
            if key > 0:
                self._container.seek(int(self._index.pts[key]), stream=stream, backward=True, any_frame=False)
            self._frames = self._container.decode(stream)
        except av.FFmpegError:
            raise VideoError(self._path, f"cannot seek to frame {key} (file may be corrupt)") from None
        self._next = key

    def _position(self, frame: Any) -> int:
        pts = self._index.pts
        if pts is not None and frame.pts is not None:
            i = int(np.searchsorted(pts, frame.pts))
            if i < pts.shape[0] and pts[i] == frame.pts:
                return i
        return self._next

    def _decode_until(self, target: int) -> Any:
        """Decode forward to frame ``target``; None when the decoder passed it without producing it."""
        import av

        assert self._frames is not None
        while True:
            try:
                frame = next(self._frames, None)
            except av.FFmpegError:
                raise VideoError(self._path, f"decode error before frame {target} (file may be corrupt)") from None
            if frame is None:
                raise VideoError(self._path, f"stream ended before frame {target} (file may be truncated)")
            position = self._position(frame)
            self._next = position + 1
            if position == target:
                return frame
            if position > target:
                return None

    def read_sorted(self, indices: np.ndarray) -> np.ndarray:
        if self._closed:
            raise VideoError(self._path, "reader is closed")
        index = self._index
        out = np.empty((indices.shape[0], index.height, index.width, 3), np.uint8)  # (N, H, W, 3)
        keys = index.keyframes[np.searchsorted(index.keyframes, indices, side="right") - 1]  # (N,)
        for j, (target, key) in enumerate(zip(indices.tolist(), keys.tolist())):
            # Seek when going backwards or when a whole GOP lies between here and the target.
            if self._frames is None or target < self._next or (index.pts is not None and key > self._next):
                self._restart(key)
            frame = self._decode_until(target)
            if frame is None:  # the seek landed past the target (inexact index): decode from the start instead
                self._restart(0)
                frame = self._decode_until(target)
            if frame is None:
                raise VideoError(self._path, f"cannot decode frame {target}")
            rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3)
            if rgb.shape != out.shape[1:]:
                raise VideoError(self._path, f"frame {target} has size {rgb.shape[1]}x{rgb.shape[0]}, "
                                 f"the stream declares {index.width}x{index.height}")
            out[j] = rgb
        return out

    def close(self) -> None:
        self._closed = True
        self._frames = None
        if self._container is not None:
            self._container.close()
            self._container = None
