"""``videollm eval``: measured understanding on held-out synthetic videos (JSON + PNG per evaluation)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from videollm.cli import add_command
from videollm.commands.common import add_model_args

EVALS = ("captions", "qa", "length", "ablation", "all", "lmms-tasks")


def register(sub) -> None:
    p = add_command(sub, "eval", evaluate)
    p.add_argument("what", choices=EVALS, help="which evaluation (all: every eval and both benchmarks; lmms-tasks: "
                                               "write the qa, egoplan, visdial and needle items as lmms-eval tasks to --out)")
    add_model_args(p, fps=False)
    p.add_argument("--out", default="runs/eval", metavar="DIR", help="where JSON + PNG go (default runs/eval)")
    p.add_argument("--work", default=None, metavar="DIR",
                   help="generated videos and cached features (default: <out>/work)")
    p.add_argument("--videos", type=int, default=8, help="held-out videos of training length (default 8)")
    p.add_argument("--seed", type=int, default=None, help="world seed of the evaluation videos (default 1000)")


def evaluate(args) -> int:
    """Evaluate a model on held-out synthetic videos (compositions never seen in training).

    captions: per-scene caption accuracy of shape, colour, size and motion (captions parsed against the truth).
    qa: accuracy by question type (attribute, counting, temporal, first_last) after the whole video.
    length: the same questions on videos 1x, 8x and 32x the training length.
    ablation: the same weights with memory, retrieval, SceneTiling or the readout mode switched.
    all: every evaluation plus `bench niavh` and `bench egoplan`.
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

    model = load_eval_model(args)
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "work"
    seed = suite.EVAL_SEED if args.seed is None else args.seed
    runs = {
        "captions": lambda: suite.run_captions(model, out, work, args.videos, seed),
        "qa": lambda: suite.run_qa(model, out, work, args.videos, seed),
        "length": lambda: suite.run_length(model, out, work, videos=(args.videos, 4, 4), seed=seed),
        "ablation": lambda: suite.run_ablation(model, out, work, min(args.videos, 4), seed=seed),
        "niavh": lambda: suite.run_niavh(model, out, work, seed=seed),
        "egoplan": lambda: suite.run_egoplan(model, out, work, seed=seed),
    }
    names = list(runs) if args.what == "all" else [args.what]
    summary = {}
    for name in names:
        payload = runs[name]()
        summary[name] = {k: v for k, v in payload.items() if k not in ("records",)}
        print(f"{name}: {json.dumps(headline(payload))}", file=sys.stderr)
    if args.what == "all":
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0


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
