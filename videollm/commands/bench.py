"""``videollm bench``: needle in a video haystack (NIAVH), EgoPlan-Bench-format multiple choice, and Visual Dialog
answer ranking (VisDial v1.0)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from videollm.cli import add_command
from videollm.commands.common import add_model_args


def register(sub) -> None:
    p = add_command(sub, "bench", bench)
    p.add_argument("what", choices=("niavh", "egoplan", "visdial"), help="which benchmark")
    p.add_argument("file", nargs="?", default=None, metavar="FILE.json",
                   help="egoplan: an EgoPlan-Bench JSON list (video_path relative to the file); visdial: a VisDial "
                        "v1.0 JSON file; default: generate held-out items from the synthetic world")
    p.add_argument("--images", default=None, metavar="DIR",
                   help="visdial: folder of the images, each named ending with its image_id (default: FILE's folder)")
    p.add_argument("--dense", default=None, metavar="FILE.json",
                   help="visdial: dense annotations for NDCG (default: <FILE stem>_dense_annotations.json if present)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="visdial: at most N dialogs (images)")
    p.add_argument("--items", type=int, default=None, metavar="N",
                   help="without FILE, held-out items to generate: egoplan tasks (default 24) or visdial images "
                        "(default 8, 10 rounds each)")
    add_model_args(p, fps=False)
    p.add_argument("--out", default="runs/eval", metavar="DIR", help="where JSON + PNG go (default runs/eval)")
    p.add_argument("--work", default=None, metavar="DIR",
                   help="generated videos and cached features (default: <out>/work)")
    p.add_argument("--lengths", default="1,8,32", help="niavh: haystack lengths in x training length (default 1,8,32)")
    p.add_argument("--depths", default="0,0.25,0.5,0.75,1", help="niavh: needle depths in [0, 1]")
    p.add_argument("--needle", choices=("object", "text"), default="object",
                   help="niavh: an object needle (its colour is asked) or a written word (read on screen with RapidOCR, "
                        "as `ask --text` reads it)")
    p.add_argument("--seed", type=int, default=None, help="world seed (default 1000)")


def bench(args) -> int:
    """Run a benchmark and write <out>/<name>.json + <out>/<name>.png.

    niavh: an object needle (1 s, checkerboard; --needle text: a written word) is spliced into held-out haystacks of several lengths at several
    depths; the needle question is answered after the whole video and scored against the truth (no judge model).
    egoplan: for each task, the progress video is watched and the 4 candidate next steps are ranked as the app's
    Planning tab ranks them (the LM's mean log-likelihood of each as the answer to the planning question for the
    item's task_goal); accuracy against golden_choice_idx with a 95 % Wilson interval, beside the accuracy of the
    same ranking without the video (chance 0.25).
    visdial: each round's 100 answer options are ranked by the LM's mean log-likelihood given the image and the
    dialog so far; MRR, R@1/5/10, mean rank of the true answer, and NDCG on the rounds with dense annotations.
    """
    from videollm.commands.eval import headline, load_eval_model
    from videollm.errors import UsageError
    from videollm.eval import suite

    seed = suite.EVAL_SEED if args.seed is None else args.seed
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "work"
    try:
        lengths = [int(x) for x in args.lengths.split(",")]
        depths = [float(x) for x in args.depths.split(",")]
    except ValueError:
        raise UsageError("--lengths must be integers and --depths numbers, comma separated") from None
    if any(m < 1 for m in lengths) or any(not 0.0 <= d <= 1.0 for d in depths):
        raise UsageError("--lengths must be >= 1 and --depths in [0, 1]")
    if args.what in ("egoplan", "visdial") and args.file is not None and not Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such {'EgoPlan' if args.what == 'egoplan' else 'VisDial'} JSON file")
    if (args.limit is not None and args.limit < 1) or (args.items is not None and args.items < 1):
        raise UsageError("--limit and --items must be >= 1")
    if args.what == "visdial" and args.file is not None:
        from videollm.eval.visdial import load_visdial

        load_visdial(args.file, args.dense)  # a malformed file fails before the model loads
    model = load_eval_model(args)
    if args.what == "niavh":
        payload = suite.run_niavh(model, out, work, lengths, depths, seed=seed, needle=args.needle)
    elif args.what == "visdial":
        payload = suite.run_visdial(model, out, work, args.file, args.items or 8, seed, args.images, args.dense,
                                    args.limit)
    else:
        payload = suite.run_egoplan(model, out, work, args.file, args.items or 24, seed=seed)
    print(f"{args.what}: {json.dumps(headline(payload))}", file=sys.stderr)
    return 0
