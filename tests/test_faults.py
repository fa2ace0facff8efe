"""Faults around the outputs: a full disk, a read-only folder, SIGTERM during ``caption`` and ``stream``.

What must hold: one line on stderr naming the file and the reason, a non-zero exit, no traceback, and every video's
outputs complete or absent (never half-written). A stream stopped by SIGTERM saves a memory that loads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from videollm.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "tiny", "--max-new-tokens", "2"]


def _scene_frame(i: int) -> np.ndarray:
    # A new flat colour every 6 frames: hard cuts the histogram SceneTiling finds.
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (40, 220, 220), (220, 40, 220)]
    y, x = np.mgrid[0:48, 0:64]
    base = np.array(colours[(i // 6) % len(colours)], np.int64)
    return np.clip(base + ((x + y + i) % 16)[..., None], 0, 255).astype(np.uint8)


@pytest.fixture
def clips(tmp_path: Path, video_factory) -> Path:
    """A folder of three short clips with cuts."""
    root = tmp_path / "clips"
    root.mkdir()
    for name in ("a", "b", "c"):
        video_factory(root / f"{name}.mp4", n_frames=24, fps=4, pattern=_scene_frame)
    return root


def _mount(args: list[str]) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 12 KB tmpfs (room for a few small files, then "No space left on device")."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not _mount(["-t", "tmpfs", "-o", "size=12k", "tmpfs", str(disk)]):
        pytest.skip("mounting a small tmpfs needs root and mount permission")
    yield disk
    subprocess.run(["umount", str(disk)], capture_output=True)


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A folder nothing can be written to: a read-only bind mount as root, mode 0555 otherwise."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if not (_mount(["--bind", str(folder), str(folder)]) and _mount(["-o", "remount,ro,bind", str(folder)])):
        subprocess.run(["umount", str(folder)], capture_output=True)
        pytest.skip("a read-only bind mount needs mount permission (root cannot be denied by file modes)")
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True)


def _outputs(out: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in out.rglob("*"):
        if path.is_file() and path.name != "manifest.jsonl":
            found.setdefault(path.name.split(".")[0], set()).add(path.name.split(".", 1)[1])
    return found


def test_full_disk_stops_the_batch_with_one_line_and_no_partial_outputs(cached_model, clips, small_disk,
                                                                       capsys) -> None:
    code = main(["caption", str(clips), "--out", str(small_disk), *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("videollm: error:")]
    assert len(lines) == 1 and lines[0].endswith("cannot write: No space left on device"), err
    assert "running the same command again" in err
    # Every video has all three outputs or none; no temporary file is left.
    assert all(kinds == {"json", "srt", "vtt"} for kinds in _outputs(small_disk).values()), _outputs(small_disk)
    assert not [p for p in small_disk.iterdir() if p.name.endswith(".part")]
    assert len(_outputs(small_disk)) < 3  # the disk really filled up


def test_full_disk_while_saving_a_stream_memory(cached_model, clips, small_disk, capsys) -> None:
    target = small_disk / "a.memory.safetensors"
    code = main(["stream", str(clips / "a.mp4"), "--save-memory", str(target), *TINY])
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    assert f"videollm: error: {target}: cannot write: No space left on device" in captured.err.splitlines()
    assert len(captured.out.splitlines()) >= 2  # the captions were printed as the stream went
    assert list(small_disk.iterdir()) == []  # no half memory file


def test_read_only_output_folder_is_refused_before_any_work(cached_model, clips, read_only_dir, capsys) -> None:
    started = time.perf_counter()
    code = main(["caption", str(clips), "--out", str(read_only_dir / "out"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"videollm: error: {read_only_dir / 'out'}: cannot write: ")
    assert time.perf_counter() - started < 5  # told at once, not after captioning
    code = main(["stream", str(clips / "a.mp4"), "--save-memory", str(read_only_dir / "a.memory.safetensors"),
                 *TINY])
    err = capsys.readouterr().err
    assert code == 2 and f"videollm: error: {read_only_dir}: cannot write: " in err and "Traceback" not in err


def _run(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "videollm", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigterm_inside_the_decoder_unwinds_after_it_returns(tmp_path, video_factory) -> None:
    """A signal raised inside FFmpeg's frame threads left PyAV unable to close the file (the process hung on exit):
    the CLI's handler waits for the decoder call to return, then unwinds."""
    from videollm.cli import Terminated, _terminate
    from videollm.io import open_video

    video = video_factory(tmp_path / "v.mp4", n_frames=24, fps=4, pattern=_scene_frame)
    steps = []
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with open_video(video, backend="pyav") as reader:
            decode = reader._decoder.read_sorted

            def read_sorted(indices):
                os.kill(os.getpid(), signal.SIGTERM)  # delivered to this (main) thread at once
                steps.append("signalled")
                frames = decode(indices)
                steps.append("decoded")
                return frames

            reader._decoder.read_sorted = read_sorted
            with pytest.raises(Terminated):
                reader.read([0, 5, 9])
            steps.append("unwound")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert steps == ["signalled", "decoded", "unwound"]
    with pytest.raises(Terminated):  # outside a decoder call it unwinds at once
        _terminate(signal.SIGTERM, None)


def test_sigterm_during_caption_leaves_complete_outputs_or_none(clips, tmp_path) -> None:
    out = tmp_path / "out"
    proc = _run(["caption", str(clips), "--out", str(out), *TINY])
    deadline = time.monotonic() + 120
    while not list(out.rglob("*.srt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate()
        raise AssertionError(err)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "videollm: terminated" and "Traceback" not in err
    assert all(kinds == {"json", "srt", "vtt"} for kinds in _outputs(out).values()), _outputs(out)
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
    assert main(["caption", str(clips), "--out", str(out), *TINY]) == 0  # a rerun finishes the rest
    assert len(_outputs(out)) == 3


def test_sigterm_ends_a_stream_cleanly_and_its_memory_loads(tmp_path, video_factory) -> None:
    from videollm.memory import load_memory

    memory = tmp_path / "long.memory.safetensors"
    video = video_factory(tmp_path / "long.mp4", n_frames=72, fps=4, pattern=_scene_frame)  # 18 s
    proc = _run(["stream", str(video), "--realtime", "--save-memory", str(memory), *TINY])
    while "videollm: streaming" not in proc.stderr.readline():  # the model is loaded, frames are being read
        assert proc.poll() is None
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopping after the current scene" in err and "Traceback" not in err
    state = load_memory(memory)
    # Stopped about 3 s in: the scenes read so far are captioned and saved, the rest of the file is not read.
    assert 2.0 <= state.extra["duration"] <= 8.0
    assert len(state.extra["captions"]) == len(state.segments) == len(out.splitlines()) >= 1
