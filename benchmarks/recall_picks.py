"""How often recall picks the scene a question is about, over every question of the evaluation videos.

``videollm eval length`` asks 4 questions of each type per video; this counts the scene picks of all of them, which
is what the choices of ``videollm/recall.py`` were measured on. For the held-out evaluation videos 8x and 32x the
training length (as ``videollm eval`` writes them under ``--work``):

- questions that number no scene (attribute and temporal): the segment picked by the word match of the scene tokens
  alone (``recall_captions`` off) and by caption clauses first (the shipped rule), against the segment that overlaps
  the true scene most;
- attribute questions that number a scene: the numbered segment as it is and after ``numbered_scene_check``, and for
  the questions the check moves, whether the answer read from each segment is right.

Run: ``python benchmarks/recall_picks.py [--work runs/eval/work] [--model DIR]`` (about 5 minutes on 2 cores once the
videos' features are cached, e.g. by ``videollm eval all --work runs/eval/work``).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="runs/eval/work", help="evaluation work folder (videos and features)")
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped embedded one)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from videollm.eval.metrics import answer_correct, overlap_assign
    from videollm.eval.runner import ANSWER_TOKENS, TRAIN_SCENES, make_cases, watch
    from videollm.eval.suite import EVAL_SEED
    from videollm.model import VideoLLM
    from videollm.recall import (
        numbered_scene_check,
        rank_scenes,
        scene_captions,
        scene_reference,
    )

    model = VideoLLM.from_pretrained(args.model or "default").eval()

    def answer(state, k: int, question: str) -> str:
        return "".join(model.chat(model.project_state(state, at=k), [], question, max_new_tokens=ANSWER_TOKENS))

    for mult, n in ((8, 4), (32, 4)):
        count: Counter = Counter()
        cases = make_cases(model, Path(args.work), f"videos-x{mult}-s{EVAL_SEED}", n, EVAL_SEED, TRAIN_SCENES * mult)
        for case in cases:
            watched = watch(model, case.video)
            state = watched.state
            truth = overlap_assign(watched.spans, [(s["start_time"], s["end_time"]) for s in case.truth["scenes"]])
            scene_captions(model, state)  # once per video, as the first question would
            for qa in case.truth["qa"]:
                if "scene" not in qa or qa["type"] not in ("attribute", "temporal"):
                    continue
                question = qa["question"]
                named = scene_reference(question, state.segments)
                if named is None:
                    model.config.recall_captions = False
                    words_only = rank_scenes(model, state, question)[0].scene
                    model.config.recall_captions = True
                    with_captions = rank_scenes(model, state, question)[0].scene
                    count["unnamed"] += 1
                    count["unnamed words"] += truth[words_only] == qa["scene"]
                    count["unnamed captions"] += truth[with_captions] == qa["scene"]
                elif qa["type"] == "attribute":
                    checked = numbered_scene_check(model, state, question, named)
                    count["numbered"] += 1
                    count["numbered as named"] += truth[named] == qa["scene"]
                    count["numbered checked"] += truth[checked] == qa["scene"]
                    if checked != named:
                        count["moved"] += 1
                        count["moved: answer right as named"] += answer_correct(answer(state, named, question),
                                                                                qa["answer"])
                        count["moved: answer right checked"] += answer_correct(answer(state, checked, question),
                                                                               qa["answer"])
        u, m = max(1, count["unnamed"]), max(1, count["numbered"])
        print(f"{mult}x ({n} videos): questions naming no scene {count['unnamed']}: right segment "
              f"{count['unnamed words'] / u:.2f} by the word match alone, {count['unnamed captions'] / u:.2f} with "
              f"captions first")
        print(f"{mult}x: numbered attribute questions {count['numbered']}: right segment "
              f"{count['numbered as named'] / m:.2f} as numbered, {count['numbered checked'] / m:.2f} checked; "
              f"moved {count['moved']}, answers right {count['moved: answer right as named']} -> "
              f"{count['moved: answer right checked']}")


if __name__ == "__main__":
    main()
