"""Captioning every scene of a watched video: one greedy ``chat`` per scene against ``VideoLLM.answer_many`` (all
scenes in batches, one forward per new token for the whole batch), which recall and ``videollm search`` use for a
memory that has no captions yet.

A held-out synthetic-world video of ``--scenes`` scenes is written to a temporary folder, watched by the shipped
checkpoint (SceneTiling + memory bridge), then each scene's recalled readout is captioned both ways. Prints both
times, the ratio, how many captions are identical (greedy decoding should give the same text), and the time of a
second ``answer_many`` over the same readouts (remembered answers).

Run: ``python benchmarks/scene_captions.py [--scenes 16] [--batch 32] [--threads 2]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped embedded one)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from videollm.captioning import CAPTION_TOKENS
    from videollm.eval.runner import feature_cache, world_config
    from videollm.eval.runner import watch as watch_features
    from videollm.model import VideoLLM
    from videollm.prompts import CAPTION
    from videollm.feature_cache import video_features
    from videollm.world import generate

    model = VideoLLM.from_pretrained(args.model or "default").eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = generate(Path(tmp) / "videos", 1, 7, heldout=True, config=world_config(args.scenes))[0]
        feats = video_features(model.encode_frames, feature_cache(model, Path(tmp)), path,
                               model.config.segmentation.fps)
    state = watch_features(model, feats).state
    visuals = [model.project_state(state, at=k) for k in range(state.num_segments)]
    print(f"{len(visuals)} scenes, {visuals[0].shape[0]} visual tokens each, {args.threads} threads")

    t0 = time.perf_counter()
    one_by_one = ["".join(model.chat(v, [], CAPTION, max_new_tokens=CAPTION_TOKENS)) for v in visuals]
    t_seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = model.answer_many(visuals, CAPTION, max_new_tokens=CAPTION_TOKENS, batch_size=args.batch)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = model.answer_many(visuals, CAPTION, max_new_tokens=CAPTION_TOKENS, batch_size=args.batch)
    t_again = time.perf_counter() - t0
    same = sum(a == b for a, b in zip(one_by_one, batched, strict=True))
    print(f"one chat per scene: {t_seq:6.2f} s ({t_seq / len(visuals):.3f} s a scene)")
    print(f"answer_many:        {t_batch:6.2f} s ({t_batch / len(visuals):.3f} s a scene), "
          f"{t_seq / t_batch:.2f}x faster, identical captions {same}/{len(visuals)}")
    print(f"answer_many again:  {t_again:6.3f} s (remembered), identical {again == batched}")
    print(f"e.g. scene 1: {batched[0]!r}")


if __name__ == "__main__":
    main()
