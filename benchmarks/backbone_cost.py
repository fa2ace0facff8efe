"""A small open video LM as the backbone: cost of watching a long video scene by scene vs its native video path.

Runs the product's own command (``python -m videollm caption VIDEO --model DIR``) in its own process on test-source
videos (``benchmarks/testsrc.py``: 320x240, 25 fps, a hard cut every 8 s) with a backbone directory, and the
family's own transformers video path (its processor + ``generate``) on 64 frames sampled evenly from the same
video, also in its own process.

1. ``rss``: peak RSS and wall time of ``caption`` on a 2-minute and a 30-minute video; sampled frames per second
   (the video read at the model's 2 fps), frames the backbone encoded per second (at most 8 a scene), scenes.
   Goal: peak RSS at 30 minutes <= 1.15x that at 2 minutes.
2. ``native``: the backbone fed 64 frames of the 30-minute video at once (what it does alone): wall time, peak RSS,
   visual tokens in its prompt, and how many of the video's scenes those 64 frames show at all.

Weights: tiny random instances of the real architectures (``videollm.official.tiny_vlm``) measure the structure
cost (decoding, segmentation, bookkeeping); nothing can be downloaded here, so full-size figures need a directory
given with ``--model DIR`` (any SmolVLM2 / LLaVA-OneVision / InternVL download) or a GPU session.

Run: ``python benchmarks/backbone_cost.py [--family smolvlm|llava_onevision|internvl] [--model DIR] [--minutes 2 30]
[--json PATH]``. Needs the bench extra (num2words, for SmolVLM2's processor).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from testsrc import write_testsrc  # noqa: E402

FPS = 2.0  # the backbone's sampling rate here (the embedded preset's)
CUT_EVERY = 8.0  # testsrc's scene length in seconds
NATIVE_FRAMES = 64


def _child(args: list[str]) -> tuple[float, float, int, str]:
    """Run a Python child; (wall seconds, its own peak RSS in MB, exit code, stdout)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"})
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code:
            print(err.read().decode(errors="replace"), file=sys.stderr)
        return time.perf_counter() - started, usage.ru_maxrss / 1024, code, out.read().decode()


def bench_rss(model: Path, work: Path, minutes: list[float]) -> dict:
    runs = {}
    for m in sorted(minutes):
        video = write_testsrc(work / f"testsrc_{m:g}min.mp4", seconds=60 * m, cut_every=CUT_EVERY)
        out = work / f"out_{m:g}"
        wall, rss, code, _ = _child(["-m", "videollm", "caption", str(video), "--model", str(model), "--out",
                                     str(out), "--max-new-tokens", "8"])
        if code:
            raise SystemExit(f"caption exited {code}")
        scenes = json.loads((out / f"{video.stem}.json").read_text())["scenes"]
        sampled = 60 * m * FPS
        encoded = sum(min(8, max(1, round((s["end"] - s["start"]) * FPS))) for s in scenes)
        runs[m] = {"peak_rss_mb": round(rss, 1), "wall_s": round(wall, 1), "scenes": len(scenes),
                   "sampled_frames_per_s": round(sampled / wall, 1), "encoded_frames_per_s": round(encoded / wall, 1)}
        print(f"caption {m:4g} min ({len(scenes):3d} scenes): peak RSS {rss:7.1f} MB, {wall:6.1f} s, "
              f"{sampled / wall:6.1f} sampled frames/s, {encoded / wall:5.1f} encoded frames/s", flush=True)
    lo, hi = min(minutes), max(minutes)
    ratio = runs[hi]["peak_rss_mb"] / runs[lo]["peak_rss_mb"]
    print(f"peak RSS ratio {hi:g} / {lo:g} min: {ratio:.3f} (goal <= 1.15)")
    return {"runs": {f"{k:g}": v for k, v in runs.items()}, "ratio": round(ratio, 3), "video": str(video)}


def native_child(model: str, video: str) -> None:
    """(In the child process.) The family's own video path on 64 evenly sampled frames; prints a JSON line."""
    import torch
    import transformers
    from transformers import AutoProcessor

    from videollm.io import open_video
    from videollm.official.vlm import family_of

    family = family_of(model)
    with open_video(video) as reader:
        index = reader.uniform_indices(NATIVE_FRAMES)
        frames = reader.read(index)
        times = reader.times[index]
    processor = AutoProcessor.from_pretrained(model, local_files_only=True)
    vlm = getattr(transformers, family.model_class).from_pretrained(model, local_files_only=True).eval()
    if family.model_class.startswith("SmolVLM"):
        text = "<|im_start|>User: <video>Describe the video.<end_of_utterance>\nAssistant:"
        meta = {"fps": float(len(times) / max(times[-1], 1e-6)), "total_num_frames": len(frames),
                "duration": float(times[-1]), "frames_indices": list(range(len(frames)))}
        inputs = processor(text=[text], videos=[frames], video_metadata=[meta], return_tensors="pt")
        visual = int((inputs["input_ids"] == vlm.config.image_token_id).sum())
    else:
        text = "<|im_start|>user\n<video>\nDescribe the video.<|im_end|>\n<|im_start|>assistant\n"
        inputs = processor(text=[text], videos=[frames], return_tensors="pt")
        token = getattr(vlm.config, "video_token_index", None) or vlm.config.image_token_id  # InternVL: images
        visual = int((inputs["input_ids"] == token).sum())
    started = time.perf_counter()
    with torch.inference_mode():
        vlm.generate(**inputs, max_new_tokens=8, do_sample=False)
    scenes = len({int(t // CUT_EVERY) for t in times})
    print(json.dumps({"visual_tokens": visual, "generate_s": round(time.perf_counter() - started, 2),
                      "scenes_seen": scenes}))


def bench_native(model: Path, video: Path) -> dict:
    wall, rss, code, out = _child([__file__, "--native-child", str(model), str(video)])
    if code:
        raise SystemExit(f"native path exited {code}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(wall_s=round(wall, 1), peak_rss_mb=round(rss, 1))
    print(f"native video path, {NATIVE_FRAMES} frames: {result['visual_tokens']} visual tokens, generate "
          f"{result['generate_s']} s, process {wall:.1f} s, peak RSS {rss:.1f} MB; it sees "
          f"{result['scenes_seen']} of the video's scenes")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="smolvlm", choices=("smolvlm", "llava_onevision", "internvl"),
                        help="tiny instance to build when --model is not given")
    parser.add_argument("--model", type=Path, help="a backbone directory (default: a tiny random instance)")
    parser.add_argument("--minutes", type=float, nargs=2, default=[2.0, 30.0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--native-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.native_child:
        native_child(*args.native_child)
        return
    with tempfile.TemporaryDirectory(prefix="backbone-cost-") as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            from videollm.official.tiny_vlm import TINY_BUILDERS

            model = TINY_BUILDERS[args.family](work / args.family)
        print(f"backbone: {model} ({'tiny random instance' if args.model is None else 'given'}), "
              f"{os.cpu_count()} CPUs", flush=True)
        rss = bench_rss(model, work, args.minutes)
        native = bench_native(model, Path(rss["video"]))
        long_run = rss["runs"][f"{max(args.minutes):g}"]
        print(f"scene by scene: {long_run['scenes']} of {long_run['scenes']} scenes captioned in "
              f"{long_run['wall_s']} s; native: {native['scenes_seen']} of them seen in one {NATIVE_FRAMES}-frame "
              "answer")
        if args.json:
            args.json.write_text(json.dumps({"model": str(model), "rss": rss, "native": native}, indent=2) + "\n")


if __name__ == "__main__":
    main()
