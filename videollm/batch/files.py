"""Batch captioning plumbing: expanding inputs, naming outputs, atomic writes, resume and sharding.

A batch is a sorted, de-duplicated list of ``BatchItem`` (a video and the relative name of its outputs). Outputs
are written to a temporary file beside the target and renamed into place (``os.replace`` is atomic on one file
system), so a reader, or a rerun after ``kill -9``, sees each output either whole or absent. A video is complete
when every requested output exists; reruns skip complete videos, so a rerun finishes the rest exactly once.
Sharding takes every n-th item of the same sorted list, so processes that see the same inputs never share a video.
"""

from __future__ import annotations

import glob
import io
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videollm.errors import OutputError, UsageError, VideoError
from videollm.ood import NOT_RECOGNISED

#: Extensions picked up when a directory or glob is expanded (a file named explicitly is always tried).
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv",
                              ".wmv", ".gif", ".3gp", ".ogv"})
FORMATS = ("json", "srt", "vtt")
MEMORY_KEY = "memory"
#: File name ending of saved memories (``clip.mp4`` → ``clip.memory.safetensors``); ``videollm.memory`` uses it too.
MEMORY_SUFFIX = ".memory.safetensors"
_TEMP_SUFFIX = ".part"


@dataclass(frozen=True, order=True)
class BatchItem:
    """One video of a batch.

    Attributes:
        path: the video file.
        name: relative output stem (POSIX, no extension): the file stem, under the sub-folders it had below the
            directory or glob root it was found in, so same-named videos in different folders do not collide.
    """

    path: Path
    name: str


@dataclass
class BatchReport:
    """What a batch run did, per video."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, 1 when some input failed, 2 when nothing could run at all."""
        if not (self.done or self.skipped):
            return 2
        return 1 if self.failed else 0


def _is_video_name(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def _glob_root(pattern: str) -> Path:
    """The directory part of a glob before its first wildcard (outputs mirror the tree below it)."""
    parts = Path(pattern).parts
    root: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def expand_inputs(inputs: Sequence[str]) -> tuple[list[BatchItem], list[VideoError]]:
    """Turn command-line inputs (files, directories searched recursively, globs) into a batch.

    Args:
        inputs: what the user typed.

    Returns:
        The items, sorted by path and de-duplicated, and one ``VideoError`` per input that yields nothing (missing
        path, empty directory, glob without matches) or whose output name collides with an earlier item's.
    """
    found: dict[Path, str] = {}
    errors: list[VideoError] = []
    for text in inputs:
        path = Path(text)
        if path.is_file():
            candidates = [(path, path.with_suffix("").name)]
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and _is_video_name(p))
            candidates = [(p, p.relative_to(path).with_suffix("").as_posix()) for p in files]
            if not candidates:
                errors.append(VideoError(text, "no video files in this directory"))
        elif glob.has_magic(text):
            root = _glob_root(text)
            files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            candidates = [(p, p.relative_to(root).with_suffix("").as_posix()) for p in files]
            if not candidates:
                errors.append(VideoError(text, "no file matches this pattern"))
        else:
            errors.append(VideoError(text, "no such file or directory"))
            continue
        for file, name in candidates:
            found.setdefault(file.resolve(), name)
    items: list[BatchItem] = []
    names: dict[str, Path] = {}
    for resolved, name in sorted(found.items()):
        if name in names:
            errors.append(VideoError(resolved, f"output name {name!r} is already used by {names[name]}"))
            continue
        names[name] = resolved
        items.append(BatchItem(resolved, name))
    return items, errors


def parse_formats(text: str) -> tuple[str, ...]:
    """``"json,srt"`` → ("json", "srt"); unknown names are a usage error."""
    names = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise UsageError(f"--format {text!r}: choose from {', '.join(FORMATS)} (comma-separated)")
    return names


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0-based i) → (i, n)."""
    try:
        index, count = (int(p) for p in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise UsageError(f"--shard {text!r}: need 0 <= I < N")
    return index, count


def launched_shard(cpu: bool) -> tuple[int, int] | None:
    """(process index, process count) when started by ``accelerate launch``/``torchrun`` with several processes.

    Read through accelerate's ``PartialState`` (which also understands MPI launchers); None for a plain single
    process, so no process group is created then.

    Args:
        cpu: the processes run on CPU (accelerate then joins them with gloo/MPI instead of a GPU backend).
    """
    env = os.environ
    if int(env.get("WORLD_SIZE", env.get("OMPI_COMM_WORLD_SIZE", env.get("PMI_SIZE", "1")))) <= 1:
        return None
    from accelerate import PartialState

    state = PartialState(cpu=cpu)
    return (state.process_index, state.num_processes) if state.num_processes > 1 else None


def end_launched() -> None:
    """Leave the process group ``launched_shard`` joined (avoids shutdown warnings)."""
    from accelerate import PartialState

    PartialState().destroy_process_group()


def shard(items: Sequence[BatchItem], index: int, count: int) -> list[BatchItem]:
    """Every ``count``-th item starting at ``index`` (the same sorted batch in every process → disjoint shards)."""
    return list(items[index::count])


def output_paths(out_dir: str | os.PathLike, item: BatchItem, formats: Iterable[str],
                 memory: bool = False) -> dict[str, Path]:
    """Target file of each requested output of ``item`` (key "memory" for ``<name>.memory.safetensors``)."""
    base = Path(out_dir) / item.name
    paths = {fmt: base.with_name(f"{base.name}.{fmt}") for fmt in formats}
    if memory:
        paths[MEMORY_KEY] = base.with_name(base.name + MEMORY_SUFFIX)
    return paths


def is_complete(paths: Mapping[str, Path]) -> bool:
    """True when every output exists (each was renamed into place whole, so existing means complete)."""
    return all(p.is_file() for p in paths.values())


def temp_path(target: Path) -> Path:
    """A per-process temporary name beside ``target`` (same file system, so the final rename is atomic)."""
    return target.with_name(f".{target.name}.{os.getpid()}{_TEMP_SUFFIX}")


def remove_stale_temps(paths: Iterable[Path]) -> None:
    """Delete temporary files an interrupted run left for these targets (each video belongs to one shard)."""
    for target in paths:
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*{_TEMP_SUFFIX}"):
            stale.unlink(missing_ok=True)


def write_atomic(target: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` then rename ``tmp`` onto ``target``; on any error the temporary file is removed.

    Raises:
        OutputError: the file system refused (disk full, read-only, no permission), naming ``target``.
    """
    tmp = temp_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, target)
    except OutputError as err:  # from a writer that names its own temporary file
        raise OutputError(target, err.text) from None
    except OSError as err:
        raise OutputError(target, err) from None
    finally:
        _remove_quietly(tmp)


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and make sure a file can be written in it, before any work is done.

    Raises:
        OutputError: it cannot be created or written (read-only, no permission, disk full).
    """
    folder = Path(folder)
    probe = folder / f".videollm-write-test.{os.getpid()}{_TEMP_SUFFIX}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"ok")
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise OutputError(folder, err) from None
    finally:
        _remove_quietly(probe)
    return folder


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # the folder itself is unwritable: nothing was created there either
        pass


def write_text_atomic(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically, flushed to disk before the rename."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    write_atomic(target, write)


def timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm`` for a WebVTT cue (webvtt-py converts it for SRT)."""
    ms = max(0, int(round(seconds * 1000)))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


#: Subtitle cues cannot be empty (a blank line ends a cue), so a scene with no caption text gets this.
EMPTY_CUE = "…"
#: The cue of a scene the model does not recognise ("recognised": false; ``videollm.ood``).
NOT_RECOGNISED_CUE = NOT_RECOGNISED


#: What ``--subtitles`` may put in the SRT/VTT cues.
SUBTITLES = ("captions", "speech", "both")
#: A speech cue holds at most this many words, or closes at a pause of this many seconds.
CUE_WORDS, CUE_PAUSE = 12, 0.8


def speech_cues(scenes: Sequence[Mapping[str, Any]]) -> list[tuple[float, float, str]]:
    """Subtitle lines of the spoken words ("words" of each scene: [start, end, text]): a line closes at a pause, at
    ``CUE_WORDS`` words, after a sentence end, and at a scene end."""
    cues = []
    for scene in scenes:
        line: list[Sequence[Any]] = []
        for word in scene.get("words") or ():
            if line and (len(line) >= CUE_WORDS or float(word[0]) - float(line[-1][1]) > CUE_PAUSE
                         or str(line[-1][2]).endswith((".", "?", "!"))):
                cues.append((float(line[0][0]), float(line[-1][1]), " ".join(str(w[2]) for w in line)))
                line = []
            line.append(word)
        if line:
            cues.append((float(line[0][0]), float(line[-1][1]), " ".join(str(w[2]) for w in line)))
    return cues


def subtitles(scenes: Sequence[Mapping[str, Any]], fmt: str, which: str = "captions") -> str:
    """SRT or WebVTT text of the scene captions and/or the spoken words, written by webvtt-py.

    A scene the model does not recognise ("recognised": false) has no caption: its cue is ``NOT_RECOGNISED_CUE``,
    or with "both", its spoken words alone when it has any.

    Args:
        scenes: dicts with "start", "end" (seconds), "caption" and, with speech, "words"; with a calibrated model,
            "recognised".
        fmt: "srt" or "vtt".
        which: "captions" (one cue a scene), "speech" (``speech_cues``) or "both" (in time order).
    """
    import webvtt

    if which not in SUBTITLES:
        raise UsageError(f"subtitles must be one of {', '.join(SUBTITLES)}, got {which!r}")
    cues = []
    if which in ("captions", "both"):
        for s in scenes:
            if s.get("recognised") is False:
                if which == "both" and s.get("words"):
                    continue  # the speech cues say what there is to say about it
                text = NOT_RECOGNISED_CUE
            else:
                text = s["caption"] or EMPTY_CUE
            cues.append((float(s["start"]), float(s["end"]), text))
    if which in ("speech", "both"):
        cues += speech_cues(scenes)
    doc = webvtt.WebVTT()
    for start, end, text in sorted(cues, key=lambda c: (c[0], c[1])):
        end = max(end, start + 0.001)  # cues need a positive duration
        doc.captions.append(webvtt.Caption(timestamp(start), timestamp(end), text))
    buf = io.StringIO()
    doc.write(buf, format=fmt)
    return buf.getvalue()


def write_outputs(paths: Mapping[str, Path], record: Mapping[str, Any], which: str = "captions") -> None:
    """Write the JSON/SRT/VTT outputs of one video, each atomically; JSON last, so it marks a finished video.

    Args:
        paths: from ``output_paths`` (the memory file, if any, is written by the caller).
        record: ``{"video", "duration", "fps", "model", "prompt", "scenes": [...], "summary"}``.
        which: what the subtitle cues carry (``SUBTITLES``).
    """
    for fmt in ("srt", "vtt"):
        if fmt in paths:
            write_text_atomic(paths[fmt], subtitles(record["scenes"], fmt, which))
    if "json" in paths:
        write_text_atomic(paths["json"], json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def render_report(report: BatchReport, seconds: float, file=None) -> None:
    """Print the final done / skipped / failed table (rich) to ``file`` (default stderr)."""
    import sys

    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stderr, highlight=False, soft_wrap=True)
    table = Table(title=f"videollm caption ({seconds:.1f} s)", title_justify="left")
    table.add_column("status")
    table.add_column("videos", justify="right")
    table.add_row("done", str(len(report.done)))
    table.add_row("skipped", str(len(report.skipped)))
    table.add_row("failed", str(len(report.failed)))
    console.print(table)
