"""``videollm caption``: scene captions for a batch of videos (resumable, atomic; sharded or on a Ray cluster)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from pathlib import Path

from videollm.batch.captioner import (
    MANIFEST,
    VIDEO_FAILURES,
    CaptionOptions,
    caption_item,
    failure_reason,
    manifest_row,
    skipped_row,
    write_manifest,
)
from videollm.batch.files import BatchItem
from videollm.cli import add_command
from videollm.commands import common
from videollm.errors import OutputError, UsageError
from videollm.prompts import CAPTION, CAPTION_TOKENS

def register(sub) -> None:
    p = add_command(sub, "caption", caption)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, directories (searched recursively) or globs")
    p.add_argument("--out", metavar="DIR", help="write <name>.json/.srt/.vtt per video here (default: JSON lines on stdout)")
    p.add_argument("--format", default="json,srt,vtt", help="outputs to write with --out (default json,srt,vtt)")
    p.add_argument("--prompt", default=CAPTION, help=f"caption instruction (default {CAPTION!r})")
    p.add_argument("--max-new-tokens", type=int, default=CAPTION_TOKENS,
                   help=f"caption length bound in tokens (default {CAPTION_TOKENS})")
    p.add_argument("--summary", action="store_true",
                   help="also ask the model for a whole-video summary (the shipped embedded model was never trained "
                        "to summarise: its 'summary' repeats the last scene's caption)")
    # Accepted for scripts written when the summary was on by default.
    p.add_argument("--no-summary", action="store_true", help=argparse.SUPPRESS)
    common.add_signal_args(p)
    p.add_argument("--subtitles", choices=("captions", "speech", "both"), default="captions",
                   help="what the SRT/VTT cues carry (default captions; speech and both need --speech)")
    p.add_argument("--save-memory", action="store_true",
                   help="also save <name>.memory.safetensors (needs --out) for `videollm ask`/`chat` without decoding")
    p.add_argument("--shard", metavar="I/N", help="process only shard I of N (0-based); derived automatically under "
                                                  "`accelerate launch -m videollm caption ...`")
    ray = p.add_argument_group("cluster (--engine ray: Ray Data; pip install 'videollm[ray]')")
    ray.add_argument("--engine", choices=("local", "ray"), default="local",
                     help="local: this process (default); ray: a pool of Ray workers, one model each")
    ray.add_argument("--address", help="Ray cluster to join (e.g. auto, or HEAD_IP:6379); default: start a local "
                                       "one (or join the one RAY_ADDRESS names)")
    ray.add_argument("--workers", type=int, default=1, help="Ray workers, each with its own model (default 1)")
    ray.add_argument("--cpus-per-worker", type=common.positive_float, default=1.0,
                     help="CPUs per worker, also its torch threads (default 1)")
    ray.add_argument("--gpus-per-worker", type=float, default=0.0,
                     help="GPUs per worker (default 0; > 0 runs the model on CUDA)")
    ray.add_argument("--max-attempts", type=int, default=3,
                     help="tries per video when workers die on it, before it is recorded as failed (default 3)")
    common.add_model_args(p)


def _error(path: str, reason: str, bar=None) -> None:
    line = f"videollm: error: {path}: {reason}"
    if bar is not None:
        bar.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)


def caption(args: argparse.Namespace) -> int:
    """Caption every scene of every input video (with --summary, also ask for a whole-video summary).

    INPUT may be files, directories (searched recursively for video files) and globs (quote them: "clips/**/*.mp4").
    Without --out, stdout gets one JSON line per scene {"video", "start", "end", "caption"} (seconds; with the
    shipped model also "recognised" and "novelty": it knows only its synthetic world of coloured shapes, and a scene
    it does not recognise gets "caption": null, "recognised": false, and the subtitle line "(scene not recognised
    by the embedded model)", or its speech with --subtitles both; for a video
    with sound and speech on, also "speech", the words said in the scene, and "words", [start, end, word] each; with
    text reading on, "text", what its middle frame shows in writing), and with
    --summary one {"video", "summary"} line per video. With --out DIR, each video gets <name>.json, <name>.srt and <name>.vtt
    (--format), where <name> keeps the sub-folders the video had below a directory or glob input, and DIR gets
    manifest.jsonl: one line per input with its status (done, skipped, failed), duration, scene count and error.

    Memory does not grow with a video's length: a first pass keeps each sampled frame's segmentation feature, then
    each scene's bridge frames are read back and encoded (``videollm.memory``).

    Resumable: outputs are written to a temporary file and renamed into place, and videos whose outputs all exist
    are skipped, so rerunning an interrupted batch (even after kill -9) finishes the rest exactly once.
    A bad input prints `videollm: error: <path>: <reason>` and the batch goes on; an output that cannot be written
    (disk full, read-only folder) stops it with one such line, that video's outputs removed (SIGTERM and Ctrl-C
    likewise leave each video's outputs complete or absent). A table of done / skipped /
    failed videos ends the run on stderr. Exit code: 0 all done or skipped, 1 some failed, 2 usage error or
    nothing could run.

    Scale out on one machine: `accelerate launch --num_processes N -m videollm caption ... --out DIR` gives each
    process every N-th video (or pass --shard I/N yourself on each machine); with --device cuda each process takes
    its own GPU. On a cluster: --engine ray (Ray Data; see the README).
    """
    from videollm import batch, ocr, speech

    formats = batch.parse_formats(args.format)
    if args.save_memory and not args.out:
        raise UsageError("--save-memory needs --out DIR (memories are written beside the other outputs)")
    if args.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    ray_engine = args.engine == "ray"
    if ray_engine and (not args.out or args.shard):
        raise UsageError("--engine ray needs --out DIR (a folder every worker can write) and no --shard")
    started = time.perf_counter()
    launched = None if args.shard or ray_engine else batch.launched_shard(cpu=not args.device.startswith("cuda"))
    shard_spec = batch.parse_shard(args.shard) if args.shard else launched
    items, input_errors = batch.expand_inputs(args.inputs)
    report = batch.BatchReport()
    rows = []
    for err in input_errors:
        # Every shard sees the same inputs: one process reports them, all count them (same exit code everywhere).
        if shard_spec is None or shard_spec[0] == 0:
            _error(err.path, err.reason)
        report.failed.append((err.path, err.reason))
        rows.append(manifest_row(BatchItem(Path(err.path), ""), "failed", error=err.reason))
    if shard_spec is not None:
        items = batch.shard(items, *shard_spec)
    options = CaptionOptions(out=str(Path(args.out).resolve()) if args.out else None, formats=formats,
                             prompt=args.prompt, max_new_tokens=args.max_new_tokens,
                             summary=args.summary and not args.no_summary, save_memory=args.save_memory,
                             model=str(args.model), speech=speech.enabled(args.speech),
                             text=ocr.enabled(args.text), subtitles=args.subtitles)
    if args.subtitles != "captions" and not options.speech:
        raise UsageError(f"--subtitles {args.subtitles} needs speech: {speech.INSTALL}, and no --no-speech")
    if options.out:
        batch.check_writable(options.out)  # a read-only or full folder is told now, not after the first video
    todo = []
    for item in items:
        if options.out and batch.is_complete(options.paths(item)):
            report.skipped.append(str(item.path))
            rows.append(skipped_row(item, options))
        else:
            todo.append(item)
    stopped = None
    if todo:
        run = _run_ray if ray_engine else _run_local
        try:
            run(todo, options, args, launched, report, rows)
        except OutputError as err:  # disk full or read-only: every later video would fail the same way
            stopped = err
    if options.out:
        name = MANIFEST if shard_spec is None else f"manifest.shard-{shard_spec[0]}-of-{shard_spec[1]}.jsonl"
        try:
            write_manifest(Path(options.out) / name, rows)
        except OutputError as err:
            stopped = stopped or err
    batch.render_report(report, time.perf_counter() - started)
    if launched is not None:
        batch.end_launched()
    if stopped is not None:
        print("videollm: note: the batch stopped at an output it could not write; finished videos are kept, and "
              "running the same command again (once there is room) does the rest", file=sys.stderr)
        raise stopped
    return report.exit_code


def _record(report, row: dict, bar=None) -> None:
    """Count a finished video in the report (and print its error)."""
    if row["status"] == "failed":
        _error(row["video"], row["error"], bar)
        report.failed.append((row["video"], row["error"]))
    elif row["status"] == "skipped":
        report.skipped.append(row["video"])
    else:
        report.done.append(row["video"])


def _run_local(todo: list, options: CaptionOptions, args: argparse.Namespace, launched, report,
               rows: list[dict]) -> None:
    """The single-process engine: one model, the videos in order (manifest rows appended to ``rows``)."""
    from tqdm import tqdm

    device = None
    if launched is not None and args.device.startswith("cuda") and ":" not in args.device:
        import torch
        from accelerate import PartialState

        device = torch.device("cuda", PartialState().local_process_index)
    model = common.load_model(args, device=device)
    interactive = sys.stderr.isatty()
    emit = None if options.out else _print_line
    bar = tqdm(todo, unit="video", desc="videos", disable=not interactive or len(todo) < 2)
    try:
        for item in bar:
            started = time.perf_counter()
            try:
                record = caption_item(model, item, options, progress=interactive, emit=emit)
            except OutputError as err:  # the batch stops (main prints why); this video is counted as failed
                row = manifest_row(item, "failed", error=failure_reason(err), attempts=1)
                report.failed.append((row["video"], row["error"]))
                rows.append(row)
                raise
            except VIDEO_FAILURES as err:
                if args.debug:
                    raise
                row = manifest_row(item, "failed", error=failure_reason(err), attempts=1,
                                   seconds=time.perf_counter() - started)
            else:
                row = manifest_row(item, "done", record, attempts=1, seconds=time.perf_counter() - started)
            _record(report, row, bar)
            rows.append(row)
    finally:
        bar.close()


def _run_ray(todo: list, options: CaptionOptions, args: argparse.Namespace, launched, report,
             rows: list[dict]) -> None:
    """The Ray Data engine (``videollm.batch.ray_engine``; manifest rows appended to ``rows``)."""
    from tqdm import tqdm

    from videollm.batch import ray_engine

    common.model_source(args)  # a missing checkpoint or an untrained preset is told here, once
    spec = str(Path(args.model).resolve()) if Path(args.model).is_dir() else str(args.model)
    device = "cuda" if args.gpus_per_worker > 0 and args.device == "cpu" else args.device
    bar = tqdm(total=len(todo), unit="video", desc="videos", disable=not sys.stderr.isatty())

    def on_row(row: dict) -> None:
        _record(report, row, bar)
        bar.update(1)

    try:
        rows += ray_engine.run(todo, options, model=spec, device=device, dtype=args.dtype, fps=args.fps,
                              address=args.address, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                              gpus_per_worker=args.gpus_per_worker, max_attempts=args.max_attempts, on_row=on_row)
    finally:
        bar.close()


def _print_line(row: dict) -> None:
    sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    sys.stdout.flush()
