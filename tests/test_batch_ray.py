"""``videollm caption --engine ray`` on a local Ray instance: same outputs as the single-process command on a mixed
batch, exactly-once outputs after a worker is killed mid-run, the manifest, and the ``Captioner`` class itself."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'videollm[ray]')")

from videollm.batch import BatchItem  # noqa: E402
from videollm.batch.captioner import ATTEMPTS_DIR, MANIFEST_FIELDS, Captioner, attempts_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data/samples/world/video"
# The shipped model (deterministic in every process, unlike an untrained preset), captions kept short.
SHIPPED = ["--max-new-tokens", "6"]


def _videos(root: Path, copies: int) -> list[Path]:
    """``copies`` good videos (the shipped samples under new names) in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    samples = sorted(SAMPLES.glob("*.mp4"))
    paths = []
    for k in range(copies):
        paths.append(Path(shutil.copy(samples[k % len(samples)], root / f"clip{k}.mp4")))
    return paths


def _bad_files(root: Path) -> None:
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("not a video\n" * 50)
    (root / "truncated.mp4").write_bytes((SAMPLES / "video_000000.mp4").read_bytes()[:4000])


def _cli(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "videollm", "caption", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kwargs)


def _manifest(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert all(tuple(r) == MANIFEST_FIELDS for r in rows)
    return rows


def _outputs(out: Path) -> dict[str, str]:
    """Every output file (relative name -> text), the manifest left out."""
    return {p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "manifest.jsonl"}


def test_ray_mixed_batch_equals_single_process(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    _videos(inputs, 2)
    _bad_files(inputs)
    local, ray = tmp_path / "local", tmp_path / "ray"
    single = _cli([str(inputs), "--out", str(local), *SHIPPED])
    s_out, s_err = single.communicate(timeout=600)
    cluster = _cli([str(inputs), "--out", str(ray), "--engine", "ray", "--workers", "2", *SHIPPED])
    r_out, r_err = cluster.communicate(timeout=600)
    assert (single.returncode, cluster.returncode) == (1, 1), (s_err, r_err)
    assert "Traceback" not in r_err
    for bad in ("empty.mp4", "text.mp4", "truncated.mp4"):
        assert f"videollm: error: {inputs / bad}: " in r_err
    assert _outputs(ray) == _outputs(local)
    assert sorted(_outputs(ray)) == [f"clip{k}.{e}" for k in range(2) for e in ("json", "srt", "vtt")]
    keep = ("video", "name", "status", "duration", "scenes", "error")
    rows = [{k: r[k] for k in keep} for r in _manifest(ray)]
    assert rows == [{k: r[k] for k in keep} for r in _manifest(local)]
    assert [(Path(r["video"]).name, r["status"]) for r in rows] == [
        ("clip0.mp4", "done"), ("clip1.mp4", "done"), ("empty.mp4", "failed"), ("text.mp4", "failed"),
        ("truncated.mp4", "failed")]
    # Two workers shared the videos, each with its own model.
    assert len({r["worker"] for r in _manifest(ray)}) == 2


def _ray_workers() -> list[int]:
    """PIDs of live Ray Data actors running the Captioner."""
    found = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout.splitlines()
    return [int(line.split()[0]) for line in found if "Captioner" in line and "ray::" in line]


def _mid_video(out: Path) -> bool:
    """Whether a worker is captioning a video now: a try is counted for a video with no JSON written yet."""
    for counter in (out / ATTEMPTS_DIR).glob("*.json"):
        try:
            video = Path(json.loads(counter.read_text())["video"])
        except (OSError, ValueError, KeyError):
            continue
        if not (out / f"{video.stem}.json").exists():
            return True
    return False


def test_ray_worker_killed_mid_run_then_rerun_gives_every_output_once(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    videos = _videos(inputs, 4)
    out = tmp_path / "out"
    proc = _cli([str(inputs), "--out", str(out), "--engine", "ray", "--workers", "1", *SHIPPED])
    deadline = time.monotonic() + 300
    # Kill while the worker is inside a video (its try counted, its outputs not yet written) after one video is
    # done, not in the short gap between two videos (where there is nothing to retry).
    while not (list(out.glob("*.json")) and _mid_video(out)) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = _ray_workers()
    assert proc.poll() is None and workers, "the job ended (or never started a worker) before the kill"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    # Ray restarted the worker and retried the video it was on; the job finished every video.
    assert proc.returncode == 0, err
    names = [v.stem for v in videos]
    assert sorted(_outputs(out)) == sorted(f"{n}.{e}" for n in names for e in ("json", "srt", "vtt"))
    assert not list(out.rglob("*.part"))
    rows = _manifest(out)
    assert sorted(r["name"] for r in rows) == names and {r["status"] for r in rows} == {"done"}
    assert max(r["attempts"] for r in rows) == 2 and min(r["attempts"] for r in rows) == 1
    first = {name: (out / name).stat().st_mtime_ns for name in _outputs(out)}
    # The rerun finds everything done, rewrites nothing but the manifest.
    again = _cli([str(inputs), "--out", str(out), "--engine", "ray", *SHIPPED])
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert {name: (out / name).stat().st_mtime_ns for name in _outputs(out)} == first
    assert sorted((r["name"], r["status"], r["scenes"] is not None) for r in _manifest(out)) == [
        (n, "skipped", True) for n in names]


@pytest.fixture(scope="module")
def captioner(tmp_path_factory) -> Captioner:
    out = tmp_path_factory.mktemp("captioner")
    return Captioner(str(out), model="tiny", threads=1, max_attempts=2, formats=["json"], max_new_tokens=2)


def test_captioner_rows_for_a_ray_batch(captioner: Captioner, tmp_path: Path) -> None:
    """The class Ray Data maps: a batch of paths in, one manifest row per video out (columns), bad files included."""
    good = _videos(tmp_path, 1)[0]
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 100)
    rows = captioner({"path": np.array([str(good), str(bad)]), "name": np.array(["good", "bad"])})
    assert tuple(rows) == MANIFEST_FIELDS
    assert rows["status"] == ["done", "failed"] and rows["name"] == ["good", "bad"]
    assert rows["scenes"][0] >= 1 and rows["error"][0] is None and rows["error"][1]
    out = Path(captioner.options.out)
    assert json.loads((out / "good.json").read_text())["scenes"]
    # Done videos are skipped on the next call; nothing is left in the attempt counters.
    assert captioner({"path": np.array([str(good)]), "name": np.array(["good"])})["status"] == ["skipped"]
    # Without a "name" column the output is named after the file.
    assert captioner({"path": np.array([str(good)])})["name"] == [good.stem]
    assert (out / f"{good.stem}.json").is_file()
    assert not attempts_file(out, BatchItem(good, "good")).exists()


def test_captioner_gives_up_on_a_video_workers_keep_dying_on(captioner: Captioner, tmp_path: Path) -> None:
    video = _videos(tmp_path, 1)[0]
    item = BatchItem(video, "deadly")
    counter = attempts_file(captioner.options.out, item)
    counter.parent.mkdir(parents=True, exist_ok=True)
    counter.write_text(json.dumps({"video": str(video), "attempts": 2}))  # two workers died on it already
    row = captioner.caption(item)
    assert row["status"] == "failed" and row["attempts"] == 2
    assert row["error"] == "the worker captioning it died 2 times (max attempts 2)"
    assert not (Path(captioner.options.out) / "deadly.json").exists()
    counter.write_text(json.dumps({"video": str(video), "attempts": 1}))  # one death: one more try is allowed
    assert captioner.caption(item)["status"] == "done"
