"""Live mode of the Live captions tab without a browser: frames pushed the way the camera handler pushes them.

The frames of a sample video, pushed at twice the model's fps with arrival times from the video's clock, must be
captioned exactly as ``videollm stream`` captions the file (same frames kept, same times, same memory), and the
Gradio handlers must keep visitors apart, refuse bad frames with one message and end a stream cleanly.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from safetensors.numpy import load_file

from videollm.io import open_video

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "world"
VIDEO = SAMPLES / "video" / "video_000000.mp4"

pytestmark = pytest.mark.timeout(300)


def _video_frames() -> tuple[np.ndarray, np.ndarray]:
    """Every frame of the sample (8 fps) and its time in seconds."""
    with open_video(VIDEO) as reader:
        frames = reader.read(np.arange(reader.meta.num_frames))  # (N, H, W, 3)
        times = np.arange(reader.meta.num_frames) / reader.meta.fps
    return frames, times


def _context(model, tmp_path: Path, **limits):
    from videollm_app import AppLimits, ModelLoader, Samples
    from videollm_app.common import TabContext

    return TabContext(loader=ModelLoader.loaded(model), limits=AppLimits(**limits), samples=Samples(root=tmp_path),
                      workdir=tmp_path)


def test_frames_pushed_live_are_captioned_like_videollm_stream(model, tmp_path: Path) -> None:
    from videollm_app.camera import CameraStream

    from videollm import captioning

    reference = captioning.stream_captions(model, str(VIDEO))
    ref_rows = [(sc.index + 1, round(sc.start, 2), round(sc.end, 2), sc.caption) for sc in reference]
    reference.save_memory(tmp_path / "reference.safetensors")

    frames, times = _video_frames()
    stream = CameraStream(model, tmp_path / "live.safetensors", max_seconds=60, backlog_seconds=100)
    # The browser sends 4 frames a second (every other frame of this 8 fps video); 2 a second are kept.
    queued = [stream.push(frame, 1000.0 + t) for frame, t in zip(frames[::2], times[::2], strict=True)]
    assert sum(queued) == len(frames[::4]) and stream.frames.dropped == 0
    assert stream.finish(timeout=120) and stream.error is None
    assert [tuple(r[:4]) for r in stream.rows] == ref_rows and len(ref_rows) == 4
    assert all(r[4] >= 0 for r in stream.rows)

    live, ref = load_file(stream.memory_file), load_file(tmp_path / "reference.safetensors")
    assert live.keys() == ref.keys()
    for key in ref:  # the same frames went through the bridge: the same memory, tensor for tensor
        np.testing.assert_array_equal(live[key], ref[key], err_msg=key)


def test_a_slow_server_drops_frames_and_says_so(model, tmp_path: Path) -> None:
    from videollm_app.camera import CameraStream

    frames, times = _video_frames()
    stream = CameraStream(model, tmp_path / "live.safetensors", max_seconds=60, backlog_seconds=1)
    # All 16 s arrive at once: the model cannot keep up, so the backlog (2 frames) fills and the rest is dropped.
    for frame, t in zip(frames[::2], times[::2], strict=True):
        stream.push(frame, t)
    assert stream.frames.dropped > 20
    assert "frames were dropped" in stream.status()
    assert stream.finish(timeout=120) and stream.rows


def test_the_time_limit_ends_the_stream_and_captions_its_last_scene(model, tmp_path: Path) -> None:
    from videollm_app.camera import CameraStream

    frames, times = _video_frames()
    stream = CameraStream(model, tmp_path / "live.safetensors", max_seconds=4.0, backlog_seconds=100)
    for frame, t in zip(frames[::2], times[::2], strict=True):
        stream.push(frame, t)
    assert stream.limit_reached and stream.frames.kept == 9  # 0, 0.5, ..., 4.0 s
    stream.finish(timeout=120)
    assert stream.rows[-1][2] == pytest.approx(4.25) and "limited to 4 s" in stream.status()


def test_the_handlers_keep_visitors_apart_refuse_bad_frames_and_end_cleanly(model, tmp_path: Path) -> None:
    from videollm_app.tab_live import CAMERA_HELP, _camera_handlers

    on_frame, end = _camera_handlers(_context(model, tmp_path, max_image_side=256))
    frames, _ = _video_frames()

    skipped = on_frame(None, None)  # the browser sends nothing before the camera delivers
    assert all(isinstance(out, type(gr.skip())) for out in skipped)

    status, table, download, alice = on_frame(frames[0], None)
    assert "Live from your camera" in status and table == [] and download is None
    _, _, _, bob = on_frame(frames[40], None)
    assert bob is not alice
    status, table, download, same = on_frame(frames[1], alice)
    assert same == gr.skip() and table == gr.skip()  # nothing new to send
    assert alice.frames.kept == 1 and bob.frames.kept == 1

    with pytest.raises(gr.Error, match="this server accepts sides up to 256 px"):
        on_frame(np.zeros((300, 200, 3), dtype=np.uint8), alice)

    *_, (status, table, download, camera) = list(end(alice))
    assert status.startswith("**Done:** Camera stream ended") and len(table) == 1 and Path(download).is_file()
    assert camera.visible is True and alice.released and not bob.released
    # Stop pressed, then the stream's own end: the second call shows the same result again.
    *_, (again, table_again, _, _) = list(end(alice))
    assert again == status and table_again == table
    # The visitor's next frame starts a new stream, with its own memory file.
    _, table, download, fresh = on_frame(frames[2], alice)
    assert fresh is not alice and table == [] and fresh.memory_file != alice.memory_file

    first, last = list(end(None))  # Stop without a stream: help, and the camera is reset
    assert first[0] == CAMERA_HELP and first[3].visible is False and last[3].visible is True
    bob.finish(timeout=60)
    fresh.finish(timeout=60)


def test_frames_before_the_model_is_ready_are_not_kept(tmp_path: Path) -> None:
    from videollm_app import AppLimits, ModelLoader, Samples
    from videollm_app.common import LOADING, TabContext
    from videollm_app.tab_live import _camera_handlers

    loader = ModelLoader(lambda: None)  # never started: still loading
    on_frame, _ = _camera_handlers(TabContext(loader, AppLimits(), Samples(root=tmp_path), tmp_path))
    status, *_, state = on_frame(np.zeros((8, 8, 3), dtype=np.uint8), None)
    assert status == LOADING and state == gr.skip()

    failed = ModelLoader(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failed.load()
    on_frame, _ = _camera_handlers(TabContext(failed, AppLimits(), Samples(root=tmp_path), tmp_path))
    with pytest.raises(gr.Error, match="the model failed to load"):
        on_frame(np.zeros((8, 8, 3), dtype=np.uint8), None)


def test_a_stream_that_fails_says_so_once(model, tmp_path: Path) -> None:
    from videollm_app.camera import CameraStream
    from videollm_app.tab_live import _camera_handlers

    _, end = _camera_handlers(_context(model, tmp_path))
    frames, times = _video_frames()
    # The memory cannot be saved (its folder is a file): the first scene's save fails and ends the captioning.
    (tmp_path / "blocked").write_text("")
    stream = CameraStream(model, tmp_path / "blocked" / "live.safetensors", max_seconds=60, backlog_seconds=100)
    for frame, t in zip(frames[:40:2], times[:40:2], strict=True):
        stream.push(frame, t)
    outputs = []
    with pytest.raises(gr.Error) as err:
        outputs.extend(end(stream))
    assert "blocked" in str(err.value) or "live.safetensors" in str(err.value)
    status, *_, camera = outputs[-1]
    assert status.startswith("**Stopped:**") and "captioning stopped early" in status and camera.visible is True
    *_, (again, *_) = list(end(stream))  # reported once: the stream's own end shows the status, no second error
    assert again.startswith("**Stopped:**")
