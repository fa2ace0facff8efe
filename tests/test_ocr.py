"""On-screen text in the scene memory: RapidOCR (PP-OCRv4 ONNX models from its wheel) on the synthetic world's text
needles and other rendered text; the words land in their scene, the outputs and search."""

from __future__ import annotations

import json

import numpy as np
import pytest

from videollm import ocr

pytestmark = pytest.mark.skipif(not ocr.available(), reason="RapidOCR is not installed (see videollm.ocr.INSTALL)")


def _render(text: str, background=None, size: int = 224) -> np.ndarray:
    from videollm.world.render import scene_background
    from videollm.world.spec import SceneSpec
    from videollm.world.tasks import NEEDLE_BACKGROUND

    return scene_background(SceneSpec(8, background or NEEDLE_BACKGROUND, (), "cut", text=text, tag="needle"),
                            size, size)


def test_every_needle_word_and_other_text_is_read() -> None:
    from videollm.world.vocab import NEEDLE_WORDS

    texts = [*NEEDLE_WORDS, "budget", "Report 2026", "Exit"]
    read = [" ".join(ocr.read_frame(_render(t))) for t in texts]
    # Compared without spaces: between two words on one line the recogniser may drop the space ("Report2026").
    accuracy = np.mean([r.replace(" ", "").lower() == t.replace(" ", "").lower()
                        for r, t in zip(read, texts, strict=True)])
    assert accuracy >= 0.95, list(zip(texts, read, strict=True))


def test_shapes_are_not_text() -> None:
    """A frame of the world without writing reads as no text (rings are not "O", crosses not "+")."""
    from videollm.world import render
    from videollm.world.tasks import NEEDLE_BACKGROUND

    frame = render.render_background(NEEDLE_BACKGROUND, 224, 224)
    for shape, x in (("ring", 0.25), ("cross", 0.5), ("circle", 0.75)):
        render.draw_object(frame, shape, "red", x * 224, 112, 30, 0.0)
    assert ocr.read_frame(frame) == []


def test_caption_and_search_find_the_written_word(cached_model, capsys, tmp_path) -> None:
    from videollm.cli import main

    from videollm.world import generate

    (video,) = generate(tmp_path / "world", 1, seed=5, heldout=True, kind="needle", haystack_seconds=12.0,
                        needle_depth=0.5)
    truth = json.loads(video.with_suffix(".json").read_text())["needle"]
    out = tmp_path / "out"
    assert main(["caption", str(video), "--text", "--out", str(out), "--save-memory", "--no-speech", "--model",
                 "tiny", "--max-new-tokens", "2"]) == 0
    scenes = json.loads((out / f"{video.stem}.json").read_text())["scenes"]
    written = [s for s in scenes if s["text"]]
    assert [s["text"] for s in written] == [truth["answer"]]
    assert written[0]["start"] < truth["end_time"] and written[0]["end"] > truth["start_time"]
    capsys.readouterr()
    assert main(["search", str(out / f"{video.stem}.memory.safetensors"), truth["answer"], "--json", "--model",
                 "tiny"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"written"' in line]
    assert len(hits) == 1 and abs(hits[0]["start"] - truth["start_time"]) <= 1.0
    # The needle question, asked of the video: answered with the word read in the needle's scene.
    assert main(["ask", str(video), truth["question"], "--text", "--no-speech", "--model", "tiny",
                 "--max-new-tokens", "2"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == truth["answer"] and "text read on screen" in out.err


def test_a_question_about_one_word_prefers_a_scene_showing_one_word() -> None:
    """A page of print near the recalled scene does not answer "what word was written?" when a scene shows one
    word; "what is written?" still reads the nearest scene with text."""
    import torch

    from videollm.bridge.state import BridgeState, RowBuffer, SegmentRecord
    from videollm.recall import Recalled, read_answer

    state = BridgeState("x", torch.zeros(1, 1), RowBuffer((1, 1), torch.float32, "cpu"))
    state.segments = [SegmentRecord(2.0 * k, 2.0 * k + 2, 4 * k, 4 * k + 3) for k in range(5)]
    ocr.attach(state, ["", "n-bas segr irst de mine", "", "", "panda"])
    recalled = Recalled(0, "captions", (0,))
    assert read_answer(state, "what word was written on the screen?", recalled)[1] == "panda"
    assert read_answer(state, "what is written on the screen?", recalled)[1] == "n-bas segr irst de mine"


def test_keyframes_are_read_with_the_sequential_decoder() -> None:
    """Scenes' keyframes are read while the model computes, with the decoder that keeps memory flat there (decord's
    random reads grew ``caption`` to 8.8 GB on a 34-minute video; ``benchmarks/batch_scale.py --only rss``)."""
    from pathlib import Path

    from videollm.io.reader import SEQUENTIAL_BACKEND

    video = Path(__file__).resolve().parents[1] / "data" / "samples" / "world" / "video" / "video_000001.mp4"
    with ocr.SceneReader(video) as reader:
        assert reader._reader.meta.backend == SEQUENTIAL_BACKEND
        assert isinstance(reader.text(0, 3), str)
