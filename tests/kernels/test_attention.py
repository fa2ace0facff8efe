"""Attention kernels (flash attention, memory retrieval, add + LayerNorm, bridge block) against their references."""

from __future__ import annotations

import pytest
import torch
from videollm_kernels import (
    add_layer_norm,
    bridge_attention,
    flash_attention,
    memory_retrieval,
)
from videollm_kernels.add_layer_norm.naive import add_layer_norm_ref
from videollm_kernels.bridge_attention.naive import bridge_attention_ref
from videollm_kernels.flash_attention.naive import flash_attention_ref
from videollm_kernels.memory_retrieval.naive import memory_retrieval_ref

# (output atol/rtol, gradient atol/rtol) per dtype; bf16 outputs are rounded to 8 mantissa bits (~4e-3 relative).
TOL = {torch.float32: ((2e-5, 1e-4), (5e-5, 1e-4)), torch.bfloat16: ((2e-2, 2e-2), (6e-2, 5e-2))}


def _heads(b: int, h: int, n: int, d: int, dtype: torch.dtype, device: torch.device, gen: torch.Generator
           ) -> torch.Tensor:
    """A (B, H, N, Dh) leaf viewed from (B, N, H, Dh) storage, the non-contiguous layout the bridge produces."""
    base = torch.randn(b, n, h, d, generator=gen).to(device=device, dtype=dtype)
    return base.transpose(1, 2).detach().requires_grad_()


def _grads(out: torch.Tensor, seed_grad: torch.Tensor, *leaves: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(out, leaves, seed_grad))


def _close(actual: torch.Tensor, expected: torch.Tensor, tol: tuple[float, float]) -> None:
    torch.testing.assert_close(actual.float(), expected.float(), atol=tol[0], rtol=tol[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 1, 1, 32), (2, 3, 37, 48), (1, 2, 70, 128)])
def test_flash_attention_matches_reference(force_triton, dtype, shape):
    gen = torch.Generator().manual_seed(0)
    b, h, n, d = shape
    q, k, v = (_heads(b, h, n, d, dtype, force_triton, gen) for _ in range(3))
    out = flash_attention(q, k, v)
    ref = flash_attention_ref(q, k, v, n, d ** -0.5)
    grad_out = torch.randn(out.shape, generator=gen).to(out)
    out_tol, grad_tol = TOL[dtype]
    _close(out, ref, out_tol)
    assert out.dtype == dtype and out.shape == (b, h, n, d)
    for got, want in zip(_grads(out, grad_out, q, k, v), _grads(ref, grad_out, q, k, v)):
        _close(got, want, grad_tol)


def _poisoned_cache(b: int, h: int, kmax: int, length: int, d: int, dtype: torch.dtype, device: torch.device,
                    gen: torch.Generator) -> torch.Tensor:
    """A preallocated cache whose rows past ``length`` are NaN, as unwritten memory could be."""
    cache = torch.full((b, h, kmax, d), float("nan"))
    cache[:, :, :length] = torch.randn(b, h, length, d, generator=gen)
    return cache.to(device=device, dtype=dtype).requires_grad_()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    ("m", "segments", "tokens", "spare"),
    [(1, 1, 1, 3), (3, 1, 5, 11), (5, 500, 2, 37)],  # 1 memory token; a 1-segment cache; ~500 segments
)
def test_memory_retrieval_reads_only_valid_rows(force_triton, dtype, m, segments, tokens, spare):
    gen = torch.Generator().manual_seed(1)
    b, h, d = 2, 2, 32
    length = segments * tokens
    q = _heads(b, h, m, d, dtype, force_triton, gen)
    cache_k = _poisoned_cache(b, h, length + spare, length, d, dtype, force_triton, gen)
    cache_v = _poisoned_cache(b, h, length + spare, length, d, dtype, force_triton, gen)
    out = memory_retrieval(q, cache_k, cache_v, length)
    ref = memory_retrieval_ref(q, cache_k, cache_v, length, d ** -0.5)
    out_tol, grad_tol = TOL[dtype]
    assert not out.isnan().any()
    _close(out, ref, out_tol)
    grad_out = torch.randn(out.shape, generator=gen).to(out)
    got = _grads(out, grad_out, q, cache_k, cache_v)
    want = _grads(ref, grad_out, q, cache_k, cache_v)
    for g, w in zip(got, want):
        _close(g, w, grad_tol)
    for g in got[1:]:
        assert torch.count_nonzero(g[:, :, length:]) == 0  # no gradient (and no NaN) past the valid rows


@pytest.mark.parametrize("splits", [2, 5])
def test_split_kv_path_matches_reference(kernel_device, splits):
    """The flash-decoding split (used on GPUs for few queries over long caches), forced on at a small size."""
    from videollm_kernels.memory_retrieval.triton_impl import memory_retrieval_triton

    gen = torch.Generator().manual_seed(2)
    b, h, m, d, length = 1, 2, 3, 32, 301
    q = _heads(b, h, m, d, torch.float32, kernel_device, gen)
    cache_k = _poisoned_cache(b, h, 320, length, d, torch.float32, kernel_device, gen)
    cache_v = _poisoned_cache(b, h, 320, length, d, torch.float32, kernel_device, gen)
    out = memory_retrieval_triton(q, cache_k, cache_v, length, d ** -0.5, num_kv_splits=splits)
    ref = memory_retrieval_ref(q, cache_k, cache_v, length, d ** -0.5)
    _close(out, ref, TOL[torch.float32][0])
    grad_out = torch.randn(out.shape, generator=gen).to(out)
    for got, want in zip(_grads(out, grad_out, q, cache_k, cache_v), _grads(ref, grad_out, q, cache_k, cache_v)):
        _close(got, want, TOL[torch.float32][1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 1, 33), (2, 13, 100)])
def test_add_layer_norm_matches_reference(force_triton, dtype, shape):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=gen).to(force_triton, dtype).requires_grad_()
    residual = torch.randn(shape, generator=gen).to(force_triton, dtype).requires_grad_()
    weight = (1 + 0.1 * torch.randn(shape[-1], generator=gen)).to(force_triton).requires_grad_()
    bias = (0.1 * torch.randn(shape[-1], generator=gen)).to(force_triton).requires_grad_()
    out = add_layer_norm(x, residual, weight, bias, 1e-12)
    ref = add_layer_norm_ref(x, residual, weight, bias, 1e-12)
    # One bf16 ulp at |y| ~ 4 is 0.03: compare outputs at 1 ulp there, gradients at the gradient tolerance.
    out_tol, grad_tol = TOL[dtype]
    _close(out, ref, (max(out_tol[0], 3.2e-2 if dtype == torch.bfloat16 else 0.0), out_tol[1]))
    grad_out = torch.randn(shape, generator=gen).to(out)
    got = _grads(out, grad_out, x, residual, weight, bias)
    want = _grads(ref, grad_out, x, residual, weight, bias)
    for g, w in zip(got, want):
        _close(g, w, grad_tol if dtype == torch.float32 else (1e-1, 5e-2))
    assert got[0] is not got[1]  # the two identical gradients are distinct tensors


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bridge_attention_matches_reference(force_triton, dtype):
    gen = torch.Generator().manual_seed(4)
    b, h, n, d = 2, 2, 19, 32
    width = h * d
    q, k, v = (_heads(b, h, n, d, dtype, force_triton, gen) for _ in range(3))
    residual = torch.randn(b, n, width, generator=gen).to(force_triton, dtype).requires_grad_()
    ln_w = torch.ones(width, device=force_triton, requires_grad=True)
    ln_b = torch.zeros(width, device=force_triton, requires_grad=True)
    out_w = (torch.randn(width, width, generator=gen) / width ** 0.5).to(force_triton, dtype).requires_grad_()
    out_b = torch.zeros(width, device=force_triton, dtype=dtype, requires_grad=True)
    leaves = (q, k, v, residual, ln_w, ln_b, out_w, out_b)
    out = bridge_attention(q, k, v, residual, ln_w, ln_b, 1e-12, out_weight=out_w, out_bias=out_b)
    ref = bridge_attention_ref(q, k, v, residual, ln_w, ln_b, 1e-12, d ** -0.5, out_w, out_b)
    assert out.shape == (b, n, width) and out.dtype == dtype
    out_tol, grad_tol = TOL[dtype]
    _close(out, ref, (max(out_tol[0], 3.2e-2 if dtype == torch.bfloat16 else 0.0), out_tol[1]))
    grad_out = torch.randn(out.shape, generator=gen).to(out)
    for g, w in zip(_grads(out, grad_out, *leaves), _grads(ref, grad_out, *leaves)):
        _close(g, w, grad_tol if dtype == torch.float32 else (1e-1, 5e-2))


def test_bridge_attention_matches_the_bridge_block(monkeypatch):
    """Same semantics as videollm.bridge.layers.AttentionBlock (eval mode) given its projections."""
    layers = pytest.importorskip("videollm.bridge.layers")
    monkeypatch.setenv("VIDEOLLM_KERNELS", "reference")
    torch.manual_seed(5)
    block = layers.AttentionBlock(width=64, heads=4, dropout=0.1, ln_eps=1e-12).eval()
    with torch.no_grad():
        block.norm.weight.uniform_(0.5, 1.5)
        block.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 11, 64)
    split = lambda t: t.view(2, 11, 4, 16).transpose(1, 2)
    with torch.no_grad():
        keys, values = block.project_kv(x)
        out = bridge_attention(split(block.q_proj(x)), split(keys), split(values), x, block.norm.weight,
                               block.norm.bias, block.norm.eps, out_weight=block.out_proj.weight,
                               out_bias=block.out_proj.bias)
        torch.testing.assert_close(out, block(x), atol=2e-5, rtol=1e-4)


def test_wrappers_validate_inputs():
    q = torch.randn(1, 2, 3, 8)
    cache = torch.randn(1, 2, 10, 8)
    with pytest.raises(ValueError, match="length"):
        memory_retrieval(q, cache, cache, 11)
    with pytest.raises(ValueError, match="length"):
        memory_retrieval(q, cache, cache, 0)
    with pytest.raises(TypeError, match="length"):
        memory_retrieval(q, cache, cache, torch.tensor(3))
    with pytest.raises(ValueError, match="cache_k"):
        memory_retrieval(q, torch.randn(1, 3, 10, 8), torch.randn(1, 3, 10, 8), 3)
    with pytest.raises(TypeError, match="dtype"):
        flash_attention(q, q.double(), q.double())
    with pytest.raises(TypeError, match="share one dtype"):
        flash_attention(q, q.bfloat16(), q)
    with pytest.raises(ValueError, match="residual"):
        bridge_attention(q, q, q, torch.randn(1, 3, 15), torch.ones(16), torch.zeros(16))
    with pytest.raises(ValueError, match="weight"):
        add_layer_norm(torch.randn(2, 5), torch.randn(2, 5), torch.ones(4), torch.zeros(5))
