"""The backend-agnostic vision encoder interface: preprocessing, batching, precision, frozen weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from videollm.errors import ModelError, UsageError
from videollm.io.transforms import resize_center_crop

Frames = np.ndarray | torch.Tensor


@dataclass
class VisionOutput:
    """Per-frame features from one hidden layer of a vision encoder.

    Attributes:
        cls: (N, D) the [CLS] token of each frame (mean of the patch tokens for models without one, e.g. SigLIP).
        patches: (N, gh, gw, D) the patch tokens laid out on the image grid (row-major, top-left first).
    """

    cls: torch.Tensor
    patches: torch.Tensor


def frames_to_nchw(frames: Frames) -> torch.Tensor:
    """Check and convert a batch of uint8 RGB frames to a (N, 3, H, W) uint8 tensor (no copy where possible).

    Args:
        frames: (N, H, W, 3) numpy array or tensor, or (N, 3, H, W) tensor/array, dtype uint8. A trailing axis of
            size 3 is read as channels-last.

    Returns:
        (N, 3, H, W) uint8 tensor on the frames' device.
    """
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise UsageError(
            f"frames must be a numpy array or torch tensor, got {type(frames).__name__}"
        )
    if frames.dtype != torch.uint8:
        raise UsageError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim != 4 or 3 not in (frames.shape[1], frames.shape[-1]):
        raise UsageError(
            f"frames must have shape (N, H, W, 3) or (N, 3, H, W), got {tuple(frames.shape)}"
        )
    if frames.shape[-1] == 3:
        frames = frames.permute(0, 3, 1, 2)  # (N, 3, H, W)
    return frames


class VisionEncoder(nn.Module):
    """A frozen image encoder returning one hidden layer's CLS token and patch grid per frame.

    Subclasses build the model and implement ``_features``; this class owns preprocessing, batching, precision
    and freezing. ``dtype`` is both the compute dtype (weights are cast to it) and the dtype of returned
    features. ``torch.bfloat16`` pays off only where the CPU computes it natively (AVX-512 BF16 or AMX); on an
    AVX2-only CPU it ran DINOv2-S 6x slower than float32 (``benchmarks/encoder_options.py``). PyTorch keeps LayerNorm
    and softmax statistics in float32 for bf16 tensors. The encoder never moves itself to a GPU: pass ``device``.

    Args:
        hidden_size: feature width D.
        image_size: side S of the square model input.
        patch_grid: (gh, gw) patch tokens per side at ``image_size``.
        mean: per-channel RGB normalisation mean in [0, 1] units, from the model's own preprocessing config.
        std: per-channel RGB normalisation std in [0, 1] units.
        device: where the model and computation live.
        dtype: compute and output dtype.
    """

    def __init__(
        self,
        *,
        hidden_size: int,
        image_size: int,
        patch_grid: tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise ModelError(
                f"image mean/std must have 3 values, got {list(mean)} / {list(std)}"
            )
        self._hidden_size = int(hidden_size)
        self._image_size = int(image_size)
        self._patch_grid = (int(patch_grid[0]), int(patch_grid[1]))
        self._mean = tuple(float(m) for m in mean)
        self._std = tuple(float(s) for s in std)
        self._device = torch.device(device)
        self._dtype = dtype
        # Normalisation folded into one multiply-add on [0, 255] pixels: (x / 255 - mean) / std.
        scale = 1.0 / (255.0 * torch.tensor(self._std))
        shift = -torch.tensor(self._mean) / torch.tensor(self._std)
        self.register_buffer(
            "_norm_scale", scale.view(1, 3, 1, 1).to(self._device), persistent=False
        )
        self.register_buffer(
            "_norm_shift", shift.view(1, 3, 1, 1).to(self._device), persistent=False
        )

    @property
    def hidden_size(self) -> int:
        """Feature width D of ``cls`` and ``patches``."""
        return self._hidden_size

    @property
    def image_size(self) -> int:
        """Side S of the square model input in pixels."""
        return self._image_size

    @property
    def patch_grid(self) -> tuple[int, int]:
        """(gh, gw): the patch grid of ``VisionOutput.patches``."""
        return self._patch_grid

    @property
    def mean(self) -> tuple[float, float, float]:
        """RGB normalisation mean in [0, 1] units (from the model's preprocessing config)."""
        return self._mean  # type: ignore[return-value]

    @property
    def std(self) -> tuple[float, float, float]:
        """RGB normalisation std in [0, 1] units (from the model's preprocessing config)."""
        return self._std  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        """Device of the weights and of returned features."""
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype and dtype of returned features."""
        return self._dtype

    def _freeze(self) -> None:
        """Make every parameter non-trainable and switch to eval mode (called by subclasses once built)."""
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VisionEncoder:
        """Stay in eval mode whatever ``mode`` is: the encoder is frozen, so a parent's ``.train()`` must not
        switch on dropout or drop-path inside it."""
        return super().train(False)

    def preprocess(self, frames: Frames) -> torch.Tensor:
        """Resize (shorter side), centre-crop (``videollm.io.resize_center_crop``) and normalise frames.

        Args:
            frames: (N, H, W, 3) or (N, 3, H, W) uint8 RGB, numpy or torch (any device).

        Returns:
            (N, 3, S, S) float32 on ``self.device``, normalised with the model's mean/std.
        """
        x = (
            frames_to_nchw(frames).to(self._device).permute(0, 2, 3, 1)
        )  # (N, H, W, 3) uint8 view
        x = resize_center_crop(x, self._image_size)  # (N, 3, S, S) uint8
        return x.float() * self._norm_scale + self._norm_shift

    def _features(
        self, pixel_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backend hook: (N, 3, S, S) in the compute dtype -> cls (N, D), patches (N, gh, gw, D)."""
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor) -> VisionOutput:
        """Encode preprocessed images.

        Args:
            pixel_values: (N, 3, S, S) float, as returned by ``preprocess``.

        Returns:
            VisionOutput with cls (N, D) and patches (N, gh, gw, D) in ``self.dtype`` on ``self.device``.
        """
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise UsageError(
                f"pixel_values must have shape (N, 3, S, S), got {tuple(pixel_values.shape)}"
            )
        x = pixel_values.to(device=self._device, dtype=self._dtype)
        cls, patches = self._features(x)
        return VisionOutput(cls=cls.to(self._dtype), patches=patches.to(self._dtype))

    def encode(self, frames: Frames, batch_size: int = 32) -> VisionOutput:
        """Preprocess and encode frames in batches, without autograd.

        Preprocessing happens per batch so that only ``batch_size`` float frames exist at a time.

        Args:
            frames: (N, H, W, 3) or (N, 3, H, W) uint8 RGB, numpy or torch.
            batch_size: frames per forward pass (>= 1).

        Returns:
            VisionOutput with cls (N, D) and patches (N, gh, gw, D) in ``self.dtype`` on ``self.device``.
        """
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        frames = frames_to_nchw(frames)  # (N, 3, H, W) uint8, validated once
        n = frames.shape[0]
        if n == 0:
            gh, gw = self._patch_grid
            kw = {"device": self._device, "dtype": self._dtype}
            return VisionOutput(
                cls=torch.empty(0, self._hidden_size, **kw),
                patches=torch.empty(0, gh, gw, self._hidden_size, **kw),
            )
        cls_parts, patch_parts = [], []
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                out = self.forward(self.preprocess(frames[start : start + batch_size]))
                cls_parts.append(out.cls)
                patch_parts.append(out.patches)
        return VisionOutput(cls=torch.cat(cls_parts), patches=torch.cat(patch_parts))


def split_tokens(
    tokens: torch.Tensor, grid: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a ViT token sequence into the CLS feature and the patch grid.

    Prefix tokens (CLS, registers) come before the patches, so the patches are the last gh*gw tokens. A model
    without prefix tokens (SigLIP) has no CLS: its mean patch token stands in for it.

    Args:
        tokens: (N, T, D) hidden states with T = prefix + gh * gw.
        grid: (gh, gw).

    Returns:
        cls (N, D) and patches (N, gh, gw, D).
    """
    n, t, d = tokens.shape
    gh, gw = grid
    n_prefix = t - gh * gw
    if n_prefix < 0:
        raise ModelError(
            f"model returned {t} tokens, fewer than its {gh}x{gw} patch grid"
        )
    patches = tokens[:, n_prefix:].reshape(n, gh, gw, d)  # (N, gh, gw, D)
    cls = tokens[:, 0] if n_prefix > 0 else tokens.mean(dim=1)  # (N, D)
    return cls, patches


def resolve_hidden_index(layer: int, num_layers: int) -> int:
    """Map a ``hidden_states``-style index (negative from the end) to 0..num_layers (0 = embeddings).

    Args:
        layer: index into a tuple of num_layers + 1 hidden states.
        num_layers: number of transformer blocks.

    Returns:
        The non-negative index.
    """
    index = layer + num_layers + 1 if layer < 0 else layer
    if not 0 <= index <= num_layers:
        raise ModelError(
            f"vision layer {layer} is out of range for a model with {num_layers} blocks"
        )
    return index
