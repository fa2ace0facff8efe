"""Streaming captioning on CPU: speed vs real time, caption latency, flat memory, and the re-encode-everything baseline.

On one synthetic-world video (``--minutes`` long, default 10, written once to ``--workdir``) with the chosen model
(default the ``embedded`` preset: DINOv2-S + SmolLM2-135M; an untrained bridge produces nonsense captions but costs
the same), sampled at 2 fps:

1. Ours (``memory.watch`` + a caption per closed scene, as ``captioning.stream_captions``): each frame decoded and
   encoded once. Reports processing speed as a multiple of real time, caption latency per scene (processing, from
   the cut being confirmed to the caption; and end-to-end in stream time, ``confirmed - scene end + processing``,
   what a real-time viewer waits), and RSS when the stream reaches minute 1 and minute ``--minutes``.
2. Lag sweep: the online segmenter's ``lag`` against boundary F1 (ground-truth cuts, one sampled frame tolerance)
   and the stream-time delay of confirmed cuts, on the CLS features recorded in step 1 (no re-encoding).
3. The published approach: at each caption, re-segment and re-encode every frame seen so far, then run the bridge
   over all segments and caption. Its cost grows with the square of the stream length, so it runs for at most
   ``--baseline-seconds`` of wall time; the per-frame encoding cost measured there extrapolates the rest (printed
   as an extrapolation).

Run: ``python benchmarks/streaming.py`` (``--minutes 2`` for a quick look). ``--json PATH`` writes the numbers.

Segmenter only (``--segmenter``, no language model): the online segmenter (``scenetiling.StreamingSceneTiler``)
against the offline rule (``scenetiling.segment_ends``, no cut cap) on the same features, boundary F1 within one
frame, per video (mean, min) and on one long stream made of every video of a suite in a row. Suites:

* random: piecewise-constant random scene features plus noise, the cases of ``tests/test_scenetiling.py``
  (10-120-frame scenes; d=64 noise 0.3 and d=384 noise 0.5, 2000 frames, seeds 0-3) and short scenes (4-12 frames,
  as the world at 2 fps);
* world: 2 fps DINOv2-S (embedded preset) CLS features of the shipped samples ``data/samples/world/video`` and of
  ``--world-videos`` generated videos per split (normal and held-out, seed ``--world-seed``), written once under
  ``--workdir``. Features are cached as safetensors in ``--feature-cache`` (encoding is the slow part).
* world histogram: the same videos' colour histograms (``scenetiling.hsv_histograms``, what the embedded
  checkpoint segments on), scored with a 2-frame minimum scene length online and offline (its setting).

Run: ``python benchmarks/streaming.py --segmenter --lags 4,32`` (a few minutes the first time, seconds after).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_video(workdir: Path, minutes: float, seed: int) -> Path:
    from videollm.world.generate import generate
    from videollm.world.spec import WorldConfig

    out = workdir / f"stream_{minutes:g}min_seed{seed}"
    existing = sorted(out.glob("*.mp4"))
    if existing:
        return existing[0]
    # Scenes of 3-9 s (6 s mean) fill the requested length; generation stops at the sampled scene count.
    n_scenes = max(2, round(minutes * 60 / 6.0))
    config = WorldConfig(width=224, height=224, fps=4.0, scenes=(n_scenes, n_scenes), scene_seconds=(3.0, 9.0))
    paths = generate(out, 1, seed, config=config)
    return next(p for p in paths if str(p).endswith(".mp4"))


def ours(model, video: Path, lag: int, max_new_tokens: int) -> dict:
    from videollm.captioning import generate_caption
    from videollm.io import open_video
    from videollm.memory import watch

    fps = model.config.segmentation.fps
    cls_log: list[torch.Tensor] = []
    times_log: list[float] = []
    rss: dict[str, float] = {}
    real_encode = model.encode_frames

    def encode(frames):
        cls, tokens = real_encode(frames)
        cls_log.append(cls)
        return cls, tokens

    model.encode_frames = encode

    with open_video(video) as reader:
        duration = reader.meta.duration

        def batches() -> Iterator:
            for batch in reader.iter_fps(fps, batch_size=8):
                times_log.extend(batch.times.tolist())
                t = float(batch.times[-1])
                if t >= 60.0 and "minute_1" not in rss:
                    rss["minute_1"] = rss_mib()
                yield batch
            rss["end"] = rss_mib()

        start = time.perf_counter()
        rows = []
        for event in watch(model, batches(), online=True, lag=lag):
            t0 = time.perf_counter()
            caption = generate_caption(model, event.state, max_new_tokens=max_new_tokens)
            processing = event.latency + time.perf_counter() - t0
            rows.append({"start": event.start, "end": event.end, "confirmed": event.confirmed,
                         "processing": processing, "caption": caption})
        wall = time.perf_counter() - start
    model.encode_frames = real_encode
    cut_rows = rows[:-1]  # the last scene closes at the end of the stream, not at a cut
    return {
        "duration_s": duration, "wall_s": wall, "speed_x_realtime": duration / wall, "scenes": len(rows),
        "frames": len(times_log),
        "latency_processing_median_s": statistics.median(r["processing"] for r in rows),
        "latency_processing_p90_s": float(np.percentile([r["processing"] for r in rows], 90)),
        "latency_end_to_end_median_s": statistics.median(r["confirmed"] - r["end"] + r["processing"]
                                                         for r in cut_rows) if cut_rows else float("nan"),
        "rss_minute_1_mib": rss.get("minute_1", float("nan")), "rss_end_mib": rss["end"],
        "rss_ratio": rss["end"] / rss.get("minute_1", float("nan")),
        "_cls": torch.cat(cls_log), "_times": np.asarray(times_log),
    }


def lag_sweep(cls: torch.Tensor, times: np.ndarray, cut_times: list[float], alpha: float,
              lags: list[int]) -> list[dict]:
    import scenetiling

    # Ground truth in sampled-frame space: a cut at time c ends the scene at the last sample before c.
    ref = [int(np.searchsorted(times, c, side="left")) - 1 for c in cut_times]
    out = [{"lag": "offline", "f1": scenetiling.boundary_f1(scenetiling.segment_ends(cls, alpha=alpha)[:-1], ref)}]
    for lag in lags:
        tiler = scenetiling.StreamingSceneTiler(alpha=alpha, lag=lag)
        found, delays = [], []
        for i in range(cls.shape[0]):
            for end in tiler.push(cls[i]):
                found.append(end)
                cut = 0.5 * (times[end] + times[min(end + 1, len(times) - 1)])
                delays.append(float(times[i]) - cut)
        found += tiler.flush()[:-1]
        out.append({"lag": lag, "f1": scenetiling.boundary_f1(found, ref),
                    "delay_median_s": statistics.median(delays) if delays else float("nan")})
    return out


def baseline(model, video: Path, cut_ends: list[float], max_new_tokens: int, budget_s: float) -> dict:
    """Published demo: at each caption time, decode, encode and segment every frame so far, bridge them all."""
    from videollm.captioning import generate_caption
    from videollm.io import open_video

    fps = model.config.segmentation.fps
    done, spent, frames_encoded = 0, 0.0, 0
    per_caption = []
    with open_video(video) as reader:
        for t_cut in cut_ends:
            t0 = time.perf_counter()
            cls_parts, tok_parts = [], []
            for batch in reader.iter_fps(fps, batch_size=16):
                if batch.times[0] > t_cut:
                    break
                keep = batch.times <= t_cut
                cls, tokens = model.encode_frames(batch.frames[keep])
                cls_parts.append(cls)
                tok_parts.append(tokens)
            cls, tokens = torch.cat(cls_parts), torch.cat(tok_parts)
            frames_encoded += cls.shape[0]
            _, segments = model.split(cls, tokens)
            state = model.bridge.init_state()
            for segment in segments:
                model.bridge.step(segment, state)
            generate_caption(model, state, max_new_tokens=max_new_tokens)
            elapsed = time.perf_counter() - t0
            per_caption.append((cls.shape[0], elapsed))
            spent += elapsed
            done += 1
            if spent > budget_s:
                break
    # Fit time = a + b * frames over the measured captions, then sum it over every caption of the video.
    n = np.array([p[0] for p in per_caption], float)
    s = np.array([p[1] for p in per_caption], float)
    b, a = np.polyfit(n, s, 1) if len(n) > 1 else (s[0] / n[0], 0.0)
    all_frames = [int(np.floor(t * fps)) + 1 for t in cut_ends]
    total = spent + sum(a + b * f for f in all_frames[done:])
    return {"captions_measured": done, "captions_total": len(cut_ends), "measured_s": spent,
            "seconds_per_frame": float(b), "total_s": float(total), "extrapolated": done < len(cut_ends)}


# --------------------------------------------------------------------------------------------------- segmenter only

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "world" / "video"


def scene_features(seed: int, t: int, d: int, noise: float, lo: int, hi: int) -> torch.Tensor:
    """The unit tests' synthetic sequences (``scenetiling.synthetic``), features only."""
    from scenetiling import synthetic

    return synthetic.scene_features(seed, t, d, noise, lo, hi)[0]


def random_suites() -> dict[str, list[torch.Tensor]]:
    """The unit tests' random-feature cases and a short-scene variant, each a list of (T, D) feature sequences."""
    return {
        "random d64 noise0.3": [scene_features(s, 2000, 64, 0.3, 10, 120) for s in range(4)],
        "random d384 noise0.5": [scene_features(s, 2000, 384, 0.5, 10, 120) for s in range(4)],
        "random short scenes": [scene_features(s, 600, 64, 0.3, 4, 12) for s in range(4)],
    }


def world_videos(workdir: Path, n: int, seed: int) -> dict[str, list[Path]]:
    """The shipped world samples and ``n`` generated videos per split (written once), by suite name."""
    from videollm.world import generate

    suites = {"world samples": sorted(SAMPLES.glob("*.mp4"))}
    for name, heldout in (("world", False), ("world held-out", True)):
        out = workdir / f"world_seed{seed}_{'heldout' if heldout else 'normal'}"
        existing = sorted(out.glob("*.mp4"))
        suites[name] = existing[:n] if len(existing) >= n else [
            p for p in generate(out, n, seed, heldout=heldout, kind="video") if p.suffix == ".mp4"]
    return suites


def cached_cls(videos: list[Path], cache: Path, fps: float) -> list[torch.Tensor]:
    """2 fps CLS features of the embedded preset's vision encoder for each video, encoded once and cached.

    Returns:
        One (T, D) float32 tensor per video.
    """
    from safetensors.torch import load_file, save_file

    from videollm.config import ModelConfig
    from videollm.features import collect, encode_batches
    from videollm.io import open_video
    from videollm.vision import build_vision_encoder

    cache.mkdir(parents=True, exist_ok=True)
    encoder = None
    out = []
    for video in videos:
        # The key names the video by its resolved path, so the shipped samples and generated files never collide.
        digest = hashlib.sha1(f"{video.resolve()}@{fps:g}".encode()).hexdigest()[:12]
        key = f"{video.stem}_{digest}.safetensors"
        path = cache / key
        if not path.exists():
            if encoder is None:
                encoder = build_vision_encoder(ModelConfig.preset("embedded").vision)
            with open_video(video) as reader:
                feats = collect(encode_batches(reader.iter_fps(fps, batch_size=16), encoder))
            save_file({"cls": feats.cls.contiguous()}, str(path))
        out.append(load_file(str(path))["cls"])
    return out


def histogram_features(videos: list[Path], fps: float) -> list[torch.Tensor]:
    """2 fps colour histograms of each video (decoding only; not cached)."""
    import scenetiling
    from videollm.io import open_video

    out = []
    for video in videos:
        with open_video(video) as reader:
            out.append(torch.cat([scenetiling.hsv_histograms(b.frames) for b in reader.iter_fps(fps, batch_size=16)]))
    return out


def streamed_ends(features: torch.Tensor, **options: float) -> list[int]:
    """Segment ends from ``StreamingSceneTiler`` fed one (D,) feature at a time."""
    import scenetiling

    tiler = scenetiling.StreamingSceneTiler(**options)
    ends = [end for row in features for end in tiler.push(row)]
    return ends + tiler.flush()


def online_vs_offline(sequences: list[torch.Tensor], alpha: float, min_len: int = 1, **options: float) -> dict:
    """Boundary F1 (within 1 frame) of the online segmenter against the offline rule with no cut cap.

    Returns:
        Per-sequence mean and min F1, and F1, precision and recall on all sequences in a row as one stream.
    """
    import scenetiling

    f1s = []
    for feats in sequences:
        offline = scenetiling.segment_ends(feats, alpha=alpha, max_cuts=None, min_len=min_len)[:-1]
        online = streamed_ends(feats, alpha=alpha, min_len=min_len, **options)[:-1]
        f1s.append(scenetiling.boundary_f1(online, offline))
    stream = torch.cat(sequences)  # (sum T, D)
    offline = scenetiling.segment_ends(stream, alpha=alpha, max_cuts=None, min_len=min_len)[:-1]
    online = streamed_ends(stream, alpha=alpha, min_len=min_len, **options)[:-1]
    matched = len(scenetiling.match_cuts(online, offline, 1))
    return {"mean_f1": float(np.mean(f1s)), "min_f1": float(np.min(f1s)),
            "long_f1": scenetiling.boundary_f1(online, offline), "long_frames": int(stream.shape[0]),
            "long_precision": matched / len(online) if online else 1.0,
            "long_recall": matched / len(offline) if offline else 1.0}


def segmenter_main(args: argparse.Namespace) -> None:
    """Score the online segmenter against the offline rule on every suite, for each lag in ``--lags``."""
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    suites = random_suites()
    min_lens = {name: 1 for name in suites}
    world = world_videos(workdir, args.world_videos, args.world_seed)
    for name, videos in world.items():
        suites[name] = cached_cls(videos, Path(args.feature_cache), fps=2.0)
        min_lens[name] = 1
    for name, videos in world.items():
        suites[f"{name} histogram"] = histogram_features(videos, fps=2.0)
        min_lens[f"{name} histogram"] = 2
    lags = [int(x) for x in args.lags.split(",")]
    options = {} if args.gate is None else {"gate": args.gate}
    rows = []
    print(f"online vs offline SceneTiling (alpha 0.5, no cut cap), boundary F1 within 1 frame; options {options}")
    print(f"{'suite':<22} {'n':>3} {'frames':>6} {'lag':>4} {'mean F1':>8} {'min F1':>7} {'long F1':>8} "
          f"{'long P':>7} {'long R':>7}")
    for name, sequences in suites.items():
        for lag in lags:
            res = online_vs_offline(sequences, 0.5, min_len=min_lens[name], lag=lag, **options)
            rows.append({"suite": name, "videos": len(sequences), "lag": lag, **res})
            print(f"{name:<22} {len(sequences):>3} {res['long_frames']:>6} {lag:>4} {res['mean_f1']:>8.3f} "
                  f"{res['min_f1']:>7.3f} {res['long_f1']:>8.3f} {res['long_precision']:>7.3f} "
                  f"{res['long_recall']:>7.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"options": options, "rows": rows}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded", help="preset or checkpoint directory (default embedded)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--workdir", default="runs/bench_streaming")
    parser.add_argument("--lag", type=int, default=None, help="segmenter lag for the run (default memory.DEFAULT_LAG)")
    parser.add_argument("--lags", default="0,1,2,4,8,16,32")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--baseline-seconds", type=float, default=60.0)
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--segmenter", action="store_true",
                        help="only score the online segmenter against the offline rule (no language model)")
    parser.add_argument("--world-videos", type=int, default=8, help="--segmenter: generated videos per split")
    parser.add_argument("--world-seed", type=int, default=1000, help="--segmenter: seed of the generated videos")
    parser.add_argument("--feature-cache", default="runs/bench_streaming/features",
                        help="--segmenter: folder of cached CLS features (safetensors)")
    parser.add_argument("--gate", type=float, default=None, help="--segmenter: the tiler's gate (default its own)")
    args = parser.parse_args()
    if args.segmenter:
        segmenter_main(args)
        return

    from videollm.memory import DEFAULT_LAG
    from videollm.model import VideoLLM

    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    video = make_video(workdir, args.minutes, args.seed)
    truth = json.loads(video.with_suffix(".json").read_text())
    print(f"video: {video} ({truth['duration']:.0f} s, {len(truth['cut_times'])} cuts; "
          f"ready in {time.perf_counter() - t0:.0f} s)")
    model = VideoLLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).eval()
    lag = DEFAULT_LAG if args.lag is None else args.lag

    res = ours(model, video, lag, args.max_new_tokens)
    cls, times = res.pop("_cls"), res.pop("_times")
    print(f"ours (lag {lag}): {res['frames']} frames, {res['scenes']} scenes in {res['wall_s']:.1f} s "
          f"= {res['speed_x_realtime']:.2f}x real time")
    print(f"  caption latency after the cut is confirmed: median {res['latency_processing_median_s']:.2f} s, "
          f"p90 {res['latency_processing_p90_s']:.2f} s; end to end after the scene end (stream time + processing): "
          f"median {res['latency_end_to_end_median_s']:.2f} s")
    print(f"  RSS at minute 1: {res['rss_minute_1_mib']:.0f} MiB, at the end: {res['rss_end_mib']:.0f} MiB "
          f"(ratio {res['rss_ratio']:.3f})")

    sweep = lag_sweep(cls, times, truth["cut_times"], model.config.segmentation.alpha,
                      [int(x) for x in args.lags.split(",")])
    print("lag sweep (boundary F1 vs ground truth, tolerance 1 sampled frame; median stream-time delay of a cut):")
    for row in sweep:
        delay = f"{row['delay_median_s']:.2f} s" if "delay_median_s" in row else "-"
        print(f"  lag {row['lag']!s:>7}: F1 {row['f1']:.3f}  delay {delay}")

    cut_ends = [float(c) for c in truth["cut_times"]] + [float(truth["duration"])]
    base = baseline(model, video, cut_ends, args.max_new_tokens, args.baseline_seconds)
    label = "extrapolated from" if base["extrapolated"] else "measured over"
    print(f"published re-encode-everything approach: {base['total_s']:.0f} s total ({label} "
          f"{base['captions_measured']}/{base['captions_total']} captions, {base['measured_s']:.0f} s measured, "
          f"{base['seconds_per_frame'] * 1000:.1f} ms per re-encoded frame)")
    print(f"  ratio baseline / ours: {base['total_s'] / res['wall_s']:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"ours": res, "lag_sweep": sweep, "baseline": base}, indent=1))


if __name__ == "__main__":
    main()
