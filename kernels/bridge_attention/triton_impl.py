"""Bridge attention block on the Triton kernels: flash attention, then the fused add + LayerNorm.

The out-projection between the two stays a cuBLAS matmul (``F.linear``): a matmul is what cuBLAS does best and
fusing it into either kernel would not save a memory round trip worth the complexity. The attention kernel writes its
output in (B, N, H, Dh) memory order, so merging heads is a view, not a copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..add_layer_norm.triton_impl import add_layer_norm_triton
from ..flash_attention.triton_impl import flash_attention_triton


def bridge_attention_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, residual: torch.Tensor,
                            ln_weight: torch.Tensor, ln_bias: torch.Tensor, eps: float, scale: float,
                            out_weight: torch.Tensor | None = None, out_bias: torch.Tensor | None = None,
                            ) -> torch.Tensor:
    """Triton bridge attention; same contract as ``videollm_kernels.bridge_attention``."""
    b, h, n, head_dim = q.shape
    attn = flash_attention_triton(q, k, v, k.shape[2], scale)  # (B, H, N, Dh), stored heads-last
    merged = attn.transpose(1, 2).reshape(b, n, h * head_dim)  # (B, N, W), a view
    if out_weight is not None:
        merged = F.linear(merged, out_weight, out_bias)
    return add_layer_norm_triton(merged, residual, ln_weight, ln_bias, eps)
