"""Batch captioning at length and at scale: peak memory vs video length, and the Ray engine vs one process.

Everything runs the product's own command (``python -m videollm caption``), each run in its own process, on
test-source videos (``benchmarks/testsrc.py``: 320x240, 25 fps, a hard cut every 8 s), shipped model, default
caption settings unless told otherwise.

1. ``rss``: peak RSS of ``caption`` on a video of 256 sampled frames (128 s at the model's 2 fps) and of 4,096
   (2,048 s). The goal is a ratio <= 1.15: memory must not grow with the video.
2. ``scale``: videos per minute over a folder of short videos, single-process (``--engine local``) vs Ray with 1
   and 2 workers on this machine (a local Ray instance started by the command); Ray's per-video overhead (its
   1-worker wall time minus the single process's, per video); each Ray worker's peak RSS (from the manifest).

Run: ``python benchmarks/batch_scale.py [--only rss|scale] [--frames 256 4096] [--videos 8] [--seconds 32]
[--json PATH]``. Needs Ray for ``scale`` (``pip install 'videollm[ray]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from testsrc import write_testsrc  # noqa: E402

FPS = 2.0  # the model's sampling rate


def run_caption(args: list[str]) -> tuple[float, float, int]:
    """Run ``videollm caption ARGS``; (wall seconds, peak RSS in MB of that process, exit code)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "videollm", "caption", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in (0, 1):
        print(stderr, file=sys.stderr)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, proc.returncode


def bench_rss(work: Path, frames: list[int], extra: list[str]) -> dict:
    results = {}
    for n in frames:
        video = write_testsrc(work / f"testsrc_{n}.mp4", seconds=n / FPS)
        out = work / f"out_{n}"
        wall, rss, code = run_caption([str(video), "--out", str(out), *extra])
        scenes = len(json.loads((out / f"{video.stem}.json").read_text())["scenes"])
        results[n] = {"peak_rss_mb": round(rss, 1), "wall_s": round(wall, 1), "scenes": scenes, "exit": code}
        print(f"caption {n:5d} frames ({n / FPS:6.0f} s, {scenes} scenes): peak RSS {rss:7.1f} MB, "
              f"{wall:6.1f} s", flush=True)
    lo, hi = min(frames), max(frames)
    ratio = results[hi]["peak_rss_mb"] / results[lo]["peak_rss_mb"]
    print(f"peak RSS ratio {hi} / {lo} frames: {ratio:.3f} (goal <= 1.15)")
    return {"runs": results, "ratio": round(ratio, 3)}


def bench_scale(work: Path, videos: int, seconds: float, extra: list[str]) -> dict:
    folder = work / "folder"
    folder.mkdir()
    for k in range(videos):
        write_testsrc(folder / f"clip{k:03d}.mp4", seconds=seconds, seed=k)
    cpus = os.cpu_count() or 2
    # Every engine gets the whole machine: the single process and one Ray worker all threads, two workers half each.
    runs = {"local": [], "ray 1 worker": ["--engine", "ray", "--workers", "1", "--cpus-per-worker", str(cpus)],
            "ray 2 workers": ["--engine", "ray", "--workers", "2", "--cpus-per-worker", str(max(1, cpus // 2))]}
    results = {}
    for label, engine in runs.items():
        out = work / ("out_" + label.replace(" ", "_"))
        wall, rss, code = run_caption([str(folder), "--out", str(out), *engine, *extra])
        rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
        done = sum(r["status"] == "done" for r in rows)
        workers = {}
        for r in rows:
            workers[r["worker"]] = max(workers.get(r["worker"], 0.0), r["peak_rss_mb"] or 0.0)
        # Time spent outside captioning videos (start-up, model loads, scheduling), spread over the workers.
        in_videos = sum(r["seconds"] or 0.0 for r in rows) / len(workers)
        results[label] = {"wall_s": round(wall, 1), "videos_per_min": round(60 * done / wall, 2), "done": done,
                          "exit": code, "driver_peak_rss_mb": round(rss, 1),
                          "worker_peak_rss_mb": sorted(round(v, 1) for v in workers.values()),
                          "seconds_per_video_in_worker": round(in_videos * len(workers) / max(1, done), 2),
                          "outside_videos_s": round(wall - in_videos, 1)}
        print(f"{label:14s}: {done}/{videos} videos in {wall:6.1f} s = {60 * done / wall:5.2f} videos/min; "
              f"{results[label]['seconds_per_video_in_worker']:.2f} s a video in its worker, "
              f"{wall - in_videos:.1f} s outside videos (start-up, loads); driver peak RSS {rss:.1f} MB; worker "
              f"peak RSS {results[label]['worker_peak_rss_mb']} MB", flush=True)
    base = results["local"]
    for label in ("ray 1 worker", "ray 2 workers"):
        results[label]["speedup_vs_local"] = round(base["wall_s"] / results[label]["wall_s"], 3)
        print(f"{label} vs local: {results[label]['speedup_vs_local']:.2f}x")
    ray1 = results["ray 1 worker"]
    overhead = (ray1["wall_s"] - base["wall_s"]) / videos
    startup = ray1["outside_videos_s"] - base["outside_videos_s"]
    per_video = ray1["seconds_per_video_in_worker"] - base["seconds_per_video_in_worker"]
    print(f"Ray overhead (1 worker vs local): {overhead:+.2f} s a video in all = {startup:+.1f} s once (cluster "
          f"start, worker start) and {per_video:+.2f} s a video inside the worker")
    results["ray_overhead_s_per_video"] = round(overhead, 2)
    results["ray_startup_s"] = round(startup, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("rss", "scale"))
    parser.add_argument("--frames", type=int, nargs=2, default=[256, 4096])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=32.0, help="length of each video in the scale folder")
    parser.add_argument("--max-new-tokens", type=int, help="caption bound (default: the command's)")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    extra = ["--max-new-tokens", str(args.max_new_tokens)] if args.max_new_tokens else []
    report = {"cpus": os.cpu_count()}
    work = Path(tempfile.mkdtemp(prefix="batch_scale_"))
    try:
        if args.only in (None, "rss"):
            report["rss"] = bench_rss(work, args.frames, extra)
        if args.only in (None, "scale"):
            report["scale"] = bench_scale(work, args.videos, args.seconds, extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
