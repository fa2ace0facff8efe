"""``videollm scenes``: SceneTiling on a video file."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from videollm.cli import add_command
from videollm.commands.common import add_model_args, model_config, segmentation_config, torch_device_dtype
from videollm.errors import UsageError

# The names of ``videollm.scenes.SCENE_FEATURES``, default first (spelled out here so that building the parser does
# not import torch; a test keeps the two in step).
FEATURE_CHOICES = ("histogram", "fast", "published")
NO_CAP = "none"
# Default shortest scene of the command: a fade through black would otherwise cut twice (into and out of the dark
# frames), and PySceneDetect's detectors likewise refuse very short scenes by default.
MIN_SCENE_S = 1.0


def register(sub) -> None:
    p = add_command(sub, "scenes", scenes)
    p.add_argument("video", help="video file")
    add_model_args(p)
    p.add_argument("--alpha", type=finite_float, default=None,
                   help="cut where depth > mean + alpha*std (default 0.5)")
    p.add_argument("--max-cuts", type=cut_cap, default=None,
                   help="keep at most this many deepest cuts (15 is the published cap; default: the model's, "
                        "'none' for the embedded model, as long videos need)")
    p.add_argument("--top-k", type=non_negative_int, default=None, help="keep exactly the k deepest cuts instead")
    p.add_argument("--min-len", type=positive_int, default=None,
                   help=f"minimum scene length in sampled frames (default: {MIN_SCENE_S:g} s worth, i.e. 2 at 2 fps; "
                        "1 = the published rule, no minimum)")
    p.add_argument("--features", choices=FEATURE_CHOICES, default=FEATURE_CHOICES[0],
                   help="per-frame feature the rule runs on: histogram (default; HSV colour histogram of the frame, "
                        "no neural network), fast (DINOv2 mean patch token after block 4 at 112 px) or published "
                        "(penultimate-layer CLS at the model's input size, as VideoLLaMB)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--plot", metavar="FILE.png", help="write the similarity/depth curve with the cuts")


def finite_float(text: str) -> float:
    """argparse type: any finite float (nan and inf are rejected)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def cut_cap(text: str) -> int | str:
    """argparse type: an integer >= 0, or 'none' (no limit)."""
    return NO_CAP if text.strip().lower() == NO_CAP else non_negative_int(text)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def scenes(args: argparse.Namespace) -> int:
    """Split a video into scenes with SceneTiling and print their time spans.

    Frames are sampled at --fps, turned into one feature each (by default an HSV colour histogram; --features fast
    or published run the model's vision encoder), and cut where the TextTiling depth of consecutive-frame cosine
    similarity exceeds mean + alpha*std (the published rule), keeping scenes at least --min-len frames long.
    With --json, stdout is {"video", "duration", "fps", "scenes": [{"start", "end"}, ...]} in seconds.
    """
    from videollm.scenes import find_scenes

    if args.plot:
        _check_plot_path(args.plot)
    # Histograms need only the model's segmentation settings: neither torch nor the rest of the config is loaded.
    histogram = args.features == FEATURE_CHOICES[0]
    cfg = None if histogram else model_config(args)
    seg = segmentation_config(args) if histogram else cfg.segmentation
    for name in ("alpha", "max_cuts", "top_k", "min_len"):
        value = getattr(args, name)
        if value is not None:
            setattr(seg, name, None if value == NO_CAP else value)
    if args.min_len is None:
        seg.min_len = max(1, math.ceil(MIN_SCENE_S * seg.fps - 1e-9))
    seg.__post_init__()
    device, dtype = ("cpu", None) if histogram else torch_device_dtype(args)
    result = find_scenes(args.video, cfg and cfg.vision, seg, device=device, dtype=dtype, progress=not args.json,
                         features=args.features)
    if args.plot:
        try:
            result.plot(args.plot)
        except OSError as err:
            raise UsageError(f"--plot {args.plot}: cannot write ({err.strerror or err})") from None
    _note_cap(result, seg)
    if args.json:
        json.dump(result.to_json(), sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"{result.video}: {len(result.scenes)} scenes, {result.duration:.2f} s, sampled at {result.fps:g} fps")
        for k, (start, end) in enumerate(result.scenes, 1):
            print(f"  scene {k:3d}  {start:8.2f} – {end:8.2f} s")
    return 0


def _note_cap(result, seg) -> None:
    """Say on stderr when the --max-cuts cap dropped cuts that passed the threshold (long videos)."""
    import dataclasses

    from videollm.segmentation import segment_ends

    if seg.max_cuts is None or seg.top_k is not None or len(result.ends) - 1 < seg.max_cuts:
        return
    passing = len(segment_ends(result.features, dataclasses.replace(seg, max_cuts=None))) - 1
    if passing > seg.max_cuts:
        print(f"videollm scenes: {passing} cuts passed the threshold; kept the {seg.max_cuts} deepest "
              "(--max-cuts none keeps all)", file=sys.stderr)


def _check_plot_path(path: str) -> None:
    """Fail before any decoding when the plot could not be written anyway."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--plot {path}: is a directory")
    if not target.parent.is_dir():
        raise UsageError(f"--plot {path}: folder {target.parent} does not exist")
