"""Text visible in a video's scenes, read from one keyframe a scene, attached to its memory (``state.extra["text"]``).

Reading is RapidOCR (``rapidocr-onnxruntime``, Apache-2.0), whose wheel carries PP-OCRv4 detection and recognition
models as ONNX files run by onnxruntime: offline, on the CPU. The wheel declares ``opencv-python``, which would clash
with the ``opencv-python-headless`` videollm uses (both provide ``cv2``), so it installs with ``--no-deps`` beside
its small pure dependencies (the ``ocr`` extra); the headless build serves it.

The keyframe of a scene is its middle frame (``keyframe``); lines read with a confidence under ``MIN_SCORE`` are
dropped, and so are lines of fewer than two letters or digits (shapes read as "O", "+"). The text is saved with the memory, so ``search`` on a saved memory finds written words without the video.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from videollm.errors import ModelError

INSTALL = "pip install 'videollm[ocr]' && pip install --no-deps rapidocr-onnxruntime==1.4.4"
MODEL_NAME = "rapidocr-ppocrv4"
MIN_SCORE = 0.5
_LOCK = threading.RLock()
_ENGINE: Any = None


def available() -> bool:
    """Whether RapidOCR and what it imports are installed."""
    return all(importlib.util.find_spec(m) is not None
               for m in ("rapidocr_onnxruntime", "onnxruntime", "pyclipper", "shapely", "cv2"))


def enabled(flag: bool | None) -> bool:
    """Resolve ``--text`` / ``--no-text`` / neither: on when asked (RapidOCR must be there), off when told, and by
    default on exactly when RapidOCR is installed (as speech). Reading costs a fraction of a second a scene on two
    CPU cores whether or not the frame holds text (``benchmarks/speech_text_cost.py`` measures it); ``--no-text``
    saves it."""
    if flag is None:
        return available()
    if flag and not available():
        raise ModelError(f"--text needs RapidOCR: {INSTALL}")
    return bool(flag)


def engine():
    """The shared RapidOCR engine, built once per process."""
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError:
                raise ModelError(f"reading on-screen text needs RapidOCR: {INSTALL}") from None
            _ENGINE = RapidOCR()
        return _ENGINE


def read_frame(frame) -> list[str]:
    """The lines of text read in one RGB frame (H, W, 3) uint8, top to bottom, confident ones only."""
    import numpy as np

    bgr = np.ascontiguousarray(np.asarray(frame)[..., ::-1])  # RapidOCR takes OpenCV's BGR order
    with _LOCK:  # one inference at a time on the shared session
        result, _ = engine()(bgr)
    lines = []
    for box, text, score in result or ():
        # A ring reads as "O" and a cross as "+": a line needs two letters or digits to count as text.
        if float(score) >= MIN_SCORE and len(re.findall(r"\w", text)) >= 2:
            lines.append((min(p[1] for p in box), text.strip()))
    return [text for _, text in sorted(lines)]


def keyframe(start_frame: int, end_frame: int) -> int:
    """The frame read for a scene: its middle one."""
    return (int(start_frame) + int(end_frame)) // 2


class SceneReader:
    """Reads the text of scenes of one video file as they close (one keyframe each, random access)."""

    def __init__(self, path: str | os.PathLike) -> None:
        from videollm.io import open_video
        from videollm.io.reader import SEQUENTIAL_BACKEND

        # Keyframes are read forward while the model computes: with decord, ``caption`` grew without bound (peak
        # RSS 8.8 GB on a 34-minute test video; ``benchmarks/batch_scale.py --only rss``).
        self._reader = open_video(path, backend=SEQUENTIAL_BACKEND)

    def text(self, start_frame: int, end_frame: int) -> str:
        frame = self._reader.read([keyframe(start_frame, end_frame)])[0]
        return " ".join(read_frame(frame))

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> SceneReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def attach(state, texts: Sequence[str]) -> None:
    """Keep each scene's text in the memory (``state.extra["text"]``; saved with it)."""
    state.extra["text"] = {"model": MODEL_NAME, "scenes": list(texts)}


def texts_of(state) -> list[str] | None:
    """The text of each scene kept in a memory, or None when it was watched without reading text."""
    text = state.extra.get("text")
    if not isinstance(text, dict) or not isinstance(text.get("scenes"), list):
        return None
    return [t if isinstance(t, str) else "" for t in text["scenes"]]


def read_scenes(state, path: str | os.PathLike) -> list[str]:
    """The text of every scene of a watched video file."""
    with SceneReader(path) as reader:
        return [reader.text(seg.start_frame, seg.end_frame) for seg in state.segments]


_TOKEN = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Hit:
    """A scene whose text holds the query's words one after another."""

    scene: int
    text: str


def find(state, query: str) -> list[Hit]:
    """Scenes whose text holds the query's words in a row (case and punctuation ignored), in order."""
    wanted = [t.lower() for t in _TOKEN.findall(query)]
    hits = []
    for i, text in enumerate(texts_of(state) or []):
        tokens = [t.lower() for t in _TOKEN.findall(text)]
        if wanted and any(tokens[k:k + len(wanted)] == wanted for k in range(len(tokens) - len(wanted) + 1)):
            hits.append(Hit(i, text))
    return hits
