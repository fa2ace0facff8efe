"""``videollm search``: which scenes of a video (or saved memory) match a text query, best first."""

from __future__ import annotations

import argparse
import json
import sys

from videollm.cli import add_command
from videollm.commands.ask import open_video_memory
from videollm.commands.common import add_model_args, add_signal_args
from videollm.commands.scenes import positive_int
from videollm.errors import UsageError


def register(sub) -> None:
    p = add_command(sub, "search", search)
    p.add_argument("video", metavar="VIDEO_OR_MEMORY",
                   help="a video file, or a memory saved by `stream/caption/ask --save-memory` (no decoding then)")
    p.add_argument("query", help='what to look for, e.g. "small red circle"')
    p.add_argument("--top", type=positive_int, default=5, help="how many scenes to list (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object per scene instead of a table")
    p.add_argument("--save-memory", metavar="FILE",
                   help="also save the memory, with the scene captions written for the search, for later questions")
    add_signal_args(p)
    add_model_args(p)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:04.1f}"


def search(args: argparse.Namespace) -> int:
    """List the scenes that match QUERY, best first, with their time span and caption.

    Scenes are ranked as question recall ranks them: the most query words held by one clause of the scene's
    caption, then how well the scene's tokens explain the query's grounded words. Captions come from the memory when
    a captioning session made it; otherwise each scene is captioned once (batched) and, with --save-memory, kept for
    the next search or question. Scenes whose caption holds no query word are not listed.

    With speech in the memory (``--speech``, on by default when faster-whisper and the Whisper weights are
    installed), every place the query's words are said one after another is listed first, with its time; with
    on-screen text (``--text`` here or when the memory was saved), the scenes that show the words written next.
    """
    from videollm import ocr, speech
    from videollm.memory import save_memory
    from videollm.recall import rank_scenes, scene_captions

    if not args.query.strip():
        raise UsageError("the search query is empty")
    args.max_new_tokens = 1  # open_video_memory checks the answer bound shared with ask/chat; search answers nothing
    model, state = open_video_memory(args)
    ranked = rank_scenes(model, state, args.query)
    # With captions a scene is listed when its caption holds a query word; without (``recall_captions`` off), the
    # word score of its tokens is all there is, and every scene is ranked when the query has a grounded word.
    by_captions = model.config.recall_captions
    ranked = [m for m in ranked if (m.words > 0 if by_captions else m.score is not None)]
    captions = scene_captions(model, state)
    if args.save_memory:
        save_memory(state, args.save_memory)
    n = state.num_segments
    said = speech.find(state, args.query)
    written = ocr.find(state, args.query)
    spans = [("said", h.text, h.start, h.end, h.scene) for h in said[: args.top]]
    spans += [("written", h.text, round(state.segments[h.scene].start_time, 3),
               round(state.segments[h.scene].end_time, 3), h.scene) for h in written[: args.top]]
    for how, text, start, end, scene in spans:
        if args.json:
            sys.stdout.write(json.dumps({how: text, "start": start, "end": end, "scene": scene + 1, "scenes": n},
                                        ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(f"{how} {_clock(start)}–{_clock(end)} (scene {scene + 1} of {n}): \"{text}\"\n")
    if not ranked:
        if not said and not written:
            print(f"videollm: no scene matches {args.query!r}", file=sys.stderr)
        return 0
    for rank, match in enumerate(ranked[: args.top], 1):
        seg = state.segments[match.scene]
        row = {"rank": rank, "scene": match.scene + 1, "scenes": n, "start": round(seg.start_time, 3),
               "end": round(seg.end_time, 3), "caption_words": match.words,
               "word_score": None if match.score is None else round(match.score, 3),
               "caption": captions[match.scene]}
        if args.json:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(f"{rank:>2}. scene {match.scene + 1} of {n}  {_clock(seg.start_time)}–"
                             f"{_clock(seg.end_time)}  {captions[match.scene]}\n")
    return 0
