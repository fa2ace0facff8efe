"""``videollm.io.PushedFrames``: frames pushed by another thread, resampled by arrival time, with a bounded backlog."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from videollm.io import PushedFrames


def _frame(value: int = 0) -> np.ndarray:
    return np.full((4, 6, 3), value, dtype=np.uint8)  # (H, W, 3)


def test_keeps_the_first_frame_of_each_slot_with_its_arrival_time() -> None:
    frames = PushedFrames(fps=2.0, backlog=100)
    arrivals = [10.0, 10.26, 10.49, 10.51, 10.74, 11.2, 12.6, 12.7]  # a gap of 1.4 s leaves two slots empty
    kept = [frames.push(_frame(i), t) for i, t in enumerate(arrivals)]
    assert kept == [True, False, False, True, False, True, True, False]
    frames.close()
    batches = list(frames)
    assert [int(b.indices[0]) for b in batches] == [0, 3, 5, 6]
    np.testing.assert_allclose([float(b.times[0]) for b in batches], [0.0, 0.51, 1.2, 2.6])
    assert [int(b.frames[0, 0, 0, 0]) for b in batches] == [0, 3, 5, 6]
    assert all(b.frames.shape == (1, 4, 6, 3) for b in batches)
    assert (frames.kept, frames.dropped, frames.seconds) == (4, 0, pytest.approx(2.6))


def test_a_full_backlog_drops_frames_and_a_later_frame_of_the_slot_gets_in() -> None:
    frames = PushedFrames(fps=2.0, backlog=2)
    assert frames.push(_frame(), 0.0) and frames.push(_frame(), 0.5)
    assert not frames.push(_frame(), 1.0) and frames.dropped == 1  # two wait already
    it = iter(frames)
    next(it)  # the consumer takes one: room again, and slot [1.0, 1.5) is still open
    assert frames.push(_frame(), 1.2) and frames.waiting == 2
    assert not frames.push(_frame(), 1.3)  # slot taken: not needed, not a drop
    assert frames.dropped == 1


def test_close_ends_the_iteration_after_the_waiting_frames_and_refuses_more() -> None:
    frames = PushedFrames(fps=2.0)
    frames.push(_frame(), 0.0)
    frames.push(_frame(), 0.5)
    frames.close()
    assert not frames.push(_frame(), 1.0)
    assert len(list(frames)) == 2


def test_a_consumer_thread_reads_frames_while_they_are_pushed_and_idle_ends_it() -> None:
    frames = PushedFrames(fps=50.0, idle_timeout=0.3)
    got: list[float] = []
    reader = threading.Thread(target=lambda: got.extend(float(b.times[0]) for b in frames))
    reader.start()
    for _ in range(5):
        frames.push(_frame())
        time.sleep(0.03)
    reader.join(timeout=5)  # no close: the iteration ends 0.3 s after the last frame
    assert not reader.is_alive() and len(got) == 5 and frames.closed
    assert got == sorted(got) and got[0] == 0.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="fps"):
        PushedFrames(fps=0)
    with pytest.raises(ValueError, match="backlog"):
        PushedFrames(fps=2, backlog=0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        PushedFrames(fps=2).push(np.zeros((4, 6), dtype=np.uint8))
