"""Decode benchmark for videollm.io (a script that prints figures, not a test).

(a) 32 uniformly spaced frames: ``VideoReader.sample_uniform(32)`` against decord's raw ``VideoReader.get_batch`` on
    the same file (median of several runs; goal: ratio <= 1.2). Timed both with the file already open and including
    the open, since open_video adds a validating demux pass.
(b) (run first) A 30-minute video sampled at 2 fps with ``iter_fps``: resident memory at several points of the iteration (should
    stay flat) and wall time.

Usage:
    python benchmarks/decode.py [--video PATH] [--runs 7] [--long-minutes 30]

Test videos are generated with PyAV's H.264 encoder into a temporary directory (or use --video for part (a)).
"""

from __future__ import annotations

import argparse
import fractions
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from videollm.io import open_video, uniform_indices
from videollm.io.reader import fps_indices


def write_video(path: Path, n_frames: int, fps: int, width: int, height: int) -> Path:
    """Write an H.264 video of moving colour ramps (cheap to generate, not trivially compressible)."""
    import av

    x = np.arange(width, dtype=np.int64)[None, :]
    y = np.arange(height, dtype=np.int64)[:, None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fractions.Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast"}
        for i in range(n_frames):
            rgb = np.stack(np.broadcast_arrays((x * 2 + i * 3) % 256, (y * 3 + i) % 256, (x + y + 5 * i) % 256), -1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")))
        container.mux(stream.encode())
    return path


def median_seconds(fns: list[Callable[[], object]], runs: int) -> list[float]:
    """Median wall time of each function; runs are interleaved so that machine load hits all of them alike."""
    for fn in fns:
        fn()  # warm the page cache and lazy imports
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def rss_mib() -> float:
    """Current resident set size of this process in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_uniform(path: Path, runs: int) -> None:
    import decord

    raw = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=2)
    idx = uniform_indices(len(raw), 32)
    ours = open_video(path)
    print(f"(a) {path.name}: {ours.meta.num_frames} frames {ours.meta.width}x{ours.meta.height} "
          f"@ {ours.meta.fps:.3g} fps, backend={ours.meta.backend}; 32 uniform frames, median of {runs} runs")

    t_raw, t_ours = median_seconds([lambda: raw.get_batch(idx).asnumpy(), lambda: ours.sample_uniform(32)], runs)
    print(f"    open reader : decord get_batch {t_raw * 1e3:8.1f} ms | sample_uniform {t_ours * 1e3:8.1f} ms "
          f"| ratio {t_ours / t_raw:.2f}x")

    def raw_with_open() -> None:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=2)
        reader.get_batch(uniform_indices(len(reader), 32)).asnumpy()

    def ours_with_open() -> None:
        with open_video(path) as reader:
            reader.sample_uniform(32)

    t_raw_open, t_ours_open = median_seconds([raw_with_open, ours_with_open], runs)
    print(f"    incl. open  : decord           {t_raw_open * 1e3:8.1f} ms | open_video+sample {t_ours_open * 1e3:5.1f} ms "
          f"| ratio {t_ours_open / t_raw_open:.2f}x")
    ours.close()


def bench_long(tmp: Path, minutes: float, fps: float) -> None:
    native = 10
    n_frames = int(minutes * 60 * native)
    start = time.perf_counter()
    path = write_video(tmp / "long.mp4", n_frames, native, 128, 96)
    print(f"(b) generated {minutes:g} min 128x96 @ {native} fps ({n_frames} frames, "
          f"{path.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - start:.1f} s")

    rss_before = rss_mib()
    start = time.perf_counter()
    reader = open_video(path)
    t_open = time.perf_counter() - start
    wanted = int(fps_indices(reader.times, reader.meta.duration, fps).shape[0])
    print(f"    open_video: {t_open * 1e3:.0f} ms (backend={reader.meta.backend}); sampling {wanted} frames at {fps:g} fps")
    checkpoints = set(np.linspace(0, wanted, 11).astype(int)[1:].tolist())
    seen = 0
    print("    progress  frames  video_t(s)  rss(MiB)  peak_rss(MiB)")
    start = time.perf_counter()
    for batch in reader.iter_fps(fps, batch_size=16):
        before = seen
        seen += len(batch)
        if any(before < c <= seen for c in checkpoints):
            print(f"    {seen / wanted:7.0%}  {seen:6d}  {batch.times[-1]:10.1f}  {rss_mib():8.1f}  {peak_rss_mib():13.1f}")
    wall = time.perf_counter() - start
    reader.close()
    print(f"    iterate: {wall:.1f} s for {seen} frames ({seen / wall:.0f} sampled frames/s, "
          f"{reader.meta.duration / wall:.0f}x real time); RSS before open {rss_before:.1f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, help="video for part (a); default: a generated 640x360 clip")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--long-minutes", type=float, default=30.0)
    parser.add_argument("--fps", type=float, default=2.0, help="sampling rate for part (b)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        # (b) first, so that the peak RSS it reports is not part (a)'s.
        bench_long(tmp, args.long_minutes, args.fps)
        video = args.video or write_video(tmp / "clip.mp4", n_frames=900, fps=30, width=640, height=360)
        bench_uniform(video, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
