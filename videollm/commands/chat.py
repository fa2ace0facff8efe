"""``videollm chat``: a multi-turn conversation about a video or a saved memory."""

from __future__ import annotations

import argparse
import sys

from videollm.cli import add_command
from videollm.commands.ask import add_memory_args, open_video_memory, stream_answer


def register(sub) -> None:
    p = add_command(sub, "chat", chat)
    add_memory_args(p)
    p.add_argument("--max-turns", type=int, default=8,
                   help="earlier question/answer pairs kept in the prompt (default 8)")


def chat(args: argparse.Namespace) -> int:
    """Talk about a video: one question per line on stdin, answers streamed token by token, history kept.

    VIDEO_OR_MEMORY is a video file or a saved memory (then nothing is decoded). Commands: /reset forgets the
    conversation, /exit (or end of input, or Ctrl-C) quits. Reads stdin, so questions can also be piped in.
    """
    model, state = open_video_memory(args)
    history: list[dict[str, str]] = []
    interactive = sys.stdin.isatty()
    if interactive:
        print("Ask about the video (/reset, /exit).", file=sys.stderr)
    try:
        while True:
            if interactive:
                print("you> ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            question = line.strip()
            if not question:
                continue
            if question in ("/exit", "/quit"):
                break
            if question == "/reset":
                history.clear()
                continue
            answer = stream_answer(model, state, question, history, args)
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            del history[: max(0, len(history) - 2 * max(0, args.max_turns))]
    except KeyboardInterrupt:
        sys.stdout.write("\n")
    return 0
