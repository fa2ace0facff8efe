"""How well the shipped model's out-of-domain rule (``videollm.ood``) tells its synthetic world from real footage,
measured through the product path: every item of a split (``benchmarks/ood_data.py``) is captioned by
``videollm.captioning.caption_video`` exactly as ``videollm caption`` captions it, and each scene's novelty,
recognised flag and shown caption are read from the ``SceneCaption`` it yields.

Prints, at scene level:
- AUROC of the novelty, world vs real (world scenes without the scenes that hold a written-word needle, which the
  model was never trained on; and with them);
- shape captions shown on real scenes: the rate of real scenes that get a caption naming a world shape (target 0),
  overall, without the pictures the world itself uses as backgrounds (group "skimage-background"), and on the
  footage and test patterns alone (no stills);
- world scenes withheld: the rate of world scenes whose caption is withheld (should stay near 0), per group;
- the real scenes that got a caption, with it.

Run: ``python benchmarks/ood.py --split test`` (about 15 minutes on 2 cores; ``--split val`` for the calibration
split; ``--json FILE`` writes every scene's row).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ood_calibrate import auroc
from ood_data import ROOT, items

BACKGROUNDS = "skimage-background"
#: Real groups that are footage (sample videos) or ffmpeg test patterns rather than pictures turned into stills.
VIDEOS = ("opencv-video", "kivy-video", "lavfi")


def scene_rows(model, split: str, work: Path) -> list[dict]:
    """One row per scene of every item of ``split``, captioned as ``videollm caption`` captions it."""
    from videollm.captioning import caption_video
    from videollm.world import SHAPES

    rows = []
    todo = items(split, work)
    started = time.perf_counter()
    for n, item in enumerate(todo, 1):
        try:
            scenes = caption_video(model, item.path).run()
        except Exception as err:  # noqa: BLE001 (a file the product refuses shows no caption at all)
            print(f"  {item.name}: refused by the product ({err})", file=sys.stderr)
            continue
        for scene in scenes:
            shown = scene.caption if scene.recognised is not False else None
            rows.append({"name": item.name, "group": item.group, "label": item.label, "scene": scene.index,
                         "start": round(scene.start, 3), "end": round(scene.end, 3),
                         "text": item.is_text(scene.start, scene.end), "novelty": scene.novelty,
                         "recognised": scene.recognised, "caption": shown,
                         "shape_caption": bool(shown) and any(s in shown.split() for s in SHAPES)})
        print(f"  {n}/{len(todo)} {item.name}: {len(scenes)} scenes ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr, flush=True)
    return rows


def report(rows: list[dict], threshold: float) -> dict:
    """The figures of one split (printed, and returned as a dict)."""
    label = np.array([r["label"] for r in rows])
    group = np.array([r["group"] for r in rows])
    novelty = np.array([r["novelty"] for r in rows], dtype=float)
    shape = np.array([r["shape_caption"] for r in rows])
    withheld = np.array([r["recognised"] is False for r in rows])
    text = np.array([r["text"] for r in rows])
    world, real = (label == 0) & ~text, label == 1
    plain = real & (group != BACKGROUNDS)
    footage = real & np.isin(group, VIDEOS)
    figures = {
        "threshold": threshold,
        "world_scenes": int(world.sum()), "text_needle_scenes": int(text.sum()),
        "real_scenes": int(real.sum()), "real_items": len({r["name"] for r in rows if r["label"] == 1}),
        "auroc": round(auroc(novelty[world], novelty[real]), 4),
        "auroc_with_text_needles": round(auroc(novelty[label == 0], novelty[real]), 4),
        "auroc_without_background_pictures": round(auroc(novelty[world], novelty[plain]), 4),
        "real_shape_caption_rate": round(float(shape[real].mean()), 4),
        "real_shape_caption_rate_without_background_pictures": round(float(shape[plain].mean()), 4),
        "real_shape_caption_rate_videos_and_test_patterns": round(float(shape[footage].mean()), 4),
        "world_withheld_rate": round(float(withheld[world].mean()), 4),
        "text_needle_withheld_rate": round(float(withheld[text].mean()), 4) if text.any() else None,
    }
    print(json.dumps(figures, indent=1))
    by_group = defaultdict(list)
    for r in rows:
        by_group["world-text-needle-scenes" if r["text"] else r["group"]].append(r)
    print(f"{'group':22s} {'scenes':>6s} {'withheld':>8s} {'shape captions':>14s} {'novelty min / median / max':>28s}")
    for name, members in sorted(by_group.items(), key=lambda kv: (kv[1][0]["label"], kv[0])):
        v = np.array([m["novelty"] for m in members], dtype=float)
        print(f"{name:22s} {len(members):6d} {np.mean([m['recognised'] is False for m in members]):8.3f} "
              f"{np.mean([m['shape_caption'] for m in members]):14.3f} "
              f"{v.min():9.2f} / {np.median(v):6.2f} / {v.max():6.2f}")
    shown = [r for r in rows if r["label"] == 1 and r["caption"]]
    if shown:
        print("real scenes shown a caption:")
        for r in shown:
            print(f"  {r['name']} scene {r['scene'] + 1} (novelty {r['novelty']:.2f}): {r['caption']}")
    missed = [r for r in rows if r["label"] == 0 and not r["text"] and r["recognised"] is False]
    if missed:
        print("world scenes withheld:")
        for r in missed:
            print(f"  {r['name']} scene {r['scene'] + 1} {r['start']}-{r['end']} s (novelty {r['novelty']:.2f})")
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", choices=("val", "test"), default="test")
    p.add_argument("--model", default="default", help="checkpoint with ood.safetensors (default: the shipped one)")
    p.add_argument("--work", default=str(ROOT / "runs" / "ood" / "media"), help="where the split's media are made")
    p.add_argument("--json", help="also write every scene's row and the figures here")
    args = p.parse_args(argv)

    from videollm import ood
    from videollm.model import VideoLLM

    started = time.perf_counter()
    model = VideoLLM.from_pretrained(args.model).eval()
    detector = ood.for_model(model)
    if detector is None:
        raise SystemExit(f"{args.model}: no {ood.CALIBRATION_NAME} in its checkpoint folder "
                         "(python benchmarks/ood_calibrate.py writes it)")
    rows = scene_rows(model, args.split, Path(args.work))
    figures = report(rows, detector.threshold)
    print(f"{args.split}: {len(rows)} scenes in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split, **figures, "scenes": rows}, indent=1) + "\n",
                                   encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
