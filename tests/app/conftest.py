"""Fixtures of the web-app tests: one app server on 127.0.0.1 (ephemeral port, ``tiny`` model) for the session.

``videollm_app`` is the installed name of the ``app/`` folder; when the package is not installed yet (a checkout
without ``pip install -e .``), a temporary folder with a ``videollm_app`` symlink is put on ``sys.path`` instead.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data" / "samples" / "world"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

try:
    importlib.import_module("videollm_app")
except ModuleNotFoundError:
    _shim = Path(tempfile.mkdtemp(prefix="videollm-app-shim-"))
    (_shim / "videollm_app").symlink_to(REPO / "app", target_is_directory=True)
    sys.path.insert(0, str(_shim))


@dataclass
class AppServer:
    """A running app: its URL, the model behind it and how often the vision encoder has run."""

    url: str
    model: object
    demo: object
    workdir: Path
    vision_calls: list[int]


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    import torch
    from videollm_app import AppLimits, build_demo, launch, offline_environment

    from videollm.model import VideoLLM

    workdir = tmp_path_factory.mktemp("app-work")
    offline_environment(workdir)
    torch.manual_seed(0)
    model = VideoLLM.from_pretrained("tiny")
    calls = [0]
    encode = model.vision.encode

    def counting_encode(*args, **kwargs):
        calls[0] += 1
        return encode(*args, **kwargs)

    # Counting the vision encoder's calls shows whether a follow-up question re-encoded the video.
    model.vision.encode = counting_encode
    demo = build_demo(model, limits=AppLimits(max_video_seconds=60, max_new_tokens=8), model_name="tiny",
                      workdir=workdir)
    _, url = launch(demo, host="127.0.0.1", port=0, block=False, quiet=True)
    try:
        yield AppServer(url.rstrip("/"), model, demo, workdir, calls)
    finally:
        demo.close()


@pytest.fixture
def corrupt_video(tmp_path: Path) -> Path:
    """An .mp4 that is not a video: an MP4 header followed by garbage."""
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    return path


#: What ``talking_video`` says and when: (start second, sentence), in the 16.75 s, 4-scene sample video.
SAID = [(1.0, "Please bring the quarterly report."), (10.5, "The budget is ready for review.")]


@pytest.fixture(scope="session")
def talking_video(tmp_path_factory: pytest.TempPathFactory, speech_muxer) -> tuple[Path, list[tuple[float, str]]]:
    """The first sample video with espeak-ng speaking ``SAID`` at their times (``speech_muxer``), and ``SAID``;
    skipped without espeak-ng."""
    video = SAMPLES / "video" / "video_000000.mp4"
    return speech_muxer(video, SAID, tmp_path_factory.mktemp("talking") / "talk.mp4"), SAID


@pytest.fixture(scope="session")
def text_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A synthetic-world needle video (as in tests/test_ocr.py): one scene of a 12 s haystack shows a written word.
    Returns the video and its needle's ground truth (``answer``: the word, ``question``, ``start_time``,
    ``end_time``)."""
    import json

    from videollm.world import generate

    (video,) = generate(tmp_path_factory.mktemp("written"), 1, seed=5, heldout=True, kind="needle",
                        haystack_seconds=12.0, needle_depth=0.5)
    return video, json.loads(video.with_suffix(".json").read_text())["needle"]
