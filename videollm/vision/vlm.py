"""A vision-language model's own vision tower + connector as a ``VisionEncoder`` (``videollm.official.vlm``).

Each frame goes through the family's image path for one video frame, so its tokens are what the backbone's LM
was trained to read: SmolVLM2's SigLIP + pixel-shuffle connector (one image, no splitting); LLaVA-OneVision's
SigLIP at its feature layer + projector + 2x bilinear pooling (``get_video_features`` of a one-frame video,
without the trailing newline); InternVL's InternViT + pixel shuffle + MLP projector (``get_image_features``, as
its processor feeds each video frame). The tokens are laid out on their grid as ``patches`` (width = the LM's
hidden size); ``cls`` is their mean (what SceneTiling reads when ``segmentation.feature`` is "cls").
"""

from __future__ import annotations

import torch
from torch import nn

from videollm.vision.base import VisionEncoder


class VLMVisionEncoder(VisionEncoder):
    """Frames -> the backbone's visual tokens in the LM's input space.

    Args:
        vlm: a loaded ``SmolVLMForConditionalGeneration``, ``LlavaOnevisionForConditionalGeneration`` or
            ``InternVLForConditionalGeneration``.
        mean, std: the family's image normalisation.
        device: where it runs.
        dtype: compute and output dtype.
    """

    def __init__(self, vlm: nn.Module, *, mean, std, device="cpu", dtype=torch.float32) -> None:
        from videollm.official.vlm import square, token_grid

        config = vlm.config
        grid = token_grid(config)
        super().__init__(hidden_size=config.text_config.hidden_size,
                         image_size=square(config.vision_config.image_size),
                         patch_grid=(grid, grid), mean=mean, std=std, device=device, dtype=dtype)
        self.vlm = vlm.model  # the inner model: vision tower, connector, text model (the text model is unused here)
        self.vlm.to(device=device, dtype=dtype)
        self._freeze()

    def _features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        config = self.vlm.config
        if config.model_type == "smolvlm":
            out = self.vlm.get_image_features(pixel_values=pixel_values[:, None])
            tokens = torch.stack(list(out.pooler_output))  # (N, T, H)
        elif config.model_type == "internvl":
            tokens = self.vlm.get_image_features(
                pixel_values=pixel_values, vision_feature_layer=config.vision_feature_layer,
                vision_feature_select_strategy=config.vision_feature_select_strategy).pooler_output  # (N, T, H)
        else:
            out = self.vlm.get_video_features(
                pixel_values_videos=pixel_values[:, None], vision_feature_layer=config.vision_feature_layer,
                vision_feature_select_strategy=config.vision_feature_select_strategy)
            tokens = out.pooler_output[:, :-1]  # (N, T, H): each one-frame video ends with the newline embedding
        n, t, h = tokens.shape
        gh, gw = self.patch_grid
        return tokens.mean(dim=1), tokens.reshape(n, gh, gw, h)
