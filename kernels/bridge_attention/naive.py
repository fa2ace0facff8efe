"""Reference bridge attention block: attention, merge heads, optional out-projection, ``LayerNorm(. + residual)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..add_layer_norm.naive import add_layer_norm_ref
from ..flash_attention.naive import flash_attention_ref


def bridge_attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, residual: torch.Tensor,
                         ln_weight: torch.Tensor, ln_bias: torch.Tensor, eps: float, scale: float,
                         out_weight: torch.Tensor | None = None, out_bias: torch.Tensor | None = None,
                         ) -> torch.Tensor:
    """``LN(residual + Out(merge_heads(softmax(q k^T * scale) v)))`` in plain PyTorch (fp32 softmax and norm).

    Shapes as in ``videollm_kernels.bridge_attention``.
    """
    b, h, n, head_dim = q.shape
    attn = flash_attention_ref(q, k, v, k.shape[2], scale)  # (B, H, N, Dh)
    merged = attn.transpose(1, 2).reshape(b, n, h * head_dim)  # (B, N, W)
    if out_weight is not None:
        merged = F.linear(merged, out_weight, out_bias)
    return add_layer_norm_ref(merged, residual, ln_weight, ln_bias, eps)
