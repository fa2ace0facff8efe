"""What every tab module (``tab_*.py``) shares: the build context, the status line, errors shown to visitors."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from videollm.errors import VideoError, VideollmError

from . import media
from .loading import ModelLoader
from .samples import Samples
from .settings import AppLimits

MODEL = "model"  # concurrency id shared by every event that runs the model


def status(message: str, kind: str = "info") -> str:
    """The status line: ``message`` after a bold word saying whether the work is running ("info"), done or stopped."""
    # Words, not emoji: a browser without an emoji font would show empty boxes.
    prefix = {"info": "Working:", "done": "Done:", "stop": "Stopped:"}[kind]
    return f"**{prefix}** {message}"


#: What a request shows while it waits for the model to finish loading.
LOADING = status("Loading the model (the server has just started); this request runs as soon as it is ready…")


@dataclass(frozen=True)
class TabContext:
    """What every tab's layout and handlers get from ``build_demo``.

    Attributes:
        loader: the model, possibly still loading; handlers ask it for the model when they need it.
        limits: upload/duration/queue limits.
        samples: sample media for the examples.
        workdir: the app's own folder (thumbnails, plots, memory files, rendered videos).
    """

    loader: ModelLoader
    limits: AppLimits
    samples: Samples
    workdir: Path

    def session_state(self) -> gr.State:
        """A per-visitor session (a watched memory, an image's tokens): freed when the tab closes, or
        ``limits.keep_minutes`` after the visitor's last request."""
        return gr.State(None, time_to_live=self.limits.keep_minutes * 60)

    @property
    def model_events(self) -> dict[str, Any]:
        """Event options of every handler that runs a model: one shared concurrency id, so requests queue."""
        return {"concurrency_id": MODEL, "concurrency_limit": self.limits.concurrency}


def user_errors(fn: Callable) -> Callable:
    """Show errors meant for users (bad upload, too long, ...) as a visible Gradio error; the server stays up."""

    def convert(err: VideollmError) -> gr.Error:
        # Name an upload by its file name only: the server's temp paths mean nothing to a visitor.
        message = f"{Path(err.path).name}: {err.reason}" if isinstance(err, VideoError) else str(err)
        return gr.Error(message, duration=None, title="Cannot do that")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except VideollmError as err:
                raise convert(err) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VideollmError as err:
            raise convert(err) from None

    return wrapper


def playable_as_is(video: gr.Video) -> gr.Video:
    """Let ``video`` hand browser-playable files (H.264 MP4, ...) over as they are; others still go through Gradio.

    Gradio runs ffprobe on every example video, twice, while the app is built: twenty runs, about two seconds of
    start-up, for samples that are H.264 MP4s already. (A ``gr.Video`` subclass would be the obvious way, but Gradio
    writes a ``.pyi`` stub next to the module of every component subclass; so this instance's method is wrapped.)
    """
    plain = video.postprocess
    if video.streaming or video.format is not None or video.watermark.watermark:
        return video  # Gradio converts or marks these files, so it has to see every one

    @functools.wraps(plain)
    def postprocess(value: str | Path | None) -> FileData | None:
        if isinstance(value, (str, Path)) and media.browser_playable(value):
            return FileData(path=str(value), orig_name=Path(value).name)
        return plain(value)

    video.postprocess = postprocess
    return video


def no_rows() -> list[list[Any]]:
    """An empty table."""
    return []
