"""Generation benchmark: the hand-written decoder against ``videollm.lm.generation`` on transformers' ``generate``.

The baseline is ``videollm/lm/generation.py`` as of ``--baseline`` (default: the last commit with the hand-written
KV-cache loop), loaded from git beside the current module. The shipped checkpoint watches ``--video``; then, with
both implementations and greedy decoding:

(a) one streamed ``chat`` per scene caption (what ``videollm caption`` does) and per question about the whole video:
    token ids identical (the baseline's ids are recorded from its decoder, the current ones come from the same
    ``generate`` call without a streamer), streamed text identical, milliseconds per answer, ratio;
(b) ``generate_greedy_batch`` over the scene captions (what ``VideoLLM.answer_many`` uses), the readouts repeated
    to larger batches: text identical, milliseconds per caption, ratio;
(c) ``score_candidates`` over the video's questions with 1, 4 and all of its answers as candidates: same pick, max
    score difference, milliseconds per question, ratio.

Times are medians of ``--runs`` interleaved runs (machine load hits both alike).

Run: ``HF_HUB_OFFLINE=1 python benchmarks/generation.py [--video PATH] [--runs 3] [--threads 2] [--baseline REV]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

# benchmarks/decode.py (this script's folder is first on sys.path): interleaved medians
from decode import median_seconds  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BASELINE = "1cc1796ad74c"  # the hand-written decoder with the cache-argument lookup, before the move to ``generate``


def load_baseline(rev: str):
    """``videollm/lm/generation.py`` at ``rev`` as a module of its own."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:videollm/lm/generation.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "generation_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("generation_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def record_baseline_ids(old) -> list[list[int]]:
    """Make the baseline's streaming decoder remember every token it is given (one list per answer)."""
    runs: list[list[int]] = []

    class Recording(old._IncrementalDecoder):
        def __init__(self, tokenizer) -> None:
            super().__init__(tokenizer)
            runs.append(self.ids)

    old._IncrementalDecoder = Recording
    return runs


def answer(impl, lm, processor, question: str, visual, bound: int) -> str:
    return "".join(impl.chat(lm, processor, [], question, visual=visual, max_new_tokens=bound))


def prompt_embeds(model, visual, question: str):
    import torch

    from videollm.lm import embed_with_visual

    content = f"{model.processor.markers[0]}\n{question}"
    enc = model.processor.encode_prompt([{"role": "user", "content": content}], visual.shape[0])
    with torch.no_grad():
        return embed_with_visual(model.lm, enc["input_ids"][None].to(model.device), visual.to(model.device),
                                 model.processor.placeholder_id)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", default=str(REPO / "data/samples/world/video/video_000001.mp4"))
    parser.add_argument("--model", default="default", help="checkpoint (default: the shipped embedded one)")
    parser.add_argument("--baseline", default=BASELINE, help=f"git revision of the hand-written decoder ({BASELINE})")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--questions", type=int, default=3, help="questions of the video's QA to answer and score")
    parser.add_argument("--batches", default="3,12", help="batch sizes for (b); the scenes' readouts are repeated")
    parser.add_argument("--parts", default="abc", help="which of (a), (b), (c) to run")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    import videollm.lm.generation as new
    from videollm.captioning import ANSWER_TOKENS, CAPTION_TOKENS
    from videollm.memory import build_memory
    from videollm.model import VideoLLM
    from videollm.prompts import CAPTION

    torch.set_num_threads(args.threads)
    old = load_baseline(args.baseline)
    old_ids = record_baseline_ids(old)
    model = VideoLLM.from_pretrained(args.model).eval()
    lm, tokenizer, processor = model.lm, model.tokenizer, model.processor
    state = build_memory(model, args.video)
    truth = json.loads(Path(args.video).with_suffix(".json").read_text())
    qa = truth["qa"][: args.questions]
    scenes = [model.project_state(state, at=k) for k in range(state.num_segments)]
    whole = model.project_state(state)
    print(f"{Path(args.video).name}: {len(scenes)} scenes, {whole.shape[0]} visual tokens, "
          f"{args.threads} threads, baseline {args.baseline}, transformers {__import__('transformers').__version__}")

    # (a) streamed chat, one answer at a time
    jobs = [(v, CAPTION, CAPTION_TOKENS, f"caption {k}") for k, v in enumerate(scenes)]
    jobs += [(whole, item["question"], ANSWER_TOKENS, item["question"]) for item in qa]
    if "a" not in args.parts:
        jobs = []
    rows = {"caption": [], "question": []}
    identical = True
    for visual, question, bound, label in jobs:
        old_text = answer(old, lm, processor, question, visual, bound)
        ids_old = list(old_ids[-1])
        new_text = answer(new, lm, processor, question, visual, bound)
        embeds = prompt_embeds(model, visual, question)[None]
        kwargs = new._generate_kwargs(lm, tokenizer, bound, 0.0, 1.0, (processor.placeholder_id,))
        with torch.no_grad():
            ids_new = lm.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
                                  **kwargs)[0].tolist()
        ids_new = ids_new[: next((i for i, t in enumerate(ids_new) if t in kwargs["eos_token_id"]), len(ids_new))]
        same = ids_old == ids_new and old_text == new_text
        identical &= same
        t_old, t_new = median_seconds([partial(answer, impl, lm, processor, question, visual, bound) for impl in (old, new)],
                               args.runs)
        rows["caption" if question == CAPTION else "question"].append((t_old, t_new, len(ids_new)))
        print(f"  {label:<48} {len(ids_new):3d} tokens  hand-written {t_old * 1e3:7.1f} ms  generate "
              f"{t_new * 1e3:7.1f} ms  ratio {t_new / t_old:5.2f}  identical {'yes' if same else 'NO'}  {new_text!r}")
    for kind, values in rows.items():
        if values:
            t_old = statistics.mean(v[0] for v in values)
            t_new = statistics.mean(v[1] for v in values)
            tokens = statistics.mean(v[2] for v in values)
            print(f"(a) streamed chat, per {kind} ({len(values)}, {tokens:.1f} tokens mean): hand-written "
                  f"{t_old * 1e3:.1f} ms, generate {t_new * 1e3:.1f} ms, ratio {t_new / t_old:.2f}")
    if jobs:
        print(f"(a) greedy tokens and text identical: {'yes' if identical else 'NO'}")

    # (b) batched greedy captions
    embeds = [prompt_embeds(model, v, CAPTION) for v in scenes]
    for size in (int(s) for s in args.batches.split(",") if "b" in args.parts):
        chosen = [embeds[i % len(embeds)] for i in range(size)]
        longest = max(e.shape[0] for e in chosen)
        batch = torch.stack([F.pad(e, (0, 0, longest - e.shape[0], 0)) for e in chosen])
        mask = torch.stack([torch.arange(longest) >= longest - e.shape[0] for e in chosen]).long()
        suppress = (processor.placeholder_id,)
        old_out = old.generate_greedy_batch(lm, tokenizer, batch, mask, CAPTION_TOKENS, suppress_token_ids=suppress)
        new_out = new.generate_greedy_batch(lm, tokenizer, batch, mask, CAPTION_TOKENS, suppress_token_ids=suppress)
        t_old, t_new = median_seconds([partial(impl.generate_greedy_batch, lm, tokenizer, batch, mask, CAPTION_TOKENS,
                                        suppress_token_ids=suppress) for impl in (old, new)], args.runs)
        print(f"(b) batched captions, batch {size:3d}: hand-written {t_old / size * 1e3:.1f} ms, generate "
              f"{t_new / size * 1e3:.1f} ms per caption, ratio {t_new / t_old:.2f}, identical "
              f"{'yes' if old_out == new_out else 'NO'}")

    # (c) candidate scoring: one candidate (recall's answer check), four choices (multiple choice), every answer
    answers = sorted({str(item["answer"]) for item in truth["qa"]})
    for count in (1, 4, len(answers)) if "c" in args.parts else ():
        diffs, t_olds, t_news, same = [], [], [], True
        for item in qa:
            truth_first = [str(item["answer"])] + [a for a in answers if a != str(item["answer"])]
            choices = truth_first[:count]
            prefix = prompt_embeds(model, whole, item["question"])
            s_old = old.score_candidates(lm, tokenizer, prefix, choices)
            s_new = new.score_candidates(lm, tokenizer, prefix, choices)
            diffs.append(float((s_old - s_new).abs().max()))
            same &= int(s_old.argmax()) == int(s_new.argmax())
            t_old, t_new = median_seconds([partial(impl.score_candidates, lm, tokenizer, prefix, choices)
                                    for impl in (old, new)], args.runs)
            t_olds.append(t_old)
            t_news.append(t_new)
        t_old, t_new = statistics.mean(t_olds), statistics.mean(t_news)
        print(f"(c) scoring {count:2d} candidates: baseline {t_old * 1e3:.1f} ms, current "
              f"{t_new * 1e3:.1f} ms per question, ratio {t_new / t_old:.2f}, same pick {'yes' if same else 'NO'}, "
              f"max |score difference| {max(diffs):.1e}")


if __name__ == "__main__":
    main()
