"""Full-size kernel checks at the bridge's preset sizes (CUDA only)."""

from __future__ import annotations

import pytest
import torch
from videollm_kernels import bridge_attention, memory_retrieval, scenetiling_scan
from videollm_kernels.bridge_attention.naive import bridge_attention_ref
from videollm_kernels.memory_retrieval.naive import memory_retrieval_ref
from videollm_kernels.scenetiling_scan.naive import (
    depth_scores_ref,
    scenetiling_scan_ref,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _leaf(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.randn(*shape, device="cuda", dtype=dtype).requires_grad_()


def test_bridge_attention_full_size(monkeypatch):
    monkeypatch.setenv("VIDEOLLM_KERNELS", "auto")
    b, h, n, d = 2, 8, 32 + 8 * 144, 128
    q, k, v = _leaf(b, h, n, d), _leaf(b, h, n, d), _leaf(b, h, n, d)
    residual = _leaf(b, n, h * d)
    ln_w = torch.ones(h * d, device="cuda", requires_grad=True)
    ln_b = torch.zeros(h * d, device="cuda", requires_grad=True)
    out = bridge_attention(q, k, v, residual, ln_w, ln_b, 1e-12)
    ref = bridge_attention_ref(q, k, v, residual, ln_w, ln_b, 1e-12, d ** -0.5)
    torch.testing.assert_close(out.float(), ref.float(), atol=3e-2, rtol=2e-2)
    grad = torch.randn_like(out)
    leaves = (q, k, v, residual, ln_w, ln_b)
    for g, w in zip(torch.autograd.grad(out, leaves, grad), torch.autograd.grad(ref, leaves, grad)):
        torch.testing.assert_close(g.float(), w.float(), atol=1e-1, rtol=5e-2)


def test_memory_retrieval_full_size(monkeypatch):
    monkeypatch.setenv("VIDEOLLM_KERNELS", "auto")
    b, h, m, d, length, kmax = 1, 8, 32, 128, 1000 * 32, 1024 * 32
    q = _leaf(b, h, m, d)
    cache_k = torch.full((b, h, kmax, d), float("nan"), device="cuda", dtype=torch.bfloat16)
    cache_v = torch.full_like(cache_k, float("nan"))
    cache_k[:, :, :length].normal_()
    cache_v[:, :, :length].normal_()
    cache_k.requires_grad_()
    cache_v.requires_grad_()
    out = memory_retrieval(q, cache_k, cache_v, length)
    ref = memory_retrieval_ref(q, cache_k, cache_v, length, d ** -0.5)
    torch.testing.assert_close(out.float(), ref.float(), atol=2e-2, rtol=2e-2)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, cache_k, cache_v), grad)
    want = torch.autograd.grad(ref, (q, cache_k, cache_v), grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.float(), w.float(), atol=6e-2, rtol=5e-2)
    assert torch.count_nonzero(got[1][:, :, length:]) == 0


def test_scan_full_size(monkeypatch):
    monkeypatch.setenv("VIDEOLLM_KERNELS", "auto")
    feats = torch.randn(1_000_000, 384, device="cuda", dtype=torch.bfloat16)
    sims, depth = scenetiling_scan(feats)
    ref_sims, _ = scenetiling_scan_ref(feats)
    torch.testing.assert_close(sims, ref_sims, atol=1e-5, rtol=1e-4)
    assert torch.equal(depth, depth_scores_ref(sims))
