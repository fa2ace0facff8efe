"""Up-front validation of a video file: one demux pass with PyAV, no decoding.

The pass gives the facts both decoders are checked against: the number of frames actually present, every frame's
presentation time, and the key frames (seek points). Reading packets is cheap next to decoding and catches what
decoders otherwise report late or not at all: truncated files, audio-only files, absurd frame sizes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from videollm.errors import VideoError


@dataclass(frozen=True)
class StreamIndex:
    """Frame table of a video stream, frames in presentation order.

    Attributes:
        width, height: coded frame size.
        pts: (N,) int64 presentation timestamps in ``time_base`` units, or None when the stream carries none
            (raw elementary streams): frames are then addressed by decode order only.
        times: (N,) float64 seconds from the first frame.
        keyframes: (K,) int64 sorted indices of key frames (seek points); always contains 0.
        duration: seconds from the first frame's start to the last frame's end.
        time_base: seconds per pts unit.
        stream_index: index of the video stream among all streams of the container.
    """

    width: int
    height: int
    pts: np.ndarray | None
    times: np.ndarray
    keyframes: np.ndarray
    duration: float
    time_base: float
    stream_index: int

    @property
    def num_frames(self) -> int:
        return int(self.times.shape[0])


def check_path(path: str | os.PathLike) -> str:
    """Raise VideoError unless ``path`` names a non-empty regular file; return it as a string."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise VideoError(path, "no such file")
    if os.path.isdir(name):
        raise VideoError(path, "is a directory, not a video file")
    if not os.path.isfile(name):
        raise VideoError(path, "not a regular file")
    if os.path.getsize(name) == 0:
        raise VideoError(path, "file is empty (0 bytes)")
    if not os.access(name, os.R_OK):
        raise VideoError(path, "permission denied")
    return name


def quiet_ffmpeg() -> None:
    """Keep FFmpeg's own log lines ("[mjpeg @ 0x...] No JPEG data found in image") off stderr, where they would
    precede the one-line error a bad file gets (what FFmpeg failed on reaches the user as a ``VideoError``).
    ``videollm --debug`` (``VIDEOLLM_DEBUG=1``) leaves them on."""
    import av.logging

    if os.environ.get("VIDEOLLM_DEBUG") != "1" and av.logging.get_level() is None:
        av.logging.set_level(av.logging.PANIC)


def probe(path: str | os.PathLike, max_side: int) -> StreamIndex:
    """Validate a video file and index its frames.

    Args:
        path: video file path.
        max_side: largest accepted frame width or height in pixels.

    Returns:
        The stream's frame table.

    Raises:
        VideoError: missing/empty/unreadable file, no video stream, frame size over the limit, no frames, or fewer
            frames present than the container declares (truncated file).
    """
    import av

    quiet_ffmpeg()
    name = check_path(path)
    try:
        container = av.open(name)
    except av.FFmpegError:
        raise VideoError(path, "not a readable video file (unknown format or corrupt data)") from None
    with container:
        if not container.streams.video:
            raise VideoError(path, "no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise VideoError(path, "video stream has no frame size (corrupt header)")
        if max(width, height) > max_side:
            raise VideoError(path, f"frame size {width}x{height} exceeds limit {max_side}")
        declared = int(stream.frames or 0)
        time_base = float(stream.time_base) if stream.time_base else 0.0
        declared_duration = float(stream.duration * stream.time_base) if stream.duration and time_base else 0.0
        rate = float(stream.average_rate or stream.guessed_rate or 0.0)
        stream_index = int(stream.index)

        pts: list[int | None] = []
        keys: list[bool] = []
        durations: list[int] = []
        corrupt = False
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet demux yields at end of stream
                    continue
                pts.append(packet.pts)
                keys.append(bool(packet.is_keyframe))
                durations.append(int(packet.duration or 0))
                corrupt |= bool(packet.is_corrupt)
        except av.FFmpegError:
            corrupt = True

    count = len(pts)
    if count == 0:
        raise VideoError(path, "video stream contains no frames")
    if declared > count or corrupt:
        raise VideoError(path, f"truncated or corrupt file: {declared or 'more'} frames declared, {count} readable")

    if any(p is None for p in pts) or not time_base:
        # Raw elementary streams carry no timestamps: assume the nominal rate.
        rate = rate or 25.0
        times = np.arange(count, dtype=np.float64) / rate
        frame_pts = None
        key_idx = np.flatnonzero(np.asarray(keys))
        duration = count / rate
    else:
        raw = np.asarray(pts, dtype=np.int64)
        order = np.argsort(raw, kind="stable")  # packets arrive in decode order; frames are shown in pts order
        frame_pts = raw[order]
        times = (frame_pts - frame_pts[0]).astype(np.float64) * time_base
        # Packet k (decode order) becomes frame position rank[k] (presentation order).
        rank = np.empty(count, dtype=np.int64)
        rank[order] = np.arange(count)
        key_idx = np.sort(rank[np.asarray(keys, dtype=bool)])
        last = durations[int(order[-1])] * time_base
        if last <= 0:
            last = float(np.median(np.diff(times))) if count > 1 else (1.0 / rate if rate else 0.0)
        duration = float(times[-1] + last)
        if declared_duration and duration < 0.9 * declared_duration - 0.5:
            raise VideoError(
                path, f"truncated file: {declared_duration:.1f} s declared, frames end at {duration:.1f} s"
            )

    keyframes = np.union1d(np.zeros(1, np.int64), key_idx.astype(np.int64))
    return StreamIndex(
        width=width,
        height=height,
        pts=frame_pts,
        times=times,
        keyframes=keyframes,
        duration=max(duration, 0.0),
        time_base=time_base,
        stream_index=stream_index,
    )
