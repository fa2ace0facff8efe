"""Scene detection on a video file: decode → one feature per frame → SceneTiling → time spans.

The SceneTiling rule is always the published one (``scenetiling.segment_ends``); what can change is the per-frame
feature it runs on. The published model feeds it the vision encoder's penultimate-layer CLS at the encoder's input
size (``"published"``). ``"fast"`` is the mean patch token after block 4 at 112 px (a fraction of the encoder
compute). ``videollm scenes`` defaults to ``"histogram"``: each frame's square-rooted HSV colour histogram
(``scenetiling.histogram``), no neural network at all. On the scene-cut benchmark (real footage, synthetic world,
held-out world; benchmarks/scenecuts.py measures all three) the histogram with a 1 s minimum scene cut every video
as accurately as PySceneDetect, and decoding is then most of the time. The histogram path runs in NumPy alone
(``scenetiling.histogram.hsv_histogram_array``, ``scenetiling.numpy_rule``): torch is imported only for the
encoder features, so ``videollm scenes`` starts in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from scenetiling.histogram import DEFAULT_BINS, DEFAULT_GRID, hsv_histogram_array
from videollm.errors import UsageError, VideoError
from videollm.segmentation import SegmentationConfig, segment_ends

if TYPE_CHECKING:
    import torch

POOLS = ("cls", "mean")


@dataclass(frozen=True)
class SceneFeatures:
    """Which per-frame feature SceneTiling runs on in ``find_scenes``.

    Attributes:
        pool: "cls" (the [CLS] token, as published) or "mean" (the mean of the frame's patch tokens).
        layer: hidden-state index read from the encoder (``VisionConfig.layer`` convention: 0 embeddings, i the
            output of block i, negative from the end); None keeps the vision config's layer. Blocks after it are
            not run, so a shallow layer is also a cheap one.
        image_size: encoder input side in pixels; None keeps the vision config's size. Must be a multiple of the
            encoder's patch size.
    """

    pool: str = "cls"
    layer: int | None = None
    image_size: int | None = None

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise UsageError(f"scene feature pool must be one of {', '.join(POOLS)}, got {self.pool!r}")
        if self.image_size is not None and self.image_size < 1:
            raise UsageError(f"scene feature image_size must be >= 1, got {self.image_size!r}")

    def vision_config(self, vision_cfg):
        """The ``VisionConfig`` of the encoder that computes these features: ``vision_cfg`` with the layer and
        input size overridden where set (same backend and weights)."""
        changes = {k: v for k, v in (("layer", self.layer), ("image_size", self.image_size)) if v is not None}
        return dataclasses.replace(vision_cfg, **changes)


@dataclass(frozen=True)
class HistogramFeatures:
    """Colour-histogram per-frame features (``scenetiling.hsv_histograms``): no encoder is built or run.

    Attributes:
        bins: hue, saturation and value bins.
        grid: pixels are read on at most grid x grid evenly spaced positions of each frame.
    """

    bins: tuple[int, int, int] = DEFAULT_BINS
    grid: int = DEFAULT_GRID

    def __post_init__(self) -> None:
        if len(self.bins) != 3 or min(self.bins) < 1 or self.grid < 1:
            raise UsageError(f"histogram features need 3 bin counts >= 1 and grid >= 1, got {self.bins}, {self.grid}")


# Chosen with DINOv2 ViT-S/14 at 2 fps and alpha 0.5 on the scene-cut benchmark videos: the mean patch token of an
# early block had boundary F1 >= the published CLS on every suite; shallow and low-resolution is also the cheap end.
SCENE_FEATURES: dict[str, SceneFeatures | HistogramFeatures] = {
    "histogram": HistogramFeatures(),
    "fast": SceneFeatures(pool="mean", layer=4, image_size=112),
    "published": SceneFeatures(pool="cls"),
}
DEFAULT_SCENE_FEATURES = "histogram"


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
        features: (T, D) the per-frame features SceneTiling ran on (kept for plotting): a float32 array for
            histograms, a tensor for encoder features.
        alpha: the threshold weight the cuts were chosen with (drawn by ``plot``).
    """

    video: str
    duration: float
    fps: float
    times: np.ndarray
    ends: list[int]
    scenes: list[tuple[float, float]]
    features: np.ndarray | torch.Tensor
    alpha: float = 0.5

    def to_json(self) -> dict:
        return {"video": self.video, "duration": round(self.duration, 3), "fps": self.fps,
                "scenes": [{"start": round(s, 3), "end": round(e, 3)} for s, e in self.scenes]}

    def plot(self, path: str | os.PathLike) -> None:
        import scenetiling

        scenetiling.plot(self.features, self.ends, path, times=self.times, alpha=self.alpha)


def video_end(last_time: float, fps: float, duration: float | None = None) -> float:
    """Where a video's last scene ends: its duration when known (a file), else half a sampling interval after the
    last sampled frame (a live source), matching the half-way rule of every cut."""
    if duration is not None and duration >= last_time:
        return float(duration)
    return float(last_time) + 0.5 / fps


def scene_spans(times: np.ndarray, ends: list[int], duration: float, fps: float) -> list[tuple[float, float]]:
    """Contiguous (start, end) seconds per segment from sampled-frame times and segment end indices: cuts half-way
    between a scene's last sampled frame and the next one, the last scene ending at ``video_end``."""
    cuts = [0.5 * (times[e] + times[e + 1]) for e in ends[:-1]]
    bounds = [0.0, *cuts, video_end(float(times[-1]), fps, duration) if len(times) else duration]
    return [(float(a), float(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def scene_features(name: str | SceneFeatures | HistogramFeatures) -> SceneFeatures | HistogramFeatures:
    """A feature spec from one of the names in ``SCENE_FEATURES`` (an instance is returned as is)."""
    if isinstance(name, SceneFeatures | HistogramFeatures):
        return name
    if name not in SCENE_FEATURES:
        raise UsageError(f"unknown scene features {name!r}; choose one of {', '.join(SCENE_FEATURES)}")
    return SCENE_FEATURES[name]


def find_scenes(path: str, vision_cfg, seg_cfg: SegmentationConfig, device="cpu", dtype=None,
                progress: bool = False, encoder=None,
                features: str | SceneFeatures | HistogramFeatures = DEFAULT_SCENE_FEATURES) -> SceneResult:
    """Run SceneTiling over a video file.

    Args:
        path: video file.
        vision_cfg: ``VisionConfig`` of the model's encoder (backend and weights; ``features`` may override its
            layer and input size). Unused by histogram features.
        seg_cfg: sampling fps and the segmentation rule.
        device, dtype: where and in what precision the encoder runs (dtype None: float32).
        progress: show a progress bar on stderr.
        encoder: an already built encoder for ``scene_features(features).vision_config(vision_cfg)`` (skips
            building one).
        features: which per-frame feature the rule runs on: a ``SCENE_FEATURES`` name, a ``SceneFeatures`` or a
            ``HistogramFeatures``.

    Returns:
        The scenes; raises ``VideoError`` for unreadable input or fewer than 2 sampled frames.
    """
    from tqdm import tqdm

    from videollm.io import open_video

    spec = scene_features(features)
    with open_video(path) as reader:
        meta = reader.meta
        if meta.num_frames < 2:
            raise VideoError(path, f"video has {meta.num_frames} frame(s); scene detection needs at least 2")
        expected = max(1, math.ceil(meta.duration * min(seg_cfg.fps, meta.fps)))
        bar = tqdm(total=expected, unit="frame", desc="scenes", disable=not progress, leave=False)
        batches = _tick(reader.iter_fps(seg_cfg.fps, batch_size=16), bar)
        if isinstance(spec, HistogramFeatures):  # NumPy only: no torch import
            parts = [(b.times, hsv_histogram_array(b.frames, spec.bins, spec.grid)) for b in batches]
            times = np.concatenate([t for t, _ in parts]) if parts else np.zeros(0)
            per_frame = (np.concatenate([h for _, h in parts]) if parts
                         else np.zeros((0, math.prod(spec.bins)), np.float32))
        else:
            import torch

            from videollm.features import collect, encode_batches
            from videollm.vision import build_vision_encoder

            if encoder is None:
                encoder = build_vision_encoder(spec.vision_config(vision_cfg), device=device,
                                               dtype=dtype or torch.float32)
            # Pooling the patch grid to 1 x 1 is the mean over all patch tokens.
            feats = collect(encode_batches(batches, encoder, pool=1 if spec.pool == "mean" else None))
            times = feats.times
            per_frame = feats.tokens[:, 0] if spec.pool == "mean" else feats.cls  # (T, D)
        bar.close()
    if len(times) < 2:
        raise VideoError(path, f"only {len(times)} frame sampled at {seg_cfg.fps:g} fps; "
                               "scene detection needs at least 2 (raise --fps)")
    ends = segment_ends(per_frame, seg_cfg)
    return SceneResult(str(path), float(meta.duration), seg_cfg.fps, times, ends,
                       scene_spans(times, ends, float(meta.duration), seg_cfg.fps), per_frame, seg_cfg.alpha)


def _tick(batches, bar):
    for b in batches:
        bar.update(len(b.times))
        yield b
