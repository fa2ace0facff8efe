"""transformers vision models (CLIP, SigLIP, DINOv2, ...) from a local directory."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from torch import nn

from videollm.errors import ModelError
from videollm.vision.base import VisionEncoder, resolve_hidden_index, split_tokens
from videollm.vision.config import VisionConfig


class HFVisionEncoder(VisionEncoder):
    """A transformers vision model read at one hidden layer.

    Blocks after the requested layer are dropped (they would be computed and thrown away), so reading the
    penultimate layer costs one block less than a full forward pass.

    Args:
        model: a transformers vision model (``CLIPVisionModel``, ``SiglipVisionModel``, ``Dinov2Model``, ...)
            whose config has ``hidden_size``, ``patch_size`` and ``num_hidden_layers`` and whose forward accepts
            ``output_hidden_states``.
        mean: RGB normalisation mean of the model's image processor.
        std: RGB normalisation std.
        image_size: input side S; models with fixed position embeddings interpolate them when S differs from
            their config's ``image_size``.
        layer: hidden-state index (see ``VisionConfig.layer``).
        device: where the model runs.
        dtype: compute and output dtype.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        image_size: int,
        layer: int = -2,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        config = model.config
        patch = config.patch_size
        ph, pw = (patch, patch) if isinstance(patch, int) else tuple(patch)
        if image_size % ph or image_size % pw:
            raise ModelError(
                f"image_size {image_size} is not a multiple of the model's patch size {patch}"
            )
        super().__init__(
            hidden_size=config.hidden_size,
            image_size=image_size,
            patch_grid=(image_size // ph, image_size // pw),
            mean=mean,
            std=std,
            device=device,
            dtype=dtype,
        )
        self._hidden_index = resolve_hidden_index(layer, config.num_hidden_layers)
        _drop_blocks_after(model, config.num_hidden_layers, max(self._hidden_index, 1))
        self.model = model.to(device=self.device, dtype=dtype)
        self._forward_kwargs: dict[str, bool] = {}
        native_size = getattr(config, "image_size", image_size)
        if (
            native_size != image_size
            and "interpolate_pos_encoding"
            in inspect.signature(model.forward).parameters
        ):
            self._forward_kwargs["interpolate_pos_encoding"] = True
        self._freeze()

    def _features(
        self, pixel_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(
            pixel_values=pixel_values, output_hidden_states=True, **self._forward_kwargs
        )
        tokens = out.hidden_states[self._hidden_index]  # (N, T, D)
        return split_tokens(tokens, self.patch_grid)


def _drop_blocks_after(model: nn.Module, num_layers: int, keep: int) -> None:
    """Truncate the model's block list to its first ``keep`` blocks.

    The block list is found structurally (the one ModuleList with ``num_layers`` entries) rather than by
    attribute name, which differs between architectures; if none or several match, nothing is dropped.
    """
    if keep >= num_layers:
        return
    lists = [
        m
        for m in model.modules()
        if isinstance(m, nn.ModuleList) and len(m) == num_layers
    ]
    if len(lists) == 1:
        del lists[0][keep:]


def read_image_processor_stats(
    model_dir: str | Path,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Read ``image_mean`` / ``image_std`` from a model directory's preprocessor_config.json.

    Args:
        model_dir: local directory of a transformers model.

    Returns:
        (mean, std), each three floats in [0, 1] units.
    """
    path = Path(model_dir) / "preprocessor_config.json"
    if not path.is_file():
        raise ModelError(
            f"{model_dir}: no preprocessor_config.json, so the image mean/std of this model are unknown"
        )
    data = json.loads(path.read_text())
    if "image_mean" not in data or "image_std" not in data:
        raise ModelError(f"{path}: has no image_mean/image_std")
    return tuple(float(v) for v in data["image_mean"]), tuple(
        float(v) for v in data["image_std"]
    )


def load_hf_vision_model(
    model_dir: str | Path, pretrained: str | Path | None, strict: bool = False
) -> nn.Module:
    """Build a transformers vision model from a local directory, with weights or randomly initialised.

    A composite config (e.g. a full CLIP or SigLIP checkpoint with a text tower) contributes its
    ``vision_config``; the matching vision-only class reads the vision weights of the full checkpoint.

    Args:
        model_dir: directory with config.json.
        pretrained: directory with safetensors weights, or None for random initialisation.
        strict: also refuse weights the model does not use (off by default: a full CLIP checkpoint carries a
            text tower that the vision model ignores).

    Returns:
        The model, on CPU in float32.
    """
    from transformers import AutoConfig, AutoModel
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    if not (Path(model_dir) / "config.json").is_file():
        raise ModelError(
            f"{model_dir}: not a transformers model directory (no config.json)"
        )
    config = AutoConfig.from_pretrained(model_dir)
    config = getattr(config, "vision_config", None) or config
    if pretrained is None:
        return AutoModel.from_config(config)
    if type(config) not in MODEL_MAPPING:
        raise ModelError(
            f"{model_dir}: transformers has no model class for config {type(config).__name__}"
        )
    model_class = MODEL_MAPPING[type(config)]
    try:
        model, info = model_class.from_pretrained(
            pretrained, config=config, use_safetensors=True, output_loading_info=True
        )
    except (
        OSError
    ) as exc:  # transformers reports a missing or unreadable weights file as OSError
        raise ModelError(
            f"{pretrained}: cannot load safetensors weights ({exc})"
        ) from exc
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise ModelError(
            f"{pretrained}: {len(missing)} weights missing for {model_class.__name__}, e.g. {missing[0]}"
        )
    if strict and info["unexpected_keys"]:
        unexpected = sorted(info["unexpected_keys"])
        raise ModelError(
            f"{pretrained}: {len(unexpected)} weights unused by {model_class.__name__}, e.g. {unexpected[0]}"
        )
    return model


def build_hf(
    cfg: VisionConfig, device: str | torch.device, dtype: torch.dtype
) -> HFVisionEncoder:
    """Build the "hf" backend from a ``VisionConfig`` (model dir, optional weights dir)."""
    mean, std = read_image_processor_stats(cfg.model)
    model = load_hf_vision_model(cfg.model, cfg.pretrained)
    return HFVisionEncoder(
        model,
        mean=mean,
        std=std,
        image_size=cfg.image_size,
        layer=cfg.layer,
        device=device,
        dtype=dtype,
    )
