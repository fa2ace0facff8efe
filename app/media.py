"""Upload checks, scene thumbnails and the timeline strip: file handling only (no model here)."""

from __future__ import annotations

import functools
import html
import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from videollm.errors import UsageError, VideoError
from videollm.io import VideoMeta, open_video

from .settings import AppLimits

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif"}
# (container suffix, codec) pairs that browsers play as they are; the same table Gradio checks with ffprobe.
_BROWSER_PLAYABLE = {(".mp4", "h264"), (".mp4", "av1"), (".ogg", "theora"), (".webm", "vp9"), (".webm", "vp8"),
                     (".webm", "av1")}
# Colours of the timeline strip, cycled scene by scene (readable on light and dark themes).
_PALETTE = ("#6366f1", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#a855f7", "#14b8a6", "#f97316")


def check_upload(path: str | os.PathLike | None, limits: AppLimits, what: str = "video") -> Path:
    """Reject a missing or oversized upload with a message a visitor understands.

    Args:
        path: the uploaded file's path (None when nothing was uploaded).
        limits: the app's limits.
        what: "video", "image" or "memory", used in messages.

    Returns:
        The path.
    """
    if not path:
        raise UsageError(f"no {what} yet: upload one or click an example")
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"the uploaded {what} is gone from the server; upload it again")
    size_mb = path.stat().st_size / 2**20
    if size_mb > limits.max_upload_mb:
        raise UsageError(f"the {what} is {size_mb:.0f} MB; this server accepts up to {limits.max_upload_mb} MB")
    return path


def check_video(path: str | os.PathLike | None, limits: AppLimits) -> VideoMeta:
    """Open an uploaded video once to check that it decodes and is not too long.

    Returns:
        Its metadata; raises ``VideoError`` (corrupt, not a video) or ``UsageError`` (too long / too big).
    """
    path = check_upload(path, limits, "video")
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        raise VideoError(path.name, "this is an image; use the Image chat tab")
    with open_video(path) as reader:
        meta = reader.meta
        reader.read([0])  # probing alone accepts some truncated files; decoding a frame does not
    if meta.duration > limits.max_video_seconds:
        raise UsageError(f"the video is {meta.duration:.0f} s long; this server accepts up to "
                         f"{limits.max_video_seconds:.0f} s (run videollm caption on the command line for more)")
    return meta


def check_image(path: str | os.PathLike | None, limits: AppLimits) -> Path:
    """Check that an uploaded image decodes and is not huge; returns its path."""
    from PIL import Image, UnidentifiedImageError

    path = check_upload(path, limits, "image")
    try:
        with Image.open(path) as img:
            img.verify()
            width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise VideoError(path.name, "not a readable image (PNG, JPEG, WebP, BMP or GIF)") from None
    if max(width, height) > limits.max_image_side:
        raise UsageError(f"the image is {width}x{height}; this server accepts sides up to {limits.max_image_side} px")
    return path


def sweep(workdir: str | os.PathLike, max_age: float, now: float | None = None) -> int:
    """Delete the files below ``workdir`` last written more than ``max_age`` seconds ago, and emptied folders.

    Returns:
        How many files were deleted.
    """
    now = time.time() if now is None else now
    removed = 0
    for root, dirs, files in os.walk(workdir, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            try:
                if now - os.lstat(path).st_mtime > max_age:
                    os.remove(path)
                    removed += 1
            except OSError:  # gone already, or in use elsewhere: the next sweep tries again
                continue
        if root != os.fspath(workdir):
            try:
                os.rmdir(root)  # only succeeds when empty
            except OSError:
                pass
    return removed


def start_sweeper(workdir: str | os.PathLike, max_age: float) -> threading.Thread:
    """Run ``sweep`` in a daemon thread every ``max_age / 4`` seconds (at most every 10 minutes)."""
    interval = min(max_age / 4, 600.0)

    def loop() -> None:
        while True:
            time.sleep(interval)
            sweep(workdir, max_age)

    thread = threading.Thread(target=loop, name="videollm-app-sweeper", daemon=True)
    thread.start()
    return thread


def new_file(workdir: str | os.PathLike, stem: str, suffix: str) -> Path:
    """A fresh, unguessable file name inside the app's own work folder."""
    return Path(workdir) / f"{stem}-{uuid.uuid4().hex[:12]}{suffix}"


def scene_thumbnails(video: str | os.PathLike, spans: Sequence[tuple[float, float]], workdir: str | os.PathLike,
                     side: int = 192) -> list[str]:
    """One JPEG per scene, the frame nearest the middle of its span.

    Args:
        video: the video file.
        spans: (start, end) seconds per scene.
        workdir: where the JPEGs go.
        side: longest side of a thumbnail in pixels.

    Returns:
        The thumbnail paths, one per span.
    """
    from PIL import Image

    with open_video(video) as reader:
        times = reader.times  # (N,) seconds of every frame
        mids = np.asarray([0.5 * (a + b) for a, b in spans], dtype=np.float64)
        idx = np.clip(np.searchsorted(times, mids), 0, len(times) - 1)
        frames = reader.read(idx)  # (S, H, W, 3)
    paths = []
    for frame in frames:
        img = Image.fromarray(frame)
        img.thumbnail((side, side))
        out = new_file(workdir, "scene", ".jpg")
        img.save(out, quality=88)
        paths.append(str(out))
    return paths


def browser_playable(path: str | os.PathLike) -> bool:
    """True when a browser plays the video file as it is (e.g. H.264 in MP4), so it needs no conversion.

    PyAV reads the codec from the header in a few milliseconds, in this process; Gradio would start an ffprobe per
    example video (about 0.1 s each, twenty of them at start-up). Cached per file version.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return False
    return _playable(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _playable(path: str, mtime_ns: int, size: int) -> bool:
    import av

    try:
        with av.open(path) as container:
            streams = container.streams.video
            codec = streams[0].codec_context.name if streams else ""
    except av.FFmpegError:
        return False
    return (Path(path).suffix.lower(), codec) in _BROWSER_PLAYABLE


def timeline_html(spans: Sequence[tuple[float, float]], duration: float, captions: Sequence[str] = ()) -> str:
    """A coloured strip with one block per scene, widths proportional to the scene lengths (hover: caption)."""
    if not spans:
        return "<div class='vl-timeline vl-empty'>No scenes yet.</div>"
    total = max(duration, spans[-1][1], 1e-6)
    blocks = []
    for k, (start, end) in enumerate(spans):
        width = max(100.0 * (end - start) / total, 0.5)
        caption = f" · {captions[k]}" if k < len(captions) and captions[k] else ""
        tip = html.escape(f"Scene {k + 1}: {start:.1f}–{end:.1f} s{caption}")
        blocks.append(f"<div class='vl-block' style='width:{width:.3f}%;background:{_PALETTE[k % len(_PALETTE)]}' "
                      f"title='{tip}'>{k + 1}</div>")
    return (f"<div class='vl-timeline'>{''.join(blocks)}</div>"
            f"<div class='vl-axis'><span>0 s</span><span>{total:.1f} s</span></div>")


def span_label(start: float, end: float) -> str:
    """"1.5–3.0 s" for a scene span."""
    return f"{start:.1f}–{end:.1f} s"
