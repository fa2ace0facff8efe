"""The "Sequence demos" tab: a stick figure dancing to music, and command words recognised as speech streams in.

Publishes ``/dance`` (audio file -> status, MP4 with the music) and ``/speech`` (audio file, real-time pace -> status,
table of recognised words). Only file handling and display live here; the models are ``videollm.demos.dance`` and
``videollm.demos.speech``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from videollm.errors import UsageError, VideoError

from . import media
from .common import TabContext, status, user_errors
from .settings import AppLimits

_WORD_HEADERS = ["#", "Word", "Heard at (s)"]
_AUDIO_KINDS = "WAV, MP3, FLAC, OGG, M4A"
_SAMPLE_LOCK = threading.Lock()


def check_audio(path: str | os.PathLike | None, limits: AppLimits) -> float:
    """Open an uploaded or recorded audio file once to check that it has sound and is not too long.

    Args:
        path: the file (None when nothing was uploaded or recorded).
        limits: the app's limits; audio may be as long as ``max_video_seconds``.

    Returns:
        The duration in seconds; raises ``VideoError`` (not audio, empty) or ``UsageError`` (none, too long, too big).
    """
    import av

    path = media.check_upload(path, limits, "audio")
    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.audio:
                raise VideoError(path.name, f"no sound in this file; upload audio ({_AUDIO_KINDS})")
            stream = container.streams.audio[0]
            if container.duration is not None:
                duration = container.duration / av.time_base
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = 0.0
    except av.error.FFmpegError:
        raise VideoError(path.name, f"not a readable audio file ({_AUDIO_KINDS})") from None
    if duration <= 0:
        raise VideoError(path.name, "the audio is empty")
    if duration > limits.max_video_seconds:
        raise UsageError(f"the audio is {duration:.0f} s long; this server accepts up to "
                         f"{limits.max_video_seconds:.0f} s (run videollm demo on the command line for more)")
    return duration


def generated_clip(what: str, folder: str | os.PathLike, seed: int = 0) -> Path:
    """The test audio ``videollm demo sample dance|speech`` writes (its defaults), made once per folder.

    Args:
        what: "dance" (10 s of music with known beats) or "speech" (six spoken command words in noise).
        folder: where the WAV and its ground truth (same name, .json) go.
        seed: the generator's seed.

    Returns:
        The WAV's path.
    """
    from videollm.demos.samples import write_sample

    out = Path(folder) / f"generated-{what}-{seed}.wav"
    # Two visitors clicking at once must not generate the same file twice.
    with _SAMPLE_LOCK:
        if not out.is_file():
            write_sample(what, out, seed=seed)
    return out


def build(ctx: TabContext) -> None:
    """Add the "Sequence demos" tab to the ``gr.Blocks`` being built (call inside ``with gr.Blocks()``)."""
    from videollm.demos.speech.data import WORDS

    with gr.Tab("Sequence demos", id="demos"):
        gr.Markdown("Two small **recurrent** models trained by the project on generated audio. They run on the CPU "
                    "in about a second and know nothing about video.")

        # ---------------------------------------------------------------- Dance
        gr.Markdown("### Dance from music")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                d_audio = gr.Audio(label="Music", sources=["upload"], type="filepath", elem_id="vl-dance-audio")
                with gr.Row():
                    d_run = gr.Button("Dance", variant="primary", elem_id="vl-dance-run")
                    d_sample = gr.Button("Use a generated song", elem_id="vl-dance-sample")
            with gr.Column(scale=3, min_width=420):
                d_status = gr.Markdown("Upload a song (or use a generated one), then press **Dance**: a stick "
                                       "figure steps to the beat, with the music muxed into the video.",
                                       elem_classes="vl-status", elem_id="vl-dance-status")
                d_video = gr.Video(label="Dance", interactive=False, height=340, elem_id="vl-dance-video")

        # ---------------------------------------------------------------- Speech
        gr.Markdown("### Command words, recognised while the audio streams")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                s_audio = gr.Audio(label="Speech", sources=["upload", "microphone"], type="filepath",
                                   elem_id="vl-speech-audio")
                s_realtime = gr.Checkbox(label="Stream at the audio's own pace", value=False)
                with gr.Row():
                    s_run = gr.Button("Recognise", variant="primary", elem_id="vl-speech-run")
                    s_sample = gr.Button("Use a generated clip", elem_id="vl-speech-sample")
                gr.Markdown(f"Vocabulary: {', '.join(WORDS)}.", elem_id="vl-speech-words")
            with gr.Column(scale=3, min_width=420):
                s_status = gr.Markdown("Upload or record speech (or use a generated clip), then press "
                                       "**Recognise**: each word appears as soon as the recogniser hears its end.",
                                       elem_classes="vl-status", elem_id="vl-speech-status")
                s_table = gr.Dataframe(headers=_WORD_HEADERS, datatype=["number", "str", "number"],
                                       interactive=False, label="Words as they are recognised",
                                       elem_id="vl-speech-table")

        dance, speech, sample = _handlers(ctx)
        events = ctx.model_events
        d_outputs = [d_status, d_video]
        d_run.click(dance, [d_audio], d_outputs, api_name="dance", **events)
        d_sample.click(lambda: sample("dance"), None, [d_audio], api_name=False, concurrency_limit=4).success(
            dance, [d_audio], d_outputs, api_name=False, **events)
        s_outputs = [s_status, s_table]
        s_run.click(speech, [s_audio, s_realtime], s_outputs, api_name="speech", **events)
        s_sample.click(lambda: sample("speech"), None, [s_audio], api_name=False, concurrency_limit=4).success(
            speech, [s_audio, s_realtime], s_outputs, api_name=False, **events)


def _handlers(ctx: TabContext) -> tuple[Callable, Callable, Callable]:
    """The "Dance" and "Recognise" handlers, and the one that writes a generated clip to try them on."""
    from videollm.demos.dance import dance_from_audio, render_dance_video
    from videollm.demos.speech import recognise_stream

    @user_errors
    def dance(audio: str | None):
        duration = check_audio(audio, ctx.limits)
        name = Path(audio).name
        yield status(f"Dancing to **{name}** ({duration:.1f} s)…"), None
        started = time.perf_counter()
        poses, fps = dance_from_audio(audio)
        out = media.new_file(ctx.workdir, "dance", ".mp4")
        render_dance_video(poses, audio, out, fps=fps)
        yield (status(f"{len(poses)} frames ({len(poses) / fps:.1f} s at {fps:g} fps) generated and rendered "
                      f"in {time.perf_counter() - started:.1f} s.", "done"), str(out))

    @user_errors
    def speech(audio: str | None, realtime: bool):
        duration = check_audio(audio, ctx.limits)
        name = Path(audio).name
        rows: list[list[Any]] = []
        yield status(f"Listening to **{name}** ({duration:.1f} s)…"), rows
        started = time.perf_counter()
        for word, t_end in recognise_stream(audio):
            if realtime:
                # Show each word when a live stream would have reached it, not as fast as the CPU allows.
                time.sleep(max(0.0, t_end - (time.perf_counter() - started)))
            rows = [*rows, [len(rows) + 1, word, round(t_end, 2)]]
            yield status(f"Heard **{word}** at {t_end:.2f} s…"), rows
        heard = f"{len(rows)} word{'s' if len(rows) != 1 else ''}" if rows else "no command words"
        yield status(f"{heard} in {duration:.1f} s of audio.", "done"), rows

    @user_errors
    def sample(what: str) -> str:
        return str(generated_clip(what, ctx.workdir))

    return dance, speech, sample
