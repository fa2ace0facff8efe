"""Fused ``LayerNorm(x + residual)``: one program per row forward; backward with per-program dW/dB partials.

The sum ``x + residual`` is never written to memory: the backward kernel re-adds the two inputs (which autograd
keeps alive anyway) and re-normalises with the saved fp32 mean and 1/std. dW/dB are reduced in two stages (fp32
partial sums per program, then a PyTorch sum) rather than with atomics, so gradients are deterministic.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl


@triton.jit
def _fwd_kernel(X, R, W, B, Y, MEAN, RSTD, stride_x, stride_r, stride_y, width, eps, BLOCK_W: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_W)
    ok = cols < width
    x = tl.load(X + row * stride_x + cols, mask=ok, other=0.0).to(tl.float32)
    x += tl.load(R + row * stride_r + cols, mask=ok, other=0.0).to(tl.float32)
    mean = tl.sum(x, 0) / width
    centred = tl.where(ok, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(centred * centred, 0) / width + eps)
    w = tl.load(W + cols, mask=ok, other=0.0).to(tl.float32)
    b = tl.load(B + cols, mask=ok, other=0.0).to(tl.float32)
    y = centred * rstd * w + b
    tl.store(Y + row * stride_y + cols, y.to(Y.dtype.element_ty), mask=ok)
    tl.store(MEAN + row, mean)
    tl.store(RSTD + row, rstd)


@triton.jit
def _bwd_kernel(X, R, W, DY, MEAN, RSTD, DX, DW_PART, DB_PART,
                stride_x, stride_r, stride_dy, stride_dx, n_rows, width, rows_per_program,
                BLOCK_W: tl.constexpr):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_W)
    ok = cols < width
    w = tl.load(W + cols, mask=ok, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_W], tl.float32)
    db = tl.zeros([BLOCK_W], tl.float32)
    first = pid * rows_per_program
    last = tl.minimum(first + rows_per_program, n_rows)
    for row in range(first, last):
        x = tl.load(X + row * stride_x + cols, mask=ok, other=0.0).to(tl.float32)
        x += tl.load(R + row * stride_r + cols, mask=ok, other=0.0).to(tl.float32)
        dy = tl.load(DY + row * stride_dy + cols, mask=ok, other=0.0).to(tl.float32)
        mean = tl.load(MEAN + row)
        rstd = tl.load(RSTD + row)
        xhat = tl.where(ok, (x - mean) * rstd, 0.0)
        wdy = w * dy
        c1 = tl.sum(xhat * wdy, 0) / width
        c2 = tl.sum(wdy, 0) / width
        dx = (wdy - (xhat * c1 + c2)) * rstd
        tl.store(DX + row * stride_dx + cols, dx.to(DX.dtype.element_ty), mask=ok)
        dw += dy * xhat
        db += dy
    tl.store(DW_PART + pid * width + cols, dw, mask=ok)
    tl.store(DB_PART + pid * width + cols, db, mask=ok)


@functools.cache
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(..., W) -> (R, W) with unit column stride (a copy only when the input is not already so)."""
    flat = t.reshape(-1, t.shape[-1])
    return flat if flat.stride(-1) == 1 else flat.contiguous()


class AddLayerNorm(torch.autograd.Function):
    """Autograd wrapper: ``apply(x, residual, weight, bias, eps)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                eps: float) -> torch.Tensor:
        width = x.shape[-1]
        xr, rr = _rows(x), _rows(residual)  # (R, W)
        n_rows = xr.shape[0]
        y = torch.empty((n_rows, width), dtype=x.dtype, device=x.device)
        mean = torch.empty(n_rows, dtype=torch.float32, device=x.device)
        rstd = torch.empty(n_rows, dtype=torch.float32, device=x.device)
        block_w = triton.next_power_of_2(width)
        num_warps = min(16, max(1, block_w // 256))
        _fwd_kernel[(n_rows,)](xr, rr, weight, bias, y, mean, rstd, xr.stride(0), rr.stride(0), y.stride(0),
                               width, eps, BLOCK_W=block_w, num_warps=num_warps)
        ctx.save_for_backward(xr, rr, weight, mean, rstd)
        ctx.shape = x.shape
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        xr, rr, weight, mean, rstd = ctx.saved_tensors
        n_rows, width = xr.shape
        dyr = _rows(dy)
        dx = torch.empty_like(xr)
        programs = min(n_rows, 4 * _sm_count(xr.device.index or 0) if xr.is_cuda else 8)
        rows_per_program = triton.cdiv(n_rows, programs)
        programs = triton.cdiv(n_rows, rows_per_program)
        dw_part = torch.empty((programs, width), dtype=torch.float32, device=xr.device)
        db_part = torch.empty((programs, width), dtype=torch.float32, device=xr.device)
        block_w = triton.next_power_of_2(width)
        _bwd_kernel[(programs,)](xr, rr, weight, dyr, mean, rstd, dx, dw_part, db_part,
                                 xr.stride(0), rr.stride(0), dyr.stride(0), dx.stride(0),
                                 n_rows, width, rows_per_program,
                                 BLOCK_W=block_w, num_warps=min(16, max(1, block_w // 256)))
        dx = dx.view(ctx.shape)
        need_x, need_r = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        # Both inputs receive the same gradient; hand out distinct tensors so that an in-place accumulation into
        # one .grad cannot change the other.
        dres = (dx.clone() if need_x else dx) if need_r else None
        dw = dw_part.sum(0).to(weight.dtype) if ctx.needs_input_grad[2] else None
        db = db_part.sum(0).to(weight.dtype) if ctx.needs_input_grad[3] else None
        return (dx if need_x else None), dres, dw, db, None


def add_layer_norm_triton(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                          eps: float) -> torch.Tensor:
    """Triton ``LayerNorm(x + residual)``; same contract as the public ``add_layer_norm``."""
    return AddLayerNorm.apply(x, residual, weight, bias, eps)
