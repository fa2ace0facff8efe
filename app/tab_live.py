"""The "Live captions" tab: a video file or a webcam streamed scene by scene, each scene captioned as it closes.

Publishes ``/live`` (source -> status, table of scenes, the stream's memory file) and ``/live_stop``; the captions
come from ``videollm.captioning.stream_captions``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from . import media
from .common import LOADING, TabContext, playable_as_is, status, user_errors
from .settings import AppLimits

_SCENE_HEADERS = ["Scene", "Start (s)", "End (s)", "Caption", "Latency (s)"]


def build(ctx: TabContext) -> None:
    """Add the "Live captions" tab to the ``gr.Blocks`` being built (call inside ``with gr.Blocks()``)."""
    with gr.Tab("Live captions", id="live"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                l_video = playable_as_is(gr.Video(label="Video file or webcam recording",
                                                  sources=["upload", "webcam"], include_audio=True, height=300,
                                                  elem_id="vl-live-video"))
                if ctx.samples.videos:
                    gr.Examples([[p] for p in ctx.samples.videos], inputs=[l_video], label="Sample videos")
                with gr.Accordion("…or a webcam attached to the server machine", open=False):
                    l_device = gr.Number(label="Device index (0 is the first webcam); empty: use the file",
                                         value=None, precision=0, minimum=0)
                l_realtime = gr.Checkbox(label="Play at the video's own pace (as a live stream)", value=True)
                with gr.Row():
                    l_start = gr.Button("Start", variant="primary")
                    l_stop = gr.Button("Stop", variant="stop")
            with gr.Column(scale=3, min_width=420):
                l_status = gr.Markdown("Captions appear scene by scene while the stream plays.",
                                       elem_classes="vl-status")
                l_table = gr.Dataframe(headers=_SCENE_HEADERS, datatype=["number", "number", "number", "str",
                                                                         "number"],
                                       interactive=False, wrap=True, label="Scenes as they close")
                l_download = gr.File(label="The stream's memory (click to download)", interactive=False,
                                     height=80)
                gr.Markdown("Load the downloaded file in **Video chat → …or load a saved video memory** to ask "
                            "about the stream later without watching it again.")

        live_event = l_start.click(_live_handler(ctx), [l_video, l_device, l_realtime],
                                   [l_status, l_table, l_download], api_name="live", **ctx.model_events)
        l_stop.click(lambda: status("the memory so far can be downloaded.", "stop"), None, [l_status],
                     cancels=[live_event], api_name="live_stop", queue=False)


def _source(video: str | None, device: float | None, limits: AppLimits) -> tuple[str | int, str]:
    """What to stream and its name for the status line: the server's webcam when a device index is given."""
    if device is not None and not (isinstance(device, float) and math.isnan(device)):
        return int(device), f"webcam {int(device)}"
    media.check_video(video, limits)
    return str(video), Path(video).name


def _live_handler(ctx: TabContext) -> Callable:
    """The "Start" handler: streams the scenes' captions and keeps the stream's memory file up to date."""

    @user_errors
    def live(video: str | None, device: float | None, realtime: bool):
        from videollm import captioning

        source, name = _source(video, device, ctx.limits)
        rows: list[list[Any]] = []
        memory_file = media.new_file(ctx.workdir, "memory", ".safetensors")
        if not ctx.loader.ready:
            yield LOADING, rows, None
        model = ctx.loader.get()
        yield status(f"Streaming **{name}**…"), rows, None
        stream = captioning.stream_captions(model, source, realtime=realtime)
        for sc in stream:
            rows = [*rows, [sc.index + 1, round(sc.start, 2), round(sc.end, 2), sc.caption.strip(),
                            round(sc.latency, 3)]]
            # Saved after every scene so that the download works even if the visitor presses Stop.
            stream.save_memory(memory_file)
            yield (status(f"Scene {sc.index + 1} closed at {sc.end:.1f} s, captioned in {sc.latency:.2f} s…"),
                   rows, str(memory_file))
        yield status(f"Stream ended: {len(rows)} scenes.", "done"), rows, str(memory_file) if rows else None

    return live
