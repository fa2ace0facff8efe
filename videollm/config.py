"""The model configuration: one dataclass per component, composed, serialisable to ``config.json``.

Named presets are JSON files in ``videollm/presets/`` (``tiny``, ``embedded``, ``videollamb-7b``), not code.
``resolve_model`` is the one place that turns what a user names with ``--model`` into a checkpoint directory or a
preset.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videollm.assets import CONFIG_NAME, preset_names, resolve_model  # noqa: F401  (re-exported)
from videollm.bridge import BridgeConfig
from videollm.configs import check_keys, read_json, read_preset
from videollm.errors import ModelError
from videollm.lm import LMConfig
from videollm.projector import ProjectorConfig
from videollm.segmentation import SegmentationConfig
from videollm.vision import VisionConfig


#: What answers questions that span scenes (``ModelConfig.cross_reader``).
CROSS_READERS = ("timeline", "memory")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model: vision tower, segmentation, bridge, projector, LM.

    ``projector.in_dim`` must equal ``bridge.width``; ``projector.out_dim`` must equal the LM's hidden size (checked
    when the LM is loaded, since only the LM's own config knows it). ``recall``: answer questions about a watched
    video from the scene they are about (``videollm.recall``) instead of always from the readout after the last one.
    ``recall_captions``: recall also matches a question's words against each scene's caption (generated once per
    scene when the memory has none, and kept in it), which binds words about one object together.
    ``recall_words``: the words the bridge's tokens were aligned to in training (the word-alignment vocabulary);
    recall scores a question's words among them (none: recall matches captions and scene numbers only).
    ``cross_reader``: what answers a question that spans scenes (``videollm.across``): "timeline" reads the scene
    captions in order; "memory" lets the LM read the final carried memory alone (``VideoLLM.project_memory``; a
    model trained with the "across" task).
    """

    vision: VisionConfig
    bridge: BridgeConfig
    projector: ProjectorConfig
    lm: LMConfig
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    name: str = "custom"
    recall: bool = True
    recall_captions: bool = True
    recall_words: tuple[str, ...] = ()
    cross_reader: str = "timeline"
    directory: Path | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key in ("recall", "recall_captions"):
            if not isinstance(getattr(self, key), bool):
                raise ModelError(f"model config: {key} must be true or false, got {getattr(self, key)!r}")
        if self.cross_reader not in CROSS_READERS:
            raise ModelError(f"model config: cross_reader must be one of {', '.join(CROSS_READERS)}, got "
                             f"{self.cross_reader!r}")
        if not all(isinstance(w, str) and w for w in self.recall_words):
            raise ModelError("model config: recall_words must be a list of words")
        self.recall_words = tuple(self.recall_words)
        if self.projector.in_dim != self.bridge.width:
            raise ModelError(f"projector in_dim {self.projector.in_dim} != bridge width {self.bridge.width}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "vision": self.vision.to_dict(),
            "segmentation": self.segmentation.to_dict(),
            "bridge": self.bridge.to_dict(),
            "projector": self.projector.to_dict(),
            "lm": self.lm.to_dict(),
            "recall": self.recall,
            "recall_captions": self.recall_captions,
            "recall_words": list(self.recall_words),
            "cross_reader": self.cross_reader,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        check_keys(cls, data, "model config", ModelError)
        try:
            return cls(
                name=data.get("name", "custom"),
                vision=VisionConfig.from_dict(data["vision"]),
                segmentation=SegmentationConfig.from_dict(data.get("segmentation", {})),
                bridge=BridgeConfig.from_dict(data["bridge"]),
                projector=ProjectorConfig.from_dict(data["projector"]),
                lm=LMConfig.from_dict(data["lm"]),
                recall=data.get("recall", True),
                recall_captions=data.get("recall_captions", True),
                recall_words=tuple(data.get("recall_words", ())),
                cross_reader=data.get("cross_reader", "timeline"),
            )
        except KeyError as err:
            raise ModelError(f"model config misses the section {err.args[0]!r}") from None

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` into ``directory`` (created if needed); returns its path."""
        path = Path(directory) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelConfig:
        """Read a ``config.json`` file, or the one inside a checkpoint directory."""
        path = Path(path)
        from videollm.official import reader_for

        reader = reader_for(path) if path.is_dir() else None
        if reader is not None:  # a VideoLLaMB release or a vision-language model, read in its own layout
            return reader.model_config(path)
        config = cls.from_dict(read_json(path / CONFIG_NAME if path.is_dir() else path, "model config", ModelError))
        config.directory = path if path.is_dir() else path.parent
        return config

    @classmethod
    def preset(cls, name: str) -> ModelConfig:
        """A named preset from ``videollm/presets/<name>.json``."""
        return cls.from_dict(read_preset("videollm", name, "model"))


def load_config(spec: str | os.PathLike) -> ModelConfig:
    """The ``ModelConfig`` of a ``--model`` spec (see ``resolve_model``)."""
    source = resolve_model(spec)
    return ModelConfig.load(source) if isinstance(source, Path) else ModelConfig.preset(source)
