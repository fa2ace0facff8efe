"""Fused residual add + LayerNorm (post-LN), Triton or reference."""

from __future__ import annotations

import torch

from .._dispatch import use_triton
from .._validate import check_same_device, check_tensor
from .naive import add_layer_norm_ref

__all__ = ["add_layer_norm", "add_layer_norm_ref"]


def add_layer_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                   eps: float = 1e-12) -> torch.Tensor:
    """``LayerNorm(x + residual)`` over the last dimension with fp32 statistics, differentiable in all tensors.

    Args:
        x: (..., W) the branch output (e.g. the attention out-projection), float32/bfloat16/float16.
        residual: (..., W) same shape, dtype and device as ``x``.
        weight, bias: (W,) LayerNorm affine parameters (any float dtype; gradients come back in it).
        eps: variance epsilon (the bridge uses 1e-12).

    Returns:
        (..., W) in the dtype of ``x``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() == 0:
        raise ValueError("x must be a tensor of shape (..., W)")
    check_tensor("x", x, x.dim())
    check_tensor("residual", residual, x.dim())
    check_tensor("weight", weight, 1)
    check_tensor("bias", bias, 1)
    check_same_device(x=x, residual=residual, weight=weight, bias=bias)
    if residual.shape != x.shape or residual.dtype != x.dtype:
        raise ValueError(f"residual must match x, got {tuple(residual.shape)} {residual.dtype} "
                         f"vs {tuple(x.shape)} {x.dtype}")
    width = x.shape[-1]
    if weight.shape != (width,) or bias.shape != (width,):
        raise ValueError(f"weight and bias must be ({width},), got {tuple(weight.shape)} and {tuple(bias.shape)}")
    if x.numel() == 0:
        return x.new_empty(x.shape)
    if use_triton(x, residual, weight, bias):
        from .triton_impl import add_layer_norm_triton

        return add_layer_norm_triton(x, residual, weight, bias, float(eps))
    return add_layer_norm_ref(x, residual, weight, bias, float(eps))
