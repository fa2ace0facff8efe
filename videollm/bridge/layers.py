"""Building blocks of the memory bridge: fp32 LayerNorm, post-LN attention block, BERT-style layer, retriever.

Attention goes through ``F.scaled_dot_product_attention``, or, on a GPU with Triton (``VIDEOLLM_KERNELS``, see
``videollm_kernels``), through the project's flash-attention kernel when no mask or dropout is involved and the call
is one where the kernel measured faster: few queries over a long memory cache (retrieval). Both keep
the softmax statistics in fp32 even for bf16 inputs, and ``FP32LayerNorm`` does the same for the norms, so the blocks can run
under ``torch.autocast`` without losing precision where it matters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from videollm_kernels import flash_attention, use_triton

# Where the Triton kernel beat PyTorch's SDPA on an H100 (bf16, 8 heads x Dh 128, benchmarks/kernels.py and
# kernel_tuning.py): 32 memory queries over 32,000 cached keys, 0.24-0.28 ms in 4 of 6 runs (0.45-0.64 ms in 2) vs
# SDPA's 0.40-0.47 ms. SDPA was faster for the bridge's self-attention (1184 tokens: 0.05 vs 0.14-0.18 ms) and for
# caches of 320 and 3,200 keys, so ``auto`` keeps SDPA there. 16,384 lies between the measured sizes.
KERNEL_FROM_KEYS = 16384
KERNEL_UP_TO_QUERIES = 64


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm whose statistics are computed in fp32 whatever the input dtype; the output keeps the input dtype."""

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class AttentionBlock(nn.Module):
    """Multi-head attention with a post-LN residual: ``LN(x + Drop(Out(Attn(Q(x), K(kv), V(kv)))))``.

    Used as self-attention (``kv`` is ``x``) in the bridge layer and as cross-attention (``kv`` is the memory
    cache) in the retriever. Keys and values can be projected once with ``project_kv`` and reused, which is how the
    streaming path avoids re-projecting the whole cache every segment.

    Args:
        width: model width W.
        heads: number of heads (divides W).
        dropout: attention-probability and residual-branch dropout.
        ln_eps: LayerNorm epsilon.
        device, dtype: where and in which dtype to create the parameters.
    """

    def __init__(self, width: int, heads: int, dropout: float, ln_eps: float, *,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.heads = heads
        self.attn_dropout = dropout
        self.q_proj = nn.Linear(width, width, **factory)
        self.k_proj = nn.Linear(width, width, **factory)
        self.v_proj = nn.Linear(width, width, **factory)
        self.out_proj = nn.Linear(width, width, **factory)
        self.dropout = nn.Dropout(dropout)
        self.norm = FP32LayerNorm(width, eps=ln_eps, **factory)

    def project_kv(self, kv: Tensor) -> tuple[Tensor, Tensor]:
        """Key and value projections of ``kv`` (..., N, W), both (..., N, W) in token-major layout."""
        return self.k_proj(kv), self.v_proj(kv)

    def forward(self, x: Tensor, kv: Tensor | None = None, key_mask: Tensor | None = None) -> Tensor:
        """Attend from ``x`` to ``kv`` (or to ``x`` itself).

        Args:
            x: (B, Nq, W) queries and residual stream.
            kv: (B, Nk, W) keys/values source; None means self-attention.
            key_mask: (B, Nk) bool, True for keys that may be attended; None attends to all.

        Returns:
            (B, Nq, W).
        """
        keys, values = self.project_kv(x if kv is None else kv)
        return self.attend(x, keys, values, key_mask)

    def attend(self, x: Tensor, keys: Tensor, values: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """Attention with already projected keys/values.

        Args:
            x: (B, Nq, W) queries and residual stream.
            keys: (B, Nk, W) output of ``project_kv``.
            values: (B, Nk, W).
            key_mask: (B, Nk) bool or None.

        Returns:
            (B, Nq, W).
        """
        b, nq, w = x.shape
        q = self._split(self.q_proj(x))  # (B, H, Nq, hd)
        k, v = self._split(keys), self._split(values)  # (B, H, Nk, hd)
        dropout = self.attn_dropout if self.training else 0.0
        faster = k.shape[2] >= KERNEL_FROM_KEYS and q.shape[2] <= KERNEL_UP_TO_QUERIES
        if key_mask is None and dropout == 0.0 and use_triton(q, k, v, faster=faster):
            out = flash_attention(q, k, v)  # (B, H, Nq, hd), the Triton kernel (GPU, or forced)
        else:
            mask = key_mask[:, None, None, :] if key_mask is not None else None  # (B, 1, 1, Nk)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)  # (B, H, Nq, hd)
        out = out.transpose(1, 2).reshape(b, nq, w)  # (B, Nq, W)
        return self.norm(x + self.dropout(self.out_proj(out)))

    def _split(self, x: Tensor) -> Tensor:
        b, n, w = x.shape
        return x.view(b, n, self.heads, w // self.heads).transpose(1, 2)  # (B, H, N, hd)


class BridgeLayer(nn.Module):
    """BERT-style post-LN transformer layer: bidirectional self-attention, then a GELU feed-forward block.

    ``x = LN(x + Drop(Attn(x)))``; ``x = LN(x + Drop(W2 GELU(W1 x)))``.

    Args:
        width: model width W.
        heads: self-attention heads.
        ffn: feed-forward hidden size.
        dropout: dropout probability.
        ln_eps: LayerNorm epsilon.
        device, dtype: where and in which dtype to create the parameters.
    """

    def __init__(self, width: int, heads: int, ffn: int, dropout: float, ln_eps: float, *,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.attention = AttentionBlock(width, heads, dropout, ln_eps, **factory)
        self.ffn_in = nn.Linear(width, ffn, **factory)
        self.ffn_out = nn.Linear(ffn, width, **factory)
        self.dropout = nn.Dropout(dropout)
        self.norm = FP32LayerNorm(width, eps=ln_eps, **factory)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """Args: x (B, N, W); key_mask (B, N) bool or None (padding positions False). Returns (B, N, W)."""
        x = self.attention(x, key_mask=key_mask)
        hidden = F.gelu(self.ffn_in(x))  # (B, N, ffn)
        return self.norm(x + self.dropout(self.ffn_out(hidden)))
