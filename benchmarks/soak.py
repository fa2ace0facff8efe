"""Soak: a long stream through ``videollm stream``, and the web app's Live captions tab for a long while.

    python benchmarks/soak.py stream [--minutes 60] [--json runs/soak/stream.json]
    python benchmarks/soak.py live   [--minutes 20] [--json runs/soak/live.json]

Both run the shipped model on one synthetic-world video of ``--minutes`` (224 px, 4 fps, scenes of 3-9 s; written
once under ``--workdir``), in a separate process whose resident memory (VmRSS), thread count and open file
descriptors are sampled from /proc every ``--every`` seconds.

- ``stream``: ``python -m videollm stream VIDEO`` as fast as it goes (the source is a file; ``--realtime`` paces it
  like a camera). Each JSON line is timestamped on arrival. Reported for the first and the last ``--window``
  minutes of the video: RSS (median, max), threads, file descriptors, caption latency (median, p90; from the cut
  being confirmed to the caption) and speed (video seconds per wall second).
- ``live``: ``videollm serve`` in a subprocess and one ``gradio_client`` visitor on ``/live`` with the video played
  at its own pace (the tab's default), for the video's whole length. Reported the same way for the server
  process, with the latencies from the tab's scene table.

Flat means: the last window's median RSS within a few percent of the first's, and threads and descriptors equal.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_load import proc_figures  # noqa: E402
from serve_startup import Server  # noqa: E402
from streaming import make_video  # noqa: E402


class Sampler(threading.Thread):
    """Samples a process's /proc figures every ``every`` seconds until ``stop``; ``position()`` gives the stream's
    position (video seconds) at each sample."""

    def __init__(self, pid: int, every: float, position) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.position = pid, every, position
        self.samples: list[dict] = []
        self.done = threading.Event()

    def run(self) -> None:
        started = time.perf_counter()
        while not self.done.wait(self.every):
            try:
                figures = proc_figures(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                return
            self.samples.append({"wall": time.perf_counter() - started, "video": self.position(), **figures})


def window_report(samples: list[dict], scenes: list[dict], lo: float, hi: float) -> dict:
    """Figures of the samples and scenes whose video position lies in [lo, hi) seconds."""
    inside = [s for s in samples if lo <= s["video"] < hi]
    lat = sorted(sc["latency"] for sc in scenes if lo <= sc["end"] < hi)
    # Speed from the scenes' arrival times where known (stream), else from the samples once the stream moved (live).
    moves = [sc for sc in scenes if lo <= sc["end"] < hi and "wall" in sc] or [s for s in inside if s["video"] > 0]
    key = "end" if moves and "end" in moves[0] else "video"
    speed = None
    if len(moves) >= 2 and moves[-1]["wall"] > moves[0]["wall"]:
        speed = (moves[-1][key] - moves[0][key]) / (moves[-1]["wall"] - moves[0]["wall"])
    return {
        "from_s": lo, "to_s": hi, "samples": len(inside), "scenes": len(lat),
        "rss_median_mb": statistics.median(s["rss_mb"] for s in inside) if inside else None,
        "rss_max_mb": max((s["rss_mb"] for s in inside), default=None),
        "threads": sorted({s["threads"] for s in inside}), "fds": sorted({s["fds"] for s in inside}),
        "latency_median_s": statistics.median(lat) if lat else None,
        "latency_p90_s": lat[min(len(lat) - 1, round(0.9 * (len(lat) - 1)))] if lat else None,
        "speed_x_real_time": speed,
    }


def summarize(kind: str, samples: list[dict], scenes: list[dict], length: float, window: float) -> dict:
    first = window_report(samples, scenes, 0.0, window)
    last = window_report(samples, scenes, length - window, length + 1)
    out = {"kind": kind, "video_s": length, "scenes": len(scenes), "first": first, "last": last}
    for name, w in (("first", first), ("last", last)):
        speed = f"{w['speed_x_real_time']:.2f}x real time" if w["speed_x_real_time"] else "-"
        lat = (f"{w['latency_median_s']:.2f} / {w['latency_p90_s']:.2f} s" if w["latency_median_s"] is not None
               else "-")
        print(f"{kind} {name:5} {window / 60:.0f} min: RSS median {w['rss_median_mb']:.0f} MB (max "
              f"{w['rss_max_mb']:.0f}), threads max {max(w['threads'], default=0)}, fds max "
              f"{max(w['fds'], default=0)}, caption latency median/p90 {lat}, {speed}, {w['scenes']} scenes",
              flush=True)
    return out


def soak_stream(video: Path, length: float, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "videollm", "stream", str(video)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    scenes: list[dict] = []
    sampler = Sampler(proc.pid, args.every, lambda: scenes[-1]["end"] if scenes else 0.0)
    started = time.perf_counter()
    sampler.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        scenes.append({**json.loads(line), "wall": time.perf_counter() - started})
    proc.wait()
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"videollm stream exited with {proc.returncode}")
    return {**summarize("stream", sampler.samples, scenes, length, args.window * 60), "timeline": sampler.samples}


def soak_live(video: Path, length: float, args: argparse.Namespace) -> dict:
    from gradio_client import Client, handle_file

    server = Server(None, ["--max-video-seconds", str(int(length) + 60)])
    try:
        if not server.wait_ready(300):
            raise SystemExit("the server did not get ready within 300 s")
        client = Client(f"http://127.0.0.1:{server.port}/", verbose=False, download_files=False)
        job = client.submit(handle_file(str(video)), None, True, api_name="/live")
        rows: list[list] = []

        def position() -> float:
            outputs = job.outputs()
            if outputs:
                table = outputs[-1][1]
                rows[:] = table.get("data", []) if isinstance(table, dict) else table
            return float(rows[-1][2]) if rows else 0.0

        sampler = Sampler(server.proc.pid, args.every, position)
        sampler.start()
        job.result(timeout=length * 2 + 600)
        sampler.done.set()
        sampler.join()
        position()
        scenes = [{"end": float(r[2]), "latency": float(r[4])} for r in rows]
        client.close()
    finally:
        server.stop()
    return {**summarize("live", sampler.samples, scenes, length, args.window * 60), "timeline": sampler.samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("stream", "live"))
    parser.add_argument("--minutes", type=float, default=None, help="video length (default 60 stream, 20 live)")
    parser.add_argument("--window", type=float, default=10.0, help="minutes compared at each end (default 10; "
                                                                   "live: half the length at most)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples (default 5)")
    parser.add_argument("--seed", type=int, default=11, help="seed of the generated video (default 11)")
    parser.add_argument("--workdir", default="runs/soak", help="where the video is written once")
    parser.add_argument("--json", default=None, help="also write every figure here")
    args = parser.parse_args(argv)
    minutes = args.minutes or (60.0 if args.what == "stream" else 20.0)
    args.window = min(args.window, minutes / 2)
    video = make_video(Path(args.workdir), minutes, args.seed)
    import av

    with av.open(str(video)) as container:
        length = float(container.duration / 1e6)
    print(f"{args.what}: {video} ({length / 60:.1f} min)", flush=True)
    result = (soak_stream if args.what == "stream" else soak_live)(video, length, args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
