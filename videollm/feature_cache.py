"""Frozen vision features cached on disk (safetensors), so training epochs and evaluations never re-encode a frame.

One file per video (or per synthetic scene): ``cls`` (N, Dv) penultimate-layer CLS, ``tokens`` (N, P*P, Dv) pooled
patch tokens, ``times`` (N,) seconds, plus a JSON ``meta`` string in the header. Files sit in a namespace folder
named by a hash of everything that changes the numbers (vision config, pool, sampling), so a changed encoder never
reads stale features.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from videollm.errors import ModelError, VideoError

Encoder = Callable[[np.ndarray], tuple[Tensor, Tensor]]


@dataclass
class VideoFeatures:
    """Cached features of one video or scene.

    Attributes:
        cls: (N, Ds) float32 per-frame segmentation features (the CLS, or colour histograms; see
            ``SegmentationConfig.feature``).
        tokens: (N, P*P, Dv) float32.
        times: (N,) float64 seconds of each encoded frame.
        meta: JSON-serialisable facts (source path, ground-truth spec, ...).
    """

    cls: Tensor
    tokens: Tensor
    times: Tensor
    meta: dict[str, Any] = field(default_factory=dict)


def namespace(model_config, sampling: str, scene_feature: bool = True) -> str:
    """Folder name for features of this vision tower + pooling + frame sampling (16 hex digits).

    ``scene_feature`` False leaves the segmentation feature out, for caches whose per-frame segmentation features
    are never read (world scene pools: their scene boundaries are the true ones).
    """
    facts = {"vision": model_config.vision.to_dict(), "pool": model_config.bridge.pool, "sampling": sampling}
    # Only a non-default feature is named, so CLS caches written before the option keep their folder names.
    if scene_feature and model_config.segmentation.feature != "cls":
        facts["scene_feature"] = model_config.segmentation.feature
        if model_config.segmentation.feature == "histogram":
            from scenetiling.histogram import DEFAULT_BINS

            facts["scene_feature"] += "-{}x{}x{}".format(*DEFAULT_BINS)
    blob = json.dumps(facts, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


class FeatureCache:
    """A folder of per-video feature files.

    Args:
        root: cache root (created on first write).
        space: namespace from ``namespace()``.
    """

    def __init__(self, root: str | os.PathLike, space: str) -> None:
        self.dir = Path(root) / space

    def path(self, key: str) -> Path:
        """File of ``key``: readable stem + a short hash so distinct keys never collide."""
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[-60:]
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:10]
        return self.dir / f"{stem}-{digest}.safetensors"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, key: str, features: VideoFeatures) -> Path:
        """Write atomically (a killed run never leaves a half file under the final name)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"cls": features.cls.detach().float().cpu().contiguous(),
                   "tokens": features.tokens.detach().float().cpu().contiguous(),
                   "times": features.times.detach().double().cpu().contiguous()}
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata={"key": key, "meta": json.dumps(features.meta)})
        os.replace(tmp, path)
        return path

    def get(self, key: str) -> VideoFeatures:
        """Read the features of ``key`` (raises ``ModelError`` when missing or unreadable)."""
        path = self.path(key)
        if not path.is_file():
            raise ModelError(f"{path}: no cached features for {key!r}")
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            if header.get("key") != key:
                raise ModelError(f"{path}: cached features belong to another key")
            tensors = {name: f.get_tensor(name) for name in ("cls", "tokens", "times")}
        return VideoFeatures(tensors["cls"], tensors["tokens"], tensors["times"], json.loads(header.get("meta", "{}")))


def encode_in_batches(encode: Encoder, items: Sequence[tuple[str, np.ndarray, np.ndarray, dict]],
                      cache: FeatureCache, batch_frames: int = 32, progress: bool = False, desc: str = "") -> int:
    """Encode many short frame stacks with full vision batches and cache each under its key.

    Args:
        encode: frames (B, H, W, 3) uint8 -> (cls (B, Dv), tokens (B, P*P, Dv)).
        items: (key, frames (n, H, W, 3) uint8, times (n,), meta) per video/scene.
        cache: where to write.
        batch_frames: frames per encoder call (items are packed together across boundaries).
        progress: show a tqdm bar.
        desc: bar label.

    Returns:
        Number of frames encoded.
    """
    from tqdm import tqdm

    total = sum(len(frames) for _, frames, _, _ in items)
    bar = tqdm(total=total, unit="frame", desc=desc or "features", disable=not progress)
    pending: list[tuple[str, np.ndarray, np.ndarray, dict]] = []
    count = 0

    def flush() -> None:
        stack = np.concatenate([frames for _, frames, _, _ in pending])  # (B, H, W, 3)
        cls, tokens = encode(stack)
        sizes = [len(frames) for _, frames, _, _ in pending]
        for (key, _, times, meta), c, t in zip(pending, cls.split(sizes), tokens.split(sizes), strict=True):
            cache.put(key, VideoFeatures(c, t, torch.as_tensor(times, dtype=torch.float64), meta))
        bar.update(len(stack))
        pending.clear()

    for item in items:
        pending.append(item)
        count += len(item[1])
        if sum(len(frames) for _, frames, _, _ in pending) >= batch_frames:
            flush()
    if pending:
        flush()
    bar.close()
    return count


def video_features(encode: Encoder, cache: FeatureCache, path: str | os.PathLike, fps: float | None,
                   num_frames: int | None = None) -> VideoFeatures:
    """Features of a video file (or a still image), read from the cache or encoded once and cached.

    Args:
        encode: the vision encoding function (``VideoLLM.encode_frames``).
        cache: the feature cache.
        path: video file, or an image file (.png/.jpg/...) treated as a one-frame video.
        fps: sampling rate; ignored when ``num_frames`` is given.
        num_frames: sample this many frames uniformly instead.

    Returns:
        The features (frames are decoded in batches and never kept). A cached entry is reused only while the file's
        size and modification time are those it was encoded from; a changed file is encoded again.
    """
    from videollm.io import open_video

    key = f"file:{os.path.abspath(path)}"
    try:
        info = os.stat(path)
    except OSError:
        raise VideoError(path, "no such file") from None
    stamp = {"path": str(path), "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    if cache.has(key):
        cached = cache.get(key)
        if all(cached.meta.get(k) == stamp[k] for k in ("size", "mtime_ns")):
            return cached
    if Path(path).suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise VideoError(path, "cannot read this image")
        cls, tokens = encode(np.ascontiguousarray(image[None, ..., ::-1]))
        features = VideoFeatures(cls, tokens, torch.zeros(1, dtype=torch.float64), stamp)
    else:
        with open_video(path) as reader:
            if num_frames is not None:
                batch = reader.sample_uniform(num_frames)
                cls, tokens = encode(batch.frames)
                times = batch.times
            else:
                parts = [(*encode(batch.frames), batch.times) for batch in reader.iter_fps(fps, batch_size=32)]
                if not parts:
                    raise VideoError(path, "no frame could be sampled")
                cls = torch.cat([p[0] for p in parts])  # (N, Dv)
                tokens = torch.cat([p[1] for p in parts])  # (N, P*P, Dv)
                times = np.concatenate([p[2] for p in parts])
        features = VideoFeatures(cls, tokens, torch.as_tensor(np.asarray(times), dtype=torch.float64), stamp)
    cache.put(key, features)
    return features
