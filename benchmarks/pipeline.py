"""Streaming pipeline cost with the embedded preset: memory flatness, end-to-end vs vision-only time, full-context baseline.

Each measurement runs in its own process (peak RSS is per process):
- ``stream N``: decode → encode → online SceneTiling → bridge step per scene over a synthetic-world video of N
  sampled frames (2 fps); peak RSS and wall time. The issue's goal: RSS(4096) / RSS(256) <= 1.15.
- ``vision N``: decode → encode only, the physical limit of this design. Goal: time(stream) / time(vision) <= 1.3.
- ``fullctx N``: the PLLaVA-style baseline: every frame's pooled tokens (16 per frame) projected and fed to the LM
  in one prefill; its RSS grows with N.

The bridge and projector weights are untrained here (cost does not depend on their values); no captions are generated
(caption cost is measured by benchmarks/streaming.py).

Run: python benchmarks/pipeline.py [--frames 256 4096] [--e2e 1024] [--fullctx 256 1024]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FPS = 2.0


def make_video(path: Path, frames: int, seed: int = 0) -> Path:
    """A synthetic-world video with at least ``frames`` frames at 2 fps (every frame is sampled)."""
    import numpy as np

    from videollm.world import sample_video_spec, write_video
    from videollm.world.spec import WorldConfig

    seconds = frames / FPS
    n_scenes = max(1, int(seconds / 4.5))
    config = WorldConfig(width=224, height=224, fps=FPS, scenes=(n_scenes, n_scenes), scene_seconds=(3.0, 6.0))
    spec = sample_video_spec(np.random.default_rng(seed), config=config)
    write_video(spec, path)
    return path


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(kind: str, video: str, frames: int) -> dict:
    import torch

    from videollm.io import open_video
    from videollm.memory import watch
    from videollm.model import VideoLLM

    torch.set_num_threads(2)
    model = VideoLLM.from_pretrained("embedded")
    rss_loaded = peak_rss_mib()

    def batches():
        with open_video(video) as reader:
            seen = 0
            for batch in reader.iter_fps(FPS, batch_size=16):
                take = min(len(batch.times), frames - seen)
                if take <= 0:
                    return
                batch.indices, batch.times, batch.frames = batch.indices[:take], batch.times[:take], batch.frames[:take]
                seen += take
                yield batch

    start = time.perf_counter()
    scenes = 0
    if kind == "stream":
        for _ in watch(model, batches(), online=True):
            scenes += 1
    elif kind == "vision":
        for batch in batches():
            model.encode_frames(batch.frames)
    elif kind == "fullctx":
        parts = [model.encode_frames(b.frames)[1] for b in batches()]
        tokens = torch.cat(parts).flatten(0, 1)  # (N*16, Dv)
        with torch.no_grad():
            visual = model.projector(tokens)  # the bridge width equals the vision width in this preset
            model.lm(inputs_embeds=visual[None], logits_to_keep=1)
    else:
        raise SystemExit(f"unknown worker {kind}")
    wall = time.perf_counter() - start
    return {"kind": kind, "frames": frames, "wall_s": wall, "peak_rss_mib": peak_rss_mib(),
            "rss_after_load_mib": rss_loaded, "scenes": scenes}


def run(kind: str, video: Path, frames: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, str(video), str(frames)],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {kind:8s} {frames:6d} frames  {result['wall_s']:8.1f} s  peak RSS {result['peak_rss_mib']:8.0f} MiB"
          f"  (after model load {result['rss_after_load_mib']:.0f} MiB)  scenes {result['scenes']}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--e2e", type=int, default=1024)
    parser.add_argument("--fullctx", type=int, nargs="*", default=[256, 1024])
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "VIDEO", "FRAMES"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write all results to this file")
    args = parser.parse_args()
    if args.worker:
        kind, video, frames = args.worker
        print(json.dumps(worker(kind, video, int(frames))))
        return
    longest = max([*args.frames, args.e2e, *args.fullctx])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        video = make_video(Path(tmp) / "long.mp4", longest)
        print(f"video: {longest} frames at {FPS:g} fps ({longest / FPS / 60:.1f} min), "
              f"written in {time.perf_counter() - t:.1f} s")
        print("streaming memory:")
        stream = {n: run("stream", video, n) for n in args.frames}
        results += stream.values()
        lo, hi = min(args.frames), max(args.frames)
        print(f"  peak RSS ratio {hi} / {lo} frames: {stream[hi]['peak_rss_mib'] / stream[lo]['peak_rss_mib']:.3f}"
              " (goal <= 1.15)")
        print("end-to-end vs vision-only:")
        e2e = stream.get(args.e2e) or run("stream", video, args.e2e)
        vis = run("vision", video, args.e2e)
        results += [e2e, vis]
        print(f"  time ratio at {args.e2e} frames: {e2e['wall_s'] / vis['wall_s']:.3f} (goal <= 1.3)")
        if args.fullctx:
            print("full-context baseline (every frame's tokens into the LM):")
            for n in args.fullctx:
                results.append(run("fullctx", video, n))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
