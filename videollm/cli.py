"""The ``videollm`` console script: subcommands map onto thin functions in ``videollm.commands``.

Each module in ``videollm.commands`` exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a function ``(args) -> int``. The function's docstring is the subcommand's ``--help`` text.
Command modules import heavy libraries (torch, transformers) inside their functions so that
``videollm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import signal
import sys
import threading
from collections.abc import Sequence

from videollm import __version__, interrupts
from videollm.errors import VideollmError

# Order is the order shown by --help.
COMMANDS = ("scenes", "caption", "stream", "ask", "chat", "search", "serve", "world", "train", "eval", "bench", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videollm",
        description="Long-video understanding: scenes, captions and chat with recurrent memory bridges.",
    )
    parser.add_argument("--version", action="version", version=f"videollm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"videollm.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 partial failure, 2 usage or fatal error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.debug:
        os.environ["VIDEOLLM_DEBUG"] = "1"  # library log lines stay on (videollm.io.probe.quiet_ffmpeg)
    _quiet_libraries()
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    # SIGTERM (a service manager, `kill`, a container stopping) unwinds like Ctrl-C: temporary files are removed,
    # finished outputs stay, and `stream` captions its open scene and saves its memory first.
    # Either waits for a running decoder call to return first (videollm.interrupts).
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main else None
    previous_int = signal.signal(signal.SIGINT, _interrupt) if on_main else None
    try:
        return int(args.func(args) or 0)
    except VideollmError as err:
        if args.debug:
            raise
        print(f"videollm: error: {err}", file=sys.stderr)
        return err.exit_code
    except Terminated:
        print("videollm: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("videollm: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # the machine refused something we did not foresee: still one line, never a traceback
        if args.debug:
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"videollm: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (see ``main``)."""


def _terminate(signum, frame) -> None:
    interrupts.deliver(Terminated)


def _interrupt(signum, frame) -> None:
    interrupts.deliver(KeyboardInterrupt)


def _quiet_libraries() -> None:
    """Keep the terminal for our own output: no per-tensor loading bars or hub chatter from transformers."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # transformers reads HF_HUB_DISABLE_PROGRESS_BARS when it is first imported; only an already imported one
    # needs telling (importing it here would cost every command, ``serve``'s first page included, ~1 s).
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def add_command(sub, name: str, func, **kwargs) -> argparse.ArgumentParser:
    """Add subcommand ``name`` whose help is ``func``'s docstring; returns its parser for options."""
    doc = inspect.cleandoc(func.__doc__ or "")
    summary = doc.splitlines()[0] if doc else ""
    p = sub.add_parser(name, help=summary, description=doc,
                       formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    p.set_defaults(func=func)
    return p


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
