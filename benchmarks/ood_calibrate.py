"""Fit and calibrate the out-of-domain score of a checkpoint and write ``<checkpoint>/ood.safetensors``.

1. **Statistics from the training pool.** The scenes the ``embedded`` training recipe drew (world seed 0, training
   split, 2-6 s, no fades, rendered at the model's 2 fps) and its object-needle clips, each encoded at the frames the
   bridge keeps (at most 4, the published linspace rule), as ``videollm train`` encodes them. Every pooled token
   that an object covers (at least ``COVER`` of its cell) is labelled with that object's shape x colour; the class
   means and their shared within-class covariance are fitted (``videollm.ood.SceneNovelty.fit``).
2. **Threshold from the validation split** (``benchmarks/ood_data.py``: world seed 2000 vs real clips and pictures
   of the validation half), each scene scored through the product's own watch path (``videollm.memory.watch``):
   the largest novelty of a validation world scene, the scenes holding a written-word needle left out (the model
   was never trained on written words: withholding its shape caption there is right, and ``--text`` reads the
   word).
3. The file: whitening matrix and class means (float32, about 0.7 MB), threshold and the validation figures in
   its metadata.

``--compare`` also prints the validation AUROC of the alternatives measured before choosing (docs/experiments.md).

Run (about 30 minutes on 2 cores, most of it encoding the pool once; cached under --work):
``python benchmarks/ood_calibrate.py`` (writes data/checkpoints/embedded/ood.safetensors).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ood_data import ROOT, items

#: A pooled token belongs to an object when the object covers at least this fraction of its cell.
COVER = 0.15
POOL_SCENES, POOL_NEEDLES = 480, 48


def pool_tokens(model, scenes: int, needles: int, cache: Path) -> tuple[list[torch.Tensor], list]:
    """(L, P*P, D) tokens and the one-scene spec of the training pool's first ``scenes`` scenes and ``needles`` needle
    clips (encoded once, cached in ``cache``)."""
    from safetensors.torch import load_file, save_file

    from videollm.bridge import segment_frame_indices
    from videollm.train.config import WorldSourceConfig
    from videollm.train.data import sample_pool_needle, sample_pool_scene, world_config
    from videollm.world import render_frames

    config = world_config(WorldSourceConfig(seed=0, scenes=scenes), model.config.segmentation.fps)
    specs = [sample_pool_scene(0, i, config) for i in range(scenes)]
    specs += [sample_pool_needle(0, i, config) for i in range(needles)]
    frames_kept = model.config.bridge.max_frames_per_segment
    keeps = [segment_frame_indices(0, s.num_frames - 1, frames_kept).numpy() for s in specs]
    if cache.is_file():
        stored = load_file(str(cache))
        if len(stored) == len(specs):
            return [stored[f"{i:05d}"].float() for i in range(len(specs))], list(zip(specs, keeps, strict=True))
    tokens = {}
    started = time.perf_counter()
    for i, (spec, keep) in enumerate(zip(specs, keeps, strict=True)):
        frames = np.stack(list(render_frames(spec)))[keep]  # (L, H, W, 3)
        tokens[f"{i:05d}"] = model.frame_tokens(frames).half()  # (L, P*P, D)
        if i % 50 == 0:
            print(f"  pool {i}/{len(specs)} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file(tokens, str(cache))
    return [tokens[f"{i:05d}"].float() for i in range(len(specs))], list(zip(specs, keeps, strict=True))


def object_labels(spec, keep: np.ndarray, pool: int) -> np.ndarray:
    """(L, P*P) class index (shape x colour, ``SHAPES.index * 8 + COLOUR_NAMES.index``) of the object covering each
    pooled token's cell, -1 where none covers ``COVER`` of it. The frames are square, so the encoder sees them
    whole."""
    from videollm.world import COLOUR_NAMES, SHAPES, object_track

    scene = spec.scenes[0]
    h, w = spec.height, spec.width
    ys, xs = np.mgrid[0:h, 0:w]
    cover = np.zeros((len(keep), pool * pool))
    label = -np.ones((len(keep), pool * pool), dtype=np.int64)
    for obj in scene.objects:
        track = object_track(obj, w, h, scene.num_frames, spec.fps)
        cls = SHAPES.index(obj.shape) * len(COLOUR_NAMES) + COLOUR_NAMES.index(obj.colour)
        for j, f in enumerate(keep):
            if f < obj.enter:
                continue
            inside = (xs - track["x"][f]) ** 2 + (ys - track["y"][f]) ** 2 <= track["radius"][f] ** 2
            c = inside.reshape(pool, h // pool, pool, w // pool).mean((1, 3)).reshape(-1)
            label[j][c > cover[j]] = cls
            cover[j] = np.maximum(cover[j], c)
    label[cover < COVER] = -1
    return label


class Recorder:
    """A stand-in detector for ``watch(recognise=...)``: keeps every scene's tokens, judges nothing."""

    threshold = float("inf")

    def __init__(self) -> None:
        self.tokens: list[torch.Tensor] = []

    def score(self, tokens: torch.Tensor) -> float:
        self.tokens.append(tokens.detach().float().cpu())
        return 0.0

    def recognised(self, novelty: float) -> bool:
        return True


def scene_tokens(model, split: str, work: Path) -> list[dict]:
    """Every scene of ``split`` watched as the product watches it: its item, label, group and (L, P*P, D) tokens."""
    from videollm.memory import watch

    rows = []
    for item in items(split, work / "media"):
        recorder = Recorder()
        try:
            for event in watch(model, item.path, recognise=recorder):
                rows.append({"name": item.name, "group": item.group, "label": item.label, "scene": event.index,
                             "span": (event.start, event.end), "text": item.is_text(event.start, event.end),
                             "tokens": recorder.tokens[event.index]})
        except Exception as err:  # noqa: BLE001 (a file the product refuses shows no caption: nothing to score)
            print(f"  {item.name}: refused by the product ({err})", file=sys.stderr)
    return rows


def auroc(world: np.ndarray, real: np.ndarray) -> float:
    """P(a real scene scores above a world scene), ties counted half (Mann-Whitney U / n0 n1)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([world, real]))
    return float((ranks[len(world):].sum() - len(real) * (len(real) + 1) / 2) / (len(world) * len(real)))


def compare(pool: list[torch.Tensor], pool_labels: list[np.ndarray], rows: list[dict]) -> None:
    """Validation AUROC of the scores measured before the chosen one (world scenes without text needles vs real)."""
    from videollm.ood import SceneNovelty

    def gauss(feats: torch.Tensor, shrink: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
        mean = feats.mean(0)
        cov = torch.cov((feats - mean).T)
        cov += shrink * torch.trace(cov) / cov.shape[0] * torch.eye(cov.shape[0])
        return mean, torch.linalg.inv(cov)

    def maha(x: torch.Tensor, g) -> torch.Tensor:
        d = x - g[0]
        return ((d @ g[1]) * d).sum(-1)

    tokens = torch.cat([t.reshape(-1, t.shape[-1]) for t in pool])
    labels = torch.from_numpy(np.concatenate([lab.reshape(-1) for lab in pool_labels]))
    means = torch.stack([t.mean((0, 1)) for t in pool])
    g_mean, g_tok = gauss(means), gauss(tokens)
    bank = torch.nn.functional.normalize(means, dim=-1)
    background = SceneNovelty.fit(tokens[labels < 0], torch.zeros(int((labels < 0).sum()), dtype=torch.long), ("bg",))
    objects = labels >= 0
    one_class = SceneNovelty.fit(tokens[objects], torch.zeros(int(objects.sum()), dtype=torch.long), ("object",))
    ids = labels[objects].unique()
    chosen = SceneNovelty.fit(tokens[objects], torch.searchsorted(ids, labels[objects]), tuple(map(str, ids.tolist())))
    scores = {
        "scene mean token, Mahalanobis": lambda x: float(maha(x.mean((0, 1)), g_mean)),
        "scene mean token, 1-NN cosine": lambda x: float(1 - (bank @ torch.nn.functional.normalize(
            x.mean((0, 1)), dim=0)).max()),
        "tokens, Mahalanobis, mean over tokens": lambda x: float(maha(x.reshape(-1, x.shape[-1]), g_tok).mean()),
        "tokens, nearest background token (min)": background.score,
        "tokens, one object class (min)": one_class.score,
        "tokens, 64 object classes (min; chosen)": chosen.score,
    }
    label = np.array([r["label"] for r in rows])
    keep = ~np.array([r["text"] for r in rows])
    print("validation AUROC (world scenes without text needles vs real scenes):")
    for name, fn in scores.items():
        v = np.array([fn(r["tokens"]) for r in rows])
        print(f"  {name:42s} {auroc(v[(label == 0) & keep], v[label == 1]):.4f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default", help="checkpoint (default: the shipped one)")
    p.add_argument("--out", help="where to write ood.safetensors (default: the checkpoint folder)")
    p.add_argument("--work", default=str(ROOT / "runs" / "ood"), help="cache of media and pool tokens")
    p.add_argument("--scenes", type=int, default=POOL_SCENES, help="training-pool scenes fitted")
    p.add_argument("--needles", type=int, default=POOL_NEEDLES, help="training-pool needle clips fitted")
    p.add_argument("--compare", action="store_true", help="also print the alternatives' validation AUROC")
    args = p.parse_args(argv)

    from videollm import ood
    from videollm.assets import resolve_model
    from videollm.model import VideoLLM
    from videollm.world import COLOUR_NAMES, SHAPES

    torch.manual_seed(0)
    source = resolve_model(args.model)
    model = VideoLLM.from_pretrained(source).eval()
    work = Path(args.work)
    started = time.perf_counter()
    pool, specs = pool_tokens(model, args.scenes, args.needles,
                              work / f"pool-s0-{args.scenes}-{args.needles}.safetensors")
    labels = [object_labels(spec, keep, model.config.bridge.pool) for spec, keep in specs]
    tokens = torch.cat([t.reshape(-1, t.shape[-1]) for t in pool])  # (N, D)
    flat = torch.from_numpy(np.concatenate([lab.reshape(-1) for lab in labels]))
    objects = flat >= 0
    ids = flat[objects].unique()  # the classes the pool has
    names = tuple(f"{COLOUR_NAMES[int(i) % len(COLOUR_NAMES)]} {SHAPES[int(i) // len(COLOUR_NAMES)]}" for i in ids)
    detector = ood.SceneNovelty.fit(tokens[objects], torch.searchsorted(ids, flat[objects]), names)
    print(f"fitted {len(names)} classes on {int(objects.sum())} object tokens of {len(pool)} pool scenes "
          f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)

    rows = scene_tokens(model, "val", work)
    if args.compare:
        compare(pool, labels, rows)
    novelty = np.array([detector.score(r["tokens"]) for r in rows])
    label = np.array([r["label"] for r in rows])
    text = np.array([r["text"] for r in rows])
    world, real = novelty[(label == 0) & ~text], novelty[label == 1]
    detector.threshold = float(world.max())
    figures = {"auroc": round(auroc(world, real), 4), "world_scenes": len(world), "real_scenes": len(real),
               "world_withheld": round(float((world > detector.threshold).mean()), 4),
               "real_recognised": round(float((real <= detector.threshold).mean()), 4),
               "text_scenes": int(text.sum()),
               "text_needle_withheld": round(float((novelty[text] > detector.threshold).mean()), 4)}
    info = {"score": "min over the scene's bridge tokens of the squared Mahalanobis distance (tied within-class "
                     "covariance) to the nearest object class mean, per dimension",
            "pool": {"seed": 0, "scenes": args.scenes, "needles": args.needles, "cover": COVER,
                     "object_tokens": int(objects.sum())},
            "threshold_rule": "largest novelty of a validation world scene (scenes holding a text needle excluded)",
            "validation": {"world_seed": 2000, **figures},
            "command": "python benchmarks/ood_calibrate.py"}
    out = Path(args.out) if args.out else Path(source) / ood.CALIBRATION_NAME
    if out.is_dir():
        out = out / ood.CALIBRATION_NAME
    detector.save(out, ood.vision_key(model.config), info)
    print(json.dumps({"file": str(out), "bytes": out.stat().st_size, "threshold": round(detector.threshold, 4),
                      **figures, "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
