"""``videollm.scenes``: which per-frame feature SceneTiling runs on in ``find_scenes``.

The colour histogram is checked against OpenCV's HSV conversion and on frames of known colours; the mean-patch
feature against the encoder's own patch grid (a randomly initialised DINOv2, no weights needed); the named settings
against the CLI's choices; the default and the published setting against the shipped world sample's true cuts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from videollm.cli import build_parser
from videollm.errors import UsageError
import scenetiling
from videollm.commands.scenes import FEATURE_CHOICES
from videollm.scenes import (DEFAULT_SCENE_FEATURES, SCENE_FEATURES, HistogramFeatures, SceneFeatures, find_scenes,
                             scene_features)
from videollm.segmentation import SegmentationConfig
from videollm.vision import build_vision_encoder
from videollm.vision.config import VisionConfig

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "world" / "video" / "video_000001.mp4"


def test_vision_config_overrides_only_what_is_set() -> None:
    base = VisionConfig(image_size=224, layer=-2)
    fast = SceneFeatures(pool="mean", layer=4, image_size=112).vision_config(base)
    assert (fast.image_size, fast.layer) == (112, 4)
    assert (fast.backend, fast.model, fast.pretrained) == (base.backend, base.model, base.pretrained)
    assert SceneFeatures(pool="cls").vision_config(base) == base
    assert (base.image_size, base.layer) == (224, -2)  # the model's config is not modified


def test_published_setting_is_the_published_feature() -> None:
    assert SCENE_FEATURES["published"] == SceneFeatures(pool="cls", layer=None, image_size=None)


def test_bad_settings_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="pool"):
        SceneFeatures(pool="max")
    with pytest.raises(UsageError, match="image_size"):
        SceneFeatures(image_size=0)
    with pytest.raises(UsageError, match="histogram"):
        HistogramFeatures(bins=(8, 0, 4))
    with pytest.raises(UsageError, match="unknown scene features 'best'"):
        scene_features("best")
    assert scene_features("fast") is SCENE_FEATURES["fast"]


def test_cli_accepts_every_named_setting_and_defaults_to_the_library_default(
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert FEATURE_CHOICES == tuple(SCENE_FEATURES)
    assert parser.parse_args(["scenes", "v.mp4"]).features == DEFAULT_SCENE_FEATURES
    for name in SCENE_FEATURES:
        assert parser.parse_args(["scenes", "v.mp4", "--features", name]).features == name
    with pytest.raises(SystemExit):
        parser.parse_args(["scenes", "v.mp4", "--features", "best"])
    assert "invalid choice: 'best'" in capsys.readouterr().err


def test_mean_pool_is_the_mean_patch_token_of_the_chosen_layer(tmp_path: Path,
                                                                 video_factory: Callable[..., Path]) -> None:
    torch.manual_seed(0)
    spec = SceneFeatures(pool="mean", layer=2, image_size=56)
    encoder = build_vision_encoder(spec.vision_config(VisionConfig(pretrained=None)))
    assert encoder.patch_grid == (4, 4)
    video = video_factory(tmp_path / "v.mp4", n_frames=12, fps=4, pattern="gradient")
    seg = SegmentationConfig(fps=2.0)
    result = find_scenes(str(video), VisionConfig(pretrained=None), seg, encoder=encoder, features=spec)

    from videollm.io import open_video

    with open_video(str(video)) as reader:
        frames = np.concatenate([b.frames for b in reader.iter_fps(2.0)])  # (T, H, W, 3)
    out = encoder.encode(frames)
    expected = out.patches.float().mean(dim=(1, 2))  # (T, D)
    assert result.features.shape == (len(result.times), encoder.hidden_size) == expected.shape
    torch.testing.assert_close(result.features, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(result.features, out.cls.float(), atol=1e-3)  # the CLS token is a different feature
    cls_result = find_scenes(str(video), VisionConfig(pretrained=None), seg, encoder=encoder,
                             features=SceneFeatures(pool="cls"))
    torch.testing.assert_close(cls_result.features, out.cls.float(), rtol=1e-4, atol=1e-5)


def test_published_features_cut_the_sample_at_its_true_cuts() -> None:
    truth = json.loads(SAMPLE.with_suffix(".json").read_text())["cut_times"]
    vision = VisionConfig()
    result = find_scenes(str(SAMPLE), vision, SegmentationConfig(fps=2.0), features="published")
    assert result.features.shape[1] == 384
    cuts = [start for start, _ in result.scenes[1:]]
    assert len(cuts) == len(truth)
    assert all(abs(c - t) <= 1.0 for c, t in zip(sorted(cuts), sorted(truth), strict=True)), (cuts, truth)


def _hsv_bin_reference(frames: np.ndarray, bins: tuple[int, int, int]) -> np.ndarray:
    """The same histogram through OpenCV's float RGB->HSV conversion (hue in degrees), every pixel counted."""
    import cv2

    n_h, n_s, n_v = bins
    rows = []
    for frame in frames:
        hsv = cv2.cvtColor(frame.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV).reshape(-1, 3)
        h = np.minimum((hsv[:, 0] / 360.0 * n_h).astype(int), n_h - 1)
        s = np.minimum((hsv[:, 1] * n_s).astype(int), n_s - 1)
        v = np.minimum((hsv[:, 2] * n_v).astype(int), n_v - 1)
        counts = np.bincount((h * n_s + s) * n_v + v, minlength=n_h * n_s * n_v)
        rows.append(np.sqrt(counts / counts.sum()))
    return np.stack(rows)


@pytest.mark.parametrize("bins", [(8, 4, 4), (16, 3, 5)])
def test_histogram_matches_opencv_hsv(bins: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 20, 30, 3), dtype=np.uint8)
    frames[0, :5] = 0  # black: hue and saturation 0
    frames[0, 5:10] = 255  # white
    frames[1, :, :10] = (200, 30, 30)  # a saturated red
    got = scenetiling.hsv_histograms(frames, bins=bins, grid=64).numpy()  # grid >= frame: every pixel
    ref = _hsv_bin_reference(frames, bins)
    # A pixel on a bin edge may land on either side in float32 (each such pixel moves 2/600 of the L1 mass); random
    # colours put a handful of the 600 pixels per frame on an edge.
    assert np.abs(got**2 - ref**2).sum(axis=1).max() <= 10 / 600
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)


def test_histogram_of_known_colours() -> None:
    frames = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    frames[1] = (0, 0, 255)  # pure blue: hue 240 deg, saturation 1, value 1
    frames[2, :, :4] = (0, 0, 255)
    hist = scenetiling.hsv_histograms(frames, bins=(6, 2, 2)).reshape(3, 6, 2, 2)
    assert hist[0, 0, 0, 0] == 1.0 and hist[0].sum() == 1.0  # black: one bin
    assert hist[1, 4, 1, 1] == 1.0 and hist[1].sum() == 1.0  # blue: hue sector 4 of 6, top saturation and value
    torch.testing.assert_close(hist[2, 4, 1, 1], torch.tensor(0.5**0.5))  # half blue, half black
    # Cosine of square-rooted histograms is the Bhattacharyya coefficient: same colours 1, disjoint colours 0.
    sims = scenetiling.similarities(scenetiling.hsv_histograms(frames))
    torch.testing.assert_close(sims, torch.tensor([0.0, 0.5**0.5]))


def test_histogram_reads_a_bounded_pixel_grid() -> None:
    frame = np.zeros((1, 1000, 1500, 3), dtype=np.uint8)
    frame[0, :, 750:] = (255, 255, 0)  # right half yellow
    hist = scenetiling.hsv_histograms(frame, bins=(6, 2, 2), grid=10)
    torch.testing.assert_close(hist.square().sum(), torch.tensor(1.0))
    torch.testing.assert_close(hist[0].reshape(6, 2, 2)[1, 1, 1], torch.tensor(0.5**0.5))  # 5 of 10 columns
    with pytest.raises(TypeError, match="uint8"):
        scenetiling.hsv_histograms(frame.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        scenetiling.hsv_histograms(frame[..., :2])


def test_default_histogram_features_cut_the_sample_at_its_true_cuts() -> None:
    truth = json.loads(SAMPLE.with_suffix(".json").read_text())["cut_times"]
    result = find_scenes(str(SAMPLE), VisionConfig(), SegmentationConfig(fps=2.0, min_len=2))
    assert result.features.shape[1] == 8 * 4 * 8
    cuts = [start for start, _ in result.scenes[1:]]
    assert len(cuts) == len(truth)
    assert all(abs(c - t) <= 1.0 for c, t in zip(sorted(cuts), sorted(truth), strict=True)), (cuts, truth)
