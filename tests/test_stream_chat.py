"""``videollm stream`` / ``ask`` / ``chat`` and the shared captioning API on the tiny preset."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from videollm import captioning, ocr
from videollm.cli import main
from videollm.commands import common
from videollm.memory import is_memory_file, load_memory, save_memory
from videollm.model import VideoLLM

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "tiny", "--max-new-tokens", "2"]


@pytest.fixture(scope="module")
def world_clip(tmp_path_factory) -> tuple[Path, list[float]]:
    """A synthetic-world video with three long scenes and hard cuts, and its ground-truth cut times."""
    from videollm.world.generate import generate
    from videollm.world.spec import WorldConfig

    out = tmp_path_factory.mktemp("world")
    config = WorldConfig(width=112, height=112, fps=4.0, scenes=(3, 3), scene_seconds=(8.0, 10.0), fade_prob=0.0)
    (path,) = [p for p in generate(out, 1, seed=5, config=config, start=1) if str(p).endswith(".mp4")]
    truth = json.loads(path.with_suffix(".json").read_text())
    return path, truth["cut_times"]


@pytest.fixture
def loads(model: VideoLLM, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Commands get the loaded tiny model; records each load's load_vision (and hands out no vision when False)."""
    calls: list[bool] = []
    bare = VideoLLM(model.config, model.lm, model.tokenizer, None).eval()
    bare.bridge, bare.projector = model.bridge, model.projector

    def load(args, load_vision=True, device=None):
        calls.append(load_vision)
        return model if load_vision else bare

    monkeypatch.setattr(common, "load_model", load)
    return calls


def test_stream_prints_one_caption_per_ground_truth_scene(loads, world_clip, tmp_path, capsys) -> None:
    path, cuts = world_clip
    memory = tmp_path / "clip.memory.safetensors"
    assert main(["stream", str(path), "--save-memory", str(memory), *TINY]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(cuts) + 1
    read = {"text"} if ocr.available() else set()  # on-screen text is read by default where RapidOCR is installed
    assert all(set(r) == {"start", "end", "caption", "latency", *read} and r["latency"] >= 0 for r in rows)
    for row, cut in zip(rows, cuts):
        assert abs(row["end"] - cut) <= 0.75  # one 2 fps sample either side
    assert [r["start"] for r in rows[1:]] == [r["end"] for r in rows[:-1]]
    state = load_memory(memory)
    assert state.num_segments == len(rows) and [c["end"] for c in state.extra["captions"]] == [r["end"] for r in rows]


def test_stream_captions_api_encodes_each_frame_once(model, world_clip, monkeypatch) -> None:
    path, cuts = world_clip
    encoded = []
    real = model.encode_frames
    monkeypatch.setattr(model, "encode_frames", lambda frames: encoded.append(len(frames)) or real(frames))
    session = captioning.stream_captions(model, path, max_new_tokens=2)
    scenes = session.run()
    from videollm.io import open_video

    with open_video(path) as reader:
        sampled = sum(len(b) for b in reader.iter_fps(model.config.segmentation.fps, batch_size=64))
    assert sum(encoded) == sampled
    assert session.finished and session.state.num_segments == len(scenes) == len(cuts) + 1
    assert [s.index for s in scenes] == list(range(len(scenes)))


def test_caption_video_session_keeps_memory_and_summarizes(model, world_clip) -> None:
    path, cuts = world_clip
    session = captioning.caption_video(model, path, max_new_tokens=2, batch=1)
    first = next(session)
    assert first.index == 0 and session.state.num_segments == 1  # the memory grows scene by scene
    rest = list(session)
    assert session.state.num_segments == 1 + len(rest) >= 2 and session.state.extra["video"] == str(path)
    # Captioned a batch at a time, the memory is at most batch - 1 scenes ahead of the captions handed out.
    batched = captioning.caption_video(model, path, max_new_tokens=2, batch=2)
    assert next(batched).index == 0 and batched.state.num_segments == 2
    assert [s.caption for s in [*session.captions]] == [first.caption, *(s.caption for s in rest)]
    assert [(s.start, s.end, s.caption) for s in batched.run()] == [
        (s.start, s.end, s.caption) for s in session.captions]
    summary = list(captioning.summarize(model, session.state, max_new_tokens=3))
    assert all(isinstance(p, str) for p in summary)


def test_ask_and_chat_from_saved_memory_never_touch_the_video(model, loads, world_clip, tmp_path, capsys,
                                                              monkeypatch) -> None:
    video = tmp_path / "gone.mp4"
    shutil.copy(world_clip[0], video)
    memory = tmp_path / "gone.memory.safetensors"
    save_memory(captioning.open_memory(model, video), memory)
    video.unlink()

    def no_decoding(*args, **kwargs):
        raise AssertionError("a frame was decoded")

    monkeypatch.setattr("videollm.io.open_video", no_decoding)
    monkeypatch.setattr("videollm.io.open_source", no_decoding)
    assert main(["ask", str(memory), "What is in the video?", *TINY]) == 0
    assert loads == [False]  # no vision tower at all
    assert "answered from the last scene: scene 3 of 3 (" in capsys.readouterr().err
    # the saved memory kept every scene: a question naming one is answered from it, and stderr says which
    assert main(["ask", str(memory), "What is in the second scene?", *TINY]) == 0
    assert "answered from the scene it names: scene 2 of 3 (" in capsys.readouterr().err

    histories, answers = [], []
    real_ask = captioning.ask

    def recording_ask(model, state, question, history=(), **kwargs):
        histories.append([dict(m) for m in history])
        answers.append("")
        for piece in real_ask(model, state, question, history, **kwargs):
            answers[-1] += piece
            yield piece

    monkeypatch.setattr(captioning, "ask", recording_ask)
    monkeypatch.setattr(sys, "stdin", io.StringIO("first question\n\nsecond question\n/exit\nnever asked\n"))
    capsys.readouterr()
    assert main(["chat", str(memory), *TINY]) == 0
    assert loads == [False, False, False]
    assert len(histories) == 2 and histories[0] == []
    assert [m["role"] for m in histories[1]] == ["user", "assistant"]
    assert histories[1][0]["content"] == "first question"
    assert histories[1][1]["content"] == answers[0]
    assert capsys.readouterr().out == f"{answers[0]}\n{answers[1]}\n"  # each answer streamed, then a newline


def test_memory_is_detected_by_content_not_name(model, world_clip, tmp_path) -> None:
    state = captioning.open_memory(model, world_clip[0])
    disguised = tmp_path / "looks_like.mp4"
    save_memory(state, disguised)
    assert is_memory_file(disguised)
    assert not is_memory_file(world_clip[0])
    fake = tmp_path / "video.memory.safetensors"
    shutil.copy(world_clip[0], fake)
    assert not is_memory_file(fake)
    assert captioning.open_memory(model, disguised).num_segments == state.num_segments


def test_ctrl_c_ends_the_stream_cleanly_and_saves_memory(world_clip, tmp_path) -> None:
    path, _ = world_clip
    memory = tmp_path / "live.memory.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "videollm", "stream", str(path), "--realtime",
                             "--save-memory", str(memory), *TINY], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = ""
    while "streaming" not in started:
        line = proc.stderr.readline()
        assert line, "stream exited before it started"
        started = line
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows and rows[-1]["end"] < 8.0  # stopped well before the 26 s clip ended
    assert "Traceback" not in err and "saved" in err
    assert load_memory(memory).num_segments == len(rows)


def test_search_lists_scenes_by_caption_match_and_keeps_generated_captions(model, loads, world_clip, tmp_path,
                                                                            capsys, monkeypatch) -> None:
    memory = tmp_path / "clip.memory.safetensors"
    state = captioning.open_memory(model, world_clip[0])
    spans = [(s.start_time, s.end_time) for s in state.segments]
    save_memory(state, memory)
    written = ["a small red circle moves left", "a large blue square spins; a red star grows",
               "a red circle and a green cross"]
    monkeypatch.setattr(VideoLLM, "answer_many", lambda self, visuals, prompt, max_new_tokens=64, batch_size=32:
                        [written[k] for k in range(len(visuals))])
    kept = tmp_path / "captioned.memory.safetensors"
    assert main(["search", str(memory), "red circle", "--json", "--save-memory", str(kept), *TINY[:2]]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # scenes 1 and 3 hold "red circle" in one clause, scene 2 only "red": both words first (the better word score
    # of the scene tokens first), then one
    assert {r["scene"] for r in rows[:2]} == {1, 3} and rows[2]["scene"] == 2
    assert [r["caption_words"] for r in rows] == [2, 2, 1] and rows[0]["word_score"] >= rows[1]["word_score"]
    for r in rows:
        assert (r["start"], r["end"]) == pytest.approx(spans[r["scene"] - 1], abs=1e-3)
        assert r["caption"] == written[r["scene"] - 1] and r["scenes"] == 3
    assert [c["caption"] for c in load_memory(kept).extra["captions"]] == written  # saved with the memory
    # the table form, and a query that matches nothing
    monkeypatch.setattr(VideoLLM, "answer_many", lambda *a, **k: pytest.fail("captions were generated again"))
    assert main(["search", str(kept), "blue square", "--top", "1", *TINY[:2]]) == 0
    out = capsys.readouterr().out
    assert out.startswith(" 1. scene 2 of 3  0:") and out.rstrip().endswith(written[1]) and out.count("\n") == 1
    assert main(["search", str(kept), "the yellow hexagon", *TINY[:2]]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no scene matches 'the yellow hexagon'" in captured.err
    assert main(["search", str(kept), "  ", *TINY[:2]]) == 2
    assert "the search query is empty" in capsys.readouterr().err
    state.scenes = None  # a memory saved with recall off keeps no scene tokens
    save_memory(state, tmp_path / "old.memory.safetensors")
    assert main(["search", str(tmp_path / "old.memory.safetensors"), "red circle", *TINY[:2]]) == 2
    assert "saved without its scenes' tokens" in capsys.readouterr().err
