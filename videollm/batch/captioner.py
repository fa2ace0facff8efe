"""Captioning one video of a batch into its outputs, the batch manifest, and the Ray Data ``Captioner``.

``caption_item`` is what both engines of ``videollm caption`` run per video: the single-process loop and each Ray
worker. ``Captioner`` wraps it as the callable class Ray Data maps over a dataset of video paths, so people who
build their own Ray pipelines get the same outputs as the command::

    import ray
    from videollm.batch import Captioner

    ds = ray.data.from_items([{"path": p} for p in paths])
    rows = ds.map_batches(Captioner, fn_constructor_kwargs={"out": "captions/"}, batch_size=1,
                          compute=ray.data.ActorPoolStrategy(size=4), num_cpus=2)
    rows.write_json("manifest/")    # one manifest row per video: status, duration, scenes, error, ...

The manifest (``manifest.jsonl`` in the output folder) has one JSON line per input: ``MANIFEST_FIELDS``.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videollm.assets import DEFAULT_MODEL
from videollm.batch.files import (
    FORMATS,
    MEMORY_KEY,
    BatchItem,
    is_complete,
    output_paths,
    remove_stale_temps,
    write_atomic,
    write_outputs,
    write_text_atomic,
)
from videollm.errors import OutputError, VideoError
from videollm.prompts import CAPTION, CAPTION_TOKENS

MANIFEST = "manifest.jsonl"
#: One manifest row per input video. status: "done" (captioned by this run), "skipped" (its outputs were already
#: complete), "failed" (error says why). duration (s) and scenes (count) come from the video's JSON output when
#: one was written; attempts counts the tries this run made (a worker that died mid-video leaves one behind);
#: worker is "host:pid" and peak_rss_mb that process's peak resident memory when it finished the video.
MANIFEST_FIELDS = ("video", "name", "status", "duration", "scenes", "error", "attempts", "seconds", "worker",
                   "peak_rss_mb")
#: Per-video failures that must not stop a batch: decoding problems surface as VideoError from videollm.io, but a
#: damaged file can also trip the decoder libraries themselves.
VIDEO_FAILURES = (VideoError, OSError, RuntimeError, ValueError)
#: Attempt counters of the Ray engine, below the output folder (cleared at the start of each run).
ATTEMPTS_DIR = ".videollm-attempts"


@dataclass(frozen=True)
class CaptionOptions:
    """What to write for each video (the ``videollm caption`` options that do not choose the model).

    Attributes:
        out: output folder, or None to stream JSON lines to stdout.
        formats: outputs per video, from ``FORMATS``.
        prompt: caption instruction.
        max_new_tokens: caption length bound.
        summary: also ask for a whole-video summary.
        save_memory: also save ``<name>.memory.safetensors`` (needs ``out``).
        model: what the JSON output records as the model (the ``--model`` given).
        speech: transcribe each video's speech into its scenes (``videollm.speech``; None: when installed).
        text: read each scene's on-screen text from its middle frame (``videollm.ocr``; off by default).
        subtitles: what the SRT/VTT cues carry: "captions", "speech" or "both".
    """

    out: str | None = None
    formats: tuple[str, ...] = FORMATS
    prompt: str = CAPTION
    max_new_tokens: int = CAPTION_TOKENS
    summary: bool = False
    save_memory: bool = False
    model: str = DEFAULT_MODEL
    speech: bool | None = None
    text: bool | None = None
    subtitles: str = "captions"

    def paths(self, item: BatchItem) -> dict[str, Path]:
        """The output files of ``item`` (empty without ``out``)."""
        return output_paths(self.out, item, self.formats, self.save_memory) if self.out else {}


def failure_reason(err: BaseException) -> str:
    """One line saying why a video failed."""
    if isinstance(err, (VideoError, OutputError)):
        return err.reason if isinstance(err, VideoError) else str(err)
    text = str(err).strip().splitlines()
    return f"{err.__class__.__name__}: {text[0]}" if text else err.__class__.__name__


def caption_item(model, item: BatchItem, options: CaptionOptions, progress: bool = False,
                 emit: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Caption every scene of one video and write its outputs, each atomically (JSON last: it marks a finished
    video); without ``options.out`` each scene (and the summary) goes to ``emit`` as it is ready.

    Returns:
        The video's record (what its JSON output holds).

    Raises:
        One of ``VIDEO_FAILURES`` when the video cannot be captioned; nothing is written then.
        OutputError: an output could not be written (disk full, read-only); none of the video's outputs is left.
    """
    from videollm import ocr, speech
    from videollm.captioning import caption_video, clean_caption, summarize

    video = str(item.path)
    paths = options.paths(item)
    remove_stale_temps(paths.values())
    # The scenes' bridge outputs (what recall reads) are kept only when the memory is saved for questions.
    session = caption_video(model, item.path, prompt=options.prompt, max_new_tokens=options.max_new_tokens,
                            progress=progress, keep_scenes=options.save_memory and model.config.recall)
    # Speech is transcribed before the first scene is emitted, so every scene row carries its words (videos with
    # an audio track only: a silent video's rows stay as they were).
    words = speech.transcribe(item.path) if speech.enabled(options.speech) and speech.has_audio(item.path) else None
    reader = ocr.SceneReader(item.path) if ocr.enabled(options.text) else None
    try:
        scenes, texts = _caption_scenes(session, video, words, reader, emit)
    finally:
        if reader is not None:
            reader.close()
    if words is not None:
        speech.attach(session.state, words)
    if reader is not None:
        ocr.attach(session.state, texts)
    summary = None
    if options.summary:
        summary = clean_caption("".join(summarize(model, session.state)))
        session.state.extra["summary"] = summary
        if emit is not None:
            emit({"video": video, "summary": summary})
    extra = session.state.extra
    record = {"video": video, "name": item.name, "duration": extra.get("duration"), "fps": extra.get("fps"),
              "model": options.model, "prompt": options.prompt, "scenes": scenes, "summary": summary}
    try:
        if MEMORY_KEY in paths:
            write_atomic(paths[MEMORY_KEY], session.save_memory)
        if paths:
            write_outputs(paths, record, options.subtitles)
    except (OutputError, KeyboardInterrupt):  # KeyboardInterrupt: Ctrl-C, and SIGTERM (videollm.cli)
        # All of this video's outputs or none: a rerun (once there is room) captions it again.
        for path in paths.values():
            path.unlink(missing_ok=True)
        raise
    return record


def _caption_scenes(session, video: str, words, reader, emit) -> tuple[list[dict[str, Any]], list[str]]:
    """The scene rows of a captioning session (with each scene's words and text when asked), emitted as they come."""
    from videollm import speech

    scenes, texts = [], []
    for scene in session:
        row = {"video": video, **scene_row(scene)}
        if words is not None:
            last = scene.end >= float(session.state.extra.get("duration") or float("inf")) - 1e-6
            said = speech.words_in(words, scene.start, scene.end, last)
            row["speech"] = speech.text_of(said)
            row["words"] = [[w.start, w.end, w.text] for w in said]
        if reader is not None:
            seg = session.state.segments[scene.index]  # (scenes are captioned in batches: not always the last)
            row["text"] = reader.text(seg.start_frame, seg.end_frame)
            texts.append(row["text"])
        scenes.append({"index": scene.index, **{k: v for k, v in row.items() if k != "video"}})
        if emit is not None:
            emit(row)
    return scenes, texts


def scene_row(scene) -> dict[str, Any]:
    """The start, end and caption of a ``SceneCaption`` as the JSON outputs write them; with a calibrated model also
    "recognised" and "novelty" (``videollm.ood``), and an unrecognised scene's caption is null."""
    out = scene.to_json()
    return {key: out[key] for key in ("start", "end", "caption", "recognised", "novelty") if key in out}


def manifest_row(item: BatchItem, status: str, record: Mapping[str, Any] | None = None, error: str | None = None,
                 attempts: int = 0, seconds: float | None = None) -> dict[str, Any]:
    """One manifest row (``MANIFEST_FIELDS``) for ``item``."""
    record = record or {}
    scenes = record.get("scenes")
    return {"video": str(item.path), "name": item.name, "status": status, "duration": record.get("duration"),
            "scenes": len(scenes) if scenes is not None else None, "error": error, "attempts": attempts,
            "seconds": round(seconds, 3) if seconds is not None else None,
            "worker": f"{socket.gethostname()}:{os.getpid()}", "peak_rss_mb": round(peak_rss_mb(), 1)}


def skipped_row(item: BatchItem, options: CaptionOptions) -> dict[str, Any]:
    """The manifest row of a video whose outputs were already complete (its JSON output read back when there is
    one)."""
    record = None
    target = options.paths(item).get("json")
    if target is not None:
        try:
            record = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = None
    return manifest_row(item, "skipped", record if isinstance(record, dict) else None)


def write_manifest(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write manifest rows as JSON lines, atomically, sorted by video."""
    lines = [json.dumps({k: row.get(k) for k in MANIFEST_FIELDS}, ensure_ascii=False)
             for row in sorted(rows, key=lambda r: str(r["video"]))]
    write_text_atomic(Path(path), "".join(line + "\n" for line in lines))


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def load_model(spec: str = DEFAULT_MODEL, device: str = "cpu", dtype: str = "float32", fps: float | None = None):
    """The ``VideoLLM`` named by ``spec`` (a checkpoint folder, a preset name or "default") on ``device``."""
    import torch

    from videollm.assets import resolve_model
    from videollm.model import VideoLLM

    model = VideoLLM.from_pretrained(resolve_model(spec), device=torch.device(device), dtype=getattr(torch, dtype))
    if fps:
        model.config.segmentation.fps = fps
    return model


class Captioner:
    """Captions the videos of a Ray Data batch into ``out``, one manifest row per video.

    The model is loaded once per worker (in the constructor); each call takes a batch with a "path" column (and
    optionally "name", the relative output stem; default the file's stem) and returns the manifest rows as
    columns (``MANIFEST_FIELDS``). A bad video gives a "failed" row, never an exception; a video whose outputs
    already exist is "skipped". Each try is counted in a file below ``out`` before it starts, so a video on which
    workers keep dying (Ray restarts the worker and retries the batch) is recorded as failed after
    ``max_attempts`` tries instead of being retried forever.

    Args:
        out: output folder (shared by every worker: on a cluster, a shared file system).
        model, device, dtype, fps: the model, as ``videollm caption --model/--device/--dtype/--fps``.
        threads: torch threads in this worker (default: torch's choice).
        max_attempts: tries per video before it is recorded as failed.
        **options: the other ``CaptionOptions`` fields (formats, prompt, max_new_tokens, summary, save_memory).
    """

    def __init__(self, out: str, model: str = DEFAULT_MODEL, device: str = "cpu", dtype: str = "float32",
                 fps: float | None = None, threads: int | None = None, max_attempts: int = 3,
                 **options: Any) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        if "formats" in options:
            options["formats"] = tuple(options["formats"])
        self.options = CaptionOptions(out=str(out), model=str(model), **options)
        self.max_attempts = max_attempts
        self.model = load_model(model, device, dtype, fps)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list]:
        paths = [str(p) for p in batch["path"]]
        names = batch.get("name") if hasattr(batch, "get") else None
        rows = []
        for i, path in enumerate(paths):
            name = str(names[i]) if names is not None else Path(path).with_suffix("").name
            rows.append(self.caption(BatchItem(Path(path), name)))
        return {key: [row[key] for row in rows] for key in MANIFEST_FIELDS}

    def caption(self, item: BatchItem) -> dict[str, Any]:
        """Caption one video (unless its outputs are complete); its manifest row."""
        if is_complete(self.options.paths(item)):
            return skipped_row(item, self.options)
        counter = attempts_file(self.options.out, item)
        attempt = _read_attempts(counter) + 1
        if attempt > self.max_attempts:
            return manifest_row(item, "failed", error=f"the worker captioning it died {attempt - 1} times "
                                                      f"(max attempts {self.max_attempts})", attempts=attempt - 1)
        write_text_atomic(counter, json.dumps({"video": str(item.path), "attempts": attempt}))
        started = time.perf_counter()
        try:
            record = caption_item(self.model, item, self.options)
        except (*VIDEO_FAILURES, OutputError) as err:
            row = manifest_row(item, "failed", error=failure_reason(err), attempts=attempt,
                               seconds=time.perf_counter() - started)
        else:
            row = manifest_row(item, "done", record, attempts=attempt, seconds=time.perf_counter() - started)
        counter.unlink(missing_ok=True)
        return row


def attempts_file(out: str | os.PathLike, item: BatchItem) -> Path:
    """Where the tries on ``item`` are counted (one small JSON file per video below ``out``)."""
    digest = hashlib.sha1(item.name.encode("utf-8")).hexdigest()[:20]
    return Path(out) / ATTEMPTS_DIR / f"{digest}.json"


def _read_attempts(path: Path) -> int:
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["attempts"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
