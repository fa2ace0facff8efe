"""The "Live captions" tab: a video file, a webcam on the server or the visitor's own camera, streamed scene by scene,
each scene captioned as it closes.

Publishes ``/live`` (source -> status, table of scenes, the stream's memory file) and ``/live_stop``; the captions
come from ``videollm.captioning.stream_captions``. The visitor's camera (live mode) streams frames from the browser
through a Gradio streaming event into a per-visitor ``camera.CameraStream``; those events are private (they need a
browser's webcam).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from videollm.errors import UsageError

from . import media
from .camera import CameraStream
from .common import LOADING, TabContext, playable_as_is, status, user_errors
from .settings import AppLimits

#: Seconds between the frames the browser sends while the visitor films: twice the model's 2 fps, so that every
#: 1/fps slot gets a frame despite timer jitter (``PushedFrames`` keeps one per slot, by arrival time).
CAMERA_EVERY = 0.25
#: Concurrency id of camera streams: each holds a queue worker for as long as it runs, so they get their own slots
#: (``AppLimits.camera_streams``) rather than the model's.
CAMERA = "camera"
#: The status line when the visitor opens live mode, and when a camera stream cannot run.
CAMERA_HELP = ("Click the camera box, allow the camera, then press **Record**: each scene's caption appears below as it "
               "closes; **Stop** ends the stream and captions its last scene. No picture? Allow the camera for this "
               "page in the browser (the icon left of the address), check that no other program holds it, and note "
               "that browsers offer cameras only to pages served from this machine (localhost) or over https; a "
               "video file works anywhere.")
_SCENE_HEADERS = ["Scene", "Start (s)", "End (s)", "Caption", "Latency (s)"]


def build(ctx: TabContext) -> None:
    """Add the "Live captions" tab to the ``gr.Blocks`` being built (call inside ``with gr.Blocks()``)."""
    with gr.Tab("Live captions", id="live"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320), gr.Tabs():
                with gr.Tab("Video file", id="live-file"):
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
                with gr.Tab("Your camera, live", id="live-camera") as camera_tab:
                    # Not mirrored: the model is to see the scene as it is (a mirrored frame swaps left and right).
                    # 640x480 is plenty for the model (it sees 224 px) and keeps each frame sent small.
                    l_camera = gr.Image(label="Your camera", sources=["webcam"], streaming=True, type="numpy",
                                        image_mode="RGB", height=300, elem_id="vl-live-camera",
                                        webcam_options=gr.WebcamOptions(mirror=False, constraints={
                                            "video": {"width": {"ideal": 640}, "height": {"ideal": 480}}}))
                    l_camera_stop = gr.Button("Stop the camera and caption the last scene", variant="stop",
                                              elem_id="vl-live-camera-stop")
                    l_camera_stream = ctx.session_state()  # the visitor's CameraStream
            with gr.Column(scale=3, min_width=420):
                l_status = gr.Markdown("Captions appear scene by scene while the stream plays.",
                                       elem_classes="vl-status", elem_id="vl-live-status")
                l_table = gr.Dataframe(headers=_SCENE_HEADERS, datatype=["number", "number", "number", "str",
                                                                         "number"],
                                       interactive=False, wrap=True, label="Scenes as they close",
                                       elem_id="vl-live-table")
                l_download = gr.File(label="The stream's memory (click to download)", interactive=False,
                                     height=80, elem_id="vl-live-download")
                gr.Markdown("Load the downloaded file in **Video chat → …or load a saved video memory** to ask "
                            "about the stream later without watching it again.")

        live_event = l_start.click(_live_handler(ctx), [l_video, l_device, l_realtime],
                                   [l_status, l_table, l_download], api_name="live", **ctx.model_events)
        l_stop.click(lambda: status("the memory so far can be downloaded.", "stop"), None, [l_status],
                     cancels=[live_event], api_name="live_stop", queue=False)

        camera_tab.select(lambda: CAMERA_HELP, None, [l_status], queue=False, api_visibility="private")
        on_frame, end = _camera_handlers(ctx)
        camera_event = l_camera.stream(on_frame, [l_camera, l_camera_stream],
                                       [l_status, l_table, l_download, l_camera_stream], stream_every=CAMERA_EVERY,
                                       time_limit=math.ceil(ctx.limits.max_video_seconds), concurrency_id=CAMERA,
                                       concurrency_limit=ctx.limits.camera_streams, show_progress="hidden",
                                       api_visibility="private")
        # ``end`` only waits for the stream's own thread to caption what is left, so it needs no queue slot.
        ends = {"fn": end, "inputs": [l_camera_stream], "outputs": [l_status, l_table, l_download, l_camera],
                "concurrency_limit": None, "show_progress": "hidden", "api_visibility": "private"}
        # A stream ends when the visitor presses Stop (either button), at the time limit, or on an error.
        camera_event.then(**ends)
        l_camera_stop.click(**ends)


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
            rows = [*rows, [sc.index + 1, round(sc.start, 2), round(sc.end, 2), sc.shown.strip(),
                            round(sc.latency, 3)]]
            # Saved after every scene so that the download works even if the visitor presses Stop.
            stream.save_memory(memory_file)
            yield (status(f"Scene {sc.index + 1} closed at {sc.end:.1f} s, captioned in {sc.latency:.2f} s…"),
                   rows, str(memory_file))
        yield status(f"Stream ended: {len(rows)} scenes.", "done"), rows, str(memory_file) if rows else None

    return live


def _camera_handlers(ctx: TabContext) -> tuple[Callable, Callable]:
    """The camera's per-frame handler and the handler that ends a camera stream."""

    @user_errors
    def on_frame(frame: Any, stream: CameraStream | None):
        """One frame from the visitor's camera: queue it for the model; show the scenes captioned so far."""
        if ctx.loader.failed:
            ctx.loader.get()  # raises the ModelError that says why
        if not ctx.loader.ready or frame is None:
            # Frames before the model is ready are not kept: the stream starts with the first one it can caption.
            return LOADING if frame is not None else gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if max(frame.shape[:2]) > ctx.limits.max_image_side:
            raise UsageError(f"the camera sends {frame.shape[1]}x{frame.shape[0]} frames; this server accepts sides "
                             f"up to {ctx.limits.max_image_side} px")
        new = stream is None or stream.released
        if new:
            stream = CameraStream(ctx.loader.get(), media.new_file(ctx.workdir, "memory", ".safetensors"),
                                  max_seconds=ctx.limits.max_video_seconds)
        stream.check()
        if not stream.frames.closed:
            stream.push(frame)
        table, download = _table(stream)
        return status(stream.status()), table, download, stream if new else gr.skip()

    @user_errors
    def end(stream: CameraStream | None):
        """Stop the camera (hiding the component releases it in the browser), then caption what is left."""
        if stream is None:
            yield CAMERA_HELP, gr.skip(), gr.skip(), gr.Image(visible=False)
            yield gr.skip(), gr.skip(), gr.skip(), gr.Image(visible=True)
            return
        yield status(stream.status()), gr.skip(), gr.skip(), gr.Image(visible=False)
        # The thread reads what is queued (a few seconds at most) and captions the open scene, then ends.
        while not stream.finish(timeout=0.5):
            table, download = _table(stream)
            yield status(stream.status()), table, download, gr.skip()
        stream.released = True
        stream.shown = -1  # a second ``end`` (Stop, then the stream's own end) shows the table again
        table, download = _table(stream)
        yield status(stream.status(), "stop" if stream.error else "done"), table, download, gr.Image(visible=True)
        stream.check()

    return on_frame, end


def _table(stream: CameraStream) -> tuple[Any, Any]:
    """The scenes table and memory file to send: ``gr.skip()`` for both while no scene was added since last sent."""
    rows = stream.rows
    if len(rows) == stream.shown:
        return gr.skip(), gr.skip()
    stream.shown = len(rows)
    return rows, str(stream.memory_file) if rows else None
