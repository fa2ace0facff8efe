"""Training examples: (clip segments, chat messages) pairs from the synthetic world and from conversation JSON.

Every example is a pure function of (source seed, example index), so an epoch's order, a resumed run and a
re-run all see the same examples, and no example list is ever materialised.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from videollm import prompts
from videollm.errors import UsageError
from videollm.train.config import ConversationSourceConfig, WorldSourceConfig
from videollm.feature_cache import (
    Encoder,
    FeatureCache,
    encode_in_batches,
    video_features,
)

Message = dict[str, str]
ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


@dataclass
class Example:
    """One training example.

    Attributes:
        segments: the clip's segments, each (L_k, P*P, Dv) pooled tokens (L_k <= F).
        messages: the conversation; exactly one user message holds the ``<video>`` marker.
        words: attribute words of the scene the readout shows (world examples; targets of the alignment loss).
        memory_words: attribute words of every scene of the clip (targets of the memory-alignment loss).
        memory_only: the readout is the clip's final carried memory alone (the "across" task).
        step_words: per scene k of the clip, the attribute words of scenes 0..k (targets of the per-step memory
            loss: the memory carried after scene k should name everything shown so far).
    """

    segments: list[Tensor]
    messages: list[Message]
    words: list[str] = dataclasses.field(default_factory=list)
    memory_words: list[str] = dataclasses.field(default_factory=list)
    memory_only: bool = False
    step_words: list[list[str]] = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# Synthetic world
# ---------------------------------------------------------------------------------------------------------------


def world_config(source: WorldSourceConfig, fps: float):
    """The ``WorldConfig`` scenes of a world source are drawn from: rendered at the model's sampling fps, no fades
    (a pool scene must look the same whatever scene precedes it)."""
    from videollm.world import WorldConfig

    return WorldConfig(fps=fps, scene_seconds=source.scene_seconds, fade_prob=0.0, scenes=(1, 1))


def scene_key(seed: int, heldout: bool, index: int) -> str:
    return f"world-scene:{seed}:{int(heldout)}:{index}"


def needle_key(seed: int, index: int) -> str:
    return f"world-needle:{seed}:{index}"


def sample_pool_scene(seed: int, index: int, config, heldout: bool = False):
    """Pool scene ``index`` as a one-scene ``VideoSpec`` (independent of every other index)."""
    from videollm.world import VideoSpec, sample_scene

    rng = np.random.default_rng([int(seed), 7, int(heldout), int(index)])
    scene = dataclasses.replace(sample_scene(rng, config, heldout), transition="end")
    return VideoSpec(config.width, config.height, float(config.fps), (scene,), heldout)


def sample_pool_needle(seed: int, index: int, config):
    """Needle clip ``index`` of a pool (training split) as a one-scene ``VideoSpec``: 1 s, as the benchmark's."""
    from videollm.world import VideoSpec, needle_object_scene

    rng = np.random.default_rng([int(seed), 13, int(index)])
    scene = needle_object_scene(rng, config.fps, heldout=False, transition="end")
    return VideoSpec(config.width, config.height, float(config.fps), (scene,), False)


class WorldScenes:
    """The encoded scene pool of a world source.

    Args:
        source: the source config.
        cache: feature cache of the model's vision tower.
        fps: the model's sampling fps (scenes are rendered at it).
        max_frames: F, the frames per segment the bridge keeps (only those are encoded).
    """

    def __init__(self, source: WorldSourceConfig, cache: FeatureCache, fps: float, max_frames: int) -> None:
        self.source = source
        self.cache = cache
        self.config = world_config(source, fps)
        self.max_frames = max_frames
        self.keys = [scene_key(source.seed, False, i) for i in range(source.scenes)]
        self.keys += [needle_key(source.seed, i) for i in range(source.needles)]

    def spec(self, index: int):
        """Pool entry ``index`` as a one-scene ``VideoSpec``: the ordinary scenes, then the needle clips."""
        n = self.source.scenes
        if index < n:
            return sample_pool_scene(self.source.seed, index, self.config)
        return sample_pool_needle(self.source.seed, index - n, self.config)

    def missing(self) -> list[int]:
        return [i for i, key in enumerate(self.keys) if not self.cache.has(key)]

    def extract(self, encode: Encoder, batch_frames: int = 32, progress: bool = False) -> int:
        """Render and encode the pool scenes not cached yet; returns the number of frames encoded."""
        from videollm.bridge import segment_frame_indices
        from videollm.world import render_frames

        def items():
            for i in self.missing():
                spec = self.spec(i)
                keep = segment_frame_indices(0, spec.num_frames - 1, self.max_frames).numpy()
                frames = np.stack(list(render_frames(spec)))[keep]  # (L, H, W, 3)
                yield self.keys[i], frames, keep / spec.fps, {"spec": spec.to_dict()}

        todo = self.missing()
        if not todo:
            return 0
        # Scenes keep only F frames each, so holding every pending stack is small (500 scenes: ~300 MB of uint8);
        # encoder batches are packed across scenes.
        return encode_in_batches(encode, list(items()), self.cache, batch_frames, progress, desc="world scenes")

    def load(self) -> list[tuple[Tensor, object]]:
        """(tokens (L, P*P, Dv), one-scene VideoSpec) of every pool scene, in index order."""
        from videollm.world import VideoSpec

        out = []
        for key in self.keys:
            feats = self.cache.get(key)
            out.append((feats.tokens, VideoSpec.from_dict(feats.meta["spec"])))
        return out


class WorldExamples:
    """Examples composed from a loaded scene pool.

    Args:
        source: the source config.
        pool: ``WorldScenes.load()`` output.
    """

    def __init__(self, source: WorldSourceConfig, pool: list[tuple[Tensor, object]]) -> None:
        self.source = source
        self.pool = pool
        names = list(source.tasks)
        weights = np.array([source.tasks[n] for n in names], dtype=np.float64)
        self.task_names = names
        self.task_p = weights / weights.sum()

    def __len__(self) -> int:
        return max(1, round(self.source.examples * self.source.weight))

    def __getitem__(self, index: int) -> Example:
        from videollm.train.align import scene_words
        from videollm.world import VideoSpec, ground_truth, needle_question
        from videollm.world.truth import cross_scene_qa

        src = self.source
        rng = np.random.default_rng([int(src.seed), 11, int(index)])
        n = int(rng.integers(src.min_scenes, src.max_scenes + 1))
        picks = rng.choice(len(self.pool), size=n, replace=False)
        scenes = [self.pool[i][1].scenes[0] for i in picks]
        first = self.pool[picks[0]][1]
        scenes = [dataclasses.replace(s, transition="cut") for s in scenes[:-1]] + [scenes[-1]]
        spec = VideoSpec(first.width, first.height, first.fps, tuple(scenes), False)
        truth = ground_truth(spec)
        task = self.task_names[int(rng.choice(len(self.task_names), p=self.task_p))]
        qa = truth["qa"]
        order = [int(i) for i in rng.permutation(len(qa))]
        segments = [self.pool[i][0] for i in picks]
        # The words shown up to each scene; the last entry is every scene's words.
        steps = [list(dict.fromkeys(w for scene in scenes[: k + 1] for w in scene_words(scene)))
                 for k in range(len(scenes))]
        across = cross_scene_qa(spec) if task == "across" else []
        if across:
            # Answered from the final memory alone: no other turn, and the alignment targets are every scene's words.
            kinds = sorted({q["type"] for q in across})  # a type first, then one of its questions: types balanced
            kind = kinds[int(rng.integers(len(kinds)))]
            of_kind = [q for q in across if q["type"] == kind]
            pick = of_kind[int(rng.integers(len(of_kind)))]
            return Example(segments, conversation([(pick["question"], pick["answer"])]), steps[-1], steps[-1],
                           memory_only=True, step_words=steps)
        if task in ("caption", "across"):
            turns = [(prompts.CAPTION, truth["scenes"][-1]["caption"])]
        elif task == "summary":
            turns = [(prompts.SUMMARY, truth["caption"])]
        elif scenes[-1].tag == "needle":
            turns = [needle_question(scenes[-1])]
        else:
            turns = [(qa[order[0]]["question"], qa[order[0]]["answer"])]
            order = order[1:]
        turns += [(qa[i]["question"], qa[i]["answer"]) for i in order[: src.extra_qa_turns]]
        return Example(segments, conversation(turns), scene_words(scenes[-1]), steps[-1], step_words=steps)


def conversation(turns: Sequence[tuple[str, str]]) -> list[Message]:
    """Chat messages of (question, answer) turns, the video marker in front of the first question."""
    messages: list[Message] = []
    for k, (question, answer) in enumerate(turns):
        text = f"{prompts.VIDEO}\n{question}" if k == 0 else question
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
    return messages


# ---------------------------------------------------------------------------------------------------------------
# Conversation JSON (LLaVA-Instruct / VideoChat2-IT)
# ---------------------------------------------------------------------------------------------------------------


def read_conversations(path: str | os.PathLike) -> list[dict]:
    """Records of a LLaVA / VideoChat2-IT style file (a JSON list, or JSON lines).

    Returns:
        ``[{"video": str, "messages": [{"role", "content"}, ...]}]`` with roles mapped (human → user, gpt →
        assistant) and ``<image>`` markers kept (the processor accepts both markers).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such conversation file")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise UsageError(f"{path}: neither JSON nor JSON lines ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a list of conversation records")
    records = []
    for i, rec in enumerate(data):
        media = rec.get("video") or rec.get("image") if isinstance(rec, dict) else None
        turns = rec.get("conversations") if isinstance(rec, dict) else None
        if not isinstance(media, str) or not isinstance(turns, list) or not turns:
            raise UsageError(f"{path}: record {i} needs a 'video' (or 'image') path and a 'conversations' list")
        messages = []
        for turn in turns:
            role = ROLE_NAMES.get(str(turn.get("from", "")).lower())
            if role is None or not isinstance(turn.get("value"), str):
                raise UsageError(f"{path}: record {i} has a turn without a known 'from' and a 'value'")
            messages.append({"role": role, "content": turn["value"]})
        if not any("<video>" in m["content"] or "<image>" in m["content"] for m in messages):
            messages[0] = {**messages[0], "content": f"{prompts.VIDEO}\n{messages[0]['content']}"}
        records.append({"video": media, "messages": messages})
    return records


class ConversationExamples:
    """Examples of a conversation file; features come from the cache (``extract`` fills it).

    Args:
        source: the source config.
        cache: the feature cache.
        fps: the model's sampling fps.
        split: ``VideoLLM.split``: (cls (N, Dv), tokens (N, P*P, Dv)) -> (ends, segments).
    """

    def __init__(self, source: ConversationSourceConfig, cache: FeatureCache, fps: float,
                 split: Callable[[Tensor, Tensor], tuple[list[int], list[Tensor]]]) -> None:
        self.source = source
        self.cache = cache
        self.fps = fps
        self.split = split
        self.records = read_conversations(source.path)
        root = Path(source.video_root) if source.video_root else Path(source.path).resolve().parent
        self.paths = [str(root / r["video"]) for r in self.records]

    def __len__(self) -> int:
        return max(1, round(len(self.records) * self.source.weight))

    def extract(self, encode: Encoder, progress: bool = False) -> int:
        """Encode every video not cached yet; returns how many were encoded."""
        from tqdm import tqdm

        todo = [p for p in dict.fromkeys(self.paths) if not self.cache.has(f"file:{os.path.abspath(p)}")]
        for path in tqdm(todo, desc="videos", unit="video", disable=not progress):
            video_features(encode, self.cache, path, self.fps, self.source.num_frames)
        return len(todo)

    def __getitem__(self, index: int) -> Example:
        i = index % len(self.records)
        feats = self.cache.get(f"file:{os.path.abspath(self.paths[i])}")
        _, segments = self.split(feats.cls, feats.tokens)
        return Example(list(segments), list(self.records[i]["messages"]))


# ---------------------------------------------------------------------------------------------------------------
# Mixing
# ---------------------------------------------------------------------------------------------------------------


class MixedDataset(torch.utils.data.Dataset):
    """Sources concatenated, visited in a seeded order that is reshuffled every epoch.

    Args:
        sources: indexable sources with ``__len__``.
        seed: order seed.
        length: total examples to serve (several epochs when larger than the sources).
    """

    def __init__(self, sources: Sequence, seed: int, length: int) -> None:
        self.sources = list(sources)
        self.sizes = [len(s) for s in self.sources]
        self.offsets = np.cumsum([0, *self.sizes])
        self.epoch_size = int(self.offsets[-1])
        self.seed = seed
        self.length = length
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.length

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.seed, 13, epoch]).permutation(self.epoch_size)}
        return self._orders[epoch]

    def __getitem__(self, index: int) -> Example:
        epoch, pos = divmod(int(index), self.epoch_size)
        flat = int(self._order(epoch)[pos])
        k = int(np.searchsorted(self.offsets, flat, side="right") - 1)
        return self.sources[k][flat - int(self.offsets[k])]


def total_examples(epoch_size: int, epochs: float) -> int:
    return max(1, math.ceil(epoch_size * epochs))
