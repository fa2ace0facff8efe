"""``videollm.scenes.SceneFeatures``: which per-frame feature SceneTiling runs on in ``find_scenes``.

The mean-patch feature is checked against the encoder's own patch grid (a randomly initialised DINOv2, no weights
needed); the named settings against the CLI's choices; the published setting against the shipped world sample.
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
from videollm.scenes import DEFAULT_SCENE_FEATURES, SCENE_FEATURES, SceneFeatures, find_scenes, scene_features
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
    with pytest.raises(UsageError, match="unknown scene features 'best'"):
        scene_features("best")
    assert scene_features("fast") is SCENE_FEATURES["fast"]


def test_cli_accepts_every_named_setting_and_defaults_to_the_library_default(
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
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
