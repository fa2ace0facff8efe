"""Captions, summaries and questions over a video memory: the generator API the CLI and the app consume.

Everything here is a generator or an iterator; nothing prints. The names below are the shared API::

    session = caption_video(model, "clip.mp4")          # offline SceneTiling over the whole file
    for scene in session:                               # SceneCaption, one per scene, as soon as it is ready
        ...
    text = "".join(summarize(model, session.state))     # whole-video summary (SUMMARY prompt)
    for piece in ask(model, session.state, "What colour is the star?", history=[]):
        ...                                             # answer streamed token by token
    session.save_memory("clip.memory.safetensors")      # later questions need no decoding at all

    live = stream_captions(model, "rtsp://camera/1")    # online SceneTiling, each frame decoded/encoded once
    for scene in live:                                  # ends when the stream ends or after live.stop()
        ...

``caption_video`` and ``stream_captions`` both return a ``VideoSession``: an iterator of ``SceneCaption`` that also
holds the memory built so far (``session.state``) and every caption (``session.captions``).

A model whose checkpoint ships an out-of-domain calibration (the shipped one does: ``videollm.ood``) scores every
scene; a scene it does not recognise gets ``recognised=False`` and no caption (``scene.shown`` is the line outputs
show instead), and questions and summaries about it say that the model does not recognise it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from videollm.bridge import BridgeState
from videollm.io import FrameBatch
from videollm.prompts import CAPTION, CAPTION_TOKENS, SUMMARY

SUMMARY_TOKENS = 96
#: Scenes a whole-file captioning session (``caption_video``) captions in one batch.
CAPTION_BATCH = 16
ANSWER_TOKENS = 128


@dataclass
class SceneCaption:
    """The caption of one scene.

    Attributes:
        video: the video path or stream source.
        index: scene number from 0.
        start, end: scene span in seconds.
        caption: the generated caption (whitespace collapsed to single spaces; may be empty); empty, and never
            generated, for a scene the model does not recognise.
        latency: seconds from the scene end being known (streaming: the frame confirming the cut was decoded;
            offline: the scene's bridge step began) to the caption being ready.
        novelty: the scene's out-of-domain score (``videollm.ood``); None when the model ships no calibration.
        recognised: False when the model does not recognise the scene (its caption is withheld), True when it does,
            None when the model ships no calibration (every caption shown).
    """

    video: str
    index: int
    start: float
    end: float
    caption: str
    latency: float
    novelty: float | None = None
    recognised: bool | None = None

    @property
    def shown(self) -> str:
        """The caption as outputs show it: ``ood.NOT_RECOGNISED`` for a scene the model does not recognise."""
        from videollm.ood import shown

        return shown(self.caption, self.recognised)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (times rounded to milliseconds). With a calibrated model, "recognised"
        and "novelty" are included and an unrecognised scene's "caption" is null; without one they are left out."""
        out = asdict(self)
        for key in ("start", "end", "latency"):
            out[key] = round(out[key], 3)
        if self.recognised is None:
            del out["novelty"], out["recognised"]
        else:
            out["novelty"] = round(float(self.novelty), 3)
            out["caption"] = self.caption if self.recognised else None
        return out


def clean_caption(text: str) -> str:
    """One line of text: whitespace runs (newlines included) become single spaces, ends stripped."""
    return " ".join(text.split())


def generate_caption(model, state: BridgeState, prompt: str = CAPTION, max_new_tokens: int = CAPTION_TOKENS) -> str:
    """Caption the scene just folded into ``state`` from the readout right after its bridge step.

    Args:
        model: a ``VideoLLM``.
        state: the memory after the scene's step.
        prompt: the instruction (default ``prompts.CAPTION``, the one the embedded model is trained with).
        max_new_tokens: generation bound.

    Returns:
        The caption, cleaned by ``clean_caption``.
    """
    return generate_captions(model, [model.project_state(state)], prompt, max_new_tokens)[0]


def generate_captions(model, visuals: Sequence[Any], prompt: str = CAPTION,
                      max_new_tokens: int = CAPTION_TOKENS) -> list[str]:
    """Greedy captions of several scenes' readouts (R, H), cleaned; several are decoded in one batch
    (``VideoLLM.answer_many``, the same text as one ``chat`` each, several times faster)."""
    if len(visuals) == 1:
        texts = ["".join(model.chat(visuals[0], [], prompt, max_new_tokens=max_new_tokens))]
    else:
        texts = model.answer_many(list(visuals), prompt, max_new_tokens=max_new_tokens, batch_size=len(visuals))
    return [clean_caption(text) for text in texts]


class VideoSession:
    """Iterator of ``SceneCaption`` over one video or stream that keeps the memory it builds.

    Created by ``caption_video`` and ``stream_captions``. While iterating, ``state`` is the memory up to the
    last captioned scene (a session captioning ``batch`` scenes at a time may have stepped up to ``batch - 1``
    scenes further); when the iteration ends it covers the whole video (or the part of the stream seen).
    Each caption is also recorded in ``state.extra["captions"]`` so a saved memory carries its captions.

    Attributes:
        video: the video path or stream source.
        state: the bridge state (None before the first scene).
        captions: every ``SceneCaption`` produced so far.
        finished: True once the iteration has ended.
    """

    def __init__(self, model, video: str, events: Iterator, prompt: str, max_new_tokens: int,
                 stop_event: threading.Event | None = None, state: BridgeState | None = None,
                 batch: int = 1) -> None:
        self.model = model
        self.video = video
        self.state: BridgeState | None = state
        self.captions: list[SceneCaption] = []
        self.finished = False
        self._events = events
        self._prompt = prompt
        self._max_new_tokens = max_new_tokens
        self._stop = stop_event if stop_event is not None else threading.Event()
        self._batch = max(1, batch)
        self._ready: deque[SceneCaption] = deque()

    def __iter__(self) -> VideoSession:
        return self

    def __next__(self) -> SceneCaption:
        if not self._ready:
            self._caption_next()
        if not self._ready:
            self.finished = True
            raise StopIteration
        return self._ready.popleft()

    def _caption_next(self) -> None:
        """Take up to ``batch`` scenes from the watch path and caption them (in one batch when several)."""
        pending = []  # (event facts, readout right after its step, when the step ended)
        for event in self._events:
            # The state is shared and stepped in place by the next scene, so the readout is taken now.
            pending.append((event, self.model.project_state(event.state), time.perf_counter()))
            self.state = event.state
            if len(pending) >= self._batch:
                break
        if not pending:
            return
        # A scene the model does not recognise gets no caption at all (videollm.ood): none is generated for it.
        asked = [visual for event, visual, _ in pending if event.recognised is not False]
        texts = iter(generate_captions(self.model, asked, self._prompt, self._max_new_tokens) if asked else [])
        done = time.perf_counter()
        extra = self.state.extra
        extra.setdefault("video", self.video)
        for event, _, stepped in pending:
            text = next(texts) if event.recognised is not False else ""
            # Latency counts the scene's step (event.latency) and the wait for its caption, from when the cut was
            # known.
            scene = SceneCaption(self.video, event.index, event.start, event.end, text,
                                 event.latency + (done - stepped), event.novelty, event.recognised)
            extra["duration"] = max(float(extra.get("duration", 0.0)), scene.end)
            kept = {"start": round(scene.start, 3), "end": round(scene.end, 3), "caption": scene.caption}
            if scene.recognised is False:
                kept["recognised"] = False
            extra.setdefault("captions", []).append(kept)
            self.captions.append(scene)
            self._ready.append(scene)

    def stop(self) -> None:
        """Ask a stream to end: no new frame is read; the open scene is closed and captioned, then iteration ends.

        Safe to call from another thread or a signal handler.
        """
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called."""
        return self._stop.is_set()

    def run(self) -> list[SceneCaption]:
        """Iterate to the end; returns every caption."""
        for _ in self:
            pass
        return self.captions

    def save_memory(self, path: str | os.PathLike) -> None:
        """Save the memory built so far (with its captions) to a safetensors file, atomically."""
        from videollm.errors import UsageError
        from videollm.memory import save_memory

        if self.state is None:
            raise UsageError(f"{self.video}: no scene was watched yet, nothing to save")
        save_memory(self.state, path)


def caption_video(model, path: str | os.PathLike, prompt: str = CAPTION, max_new_tokens: int = CAPTION_TOKENS,
                  progress: bool = False, encoded=None, keep_scenes: bool | None = None,
                  batch: int = CAPTION_BATCH, recognise: bool = True) -> VideoSession:
    """Caption every scene of a video file (offline SceneTiling over the whole file).

    The file is scanned once for SceneTiling, then each scene's bridge frames are read back and encoded, the bridge
    steps one scene at a time and each scene is captioned from the readout right after its step (``batch``
    scenes decoded together). Decoding errors surface at the first ``next``.

    Args:
        model: a ``VideoLLM`` with a vision encoder.
        path: the video file.
        prompt: caption instruction (default ``prompts.CAPTION``).
        max_new_tokens: bound per caption.
        progress: show a progress bar over frames on stderr while encoding.
        encoded: the file already scanned (``memory.scan_video``: skips the scan) or every frame already encoded
            (a ``memory.EncodedVideo``, e.g. from a feature cache: skips decoding and encoding).
        keep_scenes: keep every scene's bridge output in the memory, what question-conditioned recall reads
            (``MemoryBridge.init_state``; default: when the model's config has ``recall`` on). Without them the
            memory grows by the retrieval cache only (about 74 KB a scene with the embedded default, 172 KB with).
        batch: scenes captioned together (``generate_captions``): the captions are the same as one at a time,
            they arrive in groups of ``batch``, several times faster.
        recognise: withhold the captions of scenes the model does not recognise (``videollm.ood``; only models
            whose checkpoint ships a calibration); False captions every scene (the evaluation).

    Returns:
        A ``VideoSession``: iterate it for ``SceneCaption`` items; afterwards ``session.state`` is the memory of
        the whole video (``state.extra``: video, duration, fps, captions).
    """
    from videollm.memory import watch

    keep = model.config.recall if keep_scenes is None else keep_scenes
    state = model.bridge.init_state(keep_scenes=keep)
    events = watch(model, encoded if encoded is not None else path, state=state, name=str(path), progress=progress,
                   recognise=recognise)
    return VideoSession(model, str(path), events, prompt, max_new_tokens, batch=batch)


def stream_captions(model, source: str | os.PathLike | int | Iterable[FrameBatch], realtime: bool = False,
                    prompt: str = CAPTION, state: BridgeState | None = None, lag: int | None = None,
                    max_new_tokens: int = CAPTION_TOKENS, batch_size: int | None = None,
                    recognise: bool = True) -> VideoSession:
    """Caption a stream scene by scene as it plays (online SceneTiling, built on ``memory.watch``).

    Each frame is decoded and encoded once; when the online segmenter confirms a cut the finished scene goes
    through the bridge and is captioned at once. Per-frame work stays flat however long the stream runs; memory
    grows only by each scene's kept bridge output (for recall and saving; about 0.12 MB a scene, shipped model).

    Args:
        model: a ``VideoLLM`` with a vision encoder.
        source: a video file, a webcam index, an rtsp/http URL (see ``videollm.io.open_source``), or an iterable of
            ``FrameBatch`` already sampled at the model's fps.
        realtime: play a file at its own pace (live sources always run at theirs).
        prompt: caption instruction (default ``prompts.CAPTION``).
        state: a memory to continue (e.g. ``load_memory``), None to start empty.
        lag: frames the online segmenter waits before judging a cut (default ``memory.DEFAULT_LAG``).
        max_new_tokens: bound per caption.
        batch_size: frames read together (default 1 in real time and from live sources, for the lowest latency;
            else 8).
        recognise: withhold the captions of scenes the model does not recognise (``videollm.ood``).

    Returns:
        A ``VideoSession``; ``session.stop()`` ends it cleanly (the open scene is still captioned).

    Raises:
        VideoError: the source cannot be opened (raised by this call).
    """
    from videollm.io import open_source
    from videollm.memory import DEFAULT_LAG, watch

    fps = model.config.segmentation.fps
    if isinstance(source, (str, os.PathLike, int)):
        # Webcams (an index) and network streams run at their own pace, like a file played in real time.
        paced = realtime or isinstance(source, int) or str(source).strip().isdigit() or not os.path.isfile(source)
        batches = open_source(source, fps=fps, realtime=realtime, batch_size=batch_size or (1 if paced else 8))
        name = str(source)
    else:
        batches, name = iter(source), "<frames>"
    stop = threading.Event()
    events = watch(model, batches, online=True, state=state, name=name, stop=stop,
                   lag=DEFAULT_LAG if lag is None else lag, recognise=recognise)
    return VideoSession(model, name, events, prompt, max_new_tokens, stop_event=stop, state=state)


def summarize(model, state: BridgeState, prompt: str = SUMMARY, max_new_tokens: int = SUMMARY_TOKENS,
              **generate_kwargs: Any) -> Iterator[str]:
    """Whole-video summary from the memory's readout, streamed (the readout shows the last scene: when the model does
    not recognise it, ``ood.NOT_RECOGNISED_ANSWER`` instead).

    Args:
        model: a ``VideoLLM``.
        state: the memory after the last scene.
        prompt: instruction (default ``prompts.SUMMARY``).
        max_new_tokens: generation bound.
        **generate_kwargs: ``temperature``, ``top_p``, ``seed``, ``stop`` (see ``VideoLLM.chat``).

    Returns:
        Iterator of text pieces.
    """
    from videollm import ood

    if ood.recognised(state, state.num_segments - 1) is False:
        return iter([ood.NOT_RECOGNISED_ANSWER])
    return model.chat(model.project_state(state), [], prompt, max_new_tokens=max_new_tokens, **generate_kwargs)


def ask(model, state: BridgeState, question: str, history: Sequence[Mapping[str, str]] = (),
        max_new_tokens: int = ANSWER_TOKENS, on_recall: Callable[[Any], None] | None = None,
        **generate_kwargs: Any) -> Iterator[str]:
    """Answer a question about a watched video, streamed token by token (multi-turn), from the scene the question is
    about when the model's config has ``recall`` on (``videollm.recall``; the readout after the last scene otherwise).

    Args:
        model: a ``VideoLLM`` (no vision encoder is needed: the memory holds everything).
        state: the video's memory (``caption_video``/``stream_captions`` session state, or ``load_memory``).
        question: the new user message.
        history: earlier turns as ``{"role": "user"|"assistant", "content": str}`` messages, oldest first; the
            video is attached to the first user message.
        max_new_tokens: generation bound.
        on_recall: called with the ``videollm.recall.Recalled`` decision (which scene answers) before the answer.
        **generate_kwargs: ``temperature``, ``top_p``, ``seed``, ``stop`` (see ``VideoLLM.chat``).

    Returns:
        Iterator of answer text pieces (arguments are checked at the call).
    """
    from videollm.errors import UsageError

    for message in history:
        if message.get("role") not in ("user", "assistant") or not isinstance(message.get("content"), str):
            raise UsageError("history messages must be {'role': 'user'|'assistant', 'content': str}")
    from videollm.recall import answer

    pieces, decision = answer(model, state, question, list(history), max_new_tokens=max_new_tokens, **generate_kwargs)
    if on_recall is not None:
        on_recall(decision)
    return pieces


def open_memory(model, path: str | os.PathLike, progress: bool = False) -> BridgeState:
    """The memory of ``path``: loaded when it is a saved memory file (no decoding), else watched offline.

    Args:
        model: a ``VideoLLM``; it needs a vision encoder only when ``path`` is a video.
        path: a video file or a file written by ``save_memory`` (told apart by content).
        progress: progress bar while encoding a video.
    """
    from videollm.memory import build_memory, is_memory_file, load_memory

    if is_memory_file(path):
        return load_memory(path, model)
    return build_memory(model, path, progress=progress)
