"""Kernels vs references vs PyTorch SDPA at the bridge's preset sizes: time, tokens/s and peak memory.

Ops and sizes (docs/design.md §3): bridge attention block (width 1024, 8 heads, Dh 128, N = 32 + 8 * 144 = 1184 tokens,
bf16 on GPU / fp32 on CPU); memory retrieval (32 memory queries over caches of 10, 100 and 1000 segments x 32
tokens); SceneTiling scan (T = 1e5 and 1e6 frames, D = 384). Attention ops are timed forward and forward+backward.

Implementations: ``triton`` (CUDA only: interpreted kernels on CPU are far too slow to time meaningfully),
``reference`` (the readable ``naive.py``), ``sdpa`` (``F.scaled_dot_product_attention`` + the same out-proj /
add + LayerNorm in PyTorch, i.e. what ``videollm.bridge.layers`` does today), and for the scan the ``scenetiling``
package. Peak memory is ``torch.cuda.max_memory_allocated`` above the inputs (CUDA only).

Run: ``python benchmarks/kernels.py`` (on CPU about 1-2 minutes with 1 thread; ``--quick`` for a smaller smoke run,
``--json PATH`` to save the numbers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from videollm_kernels.add_layer_norm.naive import add_layer_norm_ref
from videollm_kernels.bridge_attention.naive import bridge_attention_ref
from videollm_kernels.memory_retrieval.naive import memory_retrieval_ref
from videollm_kernels.scenetiling_scan.naive import scenetiling_scan_ref

WIDTH, HEADS, MEMORY = 1024, 8, 32
BRIDGE_TOKENS = 32 + 8 * 144


def _time_ms(fn: Callable[[], object], device: torch.device, reps: int) -> tuple[float, float | None]:
    """(median wall time in ms, peak extra CUDA memory in MiB or None on CPU) of ``fn`` after one warm-up call."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == "cuda" else None
    return statistics.median(times), peak


def _try_time_ms(label: str, fn: Callable[[], object], device: torch.device, reps: int) -> tuple[float, float | None]:
    """``_time_ms``, except that a failing implementation (a kernel that does not compile on this Triton, say) prints
    its error and times as NaN instead of ending the whole benchmark."""
    try:
        return _time_ms(fn, device, reps)
    except Exception as exc:  # noqa: BLE001 - reported in the table, the other implementations still run
        print(f"FAILED {label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return float("nan"), None


def _sdpa_block(q, k, v, residual, ln_w, ln_b, out_w):
    b, h, n, d = q.shape
    attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, h * d)  # (B, N, W)
    return add_layer_norm_ref(F.linear(attn, out_w), residual, ln_w, ln_b, 1e-12)


def _bridge_impls(device: torch.device) -> dict[str, Callable]:
    impls = {
        "reference": lambda q, k, v, r, w, b, o: bridge_attention_ref(q, k, v, r, w, b, 1e-12, q.shape[-1] ** -0.5, o),
        "sdpa": _sdpa_block,
    }
    if device.type == "cuda":
        from videollm_kernels.bridge_attention.triton_impl import (
            bridge_attention_triton,
        )

        impls["triton"] = lambda q, k, v, r, w, b, o: bridge_attention_triton(q, k, v, r, w, b, 1e-12,
                                                                             q.shape[-1] ** -0.5, o)
    return impls


def _retrieval_impls(device: torch.device) -> dict[str, Callable]:
    impls = {
        "reference": lambda q, k, v, n: memory_retrieval_ref(q, k, v, n, q.shape[-1] ** -0.5),
        "sdpa": lambda q, k, v, n: F.scaled_dot_product_attention(q, k[:, :, :n], v[:, :, :n]),
    }
    if device.type == "cuda":
        from videollm_kernels.memory_retrieval.triton_impl import (
            memory_retrieval_triton,
        )

        impls["triton"] = lambda q, k, v, n: memory_retrieval_triton(q, k, v, n, q.shape[-1] ** -0.5)
    return impls


def _scenetiling_package(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    import scenetiling

    sims = scenetiling.similarities(features)
    return sims, scenetiling.depth_scores(sims)


def _scan_impls(device: torch.device) -> dict[str, Callable]:
    impls = {
        "reference": scenetiling_scan_ref,
        "scenetiling": _scenetiling_package,
    }
    if device.type == "cuda":
        from videollm_kernels.scenetiling_scan.triton_impl import (
            scenetiling_scan_triton,
        )

        impls["triton"] = scenetiling_scan_triton
    return impls


def _fwd_bwd(fn: Callable, leaves: list[torch.Tensor], *extra) -> Callable[[], object]:
    def run() -> None:
        out = fn(*leaves, *extra)
        torch.autograd.grad(out, leaves, torch.ones_like(out))
    return run


def bench_bridge(device, dtype, reps, batch) -> list[dict]:
    d = WIDTH // HEADS
    n = BRIDGE_TOKENS
    make = lambda *s: torch.randn(*s, device=device, dtype=dtype).requires_grad_()
    q, k, v = (make(batch, n, HEADS, d).detach().transpose(1, 2).requires_grad_() for _ in range(3))
    residual = make(batch, n, WIDTH)
    ln_w = torch.ones(WIDTH, device=device, requires_grad=True)
    ln_b = torch.zeros(WIDTH, device=device, requires_grad=True)
    out_w = (torch.randn(WIDTH, WIDTH, device=device) / WIDTH ** 0.5).to(dtype).requires_grad_()
    rows = []
    for name, fn in _bridge_impls(device).items():
        args = [q, k, v, residual, ln_w, ln_b, out_w]
        for mode, call in (("fwd", lambda fn=fn, args=args: fn(*args)), ("fwd+bwd", _fwd_bwd(fn, args))):
            with torch.set_grad_enabled(mode == "fwd+bwd"):
                ms, peak = _try_time_ms(f"bridge_attention {name} {mode}", call, device, reps)
            rows.append({"op": "bridge_attention", "impl": name, "mode": mode, "size": f"B{batch} N{n}",
                         "ms": ms, "tokens_per_s": batch * n / ms * 1e3, "peak_mib": peak})
    return rows


def bench_retrieval(device, dtype, reps, segments_list) -> list[dict]:
    d = WIDTH // HEADS
    rows = []
    for segments in segments_list:
        length = segments * MEMORY
        q = torch.randn(1, MEMORY, HEADS, d, device=device, dtype=dtype).transpose(1, 2).requires_grad_()
        # Preallocated with headroom, as the streaming cache is; only the first `length` rows are valid.
        cache_k = torch.randn(1, HEADS, length + 4 * MEMORY, d, device=device, dtype=dtype).requires_grad_()
        cache_v = torch.randn_like(cache_k).requires_grad_()
        for name, fn in _retrieval_impls(device).items():
            leaves = [q, cache_k, cache_v]
            forward = lambda fn=fn, leaves=leaves, length=length: fn(*leaves, length)
            for mode, call in (("fwd", forward), ("fwd+bwd", _fwd_bwd(fn, leaves, length))):
                with torch.set_grad_enabled(mode == "fwd+bwd"):
                    ms, peak = _try_time_ms(f"memory_retrieval {name} {mode} {segments}", call, device, reps)
                rows.append({"op": "memory_retrieval", "impl": name, "mode": mode,
                             "size": f"{segments} segs ({length} keys)", "ms": ms,
                             "tokens_per_s": length / ms * 1e3, "peak_mib": peak})
    return rows


def bench_scan(device, dtype, reps, lengths) -> list[dict]:
    rows = []
    for t in lengths:
        feats = torch.randn(t, 384, device=device, dtype=dtype)
        for name, fn in _scan_impls(device).items():
            ms, peak = _try_time_ms(f"scenetiling_scan {name} T{t}", lambda fn=fn, feats=feats: fn(feats), device, reps)
            rows.append({"op": "scenetiling_scan", "impl": name, "mode": "fwd", "size": f"T{t} D384", "ms": ms,
                         "tokens_per_s": t / ms * 1e3, "peak_mib": peak})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="intra-op CPU threads")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 20 CUDA, 3 CPU)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    reps = args.reps or (20 if cuda else 3)
    dtype = torch.bfloat16 if cuda else torch.float32
    if not cuda:
        print("No CUDA device: timing the references and SDPA only; Triton timings need a GPU "
              "(interpreted kernels are not representative).")
    segments = [10, 100] if args.quick else [10, 100, 1000]
    lengths = [10**4] if args.quick else [10**5, 10**6]
    rows = bench_bridge(device, dtype, reps, batch=1)
    rows += bench_retrieval(device, dtype, reps, segments)
    rows += bench_scan(device, dtype, reps, lengths)
    print(f"device={device} dtype={dtype} threads={args.threads} reps={reps}")
    print(f"{'op':<18} {'size':<24} {'impl':<12} {'mode':<8} {'ms':>10} {'tokens/s':>12} {'peak MiB':>9}")
    for r in rows:
        peak = "n/a" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        print(f"{r['op']:<18} {r['size']:<24} {r['impl']:<12} {r['mode']:<8} {r['ms']:>10.2f} "
              f"{r['tokens_per_s']:>12.3g} {peak:>9}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": str(device), "dtype": str(dtype), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
