"""Post-LN bidirectional attention block of the memory bridge, Triton or reference.

Matches ``videollm.bridge.layers.AttentionBlock.attend`` without dropout (evaluation, or dropout 0):
``LN(x + Out(merge_heads(Attn(q, k, v))))``, the caller doing the q/k/v projections and head split.
"""

from __future__ import annotations

import math

import torch

from .._dispatch import use_triton
from .._validate import check_same_device, check_same_dtype, check_tensor
from .naive import bridge_attention_ref

__all__ = ["bridge_attention", "bridge_attention_ref"]


def bridge_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, residual: torch.Tensor,
                     ln_weight: torch.Tensor, ln_bias: torch.Tensor, eps: float = 1e-12, *,
                     out_weight: torch.Tensor | None = None, out_bias: torch.Tensor | None = None,
                     scale: float | None = None) -> torch.Tensor:
    """Fused bidirectional (unmasked) attention + out-projection + residual + LayerNorm, differentiable.

    Args:
        q, k, v: (B, H, N, Dh) head-split projections (any strides, e.g. ``x.view(B, N, H, Dh).transpose(1, 2)``),
            float32/bfloat16/float16, one dtype and device.
        residual: (B, N, W) with W = H * Dh, the block input added back before the norm, dtype of ``q``.
        ln_weight, ln_bias: (W,) LayerNorm parameters; statistics are fp32 whatever the dtype.
        eps: LayerNorm epsilon (the published bridge uses 1e-12).
        out_weight: optional (W, W) out-projection weight (``nn.Linear`` layout), applied before the residual add;
            None skips the projection. out_bias: optional (W,) bias of that projection.
        scale: attention score scale, default ``1 / sqrt(Dh)``.

    Returns:
        (B, N, W) in the dtype of ``residual``.

    Raises:
        ValueError, TypeError: malformed inputs. videollm.errors.UsageError: bad ``VIDEOLLM_KERNELS`` value.

    No dropout: training with dropout > 0 must keep the PyTorch path.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t, 4)
    check_tensor("residual", residual, 3)
    check_tensor("ln_weight", ln_weight, 1)
    check_tensor("ln_bias", ln_bias, 1)
    tensors = {"q": q, "k": k, "v": v, "residual": residual, "ln_weight": ln_weight, "ln_bias": ln_bias}
    if out_weight is not None:
        tensors["out_weight"] = check_tensor("out_weight", out_weight, 2)
    if out_bias is not None:
        if out_weight is None:
            raise ValueError("out_bias given without out_weight")
        tensors["out_bias"] = check_tensor("out_bias", out_bias, 1)
    check_same_device(**tensors)
    check_same_dtype(q=q, k=k, v=v, residual=residual)
    b, h, n, head_dim = q.shape
    width = h * head_dim
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must share one (B, H, N, Dh) shape, got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    if residual.shape != (b, n, width):
        raise ValueError(f"residual must be (B, N, H*Dh) = {(b, n, width)}, got {tuple(residual.shape)}")
    if ln_weight.shape != (width,) or ln_bias.shape != (width,):
        raise ValueError(f"ln_weight and ln_bias must be ({width},)")
    if out_weight is not None and out_weight.shape != (width, width):
        raise ValueError(f"out_weight must be ({width}, {width}), got {tuple(out_weight.shape)}")
    if out_bias is not None and out_bias.shape != (width,):
        raise ValueError(f"out_bias must be ({width},), got {tuple(out_bias.shape)}")
    if not 1 <= head_dim <= 256:
        raise ValueError(f"head dim must be in [1, 256], got {head_dim}")
    scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
    if n == 0:
        return residual.new_empty(residual.shape)
    if use_triton(*tensors.values()):
        from .triton_impl import bridge_attention_triton

        return bridge_attention_triton(q, k, v, residual, ln_weight, ln_bias, float(eps), scale, out_weight, out_bias)
    return bridge_attention_ref(q, k, v, residual, ln_weight, ln_bias, float(eps), scale, out_weight, out_bias)
