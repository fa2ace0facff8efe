"""Streaming bridge step latency vs memory-cache size, published sizes, on CPU.

Measures ``MemoryBridge.step`` for one 8-frame segment (8 x 144 tokens, width 1024, 32 memory tokens) when the
state already holds K cached memories, for K in --cache-sizes, in fp32 and under bf16 autocast. Also reports:

- the retrieval part alone (cross-attention of the 32 memory tokens over K*32 cached keys/values),
- a step that re-projects the whole cache to keys/values (what a bridge without kept projections would pay),
- appending one memory to the cache with the preallocated ``RowBuffer`` vs a Python list + ``torch.cat``.

The cache contents are synthetic (random unit-variance rows): latency does not depend on their values, and filling a
1000-segment cache through real steps would take minutes.

Times are medians of process CPU time (one intra-op thread, so the work runs on the calling thread); one wall-clock
step is printed beside them, which on a shared machine also counts waiting for a core.

Run: ``python benchmarks/bridge_step.py`` (about 1-2 minutes with 1 thread). ``--json PATH`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from videollm.bridge import BridgeConfig, BridgeState, MemoryBridge, RowBuffer


def _median_ms(fn: Callable[[], object], reps: int) -> float:
    """Median CPU time of ``fn`` in ms.

    CPU time of this process rather than wall time: development machines are shared (2 cores, several jobs), and
    with one intra-op thread the work runs on the calling thread, so CPU time is what the step costs.
    """
    times = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1000.0)
    return statistics.median(times)


def _median_wall_ms(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _autocast(dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _state_with_cache(bridge: MemoryBridge, size: int, gen: torch.Generator) -> BridgeState:
    """A state whose cache holds ``size`` synthetic memories (kept key/value projections built on first step)."""
    cfg = bridge.config
    state = bridge.init_state()
    state.cache.append(torch.randn(size, cfg.memory_tokens, cfg.width, generator=gen))
    return state


def measure_point(bridge: MemoryBridge, segment: Tensor, state: BridgeState, reps: int,
                  reproject: bool) -> dict[str, float]:
    """Time one cache size: steps with kept projections, retrieval alone, optionally a re-projecting step."""
    width = bridge.config.width
    bridge.step(segment, state)  # warm-up; builds the kept key/value projections

    def step() -> None:
        bridge.step(segment, state)

    def reproject_step() -> None:
        state.keys = None  # forces the bridge to project every cached memory again
        bridge.step(segment, state)

    memory = state.memory.unsqueeze(0)  # (1, M, W)
    keys = state.keys.view().reshape(1, -1, width)  # (1, K*M, W)
    values = state.values.view().reshape(1, -1, width)
    return {
        "step_ms": _median_ms(step, reps),
        "step_wall_ms": _median_wall_ms(step, 1),
        "retrieval_ms": _median_ms(lambda: bridge.retriever.attend(memory, keys, values), reps),
        "reproject_step_ms": _median_ms(reproject_step, 1) if reproject else float("nan"),
    }


def run(cache_sizes: Sequence[int], dtypes: Sequence[str], reps: int, frames: int) -> list[dict[str, float]]:
    """Measure and return one row per (dtype, cache size); prints a table as it goes."""
    cfg = BridgeConfig.from_preset("published")
    torch.manual_seed(0)
    bridge = MemoryBridge(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    segment = torch.randn(frames, cfg.tokens_per_frame, cfg.vision_dim, generator=gen)  # (8, 144, 1024)
    rows = []
    print(f"{'dtype':<6}{'cache K':>9}{'step ms':>10}{'(wall)':>9}{'retrieval ms':>14}{'re-project step ms':>20}")
    for dtype in dtypes:
        for size in cache_sizes:
            # size - 1 synthetic entries + the warm-up step's own memory = a cache of `size` at the timed steps
            state = _state_with_cache(bridge, size - 1, gen)
            with _autocast(dtype), torch.no_grad():
                row = measure_point(bridge, segment, state, reps, reproject=size in (cache_sizes[0], cache_sizes[-1]))
            row = {"dtype": dtype, "cache": size, **row}
            rows.append(row)
            print(f"{dtype:<6}{size:>9}{row['step_ms']:>10.1f}{row['step_wall_ms']:>9.0f}"
                  f"{row['retrieval_ms']:>14.2f}{row['reproject_step_ms']:>20.1f}", flush=True)
    return rows


def append_costs(size: int, reps: int) -> dict[str, float]:
    """ms to append one (32, 1024) memory and get the whole cache as one tensor, at cache size ``size``."""
    row = torch.randn(1, 32, 1024)
    buffer = RowBuffer.from_tensor(torch.randn(size, 32, 1024))
    chunks = list(torch.randn(size, 32, 1024).unbind(0))

    def buffer_append() -> None:
        buffer.append(row)
        buffer.view()

    def list_cat() -> None:
        chunks.append(row[0])
        torch.stack(chunks)

    return {"cache": size, "rowbuffer_ms": _median_ms(buffer_append, reps), "list_cat_ms": _median_ms(list_cat, reps)}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the measurements, print (and optionally save) them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-sizes", type=int, nargs="+", default=[1, 10, 100, 500, 1000])
    parser.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--reps", type=int, default=3, help="timed steps per point (median reported)")
    parser.add_argument("--frames", type=int, default=8, help="frames in the segment (published max: 8)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}; segment {args.frames} x 144 tokens, width 1024, M 32")
    rows = run(args.cache_sizes, args.dtypes, args.reps, args.frames)
    appends = [append_costs(size, 5) for size in args.cache_sizes]
    print(f"\n{'cache K':>9}{'RowBuffer append ms':>21}{'list+stack ms':>15}")
    for a in appends:
        print(f"{a['cache']:>9}{a['rowbuffer_ms']:>21.3f}{a['list_cat_ms']:>15.2f}")
    per_segment_mb = 3 * 32 * 1024 * 4 / 2**20
    print(f"\nstate memory per cached segment (fp32 cache + kept fp32 keys/values): {per_segment_mb:.2f} MiB")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"steps": rows, "appends": appends, "threads": args.threads}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
