"""SceneTiling benchmark: vectorised rule vs the published nested loops (same run, same machine).

Run: ``python benchmarks/scenetiling_speed.py [--threads 1]``. Prints one table; every ratio is measured in this run.
Checks that both give identical boundaries on every case before timing them.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

import scenetiling
from scenetiling import synthetic
from scenetiling.reference import (
    boundaries_reference,
    depth_scores_reference,
    segment_ends_reference,
)


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` calls, in seconds (one warm-up call first)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def scene_features(t: int, d: int, seed: int = 0) -> torch.Tensor:
    """(T, D) piecewise-constant scene means (10-120 frames per scene) plus noise 0.3."""
    return synthetic.scene_features(seed, t, d)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows: list[tuple[str, str, float, float]] = []

    feats = scene_features(4096, 384)
    fast = scenetiling.segment_ends(feats)
    slow = segment_ends_reference(feats)
    assert fast == slow, (fast, slow)
    rows.append(
        (
            "segment_ends, T=4096 scenes, D=384",
            f"{len(fast) - 1} cuts, identical",
            best_time(lambda: segment_ends_reference(feats), 1),
            best_time(lambda: scenetiling.segment_ends(feats), 5),
        )
    )

    falling = torch.linspace(1.0, -1.0, 2047)
    assert torch.equal(scenetiling.depth_scores(falling), depth_scores_reference(falling))
    fast = scenetiling.boundaries_from_depth(scenetiling.depth_scores(falling))
    assert fast == boundaries_reference(depth_scores_reference(falling))
    rows.append(
        (
            "depth + cuts, T=2048, falling similarity",
            f"{len(fast)} cuts, identical",
            best_time(lambda: boundaries_reference(depth_scores_reference(falling)), 1),
            best_time(lambda: scenetiling.boundaries_from_depth(scenetiling.depth_scores(falling)), 20),
        )
    )

    big = scene_features(100_000, 384, seed=1)
    sims = scenetiling.similarities(big)
    rows.append(
        (
            "depth + cuts from sims, T=100,000",
            f"{len(scenetiling.boundaries_from_depth(scenetiling.depth_scores(sims))) } cuts",
            float("nan"),
            best_time(lambda: scenetiling.boundaries_from_depth(scenetiling.depth_scores(sims)), 5),
        )
    )
    rows.append(
        (
            "segment_ends from features, T=100,000, D=384",
            "similarities dominate",
            best_time(lambda: torch.cosine_similarity(big[:-1], big[1:]), 3),
            best_time(lambda: scenetiling.segment_ends(big), 3),
        )
    )

    stream_feats = scene_features(4096, 384, seed=2)
    offline = scenetiling.segment_ends(stream_feats, max_cuts=None)

    def run_stream() -> list[int]:
        tiler = scenetiling.StreamingSceneTiler()
        ends = [e for row in stream_feats for e in tiler.push(row)]
        return ends + tiler.flush()

    online = run_stream()
    f1 = scenetiling.boundary_f1(online[:-1], offline[:-1], tol=1)
    per_frame = best_time(run_stream, 1) / len(stream_feats)
    rows.append(("streaming, T=4096, D=384 (per frame)", f"F1 vs offline {f1:.3f}", float("nan"), per_frame))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"{'case':46s} {'result':28s} {'reference s':>12s} {'vectorised s':>13s} {'speed-up':>10s}")
    for name, result, ref_s, fast_s in rows:
        ratio = f"{ref_s / fast_s:,.0f}x" if np.isfinite(ref_s) else "-"
        ref_txt = f"{ref_s:12.4f}" if np.isfinite(ref_s) else f"{'-':>12s}"
        print(f"{name:46s} {result:28s} {ref_txt} {fast_s:13.6f} {ratio:>10s}")
    print("reference = published nested loops (scenetiling.reference); for T=100,000 features the reference column")
    print("is torch.cosine_similarity alone, the published way to get the similarities.")


if __name__ == "__main__":
    main()
