"""Sweep the flash-attention kernel's tile sizes, warps, stages and key splits at the sizes videollm runs it.

The kernels ship with fixed launch settings (``videollm_kernels.flash_attention.triton_impl._blocks`` and
``_splits``). This script times the alternatives on the GPU it runs on, so that the fixed choices come from
measurements: the bridge attention size (B x 8 heads x 1184 tokens x Dh 128, bf16) forward and forward+backward, and
memory retrieval (32 queries over 10 / 100 / 1000 cached segments of 32 tokens) forward, each beside PyTorch's SDPA
on the same tensors. It also times the fused add+LayerNorm against PyTorch at the bridge width.

Run on a CUDA machine: ``python benchmarks/kernel_tuning.py [--json PATH]`` (a few minutes, mostly compiling).
``--quick`` runs two configurations at tiny sizes (checks the script; with ``TRITON_INTERPRET=1`` on CPU too).
"""

# ruff: noqa: B023 - every closure over a loop variable is timed within the iteration that made it
from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Callable

import torch
import torch.nn.functional as F
from videollm_kernels.add_layer_norm.triton_impl import add_layer_norm_triton
from videollm_kernels.flash_attention import triton_impl as fa

# benchmarks/kernels.py: this script's folder comes first on sys.path, before the repository's kernels/ package
from kernels import _try_time_ms


def _with_blocks(blocks: fa.Blocks, fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        saved = fa._blocks
        fa._blocks = lambda head_dim, n_q: blocks
        try:
            return fn()
        finally:
            fa._blocks = saved
    return run


def _try(label: str, fn: Callable[[], object], reps: int) -> float:
    """Median ms of ``fn`` on this machine's device (NaN when it fails: a config that does not fit is a row)."""
    return _try_time_ms(label, fn, torch.device("cuda" if torch.cuda.is_available() else "cpu"), reps)[0]


def _heads(b: int, n: int, h: int, d: int, dev, dtype) -> torch.Tensor:
    return torch.randn(b, n, h, d, device=dev, dtype=dtype).transpose(1, 2).requires_grad_()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    reps = 2 if args.quick else 30
    h, d = (2, 32) if args.quick else (8, 128)
    n = 40 if args.quick else 32 + 8 * 144
    batches = [1] if args.quick else [1, 8]
    rows: list[dict] = []

    def add(**row) -> None:
        rows.append(row)
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)

    scale = d ** -0.5
    default = fa._blocks(d, n)
    if args.quick:
        fwd_space = [default, default._replace(n=16)]
        bwd_space = fwd_space
    else:
        fwd_space = [fa.Blocks(m, bn, d, w, st, 1) for m, bn, w, st in
                     itertools.product((64, 128), (32, 64, 128), (4, 8), (2, 3))]
        bwd_space = [fa.Blocks(m, bn, d, w, 2, st) for m, bn, w, st in
                     itertools.product((32, 64, 128), (32, 64), (4, 8), (1, 2))]

    for b in batches:
        q, k, v = (_heads(b, n, h, d, dev, dtype) for _ in range(3))
        grad = torch.randn(b, h, n, d, device=dev, dtype=dtype)
        sdpa = lambda: F.scaled_dot_product_attention(q, k, v)
        add(op="attention", b=b, impl="sdpa", mode="fwd", ms=_try("sdpa", sdpa, reps))
        add(op="attention", b=b, impl="sdpa", mode="fwd+bwd",
            ms=_try("sdpa", lambda: torch.autograd.grad(sdpa(), (q, k, v), grad), reps))
        with torch.no_grad():
            add(op="attention", b=b, impl="triton-default", mode="fwd", ms=_try(
                "default", lambda: fa.flash_attention_triton(q, k, v, n, scale), reps))
        for blk in fwd_space:
            with torch.no_grad():
                ms = _try(str(blk), _with_blocks(blk, lambda: fa.flash_attention_triton(q, k, v, n, scale, 1)), reps)
            add(op="attention", b=b, impl="triton", mode="fwd", splits=1, **blk._asdict(), ms=ms)
        for blk in bwd_space:
            step = lambda: torch.autograd.grad(fa.flash_attention_triton(q, k, v, n, scale, 1), (q, k, v), grad)
            add(op="attention", b=b, impl="triton", mode="fwd+bwd", splits=1, **blk._asdict(),
                ms=_try(str(blk), _with_blocks(blk, step), reps))

    segments_list = [2] if args.quick else [10, 100, 1000]
    for segments in segments_list:
        length = segments * 32
        q = _heads(1, 32, h, d, dev, dtype)
        ck = torch.randn(1, h, length + 128, d, device=dev, dtype=dtype)
        cv = torch.randn_like(ck)
        with torch.no_grad():
            add(op="retrieval", segs=segments, impl="sdpa", mode="fwd", ms=_try(
                "sdpa", lambda: F.scaled_dot_product_attention(q, ck[:, :, :length], cv[:, :, :length]), reps))
            add(op="retrieval", segs=segments, impl="triton-default", mode="fwd", ms=_try(
                "default", lambda: fa.flash_attention_triton(q, ck, cv, length, scale), reps))
            for bn, w, splits in itertools.product((32, 64, 128) if not args.quick else (16,), (4, 8),
                                                   (1, 2, 4, 8, 16, 32, 64) if not args.quick else (1, 2)):
                blk = fa.Blocks(32, bn, d, w, 2, 1)
                ms = _try(str(blk), _with_blocks(blk, lambda: fa.flash_attention_triton(q, ck, cv, length, scale,
                                                                                         splits)), reps)
                add(op="retrieval", segs=segments, impl="triton", mode="fwd", splits=splits, **blk._asdict(), ms=ms)

    width = h * d
    for b in batches:
        x = torch.randn(b, n, width, device=dev, dtype=dtype)
        r = torch.randn_like(x)
        w_ = torch.ones(width, device=dev)
        bias = torch.zeros(width, device=dev)
        with torch.no_grad():
            add(op="add_layer_norm", b=b, impl="torch", mode="fwd", ms=_try(
                "torch", lambda: F.layer_norm((x + r).float(), (width,), w_, bias, 1e-12).to(dtype), reps))
            add(op="add_layer_norm", b=b, impl="triton", mode="fwd", ms=_try(
                "triton", lambda: add_layer_norm_triton(x, r, w_, bias, 1e-12), reps))

    for key in ("attention-fwd", "attention-fwd+bwd"):
        op, mode = key.split("-", 1)
        for b in batches:
            cands = [r for r in rows if r["op"] == op and r["mode"] == mode and r.get("b") == b
                     and r["impl"] == "triton" and r["ms"] == r["ms"]]
            best = sorted(cands, key=lambda r: r["ms"])[:3]
            print(f"best {key} B{b}:", [(r["m"], r["n"], r["warps"], r["fwd_stages"], r["bwd_stages"],
                                          round(r["ms"], 4)) for r in best])
    for segments in segments_list:
        cands = [r for r in rows if r["op"] == "retrieval" and r.get("segs") == segments and r["impl"] == "triton"
                 and r["ms"] == r["ms"]]
        best = sorted(cands, key=lambda r: r["ms"])[:3]
        print(f"best retrieval {segments} segs:", [(r["n"], r["warps"], r["splits"], round(r["ms"], 4)) for r in best])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "rows": rows}, fh,
                      indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
