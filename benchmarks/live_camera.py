"""Live captions from visitors' cameras (the app's live mode) on this machine, with the shipped model.

Each simulated visitor is a thread playing a sample video the way a browser streams a camera: a JPEG-compressed frame
every 0.25 s (the app's ``CAMERA_EVERY``), decoded again and pushed into its own ``CameraStream`` at wall-clock
pace, exactly what the tab's per-frame handler does (minus the HTTP round trip). Printed:

- ``keep-up``: kept frames per second one stream takes when frames are pushed as fast as it reads them (what a
  stream keeps up with; a camera needs the model's fps).
- per number of simultaneous streams (each plays the samples back to back, so that it runs past the online
  segmenter's 16 s warm-up): the caption latency after a cut, median and p90, from sending the first frame after a
  true cut to its scene's caption being in the table (cuts after the warm-up, and all cuts); the ``latency`` the
  session reports (from the cut being confirmed to its caption); frames dropped; the wait from Stop to the last
  caption; and whether the captions equal ``videollm stream`` on the same frames uncompressed (the browser's JPEG
  and the sampling phase change frames slightly).

Usage: ``python benchmarks/live_camera.py [--streams 1 2 3 4] [--repeat 2] [--model default]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLES = REPO / "data" / "samples" / "world"
#: The online segmenter confirms no cut before it has seen this much (32 frames at 2 fps): earlier cuts wait for it.
WARMUP_SECONDS = 16.0
#: The sample videos' frame rate.
SAMPLE_FPS = 8.0


def jpeg_round_trip(frame: np.ndarray, quality: int = 92) -> np.ndarray:
    """What the browser sends (``canvas.toDataURL("image/jpeg")``, quality 0.92) and Gradio decodes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def playlist(paths: list[Path], first: int, repeat: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The sample videos played back to back ``repeat`` times from ``paths[first]``: frames (N, H, W, 3), their
    times in seconds, and the true cut times (each video's own cuts and the joins between videos)."""
    from videollm.io import open_video

    frames, times, cuts, offset = [], [], [], 0.0
    order = [paths[(first + k) % len(paths)] for k in range(repeat * len(paths))]
    for k, path in enumerate(order):
        with open_video(path) as reader:
            frames.append(reader.read(np.arange(reader.meta.num_frames)))
            times.append(offset + np.arange(reader.meta.num_frames) / reader.meta.fps)
            if k:
                cuts.append(offset)
            cuts.extend(offset + c for c in json.loads(path.with_suffix(".json").read_text())["cut_times"])
            offset += reader.meta.duration
    return np.concatenate(frames), np.concatenate(times), cuts


def reference_captions(model, video: tuple) -> list[tuple[float, str]]:
    """``videollm stream`` on the same frames, uncompressed, sampled at the model's fps from the video's clock."""
    from videollm import captioning
    from videollm.io import FrameBatch

    frames, times, _ = video
    fps = model.config.segmentation.fps
    picks = np.searchsorted(times, np.arange(0, times[-1] + 1e-9, 1 / fps) + 1e-9, side="right") - 1
    batches = [FrameBatch(np.asarray([i]), np.asarray([times[i]]), frames[i][None]) for i in picks]
    return [(sc.end, sc.caption) for sc in captioning.stream_captions(model, batches)]


def same_captions(rows: list[list], reference: list[tuple[float, str]]) -> int:
    """Scenes whose caption equals that of the ``videollm stream`` scene ending within 1 s of it."""
    same = 0
    for row in rows:
        end, caption = min(reference, key=lambda ref: abs(ref[0] - row[2]))
        same += abs(end - row[2]) <= 1.0 and caption == row[3]
    return same


def visitor(model, video: tuple, every: float, workdir: Path, result: dict) -> None:
    """Stream one video like a browser: one JPEG frame every ``every`` seconds at wall-clock pace."""
    from videollm_app.camera import CameraStream

    frames, times, cuts = video
    stream = CameraStream(model, workdir / f"memory-{threading.get_ident()}.safetensors", max_seconds=3600)
    seen: dict[int, float] = {}  # scene number -> wall time its row appeared
    start = time.monotonic()
    sent_at: list[tuple[float, float]] = []  # (video time shown, wall time sent)
    t = 0.0
    while t < times[-1] + 1 / SAMPLE_FPS:
        frame = frames[min(int(np.searchsorted(times, t + 1e-9, side="right")) - 1, len(frames) - 1)]
        delay = start + t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent_at.append((t, time.monotonic()))
        stream.push(jpeg_round_trip(frame))
        for row in stream.rows:
            seen.setdefault(row[0], time.monotonic())
        t += every
    stop = time.monotonic()
    stream.finish()
    done = time.monotonic()
    for row in stream.rows:
        seen.setdefault(row[0], done)
    # Cut -> caption: from sending the first frame after the cut to the scene (ending at that cut) being shown.
    after_cut, late_cuts = [], []
    for cut in cuts:
        scene = min(stream.rows, key=lambda r: abs(r[2] - cut))
        if abs(scene[2] - cut) <= 1.0:
            sent = next(w for v, w in sent_at if v >= cut)
            after_cut.append(seen[scene[0]] - sent)
            if cut > WARMUP_SECONDS:
                late_cuts.append(after_cut[-1])
    result.update(rows=stream.rows, after_cut=after_cut, late_cuts=late_cuts, dropped=stream.frames.dropped, kept=stream.frames.kept,
                  stop_to_last=done - stop)


def keep_up(model, video: tuple, workdir: Path) -> tuple[float, float]:
    """Push every frame as soon as the stream has room for it: frames per second one stream takes."""
    from videollm_app.camera import CameraStream

    frames = video[0]
    stream = CameraStream(model, workdir / "keep-up.safetensors", max_seconds=3600, backlog_seconds=1)
    fps = model.config.segmentation.fps
    jpegs = [jpeg_round_trip(f) for f in frames[:: max(1, round(SAMPLE_FPS / fps))]]  # the frames the model keeps
    start, cpu = time.monotonic(), time.process_time()
    for k, frame in enumerate(jpegs):
        while stream.frames.waiting >= 2:
            time.sleep(0.002)
        stream.push(frame, k / fps)
    stream.finish()
    wall = time.monotonic() - start
    return len(jpegs) / wall, (time.process_time() - cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model to load (default: the shipped model)")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 3, 4], help="simultaneous streams to try")
    parser.add_argument("--videos", type=int, default=2, help="sample videos played back to back")
    parser.add_argument("--repeat", type=int, default=2, help="times the sample videos are played in a stream")
    args = parser.parse_args(argv)

    import torch
    from videollm_app.tab_live import CAMERA_EVERY

    from videollm.model import VideoLLM

    model = VideoLLM.from_pretrained(args.model).eval()
    print(f"model {args.model}: {model.config.segmentation.fps:g} fps, {model.config.segmentation.feature} "
          f"segmentation; torch threads {torch.get_num_threads()}; frames sent every {CAMERA_EVERY} s; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    paths = sorted((SAMPLES / "video").glob("*.mp4"))[: args.videos]
    # Longer than one sample: the online segmenter confirms no cut in its first 32 frames (16 s at 2 fps).
    videos = [playlist(paths, first, args.repeat) for first in range(len(paths))]
    reference = [reference_captions(model, v) for v in videos]
    workdir = Path(tempfile.mkdtemp(prefix="live-camera-"))

    rate, cpu = keep_up(model, videos[0], workdir)
    print(f"keep-up: one stream takes {rate:.1f} kept frames/s ({rate / model.config.segmentation.fps:.1f}x the "
          f"{model.config.segmentation.fps:g} fps a camera needs; {cpu:.1f} s of CPU for "
          f"{videos[0][1][-1]:.1f} s of video)")

    base = None
    for n in args.streams:
        results = [{} for _ in range(n)]
        threads = [threading.Thread(target=visitor, args=(model, videos[i % len(videos)], CAMERA_EVERY, workdir,
                                                          results[i])) for i in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        after = [x for r in results for x in r["after_cut"]]
        reported = [row[4] for r in results for row in r["rows"]]
        same = sum(same_captions(r["rows"], reference[i % len(videos)]) for i, r in enumerate(results))
        scenes = sum(len(r["rows"]) for r in results)
        late = [x for r in results for x in r["late_cuts"]]
        med, p90 = statistics.median(late), float(np.percentile(late, 90))
        base = base or med
        print(f"{n} stream(s): cut -> caption after the warm-up median {med:.2f} s, p90 {p90:.2f} s "
              f"({med / base:.1f}x one stream); all cuts median {statistics.median(after):.2f} s, p90 "
              f"{float(np.percentile(after, 90)):.2f} s ({len(after)} cuts found within 1 s of "
              f"{sum(len(videos[i % len(videos)][2]) for i in range(n))}); "
              f"reported latency median {statistics.median(reported):.2f} s; dropped "
              f"{sum(r['dropped'] for r in results)} of {sum(r['dropped'] + r['kept'] for r in results)} frames; "
              f"Stop -> last caption {max(r['stop_to_last'] for r in results):.2f} s; captions equal to videollm "
              f"stream for {same}/{scenes} scenes; load average {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
