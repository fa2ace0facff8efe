"""``videollm caption``: output formats, resume after kill -9, mixed good/bad batches, sharding across processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from videollm.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "tiny", "--max-new-tokens", "2"]


def _two_scene_frame(i: int) -> np.ndarray:
    # Two very different looks, a hard cut at frame 6: a dark ramp, then a bright checkerboard.
    y, x = np.mgrid[0:48, 0:64]
    if i < 6:
        img = np.stack([(x * 2 + i) % 96, (y * 2) % 96, np.full_like(x, 40)], -1)
    else:
        img = np.stack([((x // 8 + y // 8) % 2) * 255, np.full_like(x, 200), ((x + i) % 64) * 4], -1)
    return img.astype(np.uint8)


@pytest.fixture
def clips(tmp_path_factory, video_factory) -> list[Path]:
    """Four short two-scene clips in a folder tree (names collide across folders on purpose)."""
    root = tmp_path_factory.mktemp("clips")
    paths = []
    for k, rel in enumerate(["a/one.mp4", "a/two.mp4", "b/one.mp4", "b/three.mkv"]):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        paths.append(video_factory(root / rel, n_frames=12, fps=4, pattern=_two_scene_frame))
    return paths


def _table(stderr: str) -> dict[str, int]:
    return {name: int(m.group(1)) for name in ("done", "skipped", "failed")
            if (m := re.search(rf"{name}\W+(\d+)", stderr))}


def test_outputs_parse_back_with_webvtt(cached_model, clips, tmp_path, capsys) -> None:
    import webvtt

    root = clips[0].parents[1]
    assert main(["caption", str(root), "--out", str(tmp_path), *TINY]) == 0
    names = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert names == ["a/one.json", "a/two.json", "b/one.json", "b/three.json"]
    record = json.loads((tmp_path / "a/one.json").read_text())
    assert record["video"] == str(clips[0].resolve()) and record["scenes"] and record["summary"] is None
    vtt = webvtt.read(str(tmp_path / "a/one.vtt"))
    srt = webvtt.from_srt(str(tmp_path / "a/one.srt"))
    for doc in (vtt, srt):
        assert len(doc.captions) == len(record["scenes"])
        for cue, scene in zip(doc.captions, record["scenes"]):
            assert cue.start_in_seconds + cue.start_time.milliseconds / 1000 == pytest.approx(scene["start"], abs=1e-3)
            assert cue.end_in_seconds + cue.end_time.milliseconds / 1000 == pytest.approx(scene["end"], abs=1e-3)
            assert cue.text == (scene["caption"] or "…")
    assert _table(capsys.readouterr().err) == {"done": 4, "skipped": 0, "failed": 0}
    # A second run finds every output complete and touches nothing but the manifest (rewritten: all skipped).
    manifest = tmp_path / "manifest.jsonl"
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and p != manifest}
    assert main(["caption", str(root), "--out", str(tmp_path), *TINY]) == 0
    assert _table(capsys.readouterr().err) == {"done": 0, "skipped": 4, "failed": 0}
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and p != manifest} == before
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [(r["name"], r["status"]) for r in rows] == [(n, "skipped") for n in ("a/one", "a/two", "b/one",
                                                                                 "b/three")]


def test_stdout_json_lines_without_out(cached_model, clips, capsys) -> None:
    assert main(["caption", str(clips[0]), str(clips[1]), *TINY]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    from videollm import ocr

    read = ("text",) if ocr.available() else ()  # on-screen text is read by default where RapidOCR is installed
    assert {tuple(sorted(r)) for r in rows} == {("caption", "end", "start", *read, "video")}
    assert {r["video"] for r in rows} == {str(clips[0].resolve()), str(clips[1].resolve())}
    assert all(r["start"] < r["end"] for r in rows)
    # The summary is asked for only on request.
    assert main(["caption", str(clips[0]), "--summary", *TINY]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["video"] for r in rows if "summary" in r] == [str(clips[0].resolve())]


def test_mixed_batch_reports_bad_inputs_and_finishes_good_ones(cached_model, clips, tmp_path, capsys) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 100)
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "out"
    code = main(["caption", str(broken), str(clips[0]), str(missing), str(clips[1]), "--out", str(out),
                 "--format", "json", *TINY])
    err = capsys.readouterr().err
    assert code == 1
    assert re.search(rf"^videollm: error: {re.escape(str(broken.resolve()))}: .+", err, re.M)
    assert re.search(rf"^videollm: error: {re.escape(str(missing))}: no such file", err, re.M)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.jsonl", "one.json", "two.json"]
    assert _table(err) == {"done": 2, "skipped": 0, "failed": 2}
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    status = {Path(r["video"]).name: (r["status"], r["scenes"], bool(r["error"])) for r in rows}
    scenes = {name: len(json.loads((out / f"{Path(name).stem}.json").read_text())["scenes"])
              for name in ("one.mp4", "two.mp4")}
    assert status == {"broken.mp4": ("failed", None, True), "missing.mp4": ("failed", None, True),
                      "one.mp4": ("done", scenes["one.mp4"], False), "two.mp4": ("done", scenes["two.mp4"], False)}
    # A rerun skips the finished videos, retries the failed ones, and its manifest still lists every input.
    assert main(["caption", str(broken), str(clips[0]), str(missing), str(clips[1]), "--out", str(out),
                 "--format", "json", *TINY]) == 1
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted((Path(r["video"]).name, r["status"], r["scenes"]) for r in rows) == [
        ("broken.mp4", "failed", None), ("missing.mp4", "failed", None),
        ("one.mp4", "skipped", scenes["one.mp4"]), ("two.mp4", "skipped", scenes["two.mp4"])]


def test_usage_errors_and_nothing_to_run_exit_2(cached_model, tmp_path, capsys) -> None:
    assert main(["caption", str(tmp_path / "nope.mp4"), *TINY]) == 2
    assert main(["caption", str(tmp_path), "--format", "json,docx", *TINY]) == 2
    assert main(["caption", str(tmp_path), "--save-memory", *TINY]) == 2
    assert "--format 'json,docx'" in capsys.readouterr().err


def _run(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **kwargs.pop("env", {})}
    return subprocess.Popen([sys.executable, "-m", "videollm", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_resume_after_kill_9_writes_every_output_exactly_once(cached_model, clips, tmp_path, capsys) -> None:
    root = clips[0].parents[1]
    out = tmp_path / "out"
    proc = _run(["caption", str(root), "--out", str(out), *TINY])
    deadline = time.monotonic() + 120
    while not list(out.rglob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    first = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    assert 1 <= len(first) <= 4
    for path in out.rglob("*"):
        if path.is_file() and not path.name.endswith(".part"):
            if path.suffix == ".json":
                json.loads(path.read_text())  # never a half file
    assert main(["caption", str(root), "--out", str(out), *TINY]) == 0
    table = _table(capsys.readouterr().err)
    complete_before = sum(all((p.with_suffix(s)).exists() for s in (".srt", ".vtt")) for p in first)
    assert table == {"done": 4 - complete_before, "skipped": complete_before, "failed": 0}
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(["manifest.jsonl", *(f"{n}.{e}" for n in ("a/one", "a/two", "b/one", "b/three")
                                                 for e in ("json", "srt", "vtt"))])
    # Outputs finished before the kill were not rewritten.
    assert all(p.stat().st_mtime_ns == t for p, t in first.items()
               if all(p.with_suffix(s).exists() for s in (".srt", ".vtt")))


def test_two_process_sharded_run_does_each_video_once(clips, tmp_path) -> None:
    """Two processes launched as `accelerate launch` would (WORLD_SIZE/RANK env): disjoint shards, all covered."""
    root = clips[0].parents[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {"WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(_run(["caption", str(root), "--out", str(tmp_path), "--format", "json", *TINY], env=env))
    results = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    tables = [_table(err) for _, err in results]
    assert [t["done"] for t in tables] == [2, 2] and all(t["skipped"] == 0 for t in tables)
    assert len(list(tmp_path.rglob("*.json"))) == 4


def test_shard_flag_splits_disjointly(cached_model, clips, tmp_path, capsys) -> None:
    root = clips[0].parents[1]
    seen = []
    for i in range(3):
        assert main(["caption", str(root), "--shard", f"{i}/3", "--no-summary", *TINY]) == 0
        seen.append({json.loads(line)["video"] for line in capsys.readouterr().out.splitlines()})
    assert sum(len(s) for s in seen) == 4 and len(set().union(*seen)) == 4
