"""``videollm ask``: one question about a video or a saved memory, answered token by token."""

from __future__ import annotations

import argparse
import sys

from videollm.cli import add_command
from videollm.commands import common
from videollm.errors import UsageError


def add_memory_args(p: argparse.ArgumentParser) -> None:
    """Options shared by ``ask`` and ``chat``."""
    p.add_argument("video", metavar="VIDEO_OR_MEMORY",
                   help="a video file, or a memory saved by `stream/caption --save-memory` (no decoding then)")
    p.add_argument("--save-memory", metavar="FILE",
                   help="when given a video, also save its memory here for later questions")
    p.add_argument("--max-new-tokens", type=int, default=128, help="answer length bound in tokens (default 128)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 for greedy answers (default), else sampling")
    common.add_signal_args(p)
    common.add_model_args(p)


def open_video_memory(args: argparse.Namespace):
    """(model, state) for VIDEO_OR_MEMORY: a saved memory loads without a vision tower and decodes no frame."""
    from videollm.captioning import open_memory
    from videollm.memory import is_memory_file, save_memory

    if args.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    from_memory = is_memory_file(args.video)
    model = common.load_model(args, load_vision=not from_memory)
    state = open_memory(model, args.video, progress=sys.stderr.isatty())
    if not from_memory:
        add_signals(state, args)
    if args.save_memory and not from_memory:
        save_memory(state, args.save_memory)
    return model, state


def add_signals(state, args: argparse.Namespace) -> None:
    """Add the watched video's speech and on-screen text to ``state`` as ``--speech`` / ``--text`` (or their
    defaults) say."""
    from videollm import ocr, speech

    if speech.enabled(args.speech) and speech.has_audio(args.video):
        speech.attach(state, speech.transcribe(args.video))
    if ocr.enabled(args.text):
        ocr.attach(state, ocr.read_scenes(state, args.video))


def stream_answer(model, state, question: str, history, args: argparse.Namespace) -> str:
    """Print the answer piece by piece as it is generated; returns the whole answer."""
    from videollm.captioning import ask as ask_stream

    def note(decision) -> None:
        print(f"videollm: {decision.source(state, why=True)}", file=sys.stderr, flush=True)

    captioned = len(state.extra.get("captions", []))
    pieces = []
    for piece in ask_stream(model, state, question, history, max_new_tokens=args.max_new_tokens,
                            temperature=args.temperature, on_recall=note):
        pieces.append(piece)
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    if args.save_memory and len(state.extra.get("captions", [])) > captioned:
        from videollm.memory import save_memory

        save_memory(state, args.save_memory)  # with the scene captions recall wrote: later questions reuse them
    return "".join(pieces)


def register(sub) -> None:
    p = add_command(sub, "ask", ask)
    add_memory_args(p)
    p.add_argument("question", help="the question")


def ask(args: argparse.Namespace) -> int:
    """Answer one question about a video, streaming the answer to stdout token by token.

    VIDEO_OR_MEMORY is a video file (watched once, offline SceneTiling + memory bridge) or a memory file saved by
    `videollm stream --save-memory` / `videollm caption --save-memory` (recognised by content): then no frame is
    decoded or encoded and the vision tower is not even loaded.
    """
    model, state = open_video_memory(args)
    stream_answer(model, state, args.question, [], args)
    return 0
