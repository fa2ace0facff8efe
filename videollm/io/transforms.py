"""Frame preprocessing shared by the vision encoders (they apply their own mean/std afterwards)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def resize_center_crop(frames: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Square frames of side ``size``: the shorter side scaled to ``size`` (antialiased bilinear), centre crop.

    The centred square of side min(H, W) is cut first and then resized, so only the kept pixels are interpolated;
    the result equals resize-then-crop up to half a source pixel of offset when (max - min) side is odd.

    Args:
        frames: (N, H, W, 3) uint8 RGB frames (numpy array or CPU/GPU tensor).
        size: output side in pixels (>= 1).

    Returns:
        (N, 3, size, size) uint8 tensor on the input's device (CPU for numpy input).
    """
    import torch
    import torch.nn.functional as F

    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 frames, got {tuple(x.shape)} {x.dtype}")
    n, height, width, _ = x.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    # (N, H, W, 3) -> (N, 3, side, side) as a channels-last view: the uint8 interpolation kernel prefers it.
    square = x[:, top : top + side, left : left + side].permute(0, 3, 1, 2)
    if n == 0:
        return square.new_empty((0, 3, size, size))
    if side == size:
        return square.contiguous()
    if x.device.type == "cpu":
        out = F.interpolate(square, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    else:
        # CUDA's interpolate has no uint8 kernel.
        out = F.interpolate(square.float(), size=(size, size), mode="bilinear", antialias=True,
                            align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
    return out.contiguous()  # (N, 3, size, size)
