"""Training configuration: one JSON file (a data file, not code) per recipe.

A recipe names the model (a preset or a checkpoint directory, plus per-section overrides), its data sources, and the
optimisation schedule. Shipped recipes live in ``videollm/train/presets/`` (``embedded``: the recipe of the shipped
checkpoint; ``published``: the published VideoLLaMB schedule, docs/design.md §3).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videollm.configs import build, preset_names, read_json, read_preset
from videollm.errors import UsageError

SOURCE_KINDS = ("world", "conversations")
TASKS = ("caption", "summary", "qa", "across")
SCHEDULES = ("cosine", "constant")


@dataclass
class WorldSourceConfig:
    """Clips composed on the fly from a pool of cached synthetic-world scenes.

    Each scene of the pool is sampled once (seeded), rendered at the model's sampling fps, and only the frames the
    bridge keeps (at most ``max_frames_per_segment``, the published linspace rule) are encoded and cached. A training
    clip is 1..``max_scenes`` distinct pool scenes back to back; its ground truth (captions, QA) comes from
    ``videollm.world.ground_truth`` of the composed spec, and the bridge sees the true scene boundaries.

    Args:
        scenes: size of the scene pool (what is encoded once).
        examples: examples drawn per epoch.
        seed: pool and example seed.
        min_scenes, max_scenes: scenes per clip.
        scene_seconds: scene length range in seconds.
        tasks: relative weights of the first turn's task: "caption" (the last scene, prompt ``prompts.CAPTION``),
            "summary" (every scene, ``prompts.SUMMARY``), "qa" (a ground-truth question) and "across" (a question
            that spans scenes, ``world.truth.cross_scene_qa``, answered from the clip's final carried memory alone:
            the readout of ``ModelConfig.cross_reader`` "memory"; a clip with no such question is captioned).
        extra_qa_turns: further ground-truth questions appended as later turns of the same conversation (cheap:
            the visual tokens are paid once).
        weight: repeat factor of this source in an epoch (examples are multiplied by it).
        needles: object needle clips added to the pool (``world.needle_object_scene``: one large still object on
            the checkerboard that ordinary scenes never use, 1 s, training-split attributes). A clip whose last
            scene is one is captioned "a large red star on a checkerboard", and its "qa" turn asks the needle
            question ("what colour was the star on the checkerboard?"), so the model can name and read the clip
            the needle-in-a-haystack benchmark hides (with held-out objects) in long videos.
    """

    kind: str = "world"
    scenes: int = 400
    examples: int = 4000
    seed: int = 0
    min_scenes: int = 1
    max_scenes: int = 3
    scene_seconds: tuple[float, float] = (2.0, 6.0)
    tasks: dict[str, float] = field(default_factory=lambda: {"caption": 0.6, "summary": 0.1, "qa": 0.3})
    extra_qa_turns: int = 2
    weight: float = 1.0
    needles: int = 0

    def __post_init__(self) -> None:
        if self.needles < 0:
            raise UsageError(f"world source: needles must be >= 0, got {self.needles}")
        if self.scenes < self.max_scenes or not 1 <= self.min_scenes <= self.max_scenes:
            raise UsageError(f"world source: need 1 <= min_scenes <= max_scenes <= scenes, got "
                             f"{self.min_scenes}, {self.max_scenes}, {self.scenes}")
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown or not self.tasks or min(self.tasks.values()) < 0 or sum(self.tasks.values()) <= 0:
            raise UsageError(f"world source: tasks must map {', '.join(TASKS)} to non-negative weights")
        self.scene_seconds = (float(self.scene_seconds[0]), float(self.scene_seconds[1]))


@dataclass
class ConversationSourceConfig:
    """LLaVA-Instruct / VideoChat2-IT style JSON: ``[{"video": path, "conversations": [{"from": "human", ...}]}]``.

    Args:
        path: the JSON file (a list of records, or JSON lines).
        video_root: folder that relative ``video`` paths are under (default: the JSON file's folder).
        num_frames: sample this many frames uniformly per video (the published recipe: 16); None samples at the
            model's fps.
        weight: repeat factor of this source in an epoch.
    """

    path: str
    kind: str = "conversations"
    video_root: str | None = None
    num_frames: int | None = None
    weight: float = 1.0


@dataclass
class TrainConfig:
    """One training recipe.

    Args:
        model: preset name or checkpoint directory the run starts from.
        model_overrides: ``{"bridge": {...}, "lm": {...}, ...}`` fields changed in the model config.
        data: the sources (``WorldSourceConfig`` / ``ConversationSourceConfig`` as dicts with a "kind").
        output_dir: checkpoints, logs, the final model (``<output_dir>/final``) and the loss curve.
        cache_dir: cached vision features (default ``<output_dir>/features``).
        seed: seeds model init, data order and dropout (each step reseeds, so resumed runs are identical).
        epochs: passes over the sources' examples; ``steps`` overrides it when set.
        steps: optimiser steps (None: derived from ``epochs``).
        batch_size: examples per process per micro-batch.
        grad_accum: micro-batches per optimiser step.
        lr, weight_decay, warmup_ratio, schedule, max_grad_norm: AdamW and its schedule.
        train_lm: also fine-tune the LM (published recipe); otherwise only bridge + projector train.
        lm_weight: weight of the LM's answer cross-entropy; 0 skips the LM forward pass altogether (a fast
            alignment-only stage).
        align_weight: weight of the word-alignment loss (``videollm.train.align``) on world examples: projected
            visual tokens scored against the LM's embeddings of the shown scene's attribute words.
        memory_align_weight: weight of the same loss on the readout's memory tokens only, with the words of every
            scene of the clip as targets: a direct gradient for the memory to carry what earlier scenes showed
            (needs a readout with memory tokens, e.g. ``memory_last_segment``).
        step_align_weight: weight of the same loss at every recurrent step: the memory carried after scene k of a
            world clip, projected, against the words of scenes 0..k (any readout; a loss at every step, where the
            others see only the readout after the last scene).
        save_every: steps between checkpoints (the final model is always saved).
        keep_checkpoints: how many step checkpoints to keep on disk.
        max_minutes: stop (and save) once training has run this long; None for no limit.
        num_threads: torch CPU threads (None: torch's default).
        mixed_precision: accelerate's "no", "bf16" or "fp16" (on these CPUs fp32 is faster: "no").
        cpu: force CPU even where a GPU exists.
        extract_batch: frames encoded per vision forward during feature extraction.
    """

    data: list[Any]
    output_dir: str
    model: str = "embedded"
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache_dir: str | None = None
    seed: int = 0
    epochs: float = 1.0
    steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.03
    schedule: str = "cosine"
    max_grad_norm: float = 1.0
    train_lm: bool = False
    lm_weight: float = 1.0
    align_weight: float = 0.0
    memory_align_weight: float = 0.0
    step_align_weight: float = 0.0
    save_every: int = 50
    keep_checkpoints: int = 2
    max_minutes: float | None = None
    num_threads: int | None = None
    mixed_precision: str = "no"
    cpu: bool = False
    extract_batch: int = 32

    def __post_init__(self) -> None:
        sources = []
        for item in self.data:
            if isinstance(item, (WorldSourceConfig, ConversationSourceConfig)):
                sources.append(item)
                continue
            if not isinstance(item, dict) or item.get("kind") not in SOURCE_KINDS:
                raise UsageError(f"each data source needs a kind in {', '.join(SOURCE_KINDS)}")
            cls = WorldSourceConfig if item["kind"] == "world" else ConversationSourceConfig
            sources.append(build(cls, item, "data source"))
        if not sources:
            raise UsageError("a training config needs at least one data source")
        self.data = sources
        if self.schedule not in SCHEDULES:
            raise UsageError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.batch_size < 1 or self.grad_accum < 1 or self.save_every < 1 or self.keep_checkpoints < 1:
            raise UsageError("batch_size, grad_accum, save_every and keep_checkpoints must be >= 1")
        if self.steps is not None and self.steps < 1:
            raise UsageError(f"steps must be >= 1, got {self.steps}")
        if self.lm_weight < 0 or self.align_weight < 0 or self.lm_weight + self.align_weight <= 0:
            raise UsageError("lm_weight and align_weight must be >= 0 and not both 0")
        if self.memory_align_weight < 0 or self.step_align_weight < 0:
            raise UsageError("memory_align_weight and step_align_weight must be >= 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise UsageError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

    @property
    def features_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.output_dir) / "features"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return build(cls, data, "training config")

    @classmethod
    def load(cls, source: str | os.PathLike) -> TrainConfig:
        """Read a recipe: a JSON file path or the name of a shipped recipe (``embedded``, ``published``)."""
        if Path(source).is_file():
            return cls.from_dict(read_json(source, "training config"))
        if str(source) in recipe_names():
            return cls.from_dict(read_preset("videollm.train", str(source), "training"))
        raise UsageError(f"{source}: no such training config file or recipe ({', '.join(recipe_names())})")


def recipe_names() -> list[str]:
    """Names of the shipped training recipes."""
    return preset_names("videollm.train")
