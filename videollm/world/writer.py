"""Writing synthetic videos (H.264 MP4 through PyAV, streamed frame by frame) and their JSON.

x264 runs with one thread so that the same frames always give the same bytes. When PyAV or its libx264 encoder is
missing, OpenCV's mp4v writer is used instead (MPEG-4 Part 2, larger files, still decodable by every reader here).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from videollm.errors import VideoError
from videollm.world.render import render_frames
from videollm.world.spec import VideoSpec

DEFAULT_CRF = 26


def _has_x264() -> bool:
    try:
        import av
    except ImportError:
        return False
    return "libx264" in av.codecs_available


def write_frames(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float,
    width: int,
    height: int,
    crf: int = DEFAULT_CRF,
    preset: str = "medium",
) -> Path:
    """Encode frames to an MP4 file as they arrive.

    Args:
        frames: (H, W, 3) uint8 RGB frames; consumed lazily.
        path: output file (.mp4); parent folders are created.
        fps: frame rate.
        width, height: frame size (even numbers).
        crf: x264 constant rate factor (lower is better quality and larger files).
        preset: x264 speed preset.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _has_x264():
        _write_av(frames, path, fps, width, height, crf, preset)
    else:
        _write_cv2(frames, path, fps, width, height)
    return path


def _write_av(frames: Iterable[np.ndarray], path: Path, fps: float, width: int, height: int, crf: int,
              preset: str) -> None:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # threads=1: multi-threaded x264 may pick different decisions run to run; byte-identical output needs one.
        stream.options = {"crf": str(crf), "preset": preset, "threads": "1"}
        stream.codec_context.thread_count = 1
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _write_cv2(frames: Iterable[np.ndarray], path: Path, fps: float, width: int, height: int) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise VideoError(path, "cannot open a video writer (neither PyAV's libx264 nor OpenCV's mp4v works)")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV wants BGR
    finally:
        writer.release()


def write_video(spec: VideoSpec, path: str | os.PathLike, crf: int = DEFAULT_CRF) -> Path:
    """Render ``spec`` and encode it to ``path`` (streamed: one frame in memory at a time).

    Args:
        spec: the video.
        path: output .mp4 file.
        crf: x264 constant rate factor.

    Returns:
        The path written.
    """
    return write_frames(render_frames(spec), path, spec.fps, spec.width, spec.height, crf=crf)


def decode_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Decode a video file frame by frame with PyAV.

    Args:
        path: a video file.

    Yields:
        (H, W, 3) uint8 RGB frames.
    """
    import av

    if not Path(path).is_file():
        raise VideoError(path, "no such file")
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def write_json(obj: object, path: str | os.PathLike) -> Path:
    """Write JSON deterministically (fixed key order as built, 1-space indent, trailing newline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
