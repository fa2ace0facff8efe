"""``videollm caption``: scene captions for a batch of videos (resumable, atomic, shardable)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from videollm.cli import add_command
from videollm.commands import common
from videollm.errors import UsageError, VideoError
from videollm.prompts import CAPTION, CAPTION_TOKENS

# Per-video failures that must not stop a batch: decoding problems surface as VideoError from videollm.io, but a
# damaged file can also trip the decoder libraries themselves.
_VIDEO_FAILURES = (VideoError, OSError, RuntimeError, ValueError)


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
    p.add_argument("--save-memory", action="store_true",
                   help="also save <name>.memory.safetensors (needs --out) for `videollm ask`/`chat` without decoding")
    p.add_argument("--shard", metavar="I/N", help="process only shard I of N (0-based); derived automatically under "
                                                  "`accelerate launch -m videollm caption ...`")
    common.add_model_args(p)


def _error(path: str, reason: str, bar=None) -> None:
    line = f"videollm: error: {path}: {reason}"
    if bar is not None:
        bar.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)


def _reason(err: Exception) -> str:
    if isinstance(err, VideoError):
        return err.reason
    text = str(err).strip().splitlines()
    return f"{err.__class__.__name__}: {text[0]}" if text else err.__class__.__name__


def caption(args: argparse.Namespace) -> int:
    """Caption every scene of every input video (with --summary, also ask for a whole-video summary).

    INPUT may be files, directories (searched recursively for video files) and globs (quote them: "clips/**/*.mp4").
    Without --out, stdout gets one JSON line per scene {"video", "start", "end", "caption"} (seconds), and with
    --summary one {"video", "summary"} line per video. With --out DIR, each video gets <name>.json, <name>.srt and <name>.vtt
    (--format), where <name> keeps the sub-folders the video had below a directory or glob input.

    Resumable: outputs are written to a temporary file and renamed into place, and videos whose outputs all exist
    are skipped, so rerunning an interrupted batch (even after kill -9) finishes the rest exactly once.
    A bad input prints `videollm: error: <path>: <reason>` and the batch goes on. A table of done / skipped /
    failed videos ends the run on stderr. Exit code: 0 all done or skipped, 1 some failed, 2 usage error or
    nothing could run.

    Scale out: `accelerate launch --num_processes N -m videollm caption ... --out DIR` gives each process every
    N-th video (or pass --shard I/N yourself on each machine); with --device cuda each process takes its own GPU.
    """
    from tqdm import tqdm

    from videollm import batch

    formats = batch.parse_formats(args.format)
    if args.save_memory and not args.out:
        raise UsageError("--save-memory needs --out DIR (memories are written beside the other outputs)")
    if args.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    started = time.perf_counter()
    launched = None if args.shard else batch.launched_shard(cpu=not args.device.startswith("cuda"))
    shard_spec = batch.parse_shard(args.shard) if args.shard else launched
    items, input_errors = batch.expand_inputs(args.inputs)
    report = batch.BatchReport()
    for err in input_errors:
        # Every shard sees the same inputs: one process reports them, all count them (same exit code everywhere).
        if shard_spec is None or shard_spec[0] == 0:
            _error(err.path, err.reason)
        report.failed.append((err.path, err.reason))
    if shard_spec is not None:
        items = batch.shard(items, *shard_spec)

    todo = []
    for item in items:
        paths = batch.output_paths(args.out, item, formats, args.save_memory) if args.out else {}
        if paths and batch.is_complete(paths):
            report.skipped.append(str(item.path))
        else:
            todo.append((item, paths))

    if todo:
        device = None
        if launched is not None and args.device.startswith("cuda") and ":" not in args.device:
            import torch
            from accelerate import PartialState

            device = torch.device("cuda", PartialState().local_process_index)
        model = common.load_model(args, device=device)
        interactive = sys.stderr.isatty()
        bar = tqdm(todo, unit="video", desc="videos", disable=not interactive or len(todo) < 2)
        for item, paths in bar:
            try:
                _caption_one(model, item, paths, args, progress=interactive)
            except _VIDEO_FAILURES as err:
                if args.debug:
                    raise
                _error(str(item.path), _reason(err), bar)
                report.failed.append((str(item.path), _reason(err)))
            else:
                report.done.append(str(item.path))
        bar.close()
    batch.render_report(report, time.perf_counter() - started)
    if launched is not None:
        batch.end_launched()
    return report.exit_code


def _caption_one(model, item, paths: dict, args: argparse.Namespace, progress: bool) -> None:
    """Caption one video; stream JSON lines to stdout (no --out) or write its output files atomically."""
    from videollm import batch
    from videollm.captioning import caption_video, clean_caption, summarize

    video = str(item.path)
    batch.remove_stale_temps(paths.values())
    # The scenes' bridge outputs (what recall reads) are kept only when the memory is saved for questions.
    session = caption_video(model, item.path, prompt=args.prompt, max_new_tokens=args.max_new_tokens,
                            progress=progress, keep_scenes=args.save_memory and model.config.recall)
    scenes = []
    for scene in session:
        row = {"video": video, "start": round(scene.start, 3), "end": round(scene.end, 3), "caption": scene.caption}
        scenes.append({"index": scene.index, **{k: row[k] for k in ("start", "end", "caption")}})
        if not paths:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    summary = None
    if args.summary and not args.no_summary:
        summary = clean_caption("".join(summarize(model, session.state)))
        session.state.extra["summary"] = summary
        if not paths:
            sys.stdout.write(json.dumps({"video": video, "summary": summary}, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    if not paths:
        return
    if batch.MEMORY_KEY in paths:
        batch.write_atomic(paths[batch.MEMORY_KEY], session.save_memory)
    extra = session.state.extra
    record = {"video": video, "name": item.name, "duration": extra.get("duration"), "fps": extra.get("fps"),
              "model": str(args.model), "prompt": args.prompt, "scenes": scenes, "summary": summary}
    batch.write_outputs(paths, record)
