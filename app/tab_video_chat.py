"""The "Video chat" tab: watch and caption a video (or load a saved memory), then ask, summarize, find scenes.

Publishes ``/watch``, ``/load_memory``, ``/ask_video``, ``/summarize`` and ``/find_scenes``. The captions, the memory
and the answers come from ``videollm.captioning``, ``videollm.memory`` and ``videollm.recall``; a video's spoken words
and on-screen text from ``videollm.speech`` and ``videollm.ocr``, as ``videollm caption`` / ``ask`` / ``search`` get
them (speech on when installed and the video has sound; text on when RapidOCR is installed, unless the visitor
unticks "Read on-screen text").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr

from videollm import ocr, prompts, speech
from videollm.errors import UsageError

from . import media
from .chat import ChatSession, answer_stream, display, loading_chat
from .common import LOADING, TabContext, no_rows, playable_as_is, status, user_errors

FIND_TOP = 5  # scenes listed by "Find scenes"
_FOUND_HEADERS = ["Scene", "Start (s)", "End (s)", "Caption", "Found by"]
_SCENE_HEADERS = ["Scene", "Start (s)", "End (s)", "Caption"]
SPEECH_HEADER = "Speech"  # scene table columns shown when the memory has them
TEXT_HEADER = "On-screen text"


def build(ctx: TabContext) -> None:
    """Add the "Video chat" tab to the ``gr.Blocks`` being built (call inside ``with gr.Blocks()``)."""
    with gr.Tab("Video chat", id="video"):
        v_session = ctx.session_state()
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                v_video = playable_as_is(gr.Video(label="Video", sources=["upload"], include_audio=True,
                                                  height=300, elem_id="vl-video"))
                if ctx.samples.videos:
                    gr.Examples([[p] for p in ctx.samples.videos], inputs=[v_video], label="Sample videos")
                v_read_text = gr.Checkbox(
                    label="Read on-screen text", value=ocr.available(), interactive=ocr.available(), elem_id="vl-read-text",
                    info="Each scene's middle frame is read (RapidOCR, a fraction of a second a scene)"
                    if ocr.available() else "Needs RapidOCR, not installed on this server")
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
        v_scenes = gr.Dataframe(headers=_SCENE_HEADERS, datatype=["number", "number", "number", "str", "str", "str"],
                                interactive=False, wrap=True, elem_id="vl-scenes",
                                label="Scene by scene: the caption, the words said (videos with sound) and the text "
                                      "on screen (with Read on-screen text)")
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
            v_found = gr.Dataframe(headers=_FOUND_HEADERS, datatype=["number", "number", "number", "str", "str"],
                                   interactive=False, wrap=True, elem_id="vl-found",
                                   label="Where the words are said or written, then the scenes whose caption holds "
                                         "them, best first")

        check_video, watch = _watch_handlers(ctx)
        ask_video, summarize_video = _chat_handlers(ctx)
        events = ctx.model_events
        v_outputs = [v_status, v_timeline, v_gallery, v_plot, v_chat, v_scenes, v_session]
        # A cheap check first, so that a bad upload marks only the status line, not every output.
        v_watch.click(check_video, [v_video], [v_status], api_name=False, concurrency_limit=4).success(
            watch, [v_video, v_read_text], v_outputs, api_name="watch", **events).then(
            no_rows, None, [v_found], api_name=False)  # found scenes of the previous video go
        v_memory.upload(_memory_handler(ctx), [v_memory], v_outputs, api_name="load_memory", **events).then(
            no_rows, None, [v_found], api_name=False)
        ask_args = dict(fn=ask_video, inputs=[v_question, v_session], outputs=[v_question, v_chat, v_session],
                        **events)
        v_send.click(api_name="ask_video", **ask_args)
        v_question.submit(api_name=False, **ask_args)
        v_summary.click(summarize_video, [v_session], [v_chat, v_session], api_name="summarize", **events)
        find_args = dict(fn=_find_handler(ctx), inputs=[v_find, v_session], outputs=[v_found], **events)
        v_find_go.click(api_name="find_scenes", **find_args)
        v_find.submit(api_name=False, **find_args)


def _timeline(scenes: list[tuple[float, float, str]], duration: float, said: list[str] | None = None) -> str:
    tips = [caption + (f" · said: “{said[k]}”" if said and k < len(said) and said[k] else "")
            for k, (_, _, caption) in enumerate(scenes)]
    return media.timeline_html([s[:2] for s in scenes], duration, tips)


def _scene_table(scenes: list[tuple[float, float, str]], said: list[str] | None = None,
                 written: list[str] | None = None) -> dict[str, list]:
    """The scene table: each scene's number, span and caption, then what is said in it (when the memory has the
    video's speech) and what is written in it (when its text was read and some scene shows any)."""
    if written is not None and not any(written):
        written = None
    headers = [*_SCENE_HEADERS, *([SPEECH_HEADER] if said is not None else []),
               *([TEXT_HEADER] if written is not None else [])]
    rows = []
    for k, (start, end, caption) in enumerate(scenes):
        extra = [column[k] if k < len(column) else "" for column in (said, written) if column is not None]
        rows.append([k + 1, round(start, 1), round(end, 1), caption, *extra])
    return {"headers": headers, "data": rows}


def _watch_handlers(ctx: TabContext) -> tuple[Callable, Callable]:
    """The upload check and the "Watch & caption" handler (scenes, captions, speech, on-screen text and the
    SceneTiling plot, streamed)."""

    @user_errors
    def check_video(video: str | None) -> str:
        meta = media.check_video(video, ctx.limits)
        return status(f"Watching **{Path(video).name}** ({meta.duration:.1f} s)…")

    @user_errors
    def watch(video: str | None, read_text: bool | None = None,
              progress: gr.Progress = gr.Progress()):  # noqa: B008 (Gradio's idiom)
        from videollm import captioning
        from videollm.memory import scan_video

        meta = media.check_video(video, ctx.limits)
        name = Path(video).name
        reading = ocr.enabled(read_text)  # as ``--text``: on when installed; asked without RapidOCR, says so
        sound = speech.has_audio(video)
        hearing = sound and speech.enabled(None)  # as ``--speech``'s default: on when installed
        empty = media.timeline_html([], meta.duration)
        if not ctx.loader.ready:
            yield LOADING, empty, [], None, [], [], None
        model = ctx.loader.get()
        progress(0.0, desc="Watching")
        started = time.perf_counter()
        words = None
        if hearing:
            # As ``videollm caption``: the speech first, so that every scene's row carries its words at once.
            yield (status(f"Transcribing the speech of **{name}** ({meta.duration:.1f} s)…"), empty, [], None, [], [],
                   None)
            progress(0.0, desc="Transcribing the speech")
            words = speech.transcribe(video)
        yield status(f"Watching **{name}** ({meta.duration:.1f} s)…"), empty, [], None, [], [], None
        scenes: list[tuple[float, float, str]] = []
        said: list[str] | None = None if words is None else []
        written: list[str] | None = [] if reading else None
        gallery: list[tuple[str, str]] = []
        # Scan once: the captions and the SceneTiling plot both use these features.
        scanned = scan_video(model, video)
        watched = captioning.caption_video(model, video, encoded=scanned)
        with ocr.SceneReader(video) if reading else contextlib.nullcontext() as reader:
            for sc in watched:
                scenes.append((sc.start, sc.end, sc.shown))  # "not recognised" for a scene outside the world
                if words is not None:
                    said.append(speech.text_of(speech.words_in(words, sc.start, sc.end)))
                if reader is not None:
                    seg = watched.state.segments[sc.index]  # scenes come in batches: not always the last segment
                    written.append(reader.text(seg.start_frame, seg.end_frame))
                thumb = media.scene_thumbnails(video, [(sc.start, sc.end)], ctx.workdir)[0]
                gallery.append((thumb, f"{media.span_label(sc.start, sc.end)} · {sc.shown.strip() or '…'}"))
                progress(min(sc.end / max(meta.duration, 1e-6), 1.0), desc=f"Scene {sc.index + 1}")
                elapsed = time.perf_counter() - started
                yield (status(f"Scene {sc.index + 1} captioned in {sc.latency:.2f} s ({elapsed:.1f} s after "
                              "Watch)…"), _timeline(scenes, meta.duration, said), gallery, None, [],
                       _scene_table(scenes, said, written), None)
        state = watched.state
        if words is not None:
            speech.attach(state, words)
        if reading:
            ocr.attach(state, written)
        # From here on the table shows what the memory holds, exactly what chat answers "what is said ..." from.
        said, written = speech.scene_texts(state), ocr.texts_of(state)
        session = ChatSession(source=str(video), state=state, scenes=scenes)
        strip, table = _timeline(scenes, meta.duration, said), _scene_table(scenes, said, written)
        took = time.perf_counter() - started
        heard = _heard(words, sound)
        yield (status(f"{len(scenes)} scenes in {took:.1f} s{heard}; plotting the SceneTiling curve…"), strip,
               gallery, None, [], table, session)
        progress(1.0, desc="Plotting the SceneTiling curve")
        plot = _scene_plot(ctx, scanned)
        yield (status(f"{len(scenes)} scenes in {took:.1f} s{heard}. Ask away: questions reuse this memory.", "done"),
               strip, gallery, plot, [], table, session)

    return check_video, watch


def _heard(words: list | None, sound: bool) -> str:
    """What the status line says about the speech: how many words were heard; nothing for a silent video."""
    if not sound:
        return ""
    if words is None:
        return " (its speech is not transcribed: this server lacks the speech extra)"
    return f", {len(words)} spoken words heard" if words else ", no speech heard"


def _scene_plot(ctx: TabContext, scanned: Any) -> str:
    import scenetiling

    from videollm.segmentation import segment_ends

    seg = ctx.loader.get().config.segmentation
    out = media.new_file(ctx.workdir, "scenetiling", ".png")
    scenetiling.plot(scanned.features, segment_ends(scanned.features, seg), out, times=scanned.times,
                     alpha=seg.alpha)
    return str(out)


def _memory_handler(ctx: TabContext) -> Callable:
    """The handler that loads a saved video memory: its scenes and captions are shown, no video is needed."""

    @user_errors
    def load_saved_memory(path: str | None):
        from videollm.memory import load_memory

        path = media.check_upload(path, ctx.limits, "memory")
        if not ctx.loader.ready:
            yield LOADING, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        from videollm import ood

        state = load_memory(path, ctx.loader.get())
        captions = [c.get("caption", "") for c in state.extra.get("captions", [])]
        scenes = [(s.start_time, s.end_time, ood.shown(captions[k] if k < len(captions) else "",
                                                       ood.recognised(state, k)))
                  for k, s in enumerate(state.segments)]
        duration = float(state.extra.get("duration", scenes[-1][1] if scenes else 0.0))
        source = state.extra.get("video", Path(path).name)
        session = ChatSession(source=str(source), state=state, scenes=scenes)
        said, written = speech.scene_texts(state), ocr.texts_of(state)  # what the memory was saved with
        done = status(f"Loaded the memory of **{Path(str(source)).name}**: {len(scenes)} scenes, "
                      "no video needed. Ask away.", "done")
        yield done, _timeline(scenes, duration, said), [], None, [], _scene_table(scenes, said, written), session

    return load_saved_memory


def _chat_handlers(ctx: TabContext) -> tuple[Callable, Callable]:
    """The handlers that answer a question about the watched video and summarize it, streaming into the chat."""
    max_tokens = ctx.limits.max_new_tokens

    @user_errors
    def ask_video(question: str, session: ChatSession | None):
        if session is None:
            raise UsageError("watch a video (or load a memory) first, then ask about it")
        if not question or not question.strip():
            raise UsageError("type a question first")
        if not ctx.loader.ready:
            yield "", loading_chat(session.history, question.strip()), session
        yield from answer_stream(ctx.loader, session, question.strip(), max_tokens)

    @user_errors
    def summarize_video(session: ChatSession | None):
        from videollm import captioning

        if session is None:
            raise UsageError("watch a video (or load a memory) first")
        history = [*session.history, {"role": "user", "content": prompts.SUMMARY}]
        if not ctx.loader.ready:
            yield loading_chat(session.history, prompts.SUMMARY), session
        answer = ""
        for piece in captioning.summarize(ctx.loader.get(), session.state, max_new_tokens=max_tokens):
            answer += piece
            yield display([*history, {"role": "assistant", "content": answer or "…"}]), session
        session = replace(session, history=[*history, {"role": "assistant", "content": answer}])
        yield display(session.history), session

    return ask_video, summarize_video


def _find_handler(ctx: TabContext) -> Callable:
    """The "Find scenes" handler, as ``videollm search``: where the words are said, then the scenes that show them
    written, then the scenes whose captions hold them, best first."""

    @user_errors
    def find_scenes(query: str, session: ChatSession | None) -> list[list[Any]]:
        from videollm import ood
        from videollm.recall import rank_scenes, scene_captions

        if session is None:
            raise UsageError("watch a video (or load a memory) first, then search it")
        if not query or not query.strip():
            raise UsageError("type what to look for first")
        query, state = query.strip(), session.state
        model = ctx.loader.get()
        ranked = [m for m in rank_scenes(model, state, query) if m.words > 0][:FIND_TOP]
        # The ones shown above, or written once now; "not recognised" for a scene outside the model's world.
        captions = [ood.shown(c, ood.recognised(state, k)) for k, c in enumerate(scene_captions(model, state))]
        segments = state.segments
        rows = [[h.scene + 1, round(h.start, 1), round(h.end, 1), captions[h.scene], f"said “{h.text}”"]
                for h in speech.find(state, query)[:FIND_TOP]]
        rows += [[h.scene + 1, round(segments[h.scene].start_time, 1), round(segments[h.scene].end_time, 1),
                  captions[h.scene], f"written “{h.text}”"] for h in ocr.find(state, query)[:FIND_TOP]]
        rows += [[m.scene + 1, round(segments[m.scene].start_time, 1), round(segments[m.scene].end_time, 1),
                  captions[m.scene], f"caption ({m.words} word{'s' * (m.words > 1)})"] for m in ranked]
        if not rows:
            signals = speech.words_of(state) is not None or ocr.texts_of(state) is not None
            gr.Info(f"No scene's caption holds any of the words of “{query}”"
                    + (", and they are not said or written in the video." if signals else "."))
        return rows

    return find_scenes
