"""Which mechanism answers long-video questions: the full model against one switch flipped, on the full length and
needle sets of ``videollm eval`` (the ``eval all`` ablation table has only 2 questions per cell).

For the full model and each variant (``videollm.eval.runner.ablated``: the same trained weights, one switch flipped
at evaluation time; default ``no_recall``, ``no_recall_captions``, ``no_memory``, ``no_retrieval``) runs the length evaluation (QA by type on
held-out videos 1x / 8x / 32x the training length) and NIAVH (object needles over haystack length x depth), and
prints accuracy per cell with the difference from the full model. JSON + PNG of every run go under ``--out``.

Run: ``python benchmarks/recall_ablation.py [--model DIR] [--work runs/eval/work] [--out runs/recall_ablation]``
(about 3 minutes a variant on 2 cores once the evaluation videos' features are cached, e.g. by ``videollm eval all
--work runs/eval/work``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the shipped embedded one)")
    parser.add_argument("--work", default="runs/eval/work", help="evaluation videos + feature cache")
    parser.add_argument("--out", default="runs/recall_ablation", help="JSON + PNG of each run")
    parser.add_argument("--variants", default="no_recall,no_recall_captions,no_memory,no_retrieval",
                        help="comma-separated variants of videollm.eval.runner.ABLATIONS")
    args = parser.parse_args()

    import torch

    from videollm.eval import suite
    from videollm.eval.runner import ABLATIONS, ablated
    from videollm.model import VideoLLM

    variants = ["full", *[v for v in args.variants.split(",") if v]]
    unknown = [v for v in variants if v not in ABLATIONS]
    if unknown:
        raise SystemExit(f"recall_ablation: unknown variant(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(ABLATIONS)}")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = VideoLLM.from_pretrained(args.model or "default").eval()
    work, out = Path(args.work), Path(args.out)
    rows: dict[str, dict[str, float]] = {}
    for variant in variants:
        with ablated(model, variant):
            length = suite.run_length(model, out / variant, work)
            niavh = suite.run_niavh(model, out / variant, work)
        row = {f"{mult} {kind}": acc for mult, accs in length["accuracy"].items() for kind, acc in accs.items()}
        row.update({f"niavh {h}": sum(r) / len(r) for h, r in zip(niavh["haystacks"], niavh["accuracy"], strict=True)})
        row["niavh all"] = niavh["overall"]
        rows[variant] = row
        print(f"{variant}: done ({length['seconds'] + niavh['seconds']:.0f} s)", flush=True)
    cells = list(rows["full"])
    print(f"\n{'cell':<16}" + "".join(f"{v:>22}" for v in variants))
    for cell in cells:
        full = rows["full"][cell]
        line = f"{cell:<16}{full:>22.3f}"
        for variant in variants[1:]:
            value = rows[variant][cell]
            line += f"{value:>13.3f} ({value - full:+.3f})"
        print(line)
    (out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {out / 'summary.json'}")


if __name__ == "__main__":
    main()
