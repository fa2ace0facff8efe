"""Scene detection on a video file: decode → encode (CLS) → SceneTiling → time spans."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from videollm.errors import VideoError
from videollm.segmentation import SegmentationConfig, segment_ends


@dataclass
class SceneResult:
    """Scenes of one video.

    Attributes:
        video: the path given.
        duration: video duration in seconds.
        fps: the sampling rate used.
        times: (T,) seconds of the sampled frames.
        ends: index (into ``times``) of the last sampled frame of each scene.
        scenes: (start, end) seconds per scene; contiguous, from 0 to ``duration``. A cut is placed half-way between
            the last frame of one scene and the first sampled frame of the next.
        cls: (T, D) the features SceneTiling ran on (kept for plotting).
        alpha: the threshold weight the cuts were chosen with (drawn by ``plot``).
    """

    video: str
    duration: float
    fps: float
    times: np.ndarray
    ends: list[int]
    scenes: list[tuple[float, float]]
    cls: torch.Tensor
    alpha: float = 0.5

    def to_json(self) -> dict:
        return {"video": self.video, "duration": round(self.duration, 3), "fps": self.fps,
                "scenes": [{"start": round(s, 3), "end": round(e, 3)} for s, e in self.scenes]}

    def plot(self, path: str | os.PathLike) -> None:
        import scenetiling

        scenetiling.plot(self.cls, self.ends, path, times=self.times, alpha=self.alpha)


def scene_spans(times: np.ndarray, ends: list[int], duration: float) -> list[tuple[float, float]]:
    """Contiguous (start, end) seconds per segment from sampled-frame times and segment end indices."""
    cuts = [0.5 * (times[e] + times[e + 1]) for e in ends[:-1]]
    bounds = [0.0, *cuts, max(duration, float(times[-1]) if len(times) else 0.0)]
    return [(float(a), float(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def find_scenes(path: str, vision_cfg, seg_cfg: SegmentationConfig, device="cpu", dtype=torch.float32,
                progress: bool = False, encoder=None) -> SceneResult:
    """Run SceneTiling over a video file.

    Args:
        path: video file.
        vision_cfg: ``VisionConfig`` of the encoder whose penultimate CLS feeds SceneTiling.
        seg_cfg: sampling fps and the segmentation rule.
        device, dtype: where and in what precision the encoder runs.
        progress: show a progress bar on stderr.
        encoder: an already built encoder (skips building one from ``vision_cfg``).

    Returns:
        The scenes; raises ``VideoError`` for unreadable input or fewer than 2 sampled frames.
    """
    from tqdm import tqdm

    from videollm.features import collect, encode_batches
    from videollm.io import open_video
    from videollm.vision import build_vision_encoder

    with open_video(path) as reader:
        meta = reader.meta
        if meta.num_frames < 2:
            raise VideoError(path, f"video has {meta.num_frames} frame(s); scene detection needs at least 2")
        if encoder is None:
            encoder = build_vision_encoder(vision_cfg, device=device, dtype=dtype)
        expected = max(1, math.ceil(meta.duration * min(seg_cfg.fps, meta.fps)))
        bar = tqdm(total=expected, unit="frame", desc="scenes", disable=not progress, leave=False)
        batches = reader.iter_fps(seg_cfg.fps, batch_size=16)
        feats = collect(_tick(encode_batches(batches, encoder), bar))
        bar.close()
    if len(feats.times) < 2:
        raise VideoError(path, f"only {len(feats.times)} frame sampled at {seg_cfg.fps:g} fps; "
                               "scene detection needs at least 2 (raise --fps)")
    ends = segment_ends(feats.cls, seg_cfg)
    return SceneResult(str(path), float(meta.duration), seg_cfg.fps, feats.times, ends,
                       scene_spans(feats.times, ends, float(meta.duration)), feats.cls, seg_cfg.alpha)


def _tick(batches, bar):
    for b in batches:
        bar.update(len(b.times))
        yield b
