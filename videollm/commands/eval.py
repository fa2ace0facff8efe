"""``videollm eval``: measured understanding on held-out synthetic videos (JSON + PNG per evaluation)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from videollm.cli import add_command
from videollm.commands.common import add_model_args

EVALS = ("captions", "qa", "length", "ablation", "cross", "all", "lmms-tasks")


def register(sub) -> None:
    p = add_command(sub, "eval", evaluate)
    p.add_argument("what", choices=EVALS, help="which evaluation (all: every eval but cross, and both benchmarks; lmms-tasks: "
                                               "write the qa, egoplan, visdial and needle items as lmms-eval tasks to --out)")
    add_model_args(p, fps=False)
    p.add_argument("--out", default="runs/eval", metavar="DIR", help="where JSON + PNG go (default runs/eval)")
    p.add_argument("--work", default=None, metavar="DIR",
                   help="generated videos and cached features (default: <out>/work)")
    p.add_argument("--videos", type=int, default=8, help="held-out videos of training length (default 8)")
    p.add_argument("--seed", type=int, default=None, help="world seed of the evaluation videos (default 1000)")
    p.add_argument("--lengths", type=int_list, default=(1, 8, 32), metavar="M,M,...",
                   help="cross: video lengths, multiples of the training length (default 1,8,32)")
    p.add_argument("--length-videos", type=int_list, default=None, metavar="N,N,...",
                   help="cross: videos at each of --lengths (default: --videos at each)")
    p.add_argument("--variants", type=str_list, default=None, metavar="V,V,...",
                   help="cross: ablation variants (default full,no_memory,no_retrieval,no_recall,uniform_segments; "
                        "also memory_reader; a+b flips both)")
    p.add_argument("--per-type", type=int, default=4, help="cross: questions of each type a video (default 4)")


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need integers >= 1, got {text!r}")
    return values


def str_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def evaluate(args) -> int:
    """Evaluate a model on held-out synthetic videos (compositions never seen in training).

    captions: per-scene caption accuracy of shape, colour, size and motion (captions parsed against the truth).
    qa: accuracy by question type (attribute, counting, temporal, first_last) after the whole video.
    length: the same questions on videos 1x, 8x and 32x the training length.
    ablation: the same weights with memory, retrieval, SceneTiling or the readout mode switched.
    cross: questions that span scenes (order, scene_count, state_change, after_exit) by type at --lengths, for each
    of --variants (default full, no_memory, no_retrieval, no_recall, uniform_segments; also memory_reader: answered
    from the final memory alone; joined with + to combine, memory_reader+no_memory); also writes <out>/cross.md, the
    table with item counts.
    all: every evaluation but cross, plus `bench niavh` and `bench egoplan`.
    Each writes <out>/<name>.json and <out>/<name>.png; videos are real H.264 files decoded like user videos.
    lmms-tasks: no model runs; the items of qa, egoplan and `bench visdial`, and 8 needle videos (60 s held-out
    haystacks), are written to <out> as lmms-eval tasks (YAML + JSONL) for `python -m lmms_eval --model videollm
    --include_path <out> --tasks videollm_qa,...`.
    """
    from videollm.eval import suite

    if args.what == "lmms-tasks":
        from videollm.eval.lmms_tasks import write_tasks

        out = Path(args.out)
        for path in write_tasks(out, Path(args.work) if args.work else out / "work", args.videos, args.seed):
            print(path)
        return 0

    if args.what == "cross":
        cross_plan(args)
    model = load_eval_model(args)
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "work"
    seed = suite.EVAL_SEED if args.seed is None else args.seed
    runs = {
        "captions": lambda: suite.run_captions(model, out, work, args.videos, seed),
        "qa": lambda: suite.run_qa(model, out, work, args.videos, seed),
        "length": lambda: suite.run_length(model, out, work, videos=(args.videos, 4, 4), seed=seed),
        "ablation": lambda: suite.run_ablation(model, out, work, min(args.videos, 4), seed=seed),
        "cross": lambda: run_cross(args, model, out, work, seed),
        "niavh": lambda: suite.run_niavh(model, out, work, seed=seed),
        "egoplan": lambda: suite.run_egoplan(model, out, work, seed=seed),
    }
    names = [n for n in runs if n != "cross"] if args.what == "all" else [args.what]
    summary = {}
    for name in names:
        payload = runs[name]()
        summary[name] = {k: v for k, v in payload.items() if k not in ("records",)}
        print(f"{name}: {json.dumps(headline(payload))}", file=sys.stderr)
    if args.what == "all":
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0


def cross_plan(args) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Videos at each length and the variants of `eval cross`, checked before any model loads."""
    from videollm.errors import UsageError
    from videollm.eval.runner import ABLATIONS, unknown_switches
    from videollm.eval.suite import CROSS_VARIANTS

    videos = tuple(args.length_videos or (args.videos,) * len(args.lengths))
    if len(videos) != len(args.lengths):
        raise UsageError(f"--length-videos gives {len(videos)} counts for {len(args.lengths)} --lengths")
    variants = tuple(args.variants or CROSS_VARIANTS)
    if unknown := [v for v in variants if unknown_switches(v)]:
        raise UsageError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(ABLATIONS)} (joined with + "
                         "to combine)")
    return videos, variants


def run_cross(args, model, out: Path, work: Path, seed: int) -> dict:
    from videollm.eval import suite

    videos, variants = cross_plan(args)
    payload = suite.run_cross(model, out, work, args.lengths, videos, seed, variants, args.per_type)
    print((out / "cross.md").read_text(encoding="utf-8"), end="")
    return payload


def load_eval_model(args):
    """The model named by --model, in evaluation mode."""
    from videollm.commands.common import load_model

    return load_model(args).eval()


def headline(payload: dict) -> dict:
    """The few numbers worth a terminal line."""
    kind = payload["eval"]
    if kind == "captions":
        return {k: round(v, 3) for k, v in payload["summary"].items()}
    if kind in ("qa",):
        return {k: round(v, 3) for k, v in payload["accuracy"].items()}
    if kind == "length":
        return {row: round(v["all"], 3) for row, v in payload["accuracy"].items()}
    if kind == "cross":
        return {v: {row: round(accs["all"], 3) for row, accs in rows.items()} for v, rows in payload["accuracy"].items()}
    if kind == "niavh":
        return {"overall": round(payload["overall"], 3)}
    if kind == "egoplan":
        return {"accuracy": round(payload["accuracy"], 3), "ci95": [round(x, 3) for x in payload["ci95"]],
                "lm_only_accuracy": round(payload["lm_only_accuracy"], 3),
                "no_video_accuracy": round(payload["no_video_accuracy"], 3), "items": payload["items"]}
    if kind == "visdial":
        return {k: round(payload[k], 3) for k in ("mrr", "r@1", "r@5", "r@10", "mean_rank", "ndcg")} | {
            "rounds": payload["rounds"], "ndcg_rounds": payload["ndcg_rounds"]}
    return {v: round(row.get("caption_attributes", float("nan")), 3) for v, row in payload["table"].items()}
