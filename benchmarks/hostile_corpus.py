"""Hostile input corpus for the commands that read user files: generate it, run the CLI on every file, print a table.

    python benchmarks/hostile_corpus.py [--out runs/hostile] [--model tiny]

For each kind (videos, images, names, folders, audio) the script writes one small file (nothing here is committed;
every file is a few KB, the PNG bomb about 1 MB) and runs

- ``videollm scenes FILE`` for videos and images, ``videollm demo speech FILE`` for audio (each file alone: readable
  kinds succeed, every other gets a one-line error and exit 2, no traceback), and
- ``videollm caption ALL --out DIR --model MODEL`` over the whole corpus at once (a batch: the bad files are
  recorded as failed in the manifest, exit 1, the good control file is captioned, nothing half-written is left).

Memory files and checkpoints have their own generated kinds in ``tests/test_hostile_files.py``; app uploads (oversized,
wrong type, path-traversal names) are in ``tests/app/test_app_faults.py``; ``tests/test_hostile_corpus.py`` runs
this corpus in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np


def _video(path: Path, frames: int = 16, size: tuple[int, int] = (64, 48), fps: int = 8, vfr: bool = False,
           container: str = "mp4") -> Path:
    import av

    w, h = size
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream("libx264" if container != "avi" else "mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        step = 1000 // fps if container != "avi" else 1  # AVI counts frames, MP4 milliseconds here
        stream.time_base = Fraction(1, 1000) if container != "avi" else Fraction(1, fps)
        t = 0
        for i in range(frames):
            img = np.full((h, w, 3), (i * 37) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = t
            frame.time_base = stream.time_base
            t += step * (1 + (i % 3 == 0) * 3 if vfr else 1)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def _png(width: int, height: int, rows: bytes | None, bit_depth: int = 8, colour: int = 2) -> bytes:
    """A PNG of the given header; ``rows`` are the filtered scanlines (None: all zero, compressed row by row, so
    that a huge declared image costs little memory to write)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    if rows is None:
        packer, row = zlib.compressobj(9), bytes(1 + width * 3 * bit_depth // 8)
        data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    else:
        data = zlib.compress(rows, 9)
    head = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def make_corpus(d: Path) -> dict[str, Path]:
    """Write every kind into ``d``; returns kind -> path (the control ``good`` is a valid video)."""
    import cv2

    d.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, Path] = {}

    def put(kind: str, name: str, data: bytes) -> None:
        (d / name).write_bytes(data)
        kinds[kind] = d / name

    kinds["good"] = _video(d / "good.mp4")
    good = kinds["good"].read_bytes()
    put("zero_bytes", "zero.mp4", b"")
    put("random_bytes", "random.mp4", np.random.default_rng(0).bytes(20_000))
    put("truncated_half", "truncated.mp4", good[: len(good) // 2])
    put("truncated_header", "header_only.mp4", good[:64])
    put("png_named_mp4", "picture.mp4", _png(8, 8, b"".join(b"\x00" + b"\x80" * 24 for _ in range(8))))
    put("text_named_mp4", "notes.mp4", b"this is not a video\n" * 50)
    kinds["one_frame"] = _video(d / "one_frame.mp4", frames=1)
    kinds["variable_frame_rate"] = _video(d / "vfr.mp4", frames=24, vfr=True)
    kinds["huge_frame_9000px"] = _video(d / "wide.mp4", frames=1, size=(9000, 16))
    kinds["avi_mpeg4"] = _video(d / "old.avi", container="avi")
    corrupt = bytearray(good)
    at = good.find(b"stco")  # the chunk-offset table: point every chunk past the end of the file
    if at > 0:
        corrupt[at + 12: at + 16] = b"\x7f\xff\xff\xff"
    put("corrupt_index", "corrupt_index.mp4", bytes(corrupt))
    shutil.copy(kinds["good"], d / "ünïcödé name with spaces.mp4")
    kinds["unicode_spaces_name"] = d / "ünïcödé name with spaces.mp4"
    (d / "folder.mp4").mkdir(exist_ok=True)
    kinds["directory_named_mp4"] = d / "folder.mp4"
    loop = d / "loop.mp4"
    if not loop.is_symlink():
        os.symlink(loop, loop)  # points at itself
    kinds["symlink_loop"] = loop
    dangling = d / "dangling.mp4"
    if not dangling.is_symlink():
        os.symlink(d / "nowhere.mp4", dangling)
    kinds["dangling_symlink"] = dangling
    # Images
    put("png_truncated", "cut.png", _png(64, 64, None)[:60])
    put("png_16_bit", "deep.png", _png(8, 8, b"".join(b"\x00" + b"\x80\x00" * 24 for _ in range(8)), bit_depth=16))
    # A decompression bomb: 20000 x 20000 RGB declared (1.2 GB decoded) in a file of about 1 MB of zeros.
    put("png_bomb_20000px", "bomb.png", _png(20000, 20000, None))
    ok, jpeg = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    put("jpeg_truncated", "cut.jpg", jpeg.tobytes()[:300])
    from PIL import Image

    Image.new("CMYK", (16, 16), (0, 128, 255, 0)).save(d / "cmyk.jpg")
    kinds["jpeg_cmyk"] = d / "cmyk.jpg"
    put("wav_named_png", "sound.png", b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + bytes(24))
    # Headers that lie about size: a 10-hour duration, a 60000 x 60000 display size (the frames are 64 x 48).
    put("ten_hour_duration_header", "ten_hours.mp4", _patched_duration(good, hours=10))
    put("huge_dimensions_header", "huge_dims.mp4", _patched_tkhd_size(good, 60000, 60000))
    kinds["audio_only"] = _audio_only(d / "audio_only.mp4")
    if os.geteuid() != 0:  # root reads any file whatever its mode
        put("unreadable_permissions", "locked.mp4", good)
        (d / "locked.mp4").chmod(0)
    return kinds


def make_audio_corpus(d: Path) -> dict[str, Path]:
    """Audio files for the speech demo (``videollm demo speech FILE``); ``good_audio`` is a valid 1 s WAV."""
    d.mkdir(parents=True, exist_ok=True)
    rate = 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 32767).astype("<i2").tobytes()

    def wav(data_bytes: int) -> bytes:
        fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        return b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I",
                                                                                                      data_bytes)
    files = {
        "good_audio": ("good.wav", wav(len(tone)) + tone),
        "audio_zero_bytes": ("zero.wav", b""),
        "audio_text_named_wav": ("notes.wav", b"this is not audio\n" * 20),
        "audio_ten_hour_header": ("ten_hours.wav", wav(rate * 2 * 36000) + tone),  # 10 h declared, 1 s present
        "audio_random_bytes": ("random.mp3", np.random.default_rng(1).bytes(8_000)),
    }
    kinds = {}
    for kind, (name, data) in files.items():
        (d / name).write_bytes(data)
        kinds[kind] = d / name
    kinds["video_without_audio"] = _video(d / "silent.mp4")
    return kinds


def _patched_duration(mp4: bytes, hours: float) -> bytes:
    """The MP4 declaring ``hours`` of duration: movie and media headers (mvhd, mdhd; version 0) and a sample table
    (stts) that spreads its few frames over that time."""
    data = bytearray(mp4)
    for box in (b"mvhd", b"mdhd"):
        at = data.find(box)
        timescale = struct.unpack(">I", data[at + 16: at + 20])[0]
        data[at + 20: at + 24] = struct.pack(">I", min(int(hours * 3600 * timescale), 2**32 - 1))
    at = data.find(b"stts")
    entries = struct.unpack(">I", data[at + 8: at + 12])[0]
    frames = sum(struct.unpack(">I", data[at + 12 + 8 * i: at + 16 + 8 * i])[0] for i in range(entries))
    for i in range(entries):
        data[at + 16 + 8 * i: at + 20 + 8 * i] = struct.pack(">I", int(hours * 3600 * timescale / frames))
    return bytes(data)


def _patched_tkhd_size(mp4: bytes, width: int, height: int) -> bytes:
    """The MP4 with its track header (tkhd, version 0) declaring a ``width`` x ``height`` display size."""
    data = bytearray(mp4)
    at = data.find(b"tkhd")
    size_at = at + 4 + 4 + 8 + 4 + 4 + 4 + 8 + 2 + 2 + 2 + 2 + 36  # after version/flags ... matrix
    data[size_at: size_at + 8] = struct.pack(">II", width << 16, height << 16)
    return bytes(data)


def _audio_only(path: Path) -> Path:
    """An MP4 holding one second of AAC audio and no video stream."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = (0.2 * np.sin(np.linspace(0, 880 * np.pi, 16000))).astype(np.float32)[None]
        for start in range(0, 16000, 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate = 16000
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


# Kinds that decode: they must succeed (a header that lies about duration or size is not believed).
READABLE = ("good", "variable_frame_rate", "avi_mpeg4", "unicode_spaces_name", "ten_hour_duration_header",
            "huge_dimensions_header")
AUDIO_READABLE = ("good_audio", "audio_ten_hour_header")


def expected(kind: str, code: int, stderr: str) -> bool:
    """Whether a command's outcome on a corpus file is the expected one: success without a word on stderr for a
    readable kind, one line ``videollm: error: ...`` and exit 2 for every other."""
    lines = [x for x in stderr.splitlines() if x.strip()]
    if kind in READABLE or kind in AUDIO_READABLE:
        return code == 0 and not lines
    return code == 2 and len(lines) == 1 and lines[0].startswith("videollm: error:")


def run(cmd: list[str], timeout: float = 600) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return proc.returncode, proc.stderr, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/hostile")
    p.add_argument("--model", default="tiny", help="model for the caption batch (default tiny: fast)")
    args = p.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    kinds = make_corpus(out / "corpus")
    exe = [sys.executable, "-m", "videollm"]
    rows, bad = [], 0
    commands = [(kind, ["scenes", str(path), "--json"]) for kind, path in kinds.items()]
    commands += [(kind, ["demo", "speech", str(path)]) for kind, path in make_audio_corpus(out / "audio").items()]
    for kind, command in commands:
        code, err, secs = run([*exe, *command])
        lines = [x for x in err.splitlines() if x.strip()]
        # Readable files succeed; everything else (a single frame too: scenes needs two) is one line.
        ok = expected(kind, code, err)
        bad += not ok
        rows.append((kind, code, "yes" if ok else "NO", f"{secs:.1f}", lines[0][:110] if lines else ""))
    print(f"{'kind':24} {'exit':>4} {'ok':>3} {'s':>5}  message")
    for kind, code, ok, secs, msg in rows:
        print(f"{kind:24} {code:>4} {ok:>3} {secs:>5}  {msg}")
    inputs = [str(path) for path in kinds.values()]
    code, err, secs = run([*exe, "caption", *inputs, "--out", str(out / "captions"), "--model", args.model])
    manifest = [json.loads(x) for x in (out / "captions" / "manifest.jsonl").read_text().splitlines()]
    status = {}
    for row in manifest:
        status[row["status"]] = status.get(row["status"], 0) + 1
    partial = [str(f) for f in (out / "captions").rglob("*") if f.name.endswith((".tmp", ".part"))]
    tracebacks = err.count("Traceback")
    print(f"\ncaption batch over {len(inputs)} inputs: exit {code}, {secs:.1f} s, manifest {status}, "
          f"partial files {len(partial)}, tracebacks {tracebacks}")
    print(f"scenes and demo speech: {len(rows) - bad} of {len(rows)} kinds as expected")
    return 0 if bad == 0 and tracebacks == 0 and not partial else 1


if __name__ == "__main__":
    sys.exit(main())
