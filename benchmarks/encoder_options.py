"""Speed and fidelity of CPU options for the embedded model's frozen vision encoder (DINOv2-S/14, penultimate layer).

Each option is an encoder built from the shipped model's vision config: fp32 at several batch sizes (batch 4 is the
baseline: the bridge encodes at most 4 frames per scene), 2 threads, channels-last, ``torch.compile``, dynamic int8
Linear layers, bfloat16 compute and lower input resolutions. Frames are real ones, decoded at 2 fps from the shipped
sample videos (data/samples/world/video). For every option the script reports

- frames/s: median of ``--reps`` timed ``encode`` calls of ``--frames`` frames each (preprocessing included), after
  a warm-up call per batch shape (for ``torch.compile`` that call compiles; its time is reported);
- speed against the fp32 batch-4 baseline measured in the same run;
- quality against the baseline on the same frames: max |diff| and min cosine similarity of the pooled patch tokens
  the bridge reads and of the CLS;
- for options that change the features: how many scene captions of the sample videos stay identical, through the
  product path (``caption_video`` with ``model.vision`` replaced by the option's encoder).

Every row runs on one thread except the "2 threads" row, which widens the process to a second core. On a shared
machine pin the run to one core so that the rows compete with the same neighbours:

Run: ``taskset -c 1 python benchmarks/encoder_options.py [--frames 32] [--reps 3] [--json PATH]``
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data/samples/world/video"
QUALITY_FRAMES = 64


@dataclasses.dataclass
class Option:
    name: str
    make: Callable  # () -> VisionEncoder
    batch: int = 4
    threads: int = 1
    note: str = ""
    captions: bool = True  # False where the option cannot reach the caption path (batch size: one call per scene)


def set_affinity(cpus: set[int]) -> None:
    """Pin every thread of this process (torch's worker threads included) to ``cpus``."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except (ProcessLookupError, PermissionError):  # a thread that has just exited
            pass


@contextmanager
def threads(n: int, base_cpus: set[int]):
    """Run with ``n`` torch threads; with 2+ threads on a 1-core pin, widen the pin to the next cores."""
    import torch

    cpus = base_cpus
    if n > len(base_cpus):
        spare = sorted(set(range(os.cpu_count() or 1)) - base_cpus)
        cpus = base_cpus | set(spare[: n - len(base_cpus)])
    set_affinity(cpus)
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(1)
        set_affinity(base_cpus)


def load_frames(limit: int):
    """Up to ``limit`` frames (N, H, W, 3) uint8 decoded at 2 fps from the shipped sample videos, in order."""
    import numpy as np

    from videollm.io import open_video

    parts = []
    for path in sorted(SAMPLES.glob("*.mp4")):
        with open_video(path) as reader:
            parts.extend(np.asarray(batch.frames) for batch in reader.iter_fps(2, batch_size=16))
    return np.concatenate(parts)[:limit]


def time_option(enc, frames, batch: int, per_rep: int, reps: int, pool: int) -> dict:
    """Warm up, time ``reps`` encode calls of ``per_rep`` frames cycling over ``frames``, and keep every frame's
    features (frames no timed call reached are encoded afterwards, untimed).

    Returns:
        fps (median), warmup_s, cls (N, D) float32 and tokens (N, P*P, D) float32.
    """
    import torch

    from videollm.bridge.segments import pool_patches

    frames = torch.from_numpy(frames)
    n = frames.shape[0]
    t0 = time.perf_counter()
    for size in {batch, per_rep % batch} - {0}:  # every batch shape the timed calls will see
        enc.encode(frames[:size], batch_size=batch)
    warmup = time.perf_counter() - t0
    cls = torch.empty(n, enc.hidden_size)
    tokens = torch.empty(n, pool * pool, enc.hidden_size)
    seen = torch.zeros(n, dtype=torch.bool)

    def run(idx):
        out = enc.encode(frames[idx], batch_size=batch)
        cls[idx] = out.cls.float()
        tokens[idx] = pool_patches(out.patches.float(), pool)
        seen[idx] = True

    times = []
    for r in range(reps):
        idx = (torch.arange(per_rep) + r * per_rep) % n
        t0 = time.perf_counter()
        run(idx)
        times.append(time.perf_counter() - t0)
    if not seen.all():
        run(torch.nonzero(~seen).squeeze(1))
    return {"fps": per_rep / statistics.median(times), "warmup_s": warmup, "cls": cls, "tokens": tokens}


def compare(a, b) -> tuple[float, float]:
    """Max |a - b| and min cosine similarity over the last axis."""
    import torch.nn.functional as F

    return float((a - b).abs().max()), float(F.cosine_similarity(a, b, dim=-1).min())


def captions(model, enc) -> list[str]:
    """Scene captions of every sample video with ``enc`` as the model's vision encoder (the product path)."""
    from videollm.captioning import caption_video

    original = model.vision
    model.vision = enc
    try:
        return [c.caption for path in sorted(SAMPLES.glob("*.mp4")) for c in caption_video(model, path)]
    finally:
        model.vision = original


def build_options(base, cfg) -> list[Option]:
    import torch

    from videollm.vision import build_vision_encoder

    def channels_last():
        enc = copy.deepcopy(base)
        enc.model.to(memory_format=torch.channels_last)
        enc.model.register_forward_pre_hook(
            lambda _, args, kw: (args, {**kw, "pixel_values": kw["pixel_values"].contiguous(
                memory_format=torch.channels_last)}), with_kwargs=True)
        return enc

    def compiled():
        enc = copy.deepcopy(base)
        enc.model = torch.compile(enc.model)
        return enc

    def int8():
        enc = copy.deepcopy(base)
        with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao (not installed)
            warnings.simplefilter("ignore")
            enc.model = torch.ao.quantization.quantize_dynamic(enc.model, {torch.nn.Linear}, dtype=torch.qint8)
        return enc

    retrain = "changes the features: needs a retrained bridge"
    return [
        Option("fp32 batch 4 (baseline)", lambda: base, captions=False),
        *(Option(f"fp32 batch {b}", lambda: base, batch=b, captions=False) for b in (1, 8, 16, 32)),
        Option("fp32, 2 threads (contended: shares the 2nd core)", lambda: base, threads=2),
        Option("channels-last input + model", channels_last),
        Option("torch.compile (inductor)", compiled),
        Option("dynamic int8 Linear (quantize_dynamic)", int8),
        Option("bfloat16 compute", lambda: build_vision_encoder(cfg, dtype=torch.bfloat16)),
        *(Option(f"input {s}px ({s // 14}x{s // 14} patches)",
                 lambda s=s: build_vision_encoder(dataclasses.replace(cfg, image_size=s)), note=retrain)
          for s in (168, 112)),
    ]


def fmt(x: float | None, spec: str) -> str:
    if x is None:
        return "-"
    return "0" if x == 0 and spec.endswith("e") else format(x, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=32, help="frames per timed call (>= 32)")
    parser.add_argument("--reps", type=int, default=3, help="timed calls per option (the median is reported)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()

    import torch

    from videollm.model import VideoLLM

    torch.set_num_threads(1)
    base_cpus = os.sched_getaffinity(0)
    start = time.perf_counter()
    model = VideoLLM.from_pretrained("default").eval()
    pool = model.config.bridge.pool
    frames = load_frames(QUALITY_FRAMES)
    print(f"{len(frames)} sample frames, {args.reps} x {args.frames} frames timed per option, cpus "
          f"{sorted(base_cpus)}, torch {torch.__version__}")

    rows, ref, ref_captions = [], None, None
    for opt in build_options(model.vision, model.config.vision):
        row = {"option": opt.name, "batch": opt.batch, "threads": opt.threads, "note": opt.note}
        print(f"... {opt.name}", flush=True)
        try:
            with threads(opt.threads, base_cpus):
                enc = opt.make()
                res = time_option(enc, frames, opt.batch, args.frames, args.reps, pool)
        except Exception as exc:  # noqa: BLE001 (e.g. torch.compile without a toolchain: that is the finding)
            row.update(fps=None, note=f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
            rows.append(row)
            continue
        row.update(fps=res["fps"], warmup_s=res["warmup_s"])
        if "compile" in opt.name:
            row["note"] = f"compile + first call {res['warmup_s']:.0f} s"
        if ref is None:
            ref = res
            with threads(1, base_cpus):
                ref_captions = captions(model, model.vision)
            row["captions"] = f"reference ({len(ref_captions)})"
        row["speed"] = res["fps"] / ref["fps"]
        row["tok_diff"], row["tok_cos"] = compare(res["tokens"], ref["tokens"])
        row["cls_diff"], row["cls_cos"] = compare(res["cls"], ref["cls"])
        if opt.captions and (row["tok_diff"] > 0 or row["cls_diff"] > 0):
            try:
                with threads(opt.threads, base_cpus):
                    texts = captions(model, enc)
                row["captions"] = f"{sum(a == b for a, b in zip(texts, ref_captions, strict=True))}/{len(texts)}"
            except Exception as exc:  # noqa: BLE001 (reported in the table rather than ending the run)
                row["captions"] = f"failed ({type(exc).__name__})"
        elif opt.captions:
            row["captions"] = "exact"
        rows.append(row)
        del enc

    header = ["option", "frames/s", "vs base", "tok max|d|", "tok min cos", "cls max|d|", "cls min cos",
              "captions", "note"]
    table = [[r["option"], fmt(r.get("fps"), ".2f"), fmt(r.get("speed"), ".2f") + ("x" if "speed" in r else ""),
              fmt(r.get("tok_diff"), ".1e"), fmt(r.get("tok_cos"), ".6f"), fmt(r.get("cls_diff"), ".1e"),
              fmt(r.get("cls_cos"), ".6f"), r.get("captions", "-"), r["note"]] for r in rows]
    widths = [max(len(line[i]) for line in [header, *table]) for i in range(len(header))]
    for line in [header, ["-" * w for w in widths], *table]:
        print(" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    total = time.perf_counter() - start
    print(f"quality: against the baseline on {len(frames)} frames (pooled {pool}x{pool} patch tokens and CLS); "
          f"captions: identical / scene captions of {len(list(SAMPLES.glob('*.mp4')))} sample videos. "
          f"Total {total:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": args.frames, "reps": args.reps, "cpus": sorted(base_cpus),
                                               "torch": torch.__version__, "total_s": total, "rows": rows},
                                              indent=2))


if __name__ == "__main__":
    main()
