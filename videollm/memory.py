"""Video memory: the one path from a video (file or live source) to its scene memory, and persisting that memory.

``watch`` is that path; ``caption``, ``stream``, ``ask``, ``search``, the web app and every evaluation go through
it, so the figures the evaluation reports are those of the product. It has two segmentation rules and one of
everything else (frame sampling at the model's fps, the bridge step per scene, scene spans, the end of the last
scene, ``state.extra``):

- offline (default): the published SceneTiling rule runs over the whole video's per-frame segmentation features
  (the CLS or colour histograms: ``SegmentationConfig.feature``), then the bridge steps once per scene and the caller
  gets a ``SceneEvent`` after each step. A file is read in two passes so memory does not grow with its length: a
  scan keeps only each sampled frame's segmentation feature (``scan_video``; 1 KB a frame with histograms, and no
  vision forward), then each scene's bridge frames (at most ``max_frames_per_segment``, the published linspace
  rule) are read back by index and encoded, so the vision encoder runs only on frames the bridge reads;
- online (``online=True``): the streaming segmenter confirms scene ends as they happen, the bridge steps once per
  scene and the caller gets a ``SceneEvent`` right away. With histogram (or uniform) segmentation, frames are only
  resized to the encoder's input while their scene is open, and the encoder runs on the scene's bridge frames when
  it closes, as offline; with CLS features each frame is encoded once as it arrives. Work and memory per frame do
  not grow with the stream: only the open scene is buffered (resized frames or pooled tokens), and a scene that
  never ends is closed after ``max_scene_seconds``.

Cuts sit half-way between the last frame of a scene and the first of the next; the last scene ends at the video's
duration when it is known (a file) and half a sampling interval after the last frame otherwise (a live source):
``videollm.scenes.video_end``.

A saved memory (``save_memory``) is one safetensors file, by convention ``<name>.memory.safetensors``: the bridge
state (memory, cache, segment table) plus the video's facts and captions in the header, so later questions need
no decoding and no vision compute. ``is_memory_file`` tells a memory from a video by its content, not its name.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from videollm import ood
from videollm.batch import MEMORY_SUFFIX  # noqa: F401  (re-exported: the memory file naming convention)
from videollm.bridge import BridgeState, segment_frame_indices
from videollm.errors import ModelError, VideoError
from videollm.io import FrameBatch
from videollm.ood import SceneNovelty
from videollm.scenes import video_end
from videollm.segmentation import segment_ends

#: The ``format`` entry of a saved bridge state's safetensors header (see ``videollm.bridge.state``).
_STATE_FORMAT = "videollm.bridge_state"
#: Sampled frames the online segmenter waits after a candidate cut before judging it (see ``benchmarks/streaming.py``
#: for the F1 / latency trade-off this value was chosen from).
DEFAULT_LAG = 4
#: Online, with histogram segmentation: when the process sat idle at least this long while the source produced a
#: batch (a webcam, a file played in real time), its frames are encoded at once instead of when their scene closes,
#: so the CPU works while it would wait and a scene's caption waits only for its bridge step and caption.
EAGER_WAIT = 0.05
#: A scene longer than this is closed anyway, so a stream that never cuts still runs in flat memory.
DEFAULT_MAX_SCENE_SECONDS = 60.0
#: With CLS segmentation features the scan runs the vision encoder on every frame anyway; the pooled tokens of up to
#: this many frames (12 MB with the embedded sizes) are kept so a short video or an image is not encoded twice.
SCAN_TOKEN_BUDGET = 512


@dataclass
class SceneEvent:
    """One scene closed by the segmenter and folded into the memory.

    Attributes:
        index: scene number from 0.
        start, end: seconds in the source.
        start_frame, end_frame: source frame indices (inclusive).
        latency: seconds from the moment the frame that confirmed the scene end was decoded to this event
            (offline: reading and encoding this scene's bridge frames, when not already encoded, and its bridge
            step).
        state: the bridge state after this scene (shared, updated in place by later scenes).
        confirmed: stream time in seconds of the frame whose arrival confirmed the scene end (``end`` offline); the
            stream-time delay of the cut is ``confirmed - end``.
        novelty: the scene's out-of-domain score (``videollm.ood``), None without a detector.
        recognised: whether the model recognises the scene (novelty within the calibrated threshold), None without
            a detector.
    """

    index: int
    start: float
    end: float
    start_frame: int
    end_frame: int
    latency: float
    state: BridgeState
    confirmed: float = 0.0
    novelty: float | None = None
    recognised: bool | None = None


@dataclass
class ScannedVideo:
    """A video file scanned for segmentation (the first pass of offline watching): no patch tokens are kept.

    Attributes:
        path: the video file (the bridge's frames are read back from it by index).
        features: (N, Ds) per-frame segmentation features (``VideoLLM.scene_features``).
        indices: (N,) source frame indices.
        times: (N,) presentation times in seconds.
        duration: the video's duration in seconds.
        tokens: (N, P*P, Dv) pooled tokens of every sampled frame when the scan computed them anyway (CLS features)
            and there were at most ``SCAN_TOKEN_BUDGET`` frames; None otherwise (the bridge frames are re-read).
    """

    path: str
    features: torch.Tensor
    indices: np.ndarray
    times: np.ndarray
    duration: float
    tokens: torch.Tensor | None = None


@dataclass
class EncodedVideo:
    """Every sampled frame of a video, encoded once.

    Attributes:
        cls: (N, Ds) per-frame segmentation features (CLS or colour histograms; ``VideoLLM.encode_frames``).
        tokens: (N, P*P, Dv) pooled patch tokens.
        indices: (N,) source frame indices.
        times: (N,) presentation times in seconds.
        duration: the video's duration in seconds.
    """

    cls: torch.Tensor
    tokens: torch.Tensor
    indices: np.ndarray
    times: np.ndarray
    duration: float


def _cut_time(times: np.ndarray, end: int) -> float:
    return float(0.5 * (times[end] + times[end + 1]))


def scan_video(model, video: str | os.PathLike, progress: bool = False) -> ScannedVideo:
    """Decode a video file at the model's sampling fps and keep only each frame's segmentation feature.

    Memory holds one batch of frames and ``Ds`` floats per sampled frame, whatever the video's length.

    Args:
        model: a ``VideoLLM`` (with a vision encoder when the segmentation feature is the CLS).
        video: path of the video.
        progress: show a progress bar over frames on stderr.

    Raises:
        VideoError: the file cannot be opened or yields no frame.
    """
    from tqdm import tqdm

    from videollm.io import SEQUENTIAL_BACKEND, open_video

    fps, count = model.config.segmentation.fps, model.config.segmentation.num_frames
    encodes = model.config.segmentation.feature != "histogram"  # CLS features: the encoder runs on every frame
    features, indices, times, tokens = [], [], [], []
    kept = 0
    with open_video(video, backend=SEQUENTIAL_BACKEND) as reader:
        meta = reader.meta
        bar = tqdm(total=count or max(1, int(meta.duration * min(fps, meta.fps)) + 1), unit="frame",
                   desc=os.path.basename(str(video)), disable=not progress, leave=False)
        batches = reader.iter_count(count, batch_size=16) if count else reader.iter_fps(fps, batch_size=16)
        for batch in _counted(batches, bar):
            if encodes:
                feature, token = model.encode_frames(batch.frames)  # (B, Ds), (B, P*P, Dv)
                kept += len(token)
                if kept <= SCAN_TOKEN_BUDGET:
                    tokens.append(token)
                else:
                    tokens.clear()
            else:
                feature = model.scene_features(batch.frames)  # (B, Ds)
            features.append(feature)
            indices.append(batch.indices)
            times.append(batch.times)
        bar.close()
    if not features:
        raise VideoError(video, "no frame could be sampled")
    return ScannedVideo(str(video), torch.cat(features), np.concatenate(indices), np.concatenate(times),
                        float(meta.duration), torch.cat(tokens) if tokens else None)


def _counted(batches: Iterable[FrameBatch], bar) -> Iterator[FrameBatch]:
    for batch in batches:
        yield batch
        bar.update(len(batch.times))


def encode_batches(model, batches: Iterable[FrameBatch], duration: float | None = None) -> EncodedVideo | None:
    """Encode every frame of ``batches`` once (None when there is none); ``duration`` defaults to the last frame's
    time plus half a sampling interval."""
    cls_parts, token_parts, index_parts, time_parts = [], [], [], []
    for batch in batches:
        cls, tokens = model.encode_frames(batch.frames)  # (B, Dv), (B, P*P, Dv)
        cls_parts.append(cls)
        token_parts.append(tokens)
        index_parts.append(batch.indices)
        time_parts.append(batch.times)
    if not cls_parts:
        return None
    times = np.concatenate(time_parts)
    if duration is None:
        duration = video_end(float(times[-1]), model.config.segmentation.fps)
    return EncodedVideo(torch.cat(cls_parts), torch.cat(token_parts), np.concatenate(index_parts), times,
                        float(duration))


def watch(model, source: str | os.PathLike | ScannedVideo | EncodedVideo | Iterable[FrameBatch], *,
          online: bool = False,
          state: BridgeState | None = None, name: str | None = None, progress: bool = False, segmenter=None,
          lag: int = DEFAULT_LAG, max_scene_seconds: float = DEFAULT_MAX_SCENE_SECONDS,
          duration: float | None = None, stop: threading.Event | None = None,
          recognise: bool | SceneNovelty = True) -> Iterator[SceneEvent]:
    """Watch a video into a scene memory: the one path every command, the app and the evaluation use.

    Args:
        model: a ``VideoLLM`` (with a vision encoder unless ``source`` is already encoded).
        source: a video file; a ``ScannedVideo`` (a file already scanned by ``scan_video``; offline only); an
            ``EncodedVideo`` (its frames already encoded, e.g. from a feature cache; offline only); or an iterable
            of ``FrameBatch`` sampled at the model's fps (``videollm.io.open_source``: files, webcams, network
            streams).
        online: False: the published offline SceneTiling rule over the whole video. True: online SceneTiling, each
            scene folded in as soon as its end is confirmed (flat memory and work per frame).
        state: a memory to continue (None starts empty).
        name: what ``state.extra["video"]`` records (default: the file path, or "<frames>" for batches).
        progress: a progress bar over frames on stderr (offline, while encoding a file).
        segmenter: online only: a ``scenetiling.StreamingSceneTiler`` (default: the model's alpha and ``lag``);
            with the model's segmentation mode "uniform", scenes are closed every ``uniform_len`` frames instead.
        lag: online only: sampled frames the default segmenter waits before judging a candidate cut (smaller:
            captions sooner after a cut; larger: the threshold statistics include more of what follows the cut).
        max_scene_seconds: online only: a scene still open after this long is closed anyway (keeps memory flat).
        duration: the source's length in seconds when known (default: the ``duration`` of a file source from
            ``open_source``); the last scene of a stream that runs to the end ends there, as offline.
        stop: online only: once set, no further frame is read, the source is closed (a webcam or network stream
            is released at once) and the open scene is closed at the last frame read.
        recognise: score each scene's tokens for whether the model recognises it (``videollm.ood``): True uses the
            model's calibration when its checkpoint ships one; False scores nothing (the evaluation: it measures
            what the model says, not what the product shows); or a ``SceneNovelty`` to use instead.

    Yields:
        A ``SceneEvent`` right after each scene's bridge step; ``event.state`` is the memory up to that scene, and
        ``state.extra`` holds the video's name, duration and sampling fps.

    Raises:
        VideoError: a file cannot be opened or yields no frame (at the first ``next``).
    """
    fps = model.config.segmentation.fps
    state = state if state is not None else model.bridge.init_state(keep_scenes=model.config.recall)
    detector = ood.for_model(model) if recognise is True else (recognise or None)
    is_file = isinstance(source, (str, os.PathLike))
    state.extra.update(video=name or (str(source) if is_file else "<frames>"), fps=fps)
    if online and is_file:
        from videollm.io import open_source

        source = open_source(source, fps=fps, batch_size=8)
    # A file played as a stream ends where the same file watched offline ends: at its duration.
    duration = duration if duration is not None else getattr(source, "duration", None)
    if online:
        if isinstance(source, (ScannedVideo, EncodedVideo)):
            raise ValueError("online watching reads frames, not a scanned or encoded video")
        return _online(model, source, state, duration, segmenter, lag, max_scene_seconds, stop, detector)
    return _offline(model, source, state, progress, duration, detector)


def _judge(detector: SceneNovelty | None, tokens: torch.Tensor, state: BridgeState, index: int
           ) -> tuple[float | None, bool | None]:
    """(novelty, recognised) of the scene whose (L, P*P, Dv) tokens were just stepped, kept in the memory."""
    if detector is None:
        return None, None
    novelty = detector.score(tokens)
    ood.record(state, index, novelty, detector.threshold)
    return novelty, detector.recognised(novelty)


def _offline(model, source, state: BridgeState, progress: bool, duration: float | None,
             detector: SceneNovelty | None) -> Iterator[SceneEvent]:
    if isinstance(source, (str, os.PathLike)):
        source = scan_video(model, source, progress)
    elif not isinstance(source, (ScannedVideo, EncodedVideo)):
        source = encode_batches(model, source, duration)
        if source is None:
            raise VideoError(state.extra["video"], "no frame could be sampled")
    features = source.cls if isinstance(source, EncodedVideo) else source.features
    if source.tokens is not None:  # every frame already encoded (a feature cache, or a short CLS scan)
        yield from _tile(model, source, features, lambda positions: source.tokens[positions], state, detector)
        return
    from videollm.io import SEQUENTIAL_BACKEND, open_video

    # The second pass: each scene's bridge frames are read back by index and encoded.
    with open_video(source.path, backend=SEQUENTIAL_BACKEND) as reader:
        yield from _tile(model, source, source.features,
                         lambda positions: model.frame_tokens(reader.read(source.indices[positions])), state,
                         detector)


def _tile(model, video: ScannedVideo | EncodedVideo, features: torch.Tensor, tokens_of, state: BridgeState,
          detector: SceneNovelty | None = None) -> Iterator[SceneEvent]:
    """Offline SceneTiling over ``features``, then one bridge step per scene on the tokens of its bridge frames
    (``tokens_of(positions)`` gives the (L, P*P, Dv) pooled tokens of those sample positions)."""
    times, indices = video.times, video.indices
    state.extra["duration"] = video.duration
    ends = segment_ends(features, model.config.segmentation)
    start = state.segments[-1].end_time if state.segments else 0.0
    first, scene_no = 0, state.num_segments
    for end in ends:
        t0 = time.perf_counter()
        positions = segment_frame_indices(first, end, model.config.bridge.max_frames_per_segment).numpy()
        segment = tokens_of(positions)  # (L, P*P, Dv)
        last = end + 1 == len(times)
        stop = video_end(float(times[end]), model.config.segmentation.fps, video.duration) if last \
            else _cut_time(times, end)
        model.bridge.step(segment.to(model.device), state, start_time=start, end_time=stop,
                          start_frame=int(indices[first]), end_frame=int(indices[end]))
        novelty, known = _judge(detector, segment, state, scene_no)
        yield SceneEvent(scene_no, start, stop, int(indices[first]), int(indices[end]), time.perf_counter() - t0,
                         state, confirmed=stop, novelty=novelty, recognised=known)
        start, first, scene_no = stop, end + 1, scene_no + 1


def build_memory(model, video: str | os.PathLike, progress: bool = False) -> BridgeState:
    """Watch a whole video file offline (``watch``) and return its memory.

    Args:
        model: a ``VideoLLM`` with a vision encoder.
        video: path of the video.
        progress: show a progress bar on stderr.

    Returns:
        The bridge state after the last scene; ``state.extra`` holds the video path, duration and sampling fps.
    """
    state = None
    for event in watch(model, video, progress=progress):
        state = event.state
    if state is None:
        raise VideoError(video, "no scene could be formed")
    return state


def _online(model, batches: Iterable[FrameBatch], state: BridgeState, duration: float | None, segmenter, lag: int,
            max_scene_seconds: float, stop: threading.Event | None, detector: SceneNovelty | None
            ) -> Iterator[SceneEvent]:
    import scenetiling
    from videollm.bridge import segment_frame_indices

    seg_cfg = model.config.segmentation
    uniform = seg_cfg.mode == "uniform"
    if segmenter is None and not uniform:
        segmenter = scenetiling.StreamingSceneTiler(alpha=seg_cfg.alpha, lag=lag, min_len=seg_cfg.min_len)
    max_frames = max(2, int(round(max_scene_seconds * seg_cfg.fps)))
    # Without CLS features the encoder runs only on each scene's bridge frames, when the scene closes.
    lazy = uniform or seg_cfg.feature == "histogram"
    # The current (unclosed) scene. Stream positions are consecutive, so position p sits at p - buf_first. buf_tok
    # holds each frame's pooled tokens (CLS features) or the frame resized to the encoder's input (lazy).
    buf_first = 0
    buf_idx: list[int] = []
    buf_time: list[float] = []
    buf_tok: list[torch.Tensor] = []
    pos = 0
    start_time = state.segments[-1].end_time if state.segments else 0.0
    scene_no = state.num_segments

    def close(k: int, end_time: float, t0: float, confirmed: float) -> SceneEvent:
        """Fold the first ``k`` buffered frames into the memory as one scene."""
        nonlocal start_time, scene_no, buf_first
        keep = segment_frame_indices(0, k - 1, model.config.bridge.max_frames_per_segment).tolist()
        # Lazy: frames still waiting as encoder input (3-d uint8) are encoded now; the rest are pooled tokens.
        waiting = [i for i in keep if buf_tok[i].dim() == 3 and buf_tok[i].dtype == torch.uint8]
        if waiting:
            for i, encoded in zip(waiting, model.frame_tokens(torch.stack([buf_tok[i] for i in waiting])),
                                  strict=True):
                buf_tok[i] = encoded
        tokens = torch.stack([buf_tok[i] for i in keep])  # (L, P*P, Dv)
        model.bridge.step(tokens.to(model.device), state, start_time=start_time, end_time=end_time,
                          start_frame=buf_idx[0], end_frame=buf_idx[k - 1])
        novelty, known = _judge(detector, tokens, state, scene_no)
        event = SceneEvent(scene_no, start_time, end_time, buf_idx[0], buf_idx[k - 1],
                           time.perf_counter() - t0, state, confirmed, novelty, known)
        del buf_idx[:k], buf_time[:k], buf_tok[:k]
        buf_first += k
        start_time, scene_no = end_time, scene_no + 1
        return event

    def midpoint(i: int) -> float:
        # The online rule confirms an end only after later frames arrived, so the next frame's time is normally
        # known; a uniform chunk closes on its own last frame.
        nxt = buf_time[i + 1] if i + 1 < len(buf_time) else buf_time[i] + 1.0 / seg_cfg.fps
        return 0.5 * (buf_time[i] + nxt)

    last_time = start_time
    stopped = False
    batches = iter(batches)
    while True:
        t_wait, cpu_wait = time.perf_counter(), time.process_time()
        batch = next(batches, None)
        if batch is None:
            break
        t0 = time.perf_counter()
        # Idle seconds while the source produced the batch: a paced source (webcam, real time) sleeps, decoding
        # does not (wall time minus the process's CPU time over all its threads).
        idle = (t0 - t_wait) - (time.process_time() - cpu_wait)
        if lazy and idle < EAGER_WAIT:
            cls, tokens = model.scene_features(batch.frames), model.encoder_input(batch.frames)  # (B, 3, S, S)
        elif lazy:  # the source is paced: encode now, while waiting for frames anyway, so the caption comes sooner
            cls, tokens = model.scene_features(batch.frames), model.frame_tokens(batch.frames)
        else:
            cls, tokens = model.encode_frames(batch.frames)  # (B, Dv), (B, P*P, Dv)
        for j in range(len(batch.times)):
            buf_idx.append(int(batch.indices[j]))
            buf_time.append(float(batch.times[j]))
            buf_tok.append(tokens[j])
            last_time = float(batch.times[j])
            if uniform:
                ends = [pos] if len(buf_idx) == seg_cfg.uniform_len else []
            else:
                ends = segmenter.push(cls[j])
            pos += 1
            for end in ends:
                i = end - buf_first
                if 0 <= i < len(buf_idx):  # a cut inside a scene already closed for length is moot
                    yield close(i + 1, midpoint(i), t0, last_time)
            if len(buf_idx) >= max_frames:
                yield close(len(buf_idx), midpoint(len(buf_idx) - 1), t0, last_time)
        if stop is not None and stop.is_set():
            stopped = True
            break
    release = getattr(batches, "close", None)
    if release is not None:
        release()  # a webcam or network stream is released at once
    if buf_idx:
        # The stream ended: judge the cuts still waiting, then close the final scene.
        final_ends = segmenter.flush() if segmenter is not None else []
        t0 = time.perf_counter()
        for end in final_ends:
            i = end - buf_first
            if 0 <= i < len(buf_idx) - 1:
                yield close(i + 1, midpoint(i), t0, last_time)
        # A stream stopped early ends at its last frame read, not at the file's duration.
        end_time = video_end(last_time, seg_cfg.fps, None if stopped else duration)
        state.extra["duration"] = end_time
        yield close(len(buf_idx), end_time, t0, last_time)


def save_memory(state: BridgeState, path: str | os.PathLike) -> None:
    """Persist a video memory (bridge state + ``state.extra``) to one safetensors file, atomically."""
    state.save(path)


def load_memory(path: str | os.PathLike, model=None) -> BridgeState:
    """Load a saved video memory; with ``model``, check it was made by a bridge of the same configuration."""
    state = BridgeState.load(path, device=model.device if model is not None else "cpu")
    if model is not None and state.fingerprint != model.config.bridge.fingerprint():
        raise ModelError(f"{path}: this memory was made by a different model configuration")
    return state


def is_memory_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is a saved video memory, judged by content (safetensors header format), not by name.

    A safetensors file starts with an 8-byte little-endian header length and a JSON header; a saved memory's
    header metadata names the bridge-state format. Reads only the header.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return False
            (size,) = struct.unpack("<Q", head)
            if not 2 <= size <= min(100_000_000, os.fstat(f.fileno()).st_size - 8):
                return False
            header = f.read(size)
    except OSError:
        return False
    if not header.startswith(b"{"):
        return False
    try:
        meta = json.loads(header).get("__metadata__") or {}
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False
    return meta.get("format") == _STATE_FORMAT
