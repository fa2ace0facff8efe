"""Configuration of the memory bridge (docs/design.md §3).

Named presets are JSON files in ``presets/`` next to this module: ``tiny`` (tests) and ``published`` (the sizes of the
published VideoLLaMB bridge: width 1024, 8 heads, FFN 4096, 32 memory tokens, 12x12 pooling, 8 frames per segment).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from videollm.configs import JsonConfig, read_preset
from videollm.errors import ModelError, UsageError

READOUT_MODES: tuple[str, ...] = ("last_segment", "all_memories", "memory", "all_memories_last_segment",
                                  "memory_last_segment")
"""What the bridge hands to the projector (and so to the LLM):

- ``last_segment``: the last segment's output tokens (published main model), ``min(L, F) * pool**2`` tokens.
- ``all_memories``: every segment's carried (retrieved) memory, concatenated (published NIAVH "Mem" model),
  ``num_segments * memory_tokens`` tokens.
- ``memory``: only the final carried memory, ``memory_tokens`` tokens (constant cost, whatever the video length).
- ``all_memories_last_segment``: ``all_memories`` followed by ``last_segment``.
- ``memory_last_segment``: ``memory`` followed by ``last_segment``: the current scene in detail plus a fixed-size
  summary of everything before it (the final memory has attended over the whole cache), so the LLM's input has the
  same length at any video length, and earlier scenes reach it only through the memory.
"""

POSITION_EMBEDDINGS: tuple[str, ...] = ("none", "learned")
MEMORY_INITS: tuple[str, ...] = ("zeros", "normal")


@dataclass
class BridgeConfig(JsonConfig):
    """Sizes and switches of the memory bridge.

    Args:
        vision_dim: width Dv of the vision features the bridge receives (LanguageBind ViT-L: 1024).
        width: bridge hidden width W. When it differs from ``vision_dim`` a Linear maps the features to W; when equal
            (published) the features enter unchanged.
        layers: number of BERT-style bridge layers (published 1). 0: no bridge layer, a segment's tokens pass
            unchanged to the readout (a vision-language backbone's connector output, ``videollm.official.vlm``).
        heads: self-attention heads of a bridge layer (published 8).
        ffn: hidden size of the bridge layer's feed-forward block (published 4096).
        dropout: dropout on attention probabilities and on each residual branch (published 0.1).
        ln_eps: LayerNorm epsilon (published 1e-12).
        memory_tokens: number M of memory tokens (published 32).
        pool: each frame's patch grid is average-pooled to ``pool x pool`` tokens (published 12).
        max_frames_per_segment: F, longer segments are subsampled to F evenly spaced frames (published 8).
        retrieval: whether the memory attends over the cache of past memories after each segment.
        retrieval_heads: heads of that cross-attention (published 8).
        readout: one of ``READOUT_MODES``.
        use_memory: False is the no-memory ablation: every segment starts from the initial memory and retrieval only
            sees the current segment's memory (same code path, nothing carried between segments).
        position_embedding: "none" (published: the bridge sees tokens without positions) or "learned" (a learned
            frame-slot embedding plus a learned spatial embedding, added to the segment tokens).
        memory_init: "zeros" (published) or "normal" (N(0, 0.02)). With zeros all M memory tokens start equal, and
            the bridge treats equal memory tokens identically, so they stay equal unless something downstream
            (e.g. the all_memories readout seen by the LLM at different positions) pulls them apart; "normal" breaks
            that symmetry from the start.
        temporal_diff: False (published) or True: each frame's tokens also carry what changed since the previous
            frame of the segment (the feature difference, zero for the first frame) through their own Linear, added
            to the input projection. A single bridge layer barely learns motion from the frames alone (a motion
            probe on cached DINOv2 tokens: 0.34 held-out top-k accuracy without, 0.64 with; docs/experiments.md).
    """

    _label: ClassVar[str] = "bridge config"
    _error: ClassVar[type[ModelError]] = ModelError

    vision_dim: int
    width: int = 1024
    layers: int = 1
    heads: int = 8
    ffn: int = 4096
    dropout: float = 0.1
    ln_eps: float = 1e-12
    memory_tokens: int = 32
    pool: int = 12
    max_frames_per_segment: int = 8
    retrieval: bool = True
    retrieval_heads: int = 8
    readout: str = "last_segment"
    use_memory: bool = True
    position_embedding: str = "none"
    memory_init: str = "zeros"
    temporal_diff: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.layers, bool) or not isinstance(self.layers, int) or self.layers < 0:
            raise ModelError(f"bridge config: layers must be a non-negative integer, got {self.layers!r}")
        for name in ("vision_dim", "width", "heads", "ffn", "memory_tokens", "pool",
                     "max_frames_per_segment", "retrieval_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"bridge config: {name} must be a positive integer, got {value!r}")
        if self.width % self.heads:
            raise ModelError(f"bridge config: width {self.width} is not divisible by heads {self.heads}")
        if self.width % self.retrieval_heads:
            raise ModelError(
                f"bridge config: width {self.width} is not divisible by retrieval_heads {self.retrieval_heads}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ModelError(f"bridge config: dropout must be in [0, 1), got {self.dropout!r}")
        if not float(self.ln_eps) > 0.0:
            raise ModelError(f"bridge config: ln_eps must be > 0, got {self.ln_eps!r}")
        if self.readout not in READOUT_MODES:
            raise ModelError(f"bridge config: readout must be one of {', '.join(READOUT_MODES)}, got {self.readout!r}")
        if self.position_embedding not in POSITION_EMBEDDINGS:
            raise ModelError(f"bridge config: position_embedding must be one of {', '.join(POSITION_EMBEDDINGS)}, "
                             f"got {self.position_embedding!r}")
        if self.memory_init not in MEMORY_INITS:
            raise ModelError(f"bridge config: memory_init must be one of {', '.join(MEMORY_INITS)}, "
                             f"got {self.memory_init!r}")
        self.dropout = float(self.dropout)
        self.ln_eps = float(self.ln_eps)
        self.retrieval = bool(self.retrieval)
        self.use_memory = bool(self.use_memory)
        self.temporal_diff = bool(self.temporal_diff)

    @property
    def tokens_per_frame(self) -> int:
        """T = pool * pool tokens each frame contributes."""
        return self.pool * self.pool

    @property
    def readout_uses_memories(self) -> bool:
        """Whether the readout needs every segment's carried memory (so the streaming state must keep them)."""
        return self.readout in ("all_memories", "all_memories_last_segment")

    @property
    def keeps_memories(self) -> bool:
        """Whether a streaming state keeps every segment's carried memory (to read out, or to recall the readout as
        it was after an earlier segment)."""
        return self.readout_uses_memories or self.readout_uses_final_memory

    @property
    def readout_uses_final_memory(self) -> bool:
        """Whether the readout includes the final carried memory."""
        return self.readout in ("memory", "memory_last_segment")

    @property
    def readout_uses_last_segment(self) -> bool:
        """Whether the readout includes the last segment's tokens."""
        return self.readout in ("last_segment", "all_memories_last_segment", "memory_last_segment")

    def num_memory_readout_tokens(self, num_segments: int) -> int:
        """How many of a clip's readout tokens come from memories; they lead the readout (memories come first)."""
        count = num_segments * self.memory_tokens if self.readout_uses_memories else 0
        return count + (self.memory_tokens if self.readout_uses_final_memory else 0)

    def num_readout_tokens(self, num_segments: int, segment_lengths: Sequence[int] | None = None) -> int:
        """How many tokens the readout of a clip has (the processor's placeholder count).

        Args:
            num_segments: S, number of segments of the clip (>= 1).
            segment_lengths: frames per segment before subsampling; only the last one matters, and only for the
                readouts that include the last segment.

        Returns:
            R for this config's readout mode.
        """
        if num_segments < 1:
            raise UsageError(f"a clip has at least one segment, got num_segments={num_segments}")
        count = self.num_memory_readout_tokens(num_segments)
        if self.readout_uses_last_segment:
            if not segment_lengths or segment_lengths[-1] < 1:
                raise UsageError(f"readout {self.readout!r} needs the frame count of the last segment")
            count += min(int(segment_lengths[-1]), self.max_frames_per_segment) * self.tokens_per_frame
        return count

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> BridgeConfig:
        """Load a named preset (``tiny`` or ``published``) and apply keyword overrides.

        Args:
            name: preset file stem in ``videollm/bridge/presets/``.
            **overrides: fields to change, e.g. ``vision_dim=384``.

        Returns:
            The validated config.
        """
        data = read_preset("videollm.bridge", name, "bridge", ModelError)
        data.update(overrides)
        return cls.from_dict(data)

    def fingerprint(self) -> str:
        """Short stable hash of the fields that shape the memory, stored with saved bridge states.

        ``dropout`` is left out: it does not change what an eval-mode bridge computes, so a state stays usable
        when only the training dropout changed.
        """
        fields = self.to_dict()
        fields.pop("dropout")
        blob = json.dumps(fields, sort_keys=True).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]
