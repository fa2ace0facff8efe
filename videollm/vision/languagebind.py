"""LanguageBind's video tower (the vision encoder of the published VideoLLaMB model) on transformers' CLIP classes.

The tower is a CLIP ViT (ViT-L/14 at 224 px in the release) whose every encoder layer first mixes each patch position
over time: frames are taken in consecutive blocks of ``TEMPORAL_BLOCK`` (8), a learned temporal embedding is added to
the residual stream, then a pre-LN temporal self-attention over the block's frames is added; after that the layer's
ordinary CLIP block runs on each frame. Frames in different blocks never interact. The CLIP parts are transformers'
``CLIPVisionModel`` (its parameter names are the checkpoint's, minus the checkpoint's prefix); the temporal parts
are ``TemporalMixer`` modules beside it, named as in the checkpoint (``encoder.layers.{i}.temporal_embedding``,
``.temporal_attn.*``, ``.temporal_layer_norm1.*``).

The release's code requires a multiple of 8 frames; here a batch whose length is not a multiple of 8 gets a
shorter last block (the first frames of the temporal embedding), so a streamed scene of any length can be encoded.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from videollm.errors import ModelError
from videollm.vision.base import VisionEncoder, resolve_hidden_index, split_tokens

#: Frames mixed together by the temporal attention (hard-wired in the release).
TEMPORAL_BLOCK = 8
#: The image statistics LanguageBind normalises with (OpenAI CLIP's).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: CLIP ViTs use 64-wide attention heads; the head count is not stored with the weights.
HEAD_DIM = 64


class TemporalMixer(nn.Module):
    """One layer's temporal part: ``x += emb[:n]``; ``x += Attn(LN(x))`` over the frames of each block."""

    def __init__(self, config) -> None:
        from transformers.models.clip.modeling_clip import CLIPAttention

        super().__init__()
        self.temporal_embedding = nn.Parameter(torch.zeros(1, TEMPORAL_BLOCK, config.hidden_size))
        self.temporal_attn = CLIPAttention(config)
        self.temporal_layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, T, D) frames x tokens -> (N, T, D), frames mixed within consecutive blocks of 8."""
        n, t, d = x.shape
        out = []
        for lo in range(0, n, TEMPORAL_BLOCK):
            block = x[lo:lo + TEMPORAL_BLOCK]  # (b, T, D)
            b = block.shape[0]
            seq = block.permute(1, 0, 2) + self.temporal_embedding[:, :b]  # (T, b, D): each token over time
            seq = seq + self.temporal_attn(self.temporal_layer_norm1(seq))[0]
            out.append(seq.permute(1, 0, 2))
        return torch.cat(out)


class LanguageBindVideoModel(nn.Module):
    """CLIP vision transformer + one ``TemporalMixer`` per layer; ``forward`` returns the hidden states up to a
    layer (index 0 is the pre-LN embedding output, as transformers' ``hidden_states``)."""

    def __init__(self, config) -> None:
        from transformers import CLIPVisionModel

        super().__init__()
        self.config = config
        self.clip = CLIPVisionModel(config)
        self.temporal = nn.ModuleList(TemporalMixer(config) for _ in range(config.num_hidden_layers))

    def forward(self, pixel_values: Tensor, upto: int) -> Tensor:
        """(N, 3, S, S) -> the hidden state after ``upto`` layers, (N, 1 + gh*gw, D)."""
        clip = self.clip
        x = clip.pre_layrnorm(clip.embeddings(pixel_values))
        for layer, temporal in zip(clip.encoder.layers[:upto], self.temporal[:upto], strict=True):
            x = layer(temporal(x), None)
        return x

    def load_checkpoint(self, tensors: Mapping[str, Tensor], label: str, prefix: str = "") -> None:
        """Load tensors named as in the release (after its tower ``prefix``, which errors put back); every one must
        be used, none missing."""
        own = self.checkpoint_names()
        missing = sorted(set(own) - set(tensors))
        unexpected = sorted(set(tensors) - set(own))
        if missing or unexpected:
            raise ModelError(f"{label}: video tower weights do not match a LanguageBind tower ("
                             + (f"missing {prefix}{missing[0]}" if missing else f"unexpected {prefix}{unexpected[0]}")
                             + ")")
        state = {own[k]: v for k, v in tensors.items()}
        wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(self.state_dict()[k].shape)]
        if wrong:
            raise ModelError(f"{label}: video tower tensor {prefix}{wrong[0]} has the wrong shape")
        self.load_state_dict(state, strict=True)

    def checkpoint_names(self) -> dict[str, str]:
        """Release name (without the tower prefix) -> this module's parameter name."""
        names = {k: f"clip.{k}" for k in self.clip.state_dict()}
        for i, temporal in enumerate(self.temporal):
            for k in temporal.state_dict():
                names[f"encoder.layers.{i}.{k}"] = f"temporal.{i}.{k}"
        return names


def tower_config(tensors: Mapping[str, Tensor], hidden_act: str = "gelu"):
    """The ``CLIPVisionConfig`` of a tower from its weights' shapes (names without the tower prefix).

    Width, depth, MLP size, patch size and input size are read from the tensors; heads are width / 64 (every CLIP
    ViT); the activation is LanguageBind's GELU.
    """
    from transformers import CLIPVisionConfig

    try:
        hidden = int(tensors["embeddings.class_embedding"].shape[0])
        patch = int(tensors["embeddings.patch_embedding.weight"].shape[-1])
        positions = int(tensors["embeddings.position_embedding.weight"].shape[0])
        ffn = int(tensors["encoder.layers.0.mlp.fc1.weight"].shape[0])
    except KeyError as err:
        raise ModelError(f"vision tower weights lack {err.args[0]}") from None
    layers = 1 + max(int(k.split(".")[2]) for k in tensors if k.startswith("encoder.layers."))
    side = round((positions - 1) ** 0.5)
    if side * side != positions - 1:
        raise ModelError(f"vision tower: {positions} position embeddings do not make a square patch grid")
    if hidden % HEAD_DIM and hidden > HEAD_DIM:
        raise ModelError(f"vision tower: width {hidden} is not a whole number of 64-wide heads")
    config = CLIPVisionConfig(hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                              num_attention_heads=max(1, hidden // HEAD_DIM), image_size=side * patch,
                              patch_size=patch, hidden_act=hidden_act, layer_norm_eps=1e-5)
    config._attn_implementation = "sdpa"
    return config


class LanguageBindVideoEncoder(VisionEncoder):
    """``VisionEncoder`` over a ``LanguageBindVideoModel``: CLS and patch grid of one hidden layer.

    Frames are mixed in blocks of 8 consecutive frames of each call's batch (``encode`` batches by 32), so the
    caller decides which frames share a block by the order and batching it passes them in.
    """

    def __init__(self, model: LanguageBindVideoModel, *, layer: int = -2, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        config = model.config
        side = config.image_size // config.patch_size
        super().__init__(hidden_size=config.hidden_size, image_size=config.image_size, patch_grid=(side, side),
                         mean=CLIP_MEAN, std=CLIP_STD, device=device, dtype=dtype)
        self._upto = max(resolve_hidden_index(layer, config.num_hidden_layers), 0)
        self.model = model.to(device=self.device, dtype=dtype)
        self._freeze()

    def _features(self, pixel_values: Tensor) -> tuple[Tensor, Tensor]:
        return split_tokens(self.model(pixel_values, self._upto), self.patch_grid)
