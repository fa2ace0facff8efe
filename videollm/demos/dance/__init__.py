"""Dance-step generation from music: ``dance_from_audio`` and ``render_dance_video``."""

from __future__ import annotations

import os

import numpy as np

from videollm.demos import WEIGHTS_DIR

DEFAULT_WEIGHTS = WEIGHTS_DIR / "dance.safetensors"


def dance_from_audio(path: str | os.PathLike, weights: str | os.PathLike | None = None) -> tuple[np.ndarray, float]:
    """Generate a stick-figure dance for an audio file.

    Args:
        path: any audio (or video) file ffmpeg can decode.
        weights: a dance safetensors file; default the shipped ``data/demos/dance.safetensors``.

    Returns:
        poses (T, 15, 2) float32 joint positions (x right, y up, body units; joint names in
        ``videollm.demos.dance.data.JOINTS``) and their frame rate (25 fps); T = ceil(seconds * fps).

    Raises:
        VideoError: the audio cannot be read. ModelError: the weights cannot be loaded.
    """
    import torch

    from videollm.demos.audio import load_audio
    from videollm.demos.dance.data import FPS, SAMPLE_RATE, audio_features
    from videollm.demos.dance.model import DanceNet

    model = DanceNet.load(weights or DEFAULT_WEIGHTS)
    feats = torch.from_numpy(audio_features(load_audio(path, SAMPLE_RATE)))[None]  # (1, T, F)
    return model.generate(feats)[0].numpy(), float(FPS)


def render_frames(poses: np.ndarray, size: int = 320) -> np.ndarray:
    """Draw the stick figure: (T, 15, 2) joints -> (T, size, size, 3) uint8 RGB frames."""
    import cv2

    from videollm.demos.dance.data import BONES

    scale = size * 0.38
    px = np.stack([size / 2 + poses[..., 0] * scale, size * 0.52 - poses[..., 1] * scale], -1)  # (T, J, 2)
    px = np.round(px).astype(np.int32)
    frames = np.empty((len(poses), size, size, 3), np.uint8)
    frames[:] = (250, 246, 238)
    floor = int(size * 0.52 + 0.82 * scale)
    thick = max(2, size // 60)
    # One OpenCV call per bone and frame: drawing has no vectorised form, and T is small (25 per second).
    for frame, pts in zip(frames, px):
        cv2.line(frame, (0, floor), (size, floor), (200, 190, 175), 2)
        for a, b in BONES:
            cv2.line(frame, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]), (40, 60, 140), thick,
                     cv2.LINE_AA)
        cv2.circle(frame, tuple(int(v) for v in pts[2]), max(4, size // 22), (40, 60, 140), thick, cv2.LINE_AA)
    return frames


def render_dance_video(poses: np.ndarray, audio_path: str | os.PathLike | None, out_path: str | os.PathLike,
                       fps: float = 25.0, size: int = 320) -> None:
    """Write an MP4 (H.264 video, AAC audio) of the stick figure dancing, with the music muxed in.

    Args:
        poses: (T, 15, 2) joints as returned by :func:`dance_from_audio`.
        audio_path: the music (decoded and re-encoded as AAC); None writes a silent video.
        out_path: the .mp4 to write.
        fps: frame rate of ``poses``.
        size: frame width and height in pixels.

    Raises:
        VideoError: the audio cannot be read.
    """
    from fractions import Fraction

    import av

    from videollm.demos.audio import load_audio

    rate = 16000
    audio = load_audio(audio_path, rate) if audio_path is not None else None
    with av.open(os.fspath(out_path), "w") as out:
        video = out.add_stream("h264", rate=Fraction(fps).limit_denominator(1000))
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "23", "preset": "veryfast"}
        sound = out.add_stream("aac", rate=rate, layout="mono") if audio is not None else None
        for frame in render_frames(poses, size):
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(video.encode())
        if sound is not None:
            chunk = 1024  # AAC frame size
            pad = np.zeros(-len(audio) % chunk, np.float32)
            blocks = np.concatenate([audio, pad]).reshape(-1, 1, chunk)  # (n, 1, 1024)
            for i, block in enumerate(blocks):
                af = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
                af.sample_rate = rate
                af.pts = i * chunk
                out.mux(sound.encode(af))
            out.mux(sound.encode())
