"""The Gradio Blocks app: tabs for video chat, live captions, image chat, planning, sequence demos and About.

Every handler is a plain (generator) function declared inside ``with gr.Blocks() as demo`` that consumes the same
generators as the CLI (``videollm.captioning``, ``videollm.memory``, ``VideoLLM.chat`` / ``score``); there is no model
logic here. All model work runs under one shared concurrency id, so requests queue instead of fighting for the CPU.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from videollm.errors import UsageError, VideoError, VideollmError

from . import media, text
from .demos_tab import sequence_demos_tab
from .loading import ModelLoader
from .samples import Samples, find_samples
from .settings import AppLimits

_MODEL = "model"  # concurrency id shared by every event that runs the model
_SCENE_HEADERS = ["Scene", "Start (s)", "End (s)", "Caption", "Latency (s)"]
_RANK_HEADERS = ["Rank", "Candidate next step", "Mean log-likelihood", "Share"]
_FOUND_HEADERS = ["Scene", "Start (s)", "End (s)", "Caption"]
FIND_TOP = 5  # scenes listed by "Find scenes"


@dataclass
class ChatSession:
    """What one visitor's conversation about one video or image holds between requests.

    Attributes:
        source: the video/image path (or memory file) the memory was built from.
        state: the ``BridgeState`` (video memory); questions reuse it, nothing is re-encoded.
        history: the dialog so far as the model sees it ({"role", "content"} dicts).
        scenes: (start, end, caption) per scene, for display.
    """

    source: str
    state: Any
    history: list[dict[str, str]] = field(default_factory=list)
    scenes: list[tuple[float, float, str]] = field(default_factory=list)


def _playable_as_is(video: gr.Video) -> gr.Video:
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


def _user_errors(fn: Callable) -> Callable:
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


def _status(message: str, kind: str = "info") -> str:
    # Words, not emoji: a browser without an emoji font would show empty boxes.
    prefix = {"info": "Working:", "done": "Done:", "stop": "Stopped:"}[kind]
    return f"**{prefix}** {message}"


def _answer_text(answer: str) -> str:
    # A model that is not trained yet can emit only whitespace; say so instead of showing an empty bubble.
    return answer if answer.strip() else "_(the model gave an empty answer)_"


def _loading_chat(history: list[dict[str, str]], question: str) -> list[dict[str, str]]:
    # The question shows at once; the answer bubble says why it has not started yet.
    return _display([*history, {"role": "user", "content": question},
                     {"role": "assistant", "content": "_(loading the model…)_"}])


def _display(history: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": _shown_answer(m) if m["role"] == "assistant" else m["content"]}
            for m in history]


def _shown_answer(message: dict[str, str]) -> str:
    # An answer recalled from one scene of a video says which (the "source" key; the model never sees it).
    text = _answer_text(message["content"])
    return f"{text}\n\n*{message['source']}*" if message.get("source") else text


def _for_model(history: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in history]


def _no_rows() -> list[list[Any]]:
    """An empty table."""
    return []


def _source(state: Any, decisions: list[Any]) -> str:
    """ "answered from scene 2 of 4 (4.5–8.5 s)" for a video of several scenes; "" otherwise."""
    if not decisions or state.num_segments < 2:
        return ""
    return decisions[0].source(state)


def build_demo(model: Any, *, limits: AppLimits | None = None, model_name: str = "", samples: Samples | None = None,
               workdir: str | os.PathLike | None = None) -> gr.Blocks:
    """Build the app around a model (nothing is launched).

    The page needs no model: with a ``ModelLoader`` that is still loading, the app can be served at once, and each
    request that needs the model shows a "loading the model" status and waits for it.

    Args:
        model: a ``VideoLLM`` with its vision encoder, or a ``ModelLoader`` that gives one.
        limits: upload/duration/queue limits (default ``AppLimits()``).
        model_name: what the About panel says is loaded (checkpoint directory or preset name).
        samples: sample media for the examples (default: the shipped data/samples/world).
        workdir: folder for the app's own files (thumbnails, plots, memory files); a fresh temp folder by default.

    Returns:
        The ``gr.Blocks`` app; ``launch`` in ``videollm_app.server`` serves it with the app's limits.
    """
    # Only what the layout needs is imported here: the model code (torch) loads with the model, not with the page.
    from videollm import prompts

    loader = model if isinstance(model, ModelLoader) else ModelLoader.loaded(model)
    loading = _status("Loading the model (the server has just started); this request runs as soon as it is "
                      "ready…")
    limits = limits or AppLimits()
    samples = samples if samples is not None else find_samples()
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="videollm-app-"))
    workdir.mkdir(parents=True, exist_ok=True)
    max_tokens = limits.max_new_tokens

    def answer_stream(session: ChatSession, question: str):
        """Stream an answer into the chat: yields (cleared textbox, chat messages, session with the new turn)."""
        from videollm import captioning

        history = [*session.history, {"role": "user", "content": question}]
        answer = ""
        yield "", _display([*history, {"role": "assistant", "content": "…"}]), session
        decisions: list[Any] = []
        pieces = captioning.ask(loader.get(), session.state, question, history=_for_model(session.history),
                                max_new_tokens=max_tokens, on_recall=decisions.append)
        turn = {"role": "assistant", "content": "", "source": _source(session.state, decisions)}
        for piece in pieces:
            answer += piece
            yield "", _display([*history, {**turn, "content": answer or "…"}]), session
        session = replace(session, history=[*history, {**turn, "content": answer}])
        yield "", _display(session.history), session

    model_line = f"**Loaded now:** `{model_name}`" if model_name else ""
    if model_name and not Path(model_name).is_dir():
        # A preset name means freshly initialised bridge and projector weights: say so rather than let users guess.
        model_line += (" — a preset whose bridge and projector are **not trained**: its captions and answers are "
                       "noise. Load a trained checkpoint directory with `--model DIR`.")
    elif model_name:
        model_line += " (a trained checkpoint directory)."
    about = text.ABOUT.format(model_line=model_line, max_upload_mb=limits.max_upload_mb,
                              max_video_seconds=limits.max_video_seconds, concurrency=limits.concurrency,
                              queue_size=limits.queue_size)
    model_events = {"concurrency_id": _MODEL, "concurrency_limit": limits.concurrency}

    with gr.Blocks(title="videollm", analytics_enabled=False) as demo:
        demo.videollm_limits = limits  # read by ``server.launch``
        demo.videollm_samples = samples
        demo.videollm_workdir = workdir
        gr.HTML(text.HEADER)

        # ------------------------------------------------------------------ Video chat
        with gr.Tab("Video chat", id="video"):
            v_session = gr.State(None)
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=320):
                    v_video = _playable_as_is(gr.Video(label="Video", sources=["upload"], include_audio=True,
                                                       height=300, elem_id="vl-video"))
                    if samples.videos:
                        gr.Examples([[p] for p in samples.videos], inputs=[v_video], label="Sample videos")
                    v_watch = gr.Button("Watch & caption", variant="primary")
                    with gr.Accordion("…or load a saved video memory", open=False):
                        v_memory = gr.File(label="Memory file (.safetensors)", file_types=[".safetensors"])
                with gr.Column(scale=3, min_width=420):
                    v_status = gr.Markdown("Upload a video or pick a sample, then press **Watch & caption**.",
                                           elem_classes="vl-status")
                    v_timeline = gr.HTML(media.timeline_html([], 0.0), label="Timeline", elem_id="vl-timeline")
                    v_gallery = gr.Gallery(label="Scenes", columns=4, height=250, object_fit="contain",
                                           allow_preview=True, elem_id="vl-gallery")
                    with gr.Accordion("SceneTiling curve", open=True):
                        v_plot = gr.Image(label="Similarity and depth with the cuts", type="filepath", show_label=False,
                                          interactive=False, height=260, elem_id="vl-plot")
            v_chat = gr.Chatbot(label="Chat about the video", height=340,
                                placeholder="Answers stream here. Follow-up questions reuse the video's memory.",
                                elem_id="vl-chat")
            with gr.Row():
                v_question = gr.Textbox(placeholder="Ask about the video, e.g. What appeared first?",
                                        show_label=False, scale=5)
                v_send = gr.Button("Send", variant="primary", scale=1, min_width=90, elem_id="vl-send")
                v_summary = gr.Button("Summarize", scale=1, min_width=110)
            with gr.Accordion("Find scenes", open=False):
                with gr.Row():
                    v_find = gr.Textbox(placeholder="What to look for, e.g. red circle", show_label=False, scale=5,
                                        elem_id="vl-find")
                    v_find_go = gr.Button("Find", scale=1, min_width=90)
                v_found = gr.Dataframe(headers=_FOUND_HEADERS, datatype=["number", "number", "number", "str"],
                                       interactive=False, wrap=True, elem_id="vl-found",
                                       label="Scenes whose caption holds the words, best first")

            @_user_errors
            def watch(video: str | None, progress: gr.Progress = gr.Progress()):  # noqa: B008 (Gradio's idiom)
                from videollm import captioning
                from videollm.memory import encode_video

                meta = media.check_video(video, limits)
                name = Path(video).name
                if not loader.ready:
                    yield loading, media.timeline_html([], meta.duration), [], None, [], None
                model = loader.get()
                progress(0.0, desc="Watching")
                started = time.perf_counter()
                yield (_status(f"Watching **{name}** ({meta.duration:.1f} s)…"),
                       media.timeline_html([], meta.duration), [], None, [], None)
                scenes: list[tuple[float, float, str]] = []
                gallery: list[tuple[str, str]] = []
                # Encode once: the captions and the SceneTiling plot both use these features.
                encoded = encode_video(model, video)
                watched = captioning.caption_video(model, video, encoded=encoded)
                for sc in watched:
                    scenes.append((sc.start, sc.end, sc.caption))
                    thumb = media.scene_thumbnails(video, [(sc.start, sc.end)], workdir)[0]
                    gallery.append((thumb, f"{media.span_label(sc.start, sc.end)} · {sc.caption.strip() or '…'}"))
                    progress(min(sc.end / max(meta.duration, 1e-6), 1.0), desc=f"Scene {sc.index + 1}")
                    elapsed = time.perf_counter() - started
                    yield (_status(f"Scene {sc.index + 1} captioned in {sc.latency:.2f} s "
                                   f"({elapsed:.1f} s after Watch)…"),
                           media.timeline_html([s[:2] for s in scenes], meta.duration, [s[2] for s in scenes]),
                           gallery, None, [], None)
                session = ChatSession(source=str(video), state=watched.state, scenes=scenes)
                strip = media.timeline_html([s[:2] for s in scenes], meta.duration, [s[2] for s in scenes])
                took = time.perf_counter() - started
                yield _status(f"{len(scenes)} scenes in {took:.1f} s; plotting the SceneTiling curve…"), strip, \
                    gallery, None, [], session
                progress(1.0, desc="Plotting the SceneTiling curve")
                plot = _scene_plot(encoded)
                yield (_status(f"{len(scenes)} scenes in {took:.1f} s. Ask away: questions reuse this memory.",
                               "done"), strip, gallery, plot, [], session)

            def _scene_plot(encoded) -> str:
                import scenetiling
                from videollm.segmentation import segment_ends

                seg = loader.get().config.segmentation
                out = media.new_file(workdir, "scenetiling", ".png")
                scenetiling.plot(encoded.cls, segment_ends(encoded.cls, seg), out, times=encoded.times,
                                 alpha=seg.alpha)
                return str(out)

            @_user_errors
            def load_saved_memory(path: str | None):
                from videollm.memory import load_memory

                path = media.check_upload(path, limits, "memory")
                if not loader.ready:
                    yield loading, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
                state = load_memory(path, loader.get())
                captions = [c.get("caption", "") for c in state.extra.get("captions", [])]
                scenes = [(s.start_time, s.end_time, captions[k] if k < len(captions) else "")
                          for k, s in enumerate(state.segments)]
                duration = float(state.extra.get("duration", scenes[-1][1] if scenes else 0.0))
                source = state.extra.get("video", Path(path).name)
                session = ChatSession(source=str(source), state=state, scenes=scenes)
                status = _status(f"Loaded the memory of **{Path(str(source)).name}**: {len(scenes)} scenes, "
                                 "no video needed. Ask away.", "done")
                yield (status, media.timeline_html([s[:2] for s in scenes], duration, [s[2] for s in scenes]),
                       [], None, [], session)

            @_user_errors
            def ask_video(question: str, session: ChatSession | None):
                if session is None:
                    raise UsageError("watch a video (or load a memory) first, then ask about it")
                if not question or not question.strip():
                    raise UsageError("type a question first")
                if not loader.ready:
                    yield "", _loading_chat(session.history, question.strip()), session
                yield from answer_stream(session, question.strip())

            @_user_errors
            def summarize_video(session: ChatSession | None):
                from videollm import captioning

                if session is None:
                    raise UsageError("watch a video (or load a memory) first")
                history = [*session.history, {"role": "user", "content": prompts.SUMMARY}]
                if not loader.ready:
                    yield _loading_chat(session.history, prompts.SUMMARY), session
                answer = ""
                for piece in captioning.summarize(loader.get(), session.state, max_new_tokens=max_tokens):
                    answer += piece
                    yield _display([*history, {"role": "assistant", "content": answer or "…"}]), session
                session = replace(session, history=[*history, {"role": "assistant", "content": answer}])
                yield _display(session.history), session

            @_user_errors
            def find_scenes(query: str, session: ChatSession | None) -> list[list[Any]]:
                from videollm.recall import rank_scenes, scene_captions

                if session is None:
                    raise UsageError("watch a video (or load a memory) first, then search it")
                if not query or not query.strip():
                    raise UsageError("type what to look for first")
                model = loader.get()
                captions = scene_captions(model, session.state)  # the ones shown above, or written once now
                found = [m for m in rank_scenes(model, session.state, query.strip()) if m.words > 0][:FIND_TOP]
                if not found:
                    gr.Info(f"No scene's caption holds any of the words of “{query.strip()}”.")
                return [[m.scene + 1, round(session.state.segments[m.scene].start_time, 1),
                         round(session.state.segments[m.scene].end_time, 1), captions[m.scene]] for m in found]

            @_user_errors
            def check_video(video: str | None) -> str:
                meta = media.check_video(video, limits)
                return _status(f"Watching **{Path(video).name}** ({meta.duration:.1f} s)…")

            v_outputs = [v_status, v_timeline, v_gallery, v_plot, v_chat, v_session]
            # A cheap check first, so that a bad upload marks only the status line, not every output.
            v_watch.click(check_video, [v_video], [v_status], api_name=False, concurrency_limit=4).success(
                watch, [v_video], v_outputs, api_name="watch", **model_events).then(
                _no_rows, None, [v_found], api_name=False)  # found scenes of the previous video go
            v_memory.upload(load_saved_memory, [v_memory], v_outputs, api_name="load_memory", **model_events).then(
                _no_rows, None, [v_found], api_name=False)
            ask_args = dict(fn=ask_video, inputs=[v_question, v_session], outputs=[v_question, v_chat, v_session],
                            **model_events)
            v_send.click(api_name="ask_video", **ask_args)
            v_question.submit(api_name=False, **ask_args)
            v_summary.click(summarize_video, [v_session], [v_chat, v_session], api_name="summarize", **model_events)
            find_args = dict(fn=find_scenes, inputs=[v_find, v_session], outputs=[v_found], **model_events)
            v_find_go.click(api_name="find_scenes", **find_args)
            v_find.submit(api_name=False, **find_args)

        # ------------------------------------------------------------------ Live captions
        with gr.Tab("Live captions", id="live"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=320):
                    l_video = _playable_as_is(gr.Video(label="Video file or webcam recording",
                                                       sources=["upload", "webcam"], include_audio=True, height=300,
                                                       elem_id="vl-live-video"))
                    if samples.videos:
                        gr.Examples([[p] for p in samples.videos], inputs=[l_video], label="Sample videos")
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

            @_user_errors
            def live(video: str | None, device: float | None, realtime: bool):
                from videollm import captioning

                if device is not None and not (isinstance(device, float) and math.isnan(device)):
                    source: str | int = int(device)
                    name = f"webcam {source}"
                else:
                    media.check_video(video, limits)
                    source, name = str(video), Path(video).name
                rows: list[list[Any]] = []
                memory_file = media.new_file(workdir, "memory", ".safetensors")
                if not loader.ready:
                    yield loading, rows, None
                model = loader.get()
                yield _status(f"Streaming **{name}**…"), rows, None
                stream = captioning.stream_captions(model, source, realtime=realtime)
                for sc in stream:
                    rows = [*rows, [sc.index + 1, round(sc.start, 2), round(sc.end, 2), sc.caption.strip(),
                                    round(sc.latency, 3)]]
                    # Saved after every scene so that the download works even if the visitor presses Stop.
                    stream.save_memory(memory_file)
                    yield (_status(f"Scene {sc.index + 1} closed at {sc.end:.1f} s, captioned in "
                                   f"{sc.latency:.2f} s…"), rows,
                           str(memory_file))
                yield (_status(f"Stream ended: {len(rows)} scenes.", "done"), rows,
                       str(memory_file) if rows else None)

            live_event = l_start.click(live, [l_video, l_device, l_realtime], [l_status, l_table, l_download],
                                       api_name="live", **model_events)
            l_stop.click(lambda: _status("the memory so far can be downloaded.", "stop"), None, [l_status],
                         cancels=[live_event], api_name="live_stop", queue=False)

        # ------------------------------------------------------------------ Image chat
        with gr.Tab("Image chat", id="image"):
            i_session = gr.State(None)
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=320):
                    i_image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=300)
                    if samples.images:
                        gr.Examples([[p] for p in samples.images], inputs=[i_image], label="Sample images")
                with gr.Column(scale=3, min_width=420):
                    i_chat = gr.Chatbot(label="Visual dialog", height=340,
                                        placeholder="A multi-turn conversation grounded in the image and the dialog "
                                                    "so far.")
                    with gr.Row():
                        i_question = gr.Textbox(placeholder="Ask about the image, e.g. What colour is the ring?",
                                                show_label=False, scale=5)
                        i_send = gr.Button("Send", variant="primary", scale=1, min_width=90)
                        i_clear = gr.Button("Clear", scale=1, min_width=90)

            @_user_errors
            def ask_image(image: str | None, question: str, session: ChatSession | None):
                path = str(media.check_image(image, limits))
                if not question or not question.strip():
                    raise UsageError("type a question first")
                if session is None or session.source != path:
                    from videollm.memory import build_memory

                    if not loader.ready:
                        yield "", _loading_chat([], question.strip()), session
                    # An image is a one-frame video: the same encode → one segment → bridge step → readout path.
                    session = ChatSession(source=path, state=build_memory(loader.get(), path))
                yield from answer_stream(session, question.strip())

            def clear_image_chat(session: ChatSession | None):
                return [], (replace(session, history=[]) if session is not None else None)

            i_args = dict(fn=ask_image, inputs=[i_image, i_question, i_session],
                          outputs=[i_question, i_chat, i_session], **model_events)
            i_send.click(api_name="ask_image", **i_args)
            i_question.submit(api_name=False, **i_args)
            i_clear.click(clear_image_chat, [i_session], [i_chat, i_session], api_name="clear_image", queue=False)
            i_image.change(lambda: ([], None), None, [i_chat, i_session], api_name=False, queue=False)

        # ------------------------------------------------------------------ Planning
        with gr.Tab("Planning", id="plan"):
            p_session = gr.State(None)
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=320):
                    p_video = _playable_as_is(gr.Video(label="Progress so far", sources=["upload"],
                                                       include_audio=True, height=260, elem_id="vl-plan-video"))
                    p_goal = gr.Textbox(label="Task goal", placeholder="e.g. line up from left to right: …")
                    p_candidates = gr.Textbox(label="Candidate next steps (one per line)", lines=5,
                                              placeholder="place the red star\nplace the blue ring")
                    with gr.Row():
                        p_rank = gr.Button("Rank next steps", variant="primary")
                        p_suggest = gr.Button("Suggest a step")
                with gr.Column(scale=3, min_width=420):
                    p_status = gr.Markdown("The model scores each candidate as the answer to "
                                           f"“{prompts.PLAN.format(goal='…')}” given the video's memory.",
                                           elem_classes="vl-status")
                    p_label = gr.Label(label="Next step", num_top_classes=10)
                    p_table = gr.Dataframe(headers=_RANK_HEADERS, datatype=["number", "str", "number", "str"],
                                           interactive=False, wrap=True, label="Scores")
            if samples.plans:
                gr.Examples([[p.video, p.goal, "\n".join(p.candidates)] for p in samples.plans],
                            inputs=[p_video, p_goal, p_candidates],
                            label="EgoPlan-style tasks from the synthetic world",
                            elem_id="vl-plan-examples")

            def plan_memory(video: str | None, session: ChatSession | None) -> ChatSession:
                from videollm.memory import build_memory

                if session is not None and session.source == str(video):
                    return session
                return ChatSession(source=str(video), state=build_memory(loader.get(), video))

            @_user_errors
            def rank(video: str | None, goal: str, candidates: str, session: ChatSession | None):
                import torch

                steps = [c.strip() for c in (candidates or "").splitlines() if c.strip()]
                if not goal or not goal.strip():
                    raise UsageError("write the task goal first")
                if len(steps) < 2:
                    raise UsageError("give at least two candidate steps, one per line (or press Suggest a step)")
                media.check_video(video, limits)
                if not loader.ready:
                    yield loading, gr.skip(), gr.skip(), session
                model = loader.get()
                session = plan_memory(video, session)
                question = prompts.PLAN.format(goal=goal.strip().rstrip("."))
                scores = model.score(model.project_state(session.state), question, steps).float().cpu()  # (C,)
                share = torch.softmax(scores, dim=0)
                order = torch.argsort(scores, descending=True).tolist()
                table = [[r + 1, steps[i], round(float(scores[i]), 4), f"{100 * float(share[i]):.1f}%"]
                         for r, i in enumerate(order)]
                best = steps[order[0]]
                yield (_status(f"Most likely next step: **{best}**", "done"),
                       {steps[i]: float(share[i]) for i in order}, table, session)

            @_user_errors
            def suggest(video: str | None, goal: str, candidates: str, session: ChatSession | None):
                if not goal or not goal.strip():
                    raise UsageError("write the task goal first")
                media.check_video(video, limits)
                if not loader.ready:
                    yield loading, gr.skip(), session
                model = loader.get()
                session = plan_memory(video, session)
                question = prompts.PLAN.format(goal=goal.strip().rstrip("."))
                step = "".join(model.chat(model.project_state(session.state), [], question,
                                          max_new_tokens=24)).strip().splitlines()
                step = step[0].strip() if step else ""
                if not step:
                    yield _status("The model suggested nothing (it may not be trained yet)."), candidates, session
                    return
                joined = "\n".join([*(candidates or "").splitlines(), step]).strip()
                yield _status(f"Suggested: **{step}**", "done"), joined, session

            p_rank.click(rank, [p_video, p_goal, p_candidates, p_session], [p_status, p_label, p_table, p_session],
                         api_name="plan_rank", **model_events)
            p_suggest.click(suggest, [p_video, p_goal, p_candidates, p_session], [p_status, p_candidates, p_session],
                            api_name="plan_suggest", **model_events)

        # ------------------------------------------------------------------ Sequence demos (dance, speech)
        sequence_demos_tab(limits, workdir, model_events, user_errors=_user_errors, status=_status)

        # ------------------------------------------------------------------ About
        with gr.Tab("About", id="about"):
            gr.Markdown(about, elem_id="vl-about")

    return demo
