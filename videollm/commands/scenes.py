"""``videollm scenes``: SceneTiling on a video file."""

from __future__ import annotations

import json
import sys

from videollm.cli import add_command
from videollm.commands.common import add_model_args, model_config, torch_device_dtype


def register(sub) -> None:
    p = add_command(sub, "scenes", scenes)
    p.add_argument("video", help="video file")
    add_model_args(p)
    p.add_argument("--alpha", type=float, default=None, help="cut where depth > mean + alpha*std (default 0.5)")
    p.add_argument("--max-cuts", type=int, default=None, help="keep at most this many deepest cuts (default 15)")
    p.add_argument("--top-k", type=int, default=None, help="keep exactly the k deepest cuts instead")
    p.add_argument("--min-len", type=int, default=None, help="minimum scene length in sampled frames (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--plot", metavar="FILE.png", help="write the similarity/depth curve with the cuts")


def scenes(args) -> int:
    """Split a video into scenes with SceneTiling and print their time spans.

    Frames are sampled at --fps, encoded once by the model's vision encoder (penultimate-layer CLS), and cut where
    the TextTiling depth of consecutive-frame cosine similarity exceeds mean + alpha*std (the published rule).
    With --json, stdout is {"video", "duration", "fps", "scenes": [{"start", "end"}, ...]} in seconds.
    """
    from videollm.scenes import find_scenes

    cfg = model_config(args)
    seg = cfg.segmentation
    for name in ("alpha", "max_cuts", "top_k", "min_len"):
        value = getattr(args, name)
        if value is not None:
            setattr(seg, name, value)
    seg.__post_init__()
    device, dtype = torch_device_dtype(args)
    result = find_scenes(args.video, cfg.vision, seg, device=device, dtype=dtype, progress=not args.json)
    if args.plot:
        result.plot(args.plot)
    if args.json:
        json.dump(result.to_json(), sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"{result.video}: {len(result.scenes)} scenes, {result.duration:.2f} s, sampled at {result.fps:g} fps")
        for k, (start, end) in enumerate(result.scenes, 1):
            print(f"  scene {k:3d}  {start:8.2f} – {end:8.2f} s")
    return 0
