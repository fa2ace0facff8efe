"""Reference ``LayerNorm(x + residual)`` with fp32 statistics (plain PyTorch autograd)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def add_layer_norm_ref(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                       eps: float) -> torch.Tensor:
    """``layer_norm(x + residual)`` over the last dimension, summed and normalised in fp32.

    Args:
        x, residual: (..., W).
        weight, bias: (W,).
        eps: variance epsilon.

    Returns:
        (..., W) in the dtype of ``x``.
    """
    total = x.float() + residual.float()  # (..., W)
    return F.layer_norm(total, total.shape[-1:], weight.float(), bias.float(), eps).to(x.dtype)
