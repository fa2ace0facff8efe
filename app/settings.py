"""Limits and knobs of the web app, in one dataclass so that ``videollm serve`` options and tests set them alike."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AppLimits:
    """What one visitor may ask of the server.

    Attributes:
        max_upload_mb: largest accepted upload (Gradio refuses bigger files before they reach a handler).
        max_video_seconds: longest accepted video; longer ones get a clear message instead of a long wait. A
            visitor's camera stream (Live captions, live mode) ends after this long too.
        max_image_side: largest accepted image side in pixels.
        max_new_tokens: answer length cap for chat and captions shown in the app.
        concurrency: model calls running at once (the model is shared; on CPU one at a time is fastest).
        queue_size: waiting requests beyond which new ones are refused with "queue full".
        camera_streams: visitors' camera streams captioned at once (each holds a background captioning thread and
            at most 8 s of frames); more visitors wait in the queue until one ends. One stream keeps the shipped
            model busy on 2 CPU cores (a second one multiplies the caption latency by 5: benchmarks/live_camera.py).
        keep_minutes: a visitor's files (uploads, thumbnails, plots, memory downloads) are deleted this long after
            they were written, and a visitor's memory this long after their last request (closing the tab frees
            it at once).
    """

    max_upload_mb: int = 200
    max_video_seconds: float = 600.0
    max_image_side: int = 4096
    max_new_tokens: int = 96
    concurrency: int = 1
    queue_size: int = 16
    camera_streams: int = 1
    keep_minutes: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "max_image_side", "max_new_tokens", "concurrency", "queue_size",
                     "camera_streams"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_video_seconds", "keep_minutes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
