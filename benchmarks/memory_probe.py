"""Do a model's memory readout tokens carry what earlier scenes showed?

For each held-out evaluation video of training length (``videollm eval``'s 1x set, 2 scenes each), the projected
readout tokens that come from memories (``BridgeConfig.num_memory_readout_tokens``: the final memory for the
``memory_last_segment`` readout) are scored against the frozen LM's input embeddings of every attribute word of the
synthetic world (cosine / 0.05, log-sum-exp over the memory tokens, as in the word-alignment loss). Reported: recall
of the words only earlier scenes show among the top-k words (k = how many there are), and the same for the last
scene's words, for the model as trained and for the no-memory ablation of the same weights (every scene starts from
the initial memory, so earlier scenes cannot reach the readout). A memory that carries earlier scenes scores higher
than its ablation on the first figure; chance is about k / 19 (3 sizes, 8 colours, 8 shapes).

    python benchmarks/memory_probe.py --model runs/embedded-lm/final     # a model with a memory readout

Videos and features come from (and are written once to) ``--work``, the same folder ``videollm eval`` uses.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="checkpoint folder whose readout has memory tokens")
    parser.add_argument("--work", default="runs/eval/work", help="evaluation videos and features (videollm eval)")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()

    from videollm.eval import runner
    from videollm.model import VideoLLM
    from videollm.train.align import MOTION_WORDS, scene_words, word_id, world_words
    from videollm.world import VideoSpec

    t0 = time.perf_counter()
    model = VideoLLM.from_pretrained(args.model).eval()
    cfg = model.bridge.config
    if not cfg.num_memory_readout_tokens(1):
        print(f"{args.model}: readout {cfg.readout!r} has no memory tokens to probe", file=sys.stderr)
        return 2
    cases = runner.make_cases(model, args.work, f"videos-x1-s{args.seed}", args.videos, args.seed,
                              runner.TRAIN_SCENES)
    motions = set(MOTION_WORDS.values())  # left out: the question is whether the objects are remembered
    words = [w for w in world_words() if w not in motions]
    ids = torch.tensor([word_id(model.tokenizer, w) for w in words])
    with torch.no_grad():
        table = F.normalize(model.lm.get_input_embeddings().weight[ids].float(), dim=-1)  # (K, H)
    print(f"model {args.model}, readout {cfg.readout}, {len(cases)} videos, {len(words)} candidate words")
    print(f"{'variant':>10} {'earlier-scene recall':>21} {'last-scene recall':>18}")
    for variant in ("full", "no_memory"):
        hits = {"early": 0, "last": 0}
        totals = {"early": 0, "last": 0}
        for case in cases:
            with runner.ablated(model, variant):
                watched = runner.watch(model, case.video)
            n = cfg.num_memory_readout_tokens(len(watched.spans))
            memory = watched.visuals[-1][:n].float()  # (n, H): the readout's leading memory tokens
            score = torch.logsumexp(F.normalize(memory, dim=-1) @ table.T / 0.05, dim=0)  # (K,)
            scenes = [set(scene_words(s)) - motions for s in VideoSpec.from_dict(case.truth["spec"]).scenes]
            last = scenes[-1]
            early = set().union(*scenes[:-1]) - last
            for name, target in (("early", early), ("last", last)):
                if target:
                    top = {words[i] for i in torch.topk(score, len(target)).indices.tolist()}
                    hits[name] += len(top & target)
                    totals[name] += len(target)
        print(f"{variant:>10} {hits['early'] / max(1, totals['early']):>21.3f} "
              f"{hits['last'] / max(1, totals['last']):>18.3f}   ({totals['early']} / {totals['last']} words)")
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
