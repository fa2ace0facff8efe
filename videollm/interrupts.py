"""Ctrl-C and SIGTERM wait for the decoder to return before they unwind.

The CLI turns SIGTERM (and Ctrl-C) into an exception raised in the main thread. Raised while FFmpeg's frame
threads are mid-decode (inside PyAV's decode generator), it leaves the codec in a state where closing the container
waits forever on those threads. So decoding runs inside ``held()``: a signal that arrives there is remembered and
its exception is raised as soon as the decoder has returned, between two frames (a few milliseconds later).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0  # held sections open in the main thread (signal handlers run there only)
_pending: type[BaseException] | None = None


@contextmanager
def held() -> Iterator[None]:
    """Hold interruptions (see ``deliver``) until the block ends; then raise the one that arrived, if any."""
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            exc, _pending = _pending, None
            raise exc


def deliver(exc: type[BaseException]) -> None:
    """For a signal handler: raise ``exc`` now, or when the ``held()`` block the main thread is in ends."""
    global _pending
    if _depth:
        _pending = _pending or exc
        return
    raise exc
