"""``videollm scenes`` end to end through ``videollm.cli.main``: JSON schema, cuts on a synthetic-world sample with
known cut times, ``--plot``, and bad input (each a one-line ``videollm: error:`` naming the file, exit code 2).

The default per-frame feature is a colour histogram (no model); the tests that pass --features fast run the real
DINOv2 encoder on a shipped 12-second sample; bad input fails before anything is decoded.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from videollm.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "world"
SAMPLE = SAMPLES / "video" / "video_000001.mp4"  # 3 scenes, hard cuts at 4.75 s and 7.0 s
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def json_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str, Path]:
    """One ``videollm scenes SAMPLE --json --plot F.png`` run shared by the tests that read its output."""
    plot = tmp_path_factory.mktemp("scenes") / "curve.png"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["scenes", str(SAMPLE), "--json", "--plot", str(plot)])
    return code, out.getvalue(), err.getvalue(), plot


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads(SAMPLE.with_suffix(".json").read_text())


def test_json_output_schema(json_run: tuple[int, str, str, Path], truth: dict) -> None:
    code, out, err, _ = json_run
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert set(data) == {"video", "duration", "fps", "scenes"}
    assert data["video"] == str(SAMPLE)
    assert data["duration"] == pytest.approx(truth["duration"], abs=1e-3)
    assert data["fps"] == 2.0
    scenes = data["scenes"]
    assert len(scenes) >= 1
    assert all(set(s) == {"start", "end"} and s["start"] < s["end"] for s in scenes)
    assert scenes[0]["start"] == 0.0
    assert scenes[-1]["end"] == pytest.approx(data["duration"], abs=1e-3)
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(scenes))


def test_cuts_match_ground_truth(json_run: tuple[int, str, str, Path], truth: dict) -> None:
    code, out, err, _ = json_run
    assert code == 0, err
    cuts = [s["start"] for s in json.loads(out)["scenes"][1:]]
    expected = truth["cut_times"]
    assert len(expected) == 2
    # One predicted cut per true cut, each within 1 s (sampling at 2 fps places a cut to +-0.25 s).
    assert len(cuts) == len(expected), (cuts, expected)
    assert all(abs(c - t) <= 1.0 for c, t in zip(sorted(cuts), sorted(expected), strict=True)), (cuts, expected)


def test_plot_writes_png(json_run: tuple[int, str, str, Path]) -> None:
    code, _, err, plot = json_run
    assert code == 0, err
    data = plot.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    assert width >= 200 and height >= 100


def test_table_output_fps_and_max_cuts(capsys: pytest.CaptureFixture[str], truth: dict) -> None:
    # 1 fps halves the encoding time of this second model run.
    code = main(["scenes", str(SAMPLE), "--fps", "1", "--max-cuts", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0] == f"{SAMPLE}: 2 scenes, 11.62 s, sampled at 1 fps"
    assert len(lines) == 3
    # With one cut allowed, the deepest one survives, and it is one of the sample's true hard cuts.
    first_end = float(lines[1].split()[-2])
    assert min(abs(first_end - t) for t in truth["cut_times"]) <= 1.0


def test_max_cuts_none_and_min_len(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """20 flat colour scenes of 2 s: the published cap keeps 15 cuts, the embedded default (no cap) all 19; a 1-frame flash in
    the middle of a scene becomes a scene of its own (cut on both sides) only with --min-len 1."""
    from videollm.world import write_frames

    hues = [(255, 0, 0), (0, 200, 0), (0, 0, 255), (230, 230, 0), (0, 220, 220), (255, 0, 255), (250, 250, 250),
            (30, 30, 30), (255, 128, 0), (128, 0, 255)]
    colours = [hues[k % len(hues)] for k in range(20)]
    frames = [np.full((48, 64, 3), c, dtype=np.uint8) for c in colours for _ in range(8)]  # 2 s each at 4 fps
    frames[4 * 8 + 4] = np.full((48, 64, 3), (255, 255, 255), dtype=np.uint8)  # one flash inside scene 5, at 9.0 s
    video = write_frames(frames, tmp_path / "many.mp4", 4.0, 64, 48)

    errors: list[str] = []

    def cuts(*options: str) -> list[float]:
        assert main(["scenes", str(video), "--json", *options]) == 0
        captured = capsys.readouterr()
        errors.append(captured.err)
        return [s["start"] for s in json.loads(captured.out)["scenes"][1:]]

    truth = [2.0 * k - 0.25 for k in range(1, 20)]  # half-way between the samples either side of each change
    capped, uncapped, flashes = cuts("--max-cuts", "15"), cuts(), cuts("--max-cuts", "none", "--min-len", "1")
    # The capped run says what the cap dropped (on stderr; stdout stays one JSON object); the others say nothing.
    assert f"{len(uncapped)} cuts passed the threshold; kept the 15 deepest (--max-cuts none keeps all)" in errors[0]
    assert not any("passed the threshold" in e for e in errors[1:])
    assert len(capped) == 15 and set(capped) <= set(uncapped)
    # The default 2-frame minimum allows one cut at the flash (into it or out of it) but not both.
    extra = sorted(set(uncapped) - set(truth))
    assert set(truth) <= set(uncapped) and len(extra) == 1 and extra[0] in (8.75, 9.25), uncapped
    assert sorted(set(flashes) - set(truth)) == [8.75, 9.25] and len(flashes) == 21


# ------------------------------------------------------------------------------------------------- bad input


def _empty(tmp: Path, make_video: Callable[..., Path]) -> Path:
    path = tmp / "empty.mp4"
    path.write_bytes(b"")
    return path


def _truncated(tmp: Path, make_video: Callable[..., Path]) -> Path:
    # faststart puts the frame index first, so the cut-off file still opens and declares frames it lacks.
    full = make_video(tmp / "full.mp4", n_frames=40, fps=10, pattern="noise",
                      container_options={"movflags": "faststart"})
    path = tmp / "truncated.mp4"
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_no_index(tmp: Path, make_video: Callable[..., Path]) -> Path:
    full = make_video(tmp / "full.mp4", n_frames=40, fps=10, pattern="noise")
    path = tmp / "cut_short.mp4"
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _random_bytes(tmp: Path, make_video: Callable[..., Path]) -> Path:
    path = tmp / "random.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(50_000))
    return path


def _audio_only(tmp: Path, make_video: Callable[..., Path]) -> Path:
    import av

    path = tmp / "audio.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(16):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _directory(tmp: Path, make_video: Callable[..., Path]) -> Path:
    path = tmp / "clips.mp4"
    path.mkdir()
    return path


def _missing(tmp: Path, make_video: Callable[..., Path]) -> Path:
    return tmp / "missing.mp4"


def _one_frame(tmp: Path, make_video: Callable[..., Path]) -> Path:
    return make_video(tmp / "one.mp4", n_frames=1, fps=10)


def _huge_frames(tmp: Path, make_video: Callable[..., Path]) -> Path:
    # 8200 px wide is over the reader's 8192 px limit; 16 px high keeps the file tiny and quick to write.
    return make_video(tmp / "wide.mp4", n_frames=2, fps=10, size=(8200, 16), pattern="gradient")


BAD_INPUTS = {
    "empty": (_empty, "empty"),
    "truncated": (_truncated, "truncated"),
    "truncated-no-index": (_truncated_no_index, None),
    "random-bytes": (_random_bytes, None),
    "audio-only": (_audio_only, "no video stream"),
    "directory": (_directory, "directory"),
    "missing": (_missing, "no such file"),
    "one-frame": (_one_frame, "1 frame"),
    "huge-frames": (_huge_frames, "8200x16"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_error(case: str, tmp_path: Path, video_factory: Callable[..., Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    make, reason = BAD_INPUTS[case]
    path = make(tmp_path, video_factory)
    code = main(["scenes", str(path), "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("videollm: error: ")
    assert str(path) in lines[0]
    assert "Traceback" not in captured.err
    if reason is not None:
        assert reason in lines[0]


@pytest.mark.parametrize(
    "option",
    [["--fps", "-1"], ["--fps", "0"], ["--fps", "two"], ["--fps", "inf"], ["--alpha", "nan"], ["--max-cuts", "-1"],
     ["--max-cuts", "all"],
     ["--top-k", "-1"], ["--min-len", "0"]],
    ids=lambda o: " ".join(o),
)
def test_invalid_option_value_exits_2(option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scenes", str(SAMPLE), *option])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option[0]}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("option", [["--plot", "no/such/folder/curve.png"]], ids=["plot"])
def test_unusable_option_is_one_line_error(option: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["scenes", str(SAMPLE), *option])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"videollm: error: {option[0]}")
    assert captured.out == ""


def test_histogram_scenes_run_without_torch(tmp_path: Path) -> None:
    """The default (colour histogram) features need no neural network: the whole command never imports torch or
    transformers, and cuts the sample as the torch rule does."""
    import subprocess
    import sys

    code = ("import json, sys\nfrom videollm.cli import main\n"
            f"assert main(['scenes', {str(SAMPLE)!r}, '--json']) == 0\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result, imported = (json.loads(line) for line in out.stdout.strip().splitlines())
    assert imported == []

    import torch

    from scenetiling.histogram import hsv_histograms
    from videollm.io import open_video
    from videollm.scenes import scene_spans
    from videollm.segmentation import SegmentationConfig, segment_ends

    seg = SegmentationConfig(feature="histogram", max_cuts=None, min_len=2)
    with open_video(SAMPLE) as reader:
        batches = list(reader.iter_fps(seg.fps, batch_size=16))
        duration = reader.meta.duration
    times = np.concatenate([b.times for b in batches])
    feats = torch.cat([hsv_histograms(b.frames) for b in batches])
    spans = scene_spans(times, segment_ends(feats, seg), duration, seg.fps)
    assert [(s["start"], s["end"]) for s in result["scenes"]] == [(round(a, 3), round(b, 3)) for a, b in spans]
    assert len(spans) > 1


def test_ffmpeg_log_lines_stay_off_stderr(tmp_path: Path) -> None:
    """FFmpeg logs its own complaint about a truncated JPEG ("[mjpeg @ 0x...] No JPEG data found in image") on the
    process's stderr; the command prints only its one-line error (the log comes back with --debug)."""
    import subprocess
    import sys

    import cv2
    import numpy as np

    ok, jpeg = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg.tobytes()[:300])
    proc = subprocess.run([sys.executable, "-m", "videollm", "scenes", str(path), "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("videollm: error: ")
    debug = subprocess.run([sys.executable, "-m", "videollm", "--debug", "scenes", str(path), "--json"],
                           capture_output=True, text=True, timeout=120)
    assert "No JPEG data found" in debug.stderr
