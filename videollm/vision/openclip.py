"""open_clip image towers (its own ViTs and timm trunks), read at one hidden layer."""

from __future__ import annotations

from pathlib import Path

import torch

from videollm.errors import ModelError
from videollm.vision.base import VisionEncoder
from videollm.vision.config import VisionConfig


class OpenClipVisionEncoder(VisionEncoder):
    """The image tower of an open_clip model, read at one hidden layer via ``forward_intermediates``.

    Blocks after the requested layer are pruned with open_clip's ``prune_intermediate_layers``. The CLS feature
    is the first prefix token; towers without one (e.g. SigLIP trunks) use the mean patch token instead.

    Args:
        visual: ``model.visual`` of an open_clip model created by ``open_clip.create_model`` (which sets its
            ``preprocess_cfg``); must provide ``forward_intermediates`` (ViT-style towers).
        layer: hidden-state index (see ``VisionConfig.layer``); 0 (the embeddings) is not available here.
        device: where the model runs.
        dtype: compute and output dtype.
    """

    def __init__(
        self,
        visual: torch.nn.Module,
        *,
        layer: int = -2,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        if not hasattr(visual, "forward_intermediates") or not hasattr(
            visual, "prune_intermediate_layers"
        ):
            raise ModelError(
                f"open_clip tower {type(visual).__name__} cannot return intermediate layers"
            )
        if layer == 0:
            raise ModelError(
                "open_clip towers do not expose the embedding output (layer 0); use layer >= 1 or < 0"
            )
        # hidden_states[i] is the output of block i - 1; negative indices already agree (-1 = last block).
        block = layer - 1 if layer > 0 else layer
        try:
            take = visual.prune_intermediate_layers(
                [block], prune_norm=True, prune_head=True
            )
        except (
            AssertionError,
            IndexError,
        ) as exc:  # open_clip/timm signal an out-of-range index by assert
            raise ModelError(
                f"vision layer {layer} is out of range for this open_clip model"
            ) from exc
        image_size = visual.preprocess_cfg["size"]
        side = image_size if isinstance(image_size, int) else image_size[0]
        visual = visual.to(device=device, dtype=dtype).requires_grad_(False).eval()
        # Width and grid differ in where each tower keeps them; one tiny forward pass reads both uniformly.
        with torch.inference_mode():
            probe = visual.forward_intermediates(
                torch.zeros(1, 3, side, side, device=device, dtype=dtype),
                indices=take,
                intermediates_only=True,
                output_fmt="NCHW",
            )["image_intermediates"][0]  # (1, D, gh, gw)
        super().__init__(
            hidden_size=probe.shape[1],
            image_size=side,
            patch_grid=(probe.shape[2], probe.shape[3]),
            mean=visual.preprocess_cfg["mean"],
            std=visual.preprocess_cfg["std"],
            device=device,
            dtype=dtype,
        )
        self.visual = visual
        self._take = list(take)
        self._freeze()

    def _features(
        self, pixel_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.visual.forward_intermediates(
            pixel_values,
            indices=self._take,
            intermediates_only=True,
            output_fmt="NCHW",
            output_extra_tokens=True,
        )
        patches = out["image_intermediates"][0].permute(0, 2, 3, 1)  # (N, gh, gw, D)
        prefix = out.get("image_intermediates_prefix")
        if prefix and prefix[0].shape[1] > 0:
            cls = prefix[0][:, 0]  # (N, D)
        else:
            cls = patches.mean(dim=(1, 2))  # (N, D)
        return cls, patches


def build_open_clip(
    cfg: VisionConfig, device: str | torch.device, dtype: torch.dtype
) -> OpenClipVisionEncoder:
    """Build the "open_clip" backend.

    ``cfg.model`` is a built-in open_clip model name or "local-dir:<dir>" (a directory with
    open_clip_config.json); ``cfg.pretrained`` a local .safetensors checkpoint of the full CLIP model, or None
    for random initialisation. Hub names ("hf-hub:") are refused: nothing is downloaded.
    """
    import open_clip

    if cfg.model.startswith("hf-hub:"):
        raise ModelError(
            f"{cfg.model}: hub models are not fetched; download it and pass a local .safetensors file"
        )
    if cfg.pretrained is not None:
        path = Path(cfg.pretrained)
        if path.suffix != ".safetensors" or not path.is_file():
            raise ModelError(
                f"{cfg.pretrained}: open_clip weights must be a local .safetensors file"
            )
    try:
        model = open_clip.create_model(
            cfg.model,
            pretrained=None,
            load_weights=False,
            pretrained_image=False,
            pretrained_text=False,
            force_image_size=cfg.image_size,
        )
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        raise ModelError(f"open_clip cannot build {cfg.model!r}: {exc}") from exc
    if cfg.pretrained is not None:
        try:
            open_clip.load_checkpoint(model, cfg.pretrained, strict=True)
        except (
            RuntimeError
        ) as exc:  # load_state_dict reports missing/unexpected keys as RuntimeError
            raise ModelError(
                f"{cfg.pretrained}: does not fit open_clip model {cfg.model}: {exc}"
            ) from exc
    return OpenClipVisionEncoder(
        model.visual, layer=cfg.layer, device=device, dtype=dtype
    )
