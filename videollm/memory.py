"""Video memory: watching a video (offline or as a stream) into a ``BridgeState``, and persisting it.

``build_memory`` reads a whole file: frames are decoded and encoded batch by batch, SceneTiling runs over all CLS
features (the published offline rule), then the bridge steps once per scene. ``watch`` is the streaming path:
each frame is encoded once, the online segmenter confirms scene ends as they happen, the bridge steps once per scene
and the caller gets a ``SceneEvent`` right away. Its work and memory per frame do not grow with the stream: only the
current scene's pooled tokens are buffered.

A saved memory (``save_memory``) is one safetensors file: the bridge state (memory, cache, segment table) plus the
video's facts and captions in the header, so later questions need no decoding and no vision compute.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from videollm.bridge import BridgeState
from videollm.errors import ModelError, VideoError
from videollm.io import FrameBatch


@dataclass
class SceneEvent:
    """One scene closed by the segmenter and folded into the memory.

    Attributes:
        index: scene number from 0.
        start, end: seconds in the source.
        start_frame, end_frame: source frame indices (inclusive).
        latency: seconds from the moment the frame that confirmed the scene end was decoded to this event.
        state: the bridge state after this scene (shared, updated in place by later scenes).
    """

    index: int
    start: float
    end: float
    start_frame: int
    end_frame: int
    latency: float
    state: BridgeState


def _cut_time(times: np.ndarray, end: int) -> float:
    return float(0.5 * (times[end] + times[end + 1])) if end + 1 < len(times) else float(times[end])


def build_memory(model, video: str | os.PathLike, progress: bool = False) -> BridgeState:
    """Watch a whole video file offline and return its memory.

    Args:
        model: a ``VideoLLM`` with a vision encoder.
        video: path of the video.
        progress: show a progress bar on stderr.

    Returns:
        The bridge state after the last scene; ``state.extra`` holds the video path, duration, sampling fps
        and the scene spans in seconds.
    """
    from tqdm import tqdm

    from videollm.io import open_video

    cfg = model.config.segmentation
    cls_parts, token_parts, index_parts, time_parts = [], [], [], []
    with open_video(video) as reader:
        meta = reader.meta
        bar = tqdm(total=max(1, int(meta.duration * min(cfg.fps, meta.fps)) + 1), unit="frame",
                   desc=os.path.basename(str(video)), disable=not progress, leave=False)
        for batch in reader.iter_fps(cfg.fps, batch_size=16):
            cls, tokens = model.encode_frames(batch.frames)  # (B, Dv), (B, P*P, Dv)
            cls_parts.append(cls)
            token_parts.append(tokens)
            index_parts.append(batch.indices)
            time_parts.append(batch.times)
            bar.update(len(batch.times))
        bar.close()
    if not cls_parts:
        raise VideoError(video, "no frame could be sampled")
    cls, tokens = torch.cat(cls_parts), torch.cat(token_parts)
    indices, times = np.concatenate(index_parts), np.concatenate(time_parts)
    ends, segments = model.split(cls, tokens)
    state = model.bridge.init_state()
    start, first = 0.0, 0
    for end, segment in zip(ends, segments):
        stop = _cut_time(times, end) if end + 1 < len(times) else max(float(meta.duration), float(times[end]))
        state = model.bridge.step(segment.to(model.device), state, start_time=start, end_time=stop,
                                  start_frame=int(indices[first]), end_frame=int(indices[end]))
        start, first = stop, end + 1
    state.extra.update(video=str(video), duration=float(meta.duration), fps=cfg.fps)
    return state


def watch(model, batches: Iterable[FrameBatch], state: BridgeState | None = None,
          segmenter=None) -> Iterator[SceneEvent]:
    """Streaming path: encode each frame once, close scenes online, step the bridge once per scene.

    Args:
        model: a ``VideoLLM`` with a vision encoder.
        batches: decoded frames in stream order (``open_source`` or ``VideoReader.iter_fps``).
        state: a memory to continue (None starts empty).
        segmenter: a ``scenetiling.StreamingSceneTiler`` (default: one with the model's alpha); with the
            model's segmentation mode "uniform", scenes are closed every ``uniform_len`` frames instead.

    Yields:
        A ``SceneEvent`` per closed scene, the last one when the stream ends.
    """
    import scenetiling

    seg_cfg = model.config.segmentation
    uniform = seg_cfg.mode == "uniform"
    if segmenter is None and not uniform:
        segmenter = scenetiling.StreamingSceneTiler(alpha=seg_cfg.alpha)
    state = state if state is not None else model.bridge.init_state()
    # Buffer of the current (unclosed) scene: stream position → (source index, time, pooled tokens).
    buf_pos: list[int] = []
    buf_idx: list[int] = []
    buf_time: list[float] = []
    buf_tok: list[torch.Tensor] = []
    pos = 0
    start_time = state.segments[-1].end_time if state.segments else 0.0
    scene_no = state.num_segments

    def close(end_pos: int, end_time: float, t0: float) -> SceneEvent:
        nonlocal start_time, scene_no
        k = buf_pos.index(end_pos) + 1
        tokens = torch.stack(buf_tok[:k])  # (L, P*P, Dv)
        from videollm.bridge import segment_frame_indices

        keep = segment_frame_indices(0, k - 1, model.config.bridge.max_frames_per_segment)
        model.bridge.step(tokens[keep].to(model.device), state, start_time=start_time, end_time=end_time,
                          start_frame=buf_idx[0], end_frame=buf_idx[k - 1])
        event = SceneEvent(scene_no, start_time, end_time, buf_idx[0], buf_idx[k - 1],
                           time.perf_counter() - t0, state)
        del buf_pos[:k], buf_idx[:k], buf_time[:k], buf_tok[:k]
        start_time, scene_no = end_time, scene_no + 1
        return event

    last_time = start_time
    for batch in batches:
        t0 = time.perf_counter()
        cls, tokens = model.encode_frames(batch.frames)
        for j in range(len(batch.times)):
            buf_pos.append(pos)
            buf_idx.append(int(batch.indices[j]))
            buf_time.append(float(batch.times[j]))
            buf_tok.append(tokens[j])
            last_time = float(batch.times[j])
            if uniform:
                ends = [pos] if len(buf_pos) == seg_cfg.uniform_len else []
            else:
                ends = segmenter.push(cls[j])
            pos += 1
            for end in ends:
                i = buf_pos.index(end)
                # The online rule confirms an end only after later frames arrived, so the next frame's time is
                # normally known; a uniform chunk closes on its own last frame.
                nxt = buf_time[i + 1] if i + 1 < len(buf_time) else buf_time[i] + 1.0 / seg_cfg.fps
                yield close(end, 0.5 * (buf_time[i] + nxt), t0)
    if buf_pos:
        # The stream ended: judge the cuts still waiting, then close the final scene at the last frame.
        final_ends = segmenter.flush() if segmenter is not None else []
        t0 = time.perf_counter()
        for end in [e for e in final_ends if e in buf_pos and e != buf_pos[-1]]:
            i = buf_pos.index(end)
            yield close(end, 0.5 * (buf_time[i] + buf_time[i + 1]), t0)
        yield close(buf_pos[-1], last_time + 0.5 / seg_cfg.fps, t0)


def save_memory(state: BridgeState, path: str | os.PathLike) -> None:
    """Persist a video memory (bridge state + ``state.extra``) to one safetensors file, atomically."""
    state.save(path)


def load_memory(path: str | os.PathLike, model=None) -> BridgeState:
    """Load a saved video memory; with ``model``, check it was made by a bridge of the same configuration."""
    state = BridgeState.load(path, device=model.device if model is not None else "cpu")
    if model is not None and state.fingerprint != model.config.bridge.fingerprint():
        raise ModelError(f"{path}: this memory was made by a different model configuration")
    return state
