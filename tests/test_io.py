"""Tests of videollm.io: file readers (decord and PyAV), fps sampling, validation errors, live sources, resize."""

from __future__ import annotations

import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from videollm.errors import VideoError
from videollm.io import FrameBatch, VideoMeta, open_source, open_video, resize_center_crop, uniform_indices
from videollm.io.source import _iter_capture, _open_capture

BACKENDS = ["auto", "pyav"]


@pytest.fixture
def clip(tmp_path: Path, video_factory) -> Path:
    """30 frames at 10 fps, 64x48, each frame showing its index."""
    return video_factory(tmp_path / "clip.mp4", n_frames=30, fps=10)


# ---------------------------------------------------------------- metadata and indexing


@pytest.mark.parametrize("backend", BACKENDS)
def test_metadata(clip: Path, backend: str) -> None:
    with open_video(clip, backend=backend) as reader:
        meta = reader.meta
    assert isinstance(meta, VideoMeta)
    assert meta.path == str(clip)
    assert meta.num_frames == 30
    assert meta.fps == pytest.approx(10.0, rel=1e-3)
    assert meta.duration == pytest.approx(3.0, abs=1e-3)
    assert (meta.width, meta.height) == (64, 48)
    assert meta.backend == ("decord" if backend == "auto" else "pyav")


def test_uniform_indices_rule() -> None:
    # Centres of 4 chunks of 25 frames: 12.5, 37.5, ... floored.
    assert uniform_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert uniform_indices(10, 1).tolist() == [5]
    assert uniform_indices(10, 10).tolist() == list(range(10))
    assert uniform_indices(5, 32).tolist() == list(range(5))
    idx = uniform_indices(1000, 7)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    with pytest.raises(ValueError):
        uniform_indices(10, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sample_uniform_returns_the_right_frames(clip: Path, backend: str, frame_index_reader) -> None:
    with open_video(clip, backend=backend) as reader:
        batch = reader.sample_uniform(8)
    assert isinstance(batch, FrameBatch)
    assert batch.indices.tolist() == uniform_indices(30, 8).tolist()
    assert batch.frames.shape == (8, 48, 64, 3) and batch.frames.dtype == np.uint8
    assert frame_index_reader(batch.frames).tolist() == batch.indices.tolist()
    np.testing.assert_allclose(batch.times, batch.indices / 10.0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_any_order_with_repeats(clip: Path, backend: str, frame_index_reader) -> None:
    wanted = [29, 5, 2, 2, 17, 0, 28]
    with open_video(clip, backend=backend) as reader:
        frames = reader.read(wanted)
        assert frame_index_reader(frames).tolist() == wanted
        assert reader.read([]).shape == (0, 48, 64, 3)
        with pytest.raises(IndexError):
            reader.read([3, 30])


def test_one_frame_video_opens(tmp_path: Path, video_factory, frame_index_reader) -> None:
    path = video_factory(tmp_path / "one.mp4", n_frames=1, fps=25)
    with open_video(path) as reader:
        assert reader.meta.num_frames == 1
        batch = reader.sample_uniform(16)
    assert batch.indices.tolist() == [0]
    assert frame_index_reader(batch.frames).tolist() == [0]


# ---------------------------------------------------------------- fps sampling


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("fps", "expected"),
    [
        (None, list(range(30))),
        (1.0, [0, 10, 20]),
        (2.5, [0, 4, 8, 12, 16, 20, 24, 28]),
        (3.0, [0, 3, 6, 10, 13, 16, 20, 23, 26]),
        (10.0, list(range(30))),
        (25.0, list(range(30))),  # above the native rate: every frame once, no duplicates
    ],
)
def test_iter_fps_frames_and_times(
    clip: Path, backend: str, fps: float | None, expected: list[int], frame_index_reader
) -> None:
    with open_video(clip, backend=backend) as reader:
        batches = list(reader.iter_fps(fps, batch_size=4))
    assert all(len(b) == 4 for b in batches[:-1]) and 1 <= len(batches[-1]) <= 4
    indices = np.concatenate([b.indices for b in batches])
    times = np.concatenate([b.times for b in batches])
    frames = np.concatenate([b.frames for b in batches])
    assert indices.tolist() == expected
    np.testing.assert_allclose(times, indices / 10.0, atol=1e-6)
    assert frame_index_reader(frames).tolist() == expected


def test_iter_fps_is_lazy_and_keeps_no_batches(clip: Path) -> None:
    with open_video(clip) as reader:
        calls: list[int] = []
        real = reader._decoder.read_sorted

        def counting(indices: np.ndarray) -> np.ndarray:
            calls.append(int(indices.shape[0]))
            return real(indices)

        reader._decoder.read_sorted = counting  # type: ignore[method-assign]
        it = reader.iter_fps(None, batch_size=8)
        assert calls == []  # nothing decoded before the first next()
        first = next(it)
        assert calls == [8]
        ref = weakref.ref(first.frames)
        del first
        second = next(it)
        assert ref() is None  # the iterator holds no reference to batches already handed out
        assert second.indices.tolist() == list(range(8, 16))
        assert calls == [8, 8]


def test_variable_frame_rate(tmp_path: Path, video_factory, frame_index_reader) -> None:
    times = [0.0, 0.1, 0.15, 0.5, 0.6, 1.3]
    path = video_factory(tmp_path / "vfr.mp4", n_frames=6, fps=10, times=times)
    for backend in BACKENDS:
        with open_video(path, backend=backend) as reader:
            np.testing.assert_allclose(reader.times, times, atol=1e-3)
            batches = list(reader.iter_fps(4.0, batch_size=16))
        # Instants 0, .25, .5, ...: the frame on screen at each one, each frame once.
        assert batches[0].indices.tolist() == [0, 2, 3, 4]
        assert frame_index_reader(batches[0].frames).tolist() == [0, 2, 3, 4]


# ---------------------------------------------------------------- PyAV fallback


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("clip.gif", {"codec": "gif", "pix_fmt": "rgb8"}),
        ("clip.h264", {"container_format": "h264"}),  # raw stream: no timestamps, no container
    ],
)
def test_files_decord_rejects_fall_back_to_pyav(
    tmp_path: Path, video_factory, frame_index_reader, name: str, options: dict
) -> None:
    path = video_factory(tmp_path / name, n_frames=20, fps=10, **options)
    with open_video(path) as reader:
        assert reader.meta.backend == "pyav"
        assert reader.meta.num_frames == 20
        frames = reader.read([19, 0, 7])
    assert frame_index_reader(frames).tolist() == [19, 0, 7]
    with pytest.raises(VideoError, match="pyav"):
        open_video(path, backend="decord")


def test_missing_decord_falls_back_to_pyav(clip: Path, frame_index_reader, monkeypatch) -> None:
    """An install without decord (seen on a GPU machine's image) still reads videos, through PyAV."""
    monkeypatch.setitem(sys.modules, "decord", None)  # makes `import decord` raise ImportError
    with open_video(clip) as reader:
        assert reader.meta.backend == "pyav"
        frames = reader.read([3, 0])
    assert frame_index_reader(frames).tolist() == [3, 0]
    with pytest.raises(VideoError, match="decord is not installed"):
        open_video(clip, backend="decord")


def test_pyav_seeks_across_keyframes(tmp_path: Path, video_factory, frame_index_reader) -> None:
    # x264 puts a key frame every 250 frames by default: reads cross GOPs forwards and backwards.
    path = video_factory(tmp_path / "long.mp4", n_frames=600, fps=30, size=(32, 32))
    wanted = [599, 3, 260, 251, 520, 0, 599]
    with open_video(path, backend="pyav") as reader:
        assert reader._index.keyframes.shape[0] >= 3
        assert frame_index_reader(reader.read(wanted)).tolist() == wanted


# ---------------------------------------------------------------- bad inputs


def _truncated_faststart(tmp_path: Path, video_factory) -> Path:
    full = video_factory(tmp_path / "full.mp4", n_frames=60, fps=10, size=(128, 96), pattern="noise",
                         container_options={"movflags": "faststart"})
    data = full.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])  # the index (moov) at the front still declares 60 frames
    return path


def _truncated_no_index(tmp_path: Path, video_factory) -> Path:
    full = video_factory(tmp_path / "full2.mp4", n_frames=60, fps=10, pattern="noise")
    data = full.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])  # the index (moov) was at the end: gone
    return path


def _audio_only(tmp_path: Path) -> Path:
    import av

    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _bad_input(kind: str, tmp_path: Path, video_factory) -> tuple[Path, dict, str]:
    """A bad input of the given kind, extra open_video kwargs, and a word its reason must contain."""
    if kind == "missing":
        return tmp_path / "nope.mp4", {}, "no such file"
    if kind == "directory":
        return tmp_path, {}, "directory"
    if kind == "empty":
        path = tmp_path / "empty.mp4"
        path.write_bytes(b"")
        return path, {}, "empty"
    if kind == "random":
        path = tmp_path / "random.mp4"
        path.write_bytes(np.random.default_rng(0).bytes(20_000))
        return path, {}, "not a readable video"
    if kind == "truncated":
        return _truncated_faststart(tmp_path, video_factory), {}, "truncated"
    if kind == "truncated_no_index":
        return _truncated_no_index(tmp_path, video_factory), {}, "not a readable video"
    if kind == "audio_only":
        return _audio_only(tmp_path), {}, "no video stream"
    if kind == "too_large":
        return video_factory(tmp_path / "big.mp4", n_frames=2, fps=10), {"max_side": 32}, \
            "frame size 64x48 exceeds limit"
    raise AssertionError(kind)


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
@pytest.mark.parametrize(
    "kind", ["missing", "directory", "empty", "random", "truncated", "truncated_no_index", "audio_only", "too_large"]
)
def test_bad_inputs_raise_video_error(tmp_path: Path, video_factory, kind: str, backend: str) -> None:
    path, kwargs, reason = _bad_input(kind, tmp_path, video_factory)
    with pytest.raises(VideoError) as info:
        open_video(path, backend=backend, **kwargs)
    err = info.value
    message = str(err)
    assert message.startswith(str(path) + ": ")
    assert reason in err.reason
    assert "\n" not in message
    # The reason is ours, not a library's text chained underneath.
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    for leak in ("Errno", "DECORD", "av.error", "Traceback", ".cc:"):
        assert leak not in message


def test_decode_error_at_read_time_pyav(clip: Path) -> None:
    reader = open_video(clip, backend="pyav")
    clip.write_bytes(np.random.default_rng(1).bytes(4096))  # the file changes under the open reader
    with pytest.raises(VideoError) as info:
        reader.read([3])
    assert str(clip) in str(info.value) and info.value.__cause__ is None
    reader.close()


def test_decode_error_at_read_time_decord(clip: Path) -> None:
    import decord

    with open_video(clip) as reader:
        assert reader.meta.backend == "decord"

        def broken(indices: object) -> None:
            raise decord.DECORDError("[12:00:00] /src/video_reader.cc:1: internal failure")

        reader._decoder._reader.get_batch = broken
        with pytest.raises(VideoError) as info:
            reader.read([1, 2])
    assert "cannot decode" in str(info.value) and ".cc" not in str(info.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reading_a_closed_reader_raises(clip: Path, backend: str) -> None:
    reader = open_video(clip, backend=backend)
    reader.close()
    with pytest.raises(VideoError, match="closed"):
        reader.read([0])


def test_unknown_backend_is_rejected(clip: Path) -> None:
    with pytest.raises(ValueError):
        open_video(clip, backend="opencv")


# ---------------------------------------------------------------- live sources


def test_open_source_file_realtime_pacing(tmp_path: Path, video_factory, frame_index_reader) -> None:
    path = video_factory(tmp_path / "short.mp4", n_frames=10, fps=10)  # 1.0 s
    start = time.monotonic()
    batches = list(open_source(str(path), realtime=True, batch_size=2))
    elapsed = time.monotonic() - start
    assert elapsed >= 1.0 * 0.9  # the last frame starts at 0.9 s
    indices = np.concatenate([b.indices for b in batches])
    assert indices.tolist() == list(range(10))
    np.testing.assert_allclose(np.concatenate([b.times for b in batches]), indices / 10.0, atol=1e-6)
    assert frame_index_reader(np.concatenate([b.frames for b in batches])).tolist() == indices.tolist()


def test_open_source_file_unpaced(tmp_path: Path, video_factory) -> None:
    path = video_factory(tmp_path / "short.mp4", n_frames=10, fps=10)
    assert [b.indices.tolist() for b in open_source(path)] == [[i] for i in range(10)]
    assert [b.indices.tolist() for b in open_source(path, fps=5, batch_size=3)] == [[0, 2, 4], [6, 8]]


def test_decord_bridge_set_to_torch_elsewhere(clip: Path, frame_index_reader) -> None:
    import decord

    with open_video(clip) as reader, decord.bridge.use_torch():
        frames = reader.read([4, 1])
    assert isinstance(frames, np.ndarray)
    assert frame_index_reader(frames).tolist() == [4, 1]


def test_open_source_errors(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
    for webcam in (97, "97"):
        with pytest.raises(VideoError, match="cannot open webcam 97"):
            open_source(webcam)
    # Port 9 (discard) on localhost refuses the connection at once.
    with pytest.raises(VideoError, match="rtsp://127.0.0.1:9/none: cannot open stream"):
        open_source("rtsp://127.0.0.1:9/none")


def test_opencv_capture_path_samples_and_converts_to_rgb(tmp_path: Path, video_factory) -> None:
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 220
    path = video_factory(tmp_path / "red.mp4", n_frames=20, fps=10, pattern=lambda i: red)
    batches = list(_iter_capture(_open_capture(str(path)), str(path), 5.0, 4, wall_clock=False))
    indices = np.concatenate([b.indices for b in batches])
    assert indices.tolist() == list(range(0, 20, 2))
    np.testing.assert_allclose(np.concatenate([b.times for b in batches]), indices / 10.0, atol=1e-3)
    frames = batches[0].frames
    assert frames.shape == (4, 48, 64, 3)
    assert frames[..., 0].mean() > 180 and frames[..., 2].mean() < 40  # RGB, not OpenCV's BGR


# ---------------------------------------------------------------- resize_center_crop


def test_resize_center_crop_shapes_and_types() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    out = resize_center_crop(frames, 32)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.uint8 and out.is_contiguous()
    assert torch.equal(resize_center_crop(torch.from_numpy(frames), 32), out)
    assert resize_center_crop(frames, 96).shape == (3, 3, 96, 96)  # upscaling
    assert resize_center_crop(frames[:, :, :48], 48).shape == (3, 3, 48, 48)  # already square and sized
    assert resize_center_crop(frames[:0], 16).shape == (0, 3, 16, 16)
    with pytest.raises(ValueError):
        resize_center_crop(frames.astype(np.float32), 32)
    with pytest.raises(ValueError):
        resize_center_crop(frames[..., :2], 32)


def test_resize_center_crop_values() -> None:
    # A portrait frame: grey centre square between red top and blue bottom bands that the crop must drop.
    frame = np.full((1, 80, 40, 3), 128, np.uint8)
    frame[:, :20] = (255, 0, 0)
    frame[:, 60:] = (0, 0, 255)
    out = resize_center_crop(frame, 20)
    assert out.shape == (1, 3, 20, 20)
    assert torch.all(out == 128)

    # Against a float reference (crop the centre square, antialiased bilinear) within uint8 rounding.
    frames = np.random.default_rng(1).integers(0, 256, (2, 50, 90, 3), dtype=np.uint8)
    ref = torch.from_numpy(frames[:, :, 20:70]).permute(0, 3, 1, 2).float()
    ref = F.interpolate(ref, size=(24, 24), mode="bilinear", antialias=True, align_corners=False)
    diff = (resize_center_crop(frames, 24).float() - ref.round().clamp(0, 255)).abs()
    assert diff.max() <= 1
    # Channel order is kept: an all-red frame stays red.
    red = np.zeros((1, 30, 30, 3), np.uint8)
    red[..., 0] = 200
    out = resize_center_crop(red, 10)
    assert torch.all(out[:, 0] == 200) and torch.all(out[:, 1:] == 0)
