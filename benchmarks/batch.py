"""Batch captioning throughput and resume overhead.

Captions every video under ``--inputs`` (default the shipped samples, data/samples/world) into a fresh output folder
with ``videollm caption`` and reports videos per minute (and video-seconds per wall-second). Then reruns the same
command on the finished folder: every video is skipped, and the rerun's time is the resume overhead, both inside the
command and as a whole process (interpreter start and imports included; the model is never loaded on a full skip).

Run: ``python benchmarks/batch.py [--model embedded] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", default=str(REPO / "data/samples/world"))
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()

    import torch

    from videollm import batch
    from videollm.cli import main as cli

    torch.set_num_threads(args.threads)
    items, _ = batch.expand_inputs([args.inputs])
    from videollm.io import open_video

    seconds = 0.0
    for item in items:
        with open_video(item.path) as reader:
            seconds += reader.meta.duration
    with tempfile.TemporaryDirectory() as out:
        command = ["caption", args.inputs, "--out", out, "--model", args.model,
                   "--max-new-tokens", str(args.max_new_tokens)]
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):
            code = cli(command)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):
            again = cli(command)
        resume = time.perf_counter() - t0
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "videollm", *command], capture_output=True, text=True)
        resume_process = time.perf_counter() - t0
    result = {"videos": len(items), "video_seconds": seconds, "exit_code": code, "wall_s": first,
              "videos_per_minute": 60 * len(items) / first, "video_seconds_per_wall_second": seconds / first,
              "resume_in_command_s": resume, "resume_process_s": resume_process, "resume_exit_code": again,
              "resume_process_exit_code": proc.returncode}
    print(f"{len(items)} videos ({seconds:.0f} s of video) with --model {args.model}: {first:.1f} s "
          f"= {result['videos_per_minute']:.1f} videos/min ({result['video_seconds_per_wall_second']:.2f}x real time), "
          f"exit {code}")
    print(f"resume of the finished batch: {resume * 1000:.0f} ms inside the command, {resume_process:.1f} s as a new "
          f"process (interpreter + imports; no model load), exit {again}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
