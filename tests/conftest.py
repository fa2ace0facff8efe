"""Shared pytest helpers.

``make_video`` writes small real video files with PyAV (H.264 by default) so that tests never need shipped media.
Test modules reach it through the ``video_factory`` fixture, which returns the function itself (importing conftest
by name is fragile under ``--import-mode=importlib``)::

    def test_something(tmp_path, video_factory):
        path = video_factory(tmp_path / "clip.mp4", n_frames=30, fps=10)

With the default ``pattern="index"`` every frame carries its own index as a grid of black/white blocks that survives
lossy compression; ``frame_indices_of`` (fixture ``frame_index_reader``) reads those indices back from decoded
frames, so tests can check that a reader returned exactly the frames it was asked for.
"""

from __future__ import annotations

import fractions
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

# The index pattern: a GRID x GRID board of black/white cells, cell k (row-major) is bit k of the frame index.
_GRID = 4
_INDEX_BITS = _GRID * _GRID

Pattern = str | Callable[[int], np.ndarray]


def _index_frame(i: int, width: int, height: int) -> np.ndarray:
    bits = (i >> np.arange(_INDEX_BITS)) & 1  # (16,)
    board = (bits.reshape(_GRID, _GRID) * 255).astype(np.uint8)  # (4, 4)
    cell = np.kron(board, np.ones((height // _GRID, width // _GRID), np.uint8))  # (H', W')
    img = np.zeros((height, width), np.uint8)
    img[: cell.shape[0], : cell.shape[1]] = cell
    return np.repeat(img[:, :, None], 3, axis=2)  # (H, W, 3)


def _gradient_frame(i: int, width: int, height: int) -> np.ndarray:
    x = np.arange(width, dtype=np.int64)[None, :]
    y = np.arange(height, dtype=np.int64)[:, None]
    r = (x * 4 + i * 3) % 256
    g = (y * 4 + i * 2) % 256
    b = np.broadcast_to((x + y + i) % 256, (height, width))
    return np.stack(np.broadcast_arrays(r, g, b), axis=-1).astype(np.uint8)  # (H, W, 3)


def _noise_frame(i: int, width: int, height: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8)


_PATTERNS: dict[str, Callable[[int, int, int], np.ndarray]] = {
    "index": _index_frame,
    "gradient": _gradient_frame,
    "noise": _noise_frame,
}


def make_video(
    path: str | os.PathLike,
    n_frames: int,
    fps: float,
    size: tuple[int, int] = (64, 48),
    pattern: Pattern = "index",
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    container_format: str | None = None,
    container_options: dict[str, str] | None = None,
    times: Sequence[float] | None = None,
    preset: str | None = "ultrafast",
) -> Path:
    """Write a small synthetic video file with PyAV.

    Args:
        path: output file; its extension picks the container unless ``container_format`` is given.
        n_frames: number of frames to write (>= 1).
        fps: nominal frame rate (the stream's rate; also the frame spacing unless ``times`` is given).
        size: (width, height) in pixels; even numbers for yuv420p.
        pattern: "index" (frame index as a 4x4 black/white bit grid, read back with ``frame_indices_of``),
            "gradient" (smoothly moving colour ramps), "noise" (seeded random pixels, hard to compress), or a
            callable ``f(i) -> (H, W, 3) uint8`` RGB array.
        codec: encoder name, e.g. "libx264", "mpeg4", "mjpeg", "libvpx-vp9", "gif".
        pix_fmt: encoder pixel format (e.g. "yuvj420p" for mjpeg, "rgb8" for gif).
        container_format: force a muxer ("mpegts", "h264", "matroska", ...).
        container_options: muxer options, e.g. ``{"movflags": "faststart"}``.
        times: optional presentation time in seconds of every frame (length ``n_frames``, increasing): writes a
            variable-frame-rate stream with a 1/1000 s time base.
        preset: x264 preset (only used with libx264); "ultrafast" keeps test set-up fast.

    Returns:
        The path written, as a ``Path``.
    """
    import av

    width, height = size
    make = pattern if callable(pattern) else (lambda i: _PATTERNS[pattern](i, width, height))
    if times is not None and len(times) != n_frames:
        raise ValueError("times must have one entry per frame")
    path = Path(path)
    rate = fractions.Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format=container_format, options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264" and preset:
            stream.options = {"preset": preset}
        time_base = fractions.Fraction(1, 1000) if times is not None else None
        if time_base is not None:
            stream.codec_context.time_base = time_base
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(make(i)), format="rgb24")
            if time_base is not None:
                frame.pts = round(times[i] * 1000)
                frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def frame_indices_of(frames: np.ndarray) -> np.ndarray:
    """Read back the frame indices drawn by ``make_video(pattern="index")``.

    Args:
        frames: (N, H, W, 3) uint8 RGB frames decoded from such a video (any size the writer used).

    Returns:
        (N,) int64 frame indices.
    """
    n, height, width, _ = frames.shape
    ch, cw = height // _GRID, width // _GRID
    gray = frames[:, : ch * _GRID, : cw * _GRID].mean(axis=-1)  # (N, H', W')
    cells = gray.reshape(n, _GRID, ch, _GRID, cw).mean(axis=(2, 4)).reshape(n, _INDEX_BITS)  # (N, 16)
    bits = (cells > 127).astype(np.int64)
    return (bits << np.arange(_INDEX_BITS)).sum(axis=1)


def speak_into(video: Path, said: Sequence[tuple[float, str]], out: Path) -> Path:
    """``video`` re-encoded (H.264) with espeak-ng saying each ``(start second, sentence)`` of ``said`` as its AAC
    track; the sound track lasts as long as the video. Needs the ``espeak-ng`` program."""
    import subprocess
    import wave

    import av

    pieces, rate = [], 22050
    for i, (start, text) in enumerate(said):
        wav = out.with_name(f"{out.stem}-{i}.wav")
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
        with wave.open(str(wav)) as w:
            rate = w.getframerate()
            pieces.append((start, np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)))
    with av.open(str(video)) as src, av.open(str(out), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        aout = dst.add_stream("aac", rate=rate)
        aout.layout = "mono"
        frames = 0
        for frame in src.decode(video=0):
            # A fresh frame, numbered in the encoder's 1/rate time base (not the source container's timestamps).
            picture = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            picture = picture.reformat(format="yuv420p")
            picture.pts = frames
            dst.mux(vout.encode(picture))
            frames += 1
        dst.mux(vout.encode())
        track = np.zeros(int(frames / float(vin.average_rate) * rate), np.int16)  # (samples,)
        for start, pcm in pieces:
            lo = int(start * rate)
            track[lo:lo + len(pcm)] = pcm[: max(0, len(track) - lo)]
        for lo in range(0, len(track), 1024):
            chunk = av.AudioFrame.from_ndarray(track[None, lo:lo + 1024], format="s16", layout="mono")
            chunk.sample_rate, chunk.pts = rate, lo
            dst.mux(aout.encode(chunk))
        dst.mux(aout.encode())
    return out


@pytest.fixture(scope="session")
def speech_muxer() -> Callable[[Path, Sequence[tuple[float, str]], Path], Path]:
    """The ``speak_into`` function; skips the test when espeak-ng is not installed."""
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); speech videos are synthesised")
    return speak_into


@pytest.fixture
def video_factory() -> Callable[..., Path]:
    """The ``make_video`` function (see its docstring)."""
    return make_video


@pytest.fixture
def frame_index_reader() -> Callable[[np.ndarray], np.ndarray]:
    """The ``frame_indices_of`` function (see its docstring)."""
    return frame_indices_of


@pytest.fixture(scope="module")
def model():
    """The ``tiny`` preset (random LM, untrained bridge), seeded, once per test module, run on one thread: these
    models are tiny, and extra threads only contend on a busy 2-core machine. Modules may define their own."""
    import torch

    from videollm.model import VideoLLM

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield VideoLLM.from_pretrained("tiny").eval()
    torch.set_num_threads(threads)


@pytest.fixture
def cached_model(model, monkeypatch: pytest.MonkeyPatch):
    """CLI commands run in-process get the module's already-loaded ``model`` instead of loading one per call."""
    from videollm.commands import common

    monkeypatch.setattr(common, "load_model", lambda args, load_vision=True, device=None: model)
    return model


# Test modules that load full models, serve the app, train or run interpreted Triton kernels. The full suite
# (`make test`, CI) runs them; the everyday lane (`make test-fast`, `-m "not slow"`) leaves them out.
SLOW_MODULES = frozenset({
    "test_batch_ray.py", "test_caption_cli.py", "test_stream_chat.py", "test_eval.py", "test_recall.py", "test_train.py",
    "test_demos.py", "test_vision.py", "test_scenes_features.py", "test_model.py", "test_faults.py",
    "test_speech.py", "test_ocr.py", "test_videollamb_release.py", "test_vlm_backbones.py", "test_cross_questions.py",
    "test_ood.py",
})
SLOW_FOLDERS = frozenset({"app", "kernels"})


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if path.name in SLOW_MODULES or path.parent.name in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)
