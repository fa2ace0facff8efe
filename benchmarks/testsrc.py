"""Test-source videos for the batch benchmarks: a hard cut every few seconds, moving content, any length.

Each scene is one procedural pattern (colour bars, a gradient, a checkerboard or rings) in its own colours,
scrolling at its own speed, with a white box crossing the frame: what ffmpeg's ``testsrc`` family gives, drawn
with numpy and written with PyAV (H.264), so no ffmpeg binary is needed.

Run: ``python benchmarks/testsrc.py OUT.mp4 --seconds 2048 [--fps 25] [--cut-every 8]``.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import numpy as np


def _pattern(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """One scene's base image, (H, W, 3) uint8."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = int(rng.integers(4))
    if kind == 0:  # vertical colour bars
        colours = rng.integers(0, 256, (8, 3))
        image = colours[(x * 8 / width).astype(int)]
    elif kind == 1:  # two-colour diagonal gradient
        a, b = rng.integers(0, 256, (2, 3))
        w = ((x + y) / (width + height))[..., None]
        image = a * (1 - w) + b * w
    elif kind == 2:  # checkerboard
        a, b = rng.integers(0, 256, (2, 3))
        cell = int(rng.integers(12, 40))
        image = np.where((((x // cell) + (y // cell)) % 2 == 0)[..., None], a, b)
    else:  # concentric rings
        a, b = rng.integers(0, 256, (2, 3))
        r = np.hypot(x - width / 2, y - height / 2)
        image = np.where(((r // int(rng.integers(8, 24))) % 2 == 0)[..., None], a, b)
    return np.asarray(image, np.uint8)


def write_testsrc(path: str | Path, seconds: float, fps: float = 25.0, cut_every: float = 8.0,
                  size: tuple[int, int] = (320, 240), seed: int = 0) -> Path:
    """Write a test-source video of ``seconds`` seconds with a cut every ``cut_every`` seconds; returns ``path``."""
    import av

    width, height = size
    rng = np.random.default_rng(seed)
    frames_per_scene = max(1, int(round(cut_every * fps)))
    total = int(round(seconds * fps))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        base = speed = None
        for i in range(total):
            if i % frames_per_scene == 0:
                base, speed = _pattern(rng, width, height), int(rng.integers(1, 6))
            t = i % frames_per_scene
            frame = np.roll(base, t * speed, axis=1)
            bx = (t * 4) % (width - 24)
            frame[height // 2 - 12:height // 2 + 12, bx:bx + 24] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--cut-every", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_testsrc(args.out, args.seconds, args.fps, args.cut_every, seed=args.seed)


if __name__ == "__main__":
    main()
