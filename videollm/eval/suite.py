"""Each evaluation end to end: make (or reuse) the held-out videos, score, write ``<out>/<name>.json`` + ``.png``.

Default sizes keep every evaluation to a few minutes on 2 CPU cores; the seeds are fixed so the figures are
reproducible. Seeds of the evaluation sets differ from the training recipe's world seed and every object is held
out, so no evaluation video shares a shape x colour x motion triple with training.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from videollm.eval import plots
from videollm.eval.metrics import ATTRIBUTES, mean_by
from videollm.eval.runner import (
    ABLATIONS,
    TRAIN_SCENES,
    ablated,
    caption_records,
    cross_questions,
    egoplan_records,
    feature_cache,
    make_cases,
    needle_records,
    qa_records,
    summarize_captions,
    wilson_interval,
)

EVAL_SEED = 1000
CAPTION_TARGET = 0.9
#: ``eval ablation``'s variants: every switch but the cross-scene readers (its questions never span scenes).
ABLATION_VARIANTS: tuple[str, ...] = tuple(v for v in ABLATIONS if not v.endswith("_reader"))
CROSS_VARIANTS: tuple[str, ...] = ("full", "no_memory", "no_retrieval", "no_recall", "uniform_segments")


def _write(out: Path, name: str, payload: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return path


def run_captions(model, out: Path, work: Path, n: int = 8, seed: int = EVAL_SEED) -> dict[str, Any]:
    """Per-scene caption attribute accuracy on ``n`` held-out videos of training length."""
    t0 = time.perf_counter()
    cases = make_cases(model, work, f"videos-x1-s{seed}", n, seed, TRAIN_SCENES)
    records = caption_records(model, cases)
    summary = summarize_captions(records)
    payload = {"eval": "captions", "videos": n, "seed": seed, "heldout": True, "summary": summary,
               "seconds": time.perf_counter() - t0, "records": records}
    _write(out, "captions", payload)
    plots.bars({k: summary[k] for k in (*ATTRIBUTES, "attributes", "exact")}, out / "captions.png",
               f"scene captions, held-out compositions ({summary['scenes']} scenes)", target=CAPTION_TARGET)
    return payload


def run_qa(model, out: Path, work: Path, n: int = 8, seed: int = EVAL_SEED, per_type: int = 3) -> dict[str, Any]:
    """Video QA accuracy by question type on ``n`` held-out videos of training length."""
    t0 = time.perf_counter()
    cases = make_cases(model, work, f"videos-x1-s{seed}", n, seed, TRAIN_SCENES)
    records = qa_records(model, cases, per_type)
    by_type = mean_by(records, "type", "correct")
    payload = {"eval": "qa", "videos": n, "seed": seed, "heldout": True, "accuracy": by_type,
               "questions": len(records), "seconds": time.perf_counter() - t0, "records": records}
    _write(out, "qa", payload)
    plots.bars(by_type, out / "qa.png", f"video QA by type, held-out ({len(records)} questions)")
    return payload


def run_length(model, out: Path, work: Path, multipliers: Sequence[int] = (1, 8, 32),
               videos: Sequence[int] = (8, 4, 4), seed: int = EVAL_SEED, per_type: int = 4) -> dict[str, Any]:
    """QA accuracy by type on videos ``multipliers`` x the training length (in scenes)."""
    t0 = time.perf_counter()
    table: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    all_records = {}
    for mult, n in zip(multipliers, videos, strict=True):
        cases = make_cases(model, work, f"videos-x{mult}-s{seed}", n, seed, TRAIN_SCENES * mult)
        records = qa_records(model, cases, per_type)
        table[f"{mult}x"] = mean_by(records, "type", "correct")
        counts[f"{mult}x"] = len(records)
        all_records[f"{mult}x"] = records
    base = table[f"{multipliers[0]}x"]
    relative = {row: {k: (v / base[k] if base.get(k) else float("nan")) for k, v in accs.items()}
                for row, accs in table.items()}
    payload = {"eval": "length", "seed": seed, "heldout": True, "train_scenes": TRAIN_SCENES,
               "multipliers": list(multipliers), "videos": list(videos), "questions": counts, "accuracy": table,
               "relative_to_1x": relative, "seconds": time.perf_counter() - t0, "records": all_records}
    _write(out, "length", payload)
    plots.grouped_bars(table, out / "length.png", "QA accuracy vs video length (x training length)")
    return payload


def run_niavh(model, out: Path, work: Path, multipliers: Sequence[int] = (1, 8, 32),
              depths: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), needles: int = 4,
              seed: int = EVAL_SEED, needle: str = "object") -> dict[str, Any]:
    """Needle in a video haystack: accuracy over haystack length x needle depth. ``needle`` "object" asks the
    colour of a still object; "text" asks the word written on screen, read from the scenes' frames by RapidOCR
    (``videollm.ocr``) as ``ask --text`` reads them."""
    t0 = time.perf_counter()
    haystacks = [(f"{m}x", make_cases(model, work, f"videos-x{m}-s{seed}", 1, seed, TRAIN_SCENES * m)[0])
                 for m in multipliers]
    name = "needles" if needle == "object" else f"needles-{needle}"
    needle_cases = make_cases(model, work, f"{name}-s{seed}", needles, seed, 1, kind="needle", needle=needle,
                              needle_depth=0.0, haystack_seconds=2.0)
    records = needle_records(model, haystacks, needle_cases, depths, read_text=needle == "text")
    grid = [[float(np.mean([r["correct"] for r in records if r["haystack"] == h and r["depth"] == d]))
             for d in depths] for h, _ in haystacks]
    payload = {"eval": "niavh", "needle": needle, "seed": seed, "heldout": True, "haystacks": [h for h, _ in haystacks],
               "haystack_seconds": [c.truth["duration"] for _, c in haystacks], "depths": list(depths),
               "accuracy": grid, "overall": float(np.mean([r["correct"] for r in records])),
               "seconds": time.perf_counter() - t0, "records": records}
    stem = "niavh" if needle == "object" else f"niavh-{needle}"
    _write(out, stem, payload)
    plots.heatmap(grid, [h for h, _ in haystacks], [f"{d:.2f}" for d in depths], out / f"{stem}.png",
                  f"needle in a video haystack ({needle} needle)", "needle depth", "haystack (x training length)")
    return payload


def run_egoplan(model, out: Path, work: Path, path: str | os.PathLike | None = None, n: int = 24,
                seed: int = EVAL_SEED) -> dict[str, Any]:
    """EgoPlan multiple choice by log-likelihood; without ``path``, ``n`` held-out world tasks are generated."""
    t0 = time.perf_counter()
    path = egoplan_file(work, n, seed) if path is None else path
    records = egoplan_records(model, path, feature_cache(model, work))
    n = len(records)
    payload: dict[str, Any] = {"eval": "egoplan", "file": str(path)}
    for name, key in (("accuracy", "correct"), ("lm_only_accuracy", "lm_only_correct"),
                      ("no_video_accuracy", "no_video_correct")):
        right = sum(r[key] for r in records)
        payload[name] = right / n if n else float("nan")
        payload[name.replace("accuracy", "ci95")] = list(wilson_interval(right, n))
    payload.update({"progress_used": sum(bool(r["why"]) for r in records), "chance": 0.25, "items": n,
                    "seconds": time.perf_counter() - t0, "records": records})
    _write(out, "egoplan", payload)
    plots.bars({"accuracy": payload["accuracy"], "log-likelihood only": payload["lm_only_accuracy"],
                "no video": payload["no_video_accuracy"], "chance": 0.25},
               out / "egoplan.png", f"EgoPlan next step ({n} items)")
    return payload


def egoplan_file(work: Path, n: int, seed: int) -> Path:
    """The EgoPlan-format JSON of ``n`` held-out world tasks under ``work`` (generated once)."""
    path = work / f"egoplan-s{seed}" / "egoplan.json"
    if not path.is_file() or len(json.loads(path.read_text(encoding="utf-8"))) != n:
        from videollm.world import generate

        generate(path.parent, n, seed, heldout=True, kind="egoplan")
    return path


def visdial_file(work: Path, n: int, seed: int) -> Path:
    """The VisDial v1.0 file (dense annotations beside it) of ``n`` held-out world images under ``work``."""
    from videollm.world.generate import visdial_name

    path = work / f"visdial-s{seed}-n{n}" / visdial_name(heldout=True)
    if not path.is_file():
        from videollm.world import generate

        generate(path.parent, n, seed, heldout=True, kind="image")
    return path


def run_visdial(model, out: Path, work: Path, path: str | os.PathLike | None = None, n: int = 8,
                seed: int = EVAL_SEED, images: str | os.PathLike | None = None,
                dense: str | os.PathLike | None = None, limit: int | None = None) -> dict[str, Any]:
    """Visual Dialog answer ranking (``videollm.eval.visdial``); without ``path``, ``n`` held-out world images
    with a VisDial v1.0 file and dense annotations are generated."""
    from videollm.eval import visdial

    path = visdial_file(work, n, seed) if path is None else path
    payload = visdial.run_visdial(model, path, images, dense, limit)
    _write(out, "visdial", payload)
    plots.bars({k: payload[k] for k in ("mrr", "r@1", "r@5", "r@10", "ndcg") if not math.isnan(payload[k])},
               out / "visdial.png", f"VisDial answer ranking ({payload['rounds']} rounds)", ylabel="score")
    return payload


def run_ablation(model, out: Path, work: Path, n: int = 4, long_videos: int = 1, seed: int = EVAL_SEED,
                 variants: Sequence[str] = ABLATION_VARIANTS, per_type: int = 2) -> dict[str, Any]:
    """The same trained weights with one mechanism switched off: caption attributes and QA by type on held-out
    videos of 1x training length, and QA on 8x videos."""
    t0 = time.perf_counter()
    short = make_cases(model, work, f"videos-x1-s{seed}", n, seed, TRAIN_SCENES)
    long = make_cases(model, work, f"videos-x8-s{seed}", long_videos, seed, TRAIN_SCENES * 8)
    table: dict[str, dict[str, float]] = {}
    for variant in variants:
        with ablated(model, variant):
            caps = summarize_captions(caption_records(model, short))
            qa1 = mean_by(qa_records(model, short, per_type), "type", "correct")
            qa8 = mean_by(qa_records(model, long, per_type), "type", "correct")
        table[variant] = {"caption_attributes": caps["attributes"], **{f"qa1x_{k}": v for k, v in qa1.items()},
                          **{f"qa8x_{k}": v for k, v in qa8.items()}}
    cols = sorted({c for row in table.values() for c in row})
    payload = {"eval": "ablation", "seed": seed, "heldout": True,
               "note": "one set of trained weights; each row flips one switch at evaluation time",
               "columns": cols, "table": table, "seconds": time.perf_counter() - t0}
    _write(out, "ablation", payload)
    plots.heatmap([[table[v].get(c, float("nan")) for c in cols] for v in variants], list(variants), cols,
                  out / "ablation.png", "ablations (same weights, switch flipped)", "metric", "variant")
    return payload


def run_cross(model, out: Path, work: Path, multipliers: Sequence[int] = (1, 8, 32),
              videos: Sequence[int] = (8, 2, 1), seed: int = EVAL_SEED,
              variants: Sequence[str] = CROSS_VARIANTS, per_type: int = 4) -> dict[str, Any]:
    """Cross-scene questions (``videollm.world.truth.cross_scene_qa``: order, scene_count, state_change,
    after_exit) by type, on held-out videos ``multipliers`` x the training length, for each ablation ``variants``
    (same weights, one switch flipped, ``runner.ablated``). Every variant answers the same questions of the same
    videos through the product's path. Writes ``cross.json``, ``cross.md`` (the table, with item counts) and
    ``cross.png``.

    Returns:
        The payload: ``accuracy[variant][f"{m}x"][type]`` (type "all" too), ``questions[f"{m}x"][type]`` (items
        per cell, the same for every variant), ``majority[f"{m}x"][type]`` (accuracy of always giving the type's
        commonest answer at that length, chosen in hindsight), ``seconds[variant]`` and the records.
    """
    t0 = time.perf_counter()
    cases = {f"{m}x": make_cases(model, work, f"videos-x{m}-s{seed}", n, seed, TRAIN_SCENES * m)
             for m, n in zip(multipliers, videos, strict=True)}
    records: dict[str, dict[str, list[dict]]] = {}
    seconds: dict[str, float] = {}
    for variant in variants:
        t1 = time.perf_counter()
        with ablated(model, variant):
            records[variant] = {row: qa_records(model, cs, per_type, cross_questions) for row, cs in cases.items()}
        seconds[variant] = time.perf_counter() - t1
        # Written after every variant, so a run stopped part way keeps the variants it finished.
        payload = _cross_payload(records, seconds, multipliers, videos, seed, per_type, time.perf_counter() - t0)
        _write(out, "cross", payload)
        (out / "cross.md").write_text(cross_table(payload), encoding="utf-8")
    questions, accuracy = payload["questions"], payload["accuracy"]
    cols = [f"{row} {t}" for row in questions for t in questions[row]]
    plots.heatmap([[accuracy[v][row].get(t, float("nan")) for row in questions for t in questions[row]]
                   for v in variants], list(variants), cols, out / "cross.png",
                  "cross-scene questions by type and length", "length, type", "variant")
    return payload


def _cross_payload(records: dict[str, dict[str, list[dict]]], seconds: dict[str, float], multipliers: Sequence[int],
                   videos: Sequence[int], seed: int, per_type: int, total: float) -> dict[str, Any]:
    variants = list(records)
    first = records[variants[0]]
    questions = {row: {t: sum(r["type"] == t for r in recs) for t in sorted({r["type"] for r in recs})}
                 | {"all": len(recs)} for row, recs in first.items()}
    return {"eval": "cross", "seed": seed, "heldout": True, "train_scenes": TRAIN_SCENES,
            "multipliers": list(multipliers), "videos": list(videos), "per_type": per_type, "variants": variants,
            "questions": questions,
            "accuracy": {v: {row: mean_by(recs, "type", "correct") for row, recs in rows.items()}
                         for v, rows in records.items()},
            "majority": {row: _majority(recs) for row, recs in first.items()},
            "seconds": dict(seconds), "total_seconds": total, "records": records}


def _majority(records: Sequence[dict]) -> dict[str, float]:
    by_type: dict[str, list[str]] = {}
    for r in records:
        by_type.setdefault(r["type"], []).append(r["answer"])
    out = {t: max(answers.count(a) for a in set(answers)) / len(answers) for t, answers in sorted(by_type.items())}
    out["all"] = sum(out[t] * len(by_type[t]) for t in by_type) / max(1, len(records))
    return out


def cross_table(payload: dict[str, Any]) -> str:
    """Markdown table of a ``run_cross`` payload: a row per length and type with its item count, a column per
    variant, and the commonest-answer baseline last."""
    variants, accuracy = payload["variants"], payload["accuracy"]
    head = ["length", "type", "items", *variants, "commonest answer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, types in payload["questions"].items():
        for t, n in types.items():
            cells = [f"{accuracy[v][row].get(t, float('nan')):.2f}" for v in variants]
            lines.append("| " + " | ".join([row, t, str(n), *cells, f"{payload['majority'][row][t]:.2f}"]) + " |")
    videos = ", ".join(f"{n} at {m}x" for m, n in zip(payload["multipliers"], payload["videos"], strict=True))
    return (f"Cross-scene questions on held-out videos (seed {payload['seed']}; videos: {videos}; up to "
            f"{payload['per_type']} questions of each type a video)\n\n" + "\n".join(lines) + "\n")
