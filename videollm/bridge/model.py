"""The recurrent memory bridge (docs/design.md §3, §4): parallel ``forward`` for training, ``step`` for streaming.

Per segment (RMT-encoder style, read and write at the same positions):

1. ``h = [memory; segment tokens]`` goes through the BERT-style bridge layer(s); the memory positions of the output
   are the updated memory, the other positions the segment's output tokens.
2. The updated memory is appended to the memory cache.
3. Retrieval: the updated memory attends over the whole cache (multi-head cross-attention, residual, LayerNorm);
   the result is the memory carried into the next segment.

``forward`` and ``step`` run the same blocks in the same order, so stepping segment by segment reproduces
``forward`` (to float rounding) in eval mode.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from videollm.bridge.config import BridgeConfig
from videollm.bridge.layers import AttentionBlock, BridgeLayer
from videollm.bridge.segments import pad_segments, segment_frame_indices
from videollm.bridge.state import BridgeState, RowBuffer, SegmentRecord
from videollm.errors import ModelError, UsageError

CONFIG_NAME = "bridge_config.json"
WEIGHTS_NAME = "bridge.safetensors"


@dataclass
class BridgeOutput:
    """What ``MemoryBridge.forward`` returns for a batch of B clips.

    Attributes:
        readout: (B, R, W) readout tokens, left-aligned; R is the longest readout in the batch, shorter ones are
            zero-padded at the end. ``readout[readout_mask]`` packs them clip after clip (the order in which the
            model fills placeholder tokens).
        readout_mask: (B, R) bool, True on real readout tokens.
        memories: (B, S, M, W) memory carried out of each segment (after retrieval); entries of padded segments
            repeat the clip's last real one.
        memory: (B, M, W) final carried memory of each clip.
        num_segments: (B,) int64 number of real segments of each clip.
    """

    readout: Tensor
    readout_mask: Tensor
    memories: Tensor
    memory: Tensor
    num_segments: Tensor


class MemoryBridge(nn.Module):
    """Recurrent memory bridge between the vision encoder and the projector.

    Args:
        config: sizes and switches (``BridgeConfig``).
        device: where to create the parameters.
        dtype: parameter dtype (keep fp32 and use ``torch.autocast`` for bf16 compute).
    """

    def __init__(self, config: BridgeConfig, *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        c = config
        self.input_proj: nn.Module = (
            nn.Linear(c.vision_dim, c.width, **factory) if c.vision_dim != c.width else nn.Identity())
        self.diff_proj = nn.Linear(c.vision_dim, c.width, **factory) if c.temporal_diff else None
        self.initial_memory = nn.Parameter(torch.zeros(c.memory_tokens, c.width, **factory))
        if c.position_embedding == "learned":
            self.frame_embedding = nn.Parameter(torch.zeros(c.max_frames_per_segment, c.width, **factory))
            self.spatial_embedding = nn.Parameter(torch.zeros(c.tokens_per_frame, c.width, **factory))
        else:
            self.frame_embedding = None
            self.spatial_embedding = None
        self.layers = nn.ModuleList(
            BridgeLayer(c.width, c.heads, c.ffn, c.dropout, c.ln_eps, **factory) for _ in range(c.layers))
        self.retriever = (
            AttentionBlock(c.width, c.retrieval_heads, c.dropout, c.ln_eps, **factory) if c.retrieval else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT-style init: Linear weights N(0, 0.02), biases 0, LayerNorm (1, 0); memory per ``memory_init``."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            if self.config.memory_init == "normal":
                nn.init.normal_(self.initial_memory, std=0.02)
            else:
                self.initial_memory.zero_()
            for emb in (self.frame_embedding, self.spatial_embedding):
                if emb is not None:
                    nn.init.normal_(emb, std=0.02)

    # ------------------------------------------------------------------ shared pieces

    def _embed(self, tokens: Tensor) -> Tensor:
        """(..., L, T, Dv) vision tokens -> (..., L, T, W) bridge tokens (input projection + optional positions)."""
        # The residual stream stays in the parameter dtype (autocast would leave the Linear's output in bf16);
        # autocast only decides the matmul dtype.
        dtype = self.initial_memory.dtype
        tokens = tokens.to(dtype)
        x = self.input_proj(tokens).to(dtype)
        if self.diff_proj is not None:
            # Backward difference along the frame axis, zero for a segment's first frame. Real frames are a prefix
            # of the padded layout, so a real frame never takes its difference against padding.
            diff = torch.cat([torch.zeros_like(tokens[..., :1, :, :]), tokens[..., 1:, :, :] - tokens[..., :-1, :, :]],
                             dim=-3)
            x = x + self.diff_proj(diff).to(dtype)
        if self.frame_embedding is not None:
            frames = tokens.shape[-3]
            x = x + self.frame_embedding[:frames, None, :] + self.spatial_embedding  # (L, T, W) broadcast
        return x

    def _encode(self, memory: Tensor, tokens: Tensor, key_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Bridge layers over [memory; tokens]: (B, M, W), (B, N, W) -> updated memory (B, M, W), tokens (B, N, W)."""
        h = torch.cat([memory, tokens], dim=1)  # (B, M+N, W)
        for layer in self.layers:
            h = layer(h, key_mask)
        m = self.config.memory_tokens
        return h[:, :m], h[:, m:]

    def _check_tokens(self, tokens: Tensor) -> None:
        c = self.config
        if tokens.shape[-2:] != (c.tokens_per_frame, c.vision_dim):
            raise UsageError(
                f"bridge expects frames of ({c.tokens_per_frame}, {c.vision_dim}) tokens (pool {c.pool}, vision_dim "
                f"{c.vision_dim}), got {tuple(tokens.shape[-2:])}")

    # ------------------------------------------------------------------ parallel (training) path

    def forward(self, segments: Sequence[Tensor] | Tensor, frame_mask: Tensor | None = None,
                memory_only: Tensor | None = None) -> BridgeOutput:
        """Run every segment of a batch of clips (the training path).

        Args:
            segments: either one clip as a list of S tensors (L_k, T, Dv) (segments longer than F are subsampled),
                or the padded batch layout (B, S, L, T, Dv) with L <= F (see ``videollm.bridge.segments``;
                ``pad_segments`` builds it from lists of clips).
            frame_mask: (B, S, L) bool for the padded layout (True on real frames, real frames and segments as
                prefixes); None means every slot is real. Must be None for the list form.
            memory_only: (B,) bool; where True that clip's readout is its final carried memory alone (M tokens,
                what ``ModelConfig.cross_reader`` "memory" reads for questions that span scenes) instead of the
                configured readout. None: every clip gets the configured readout.

        Returns:
            ``BridgeOutput`` with (B, R, W) readout tokens and mask, per-segment and final memories.
        """
        c = self.config
        if isinstance(segments, Tensor):
            tokens = segments
            if tokens.ndim != 5:
                raise UsageError(f"bridge input must be (B, S, L, T, D), got shape {tuple(tokens.shape)}")
            if frame_mask is None:
                frame_mask = torch.ones(tokens.shape[:3], dtype=torch.bool, device=tokens.device)
        else:
            if frame_mask is not None:
                raise UsageError("frame_mask is only for the padded (B, S, L, T, D) input")
            tokens, frame_mask = pad_segments([list(segments)], c.max_frames_per_segment)
        self._check_tokens(tokens)
        b, s, length, t, _ = tokens.shape
        _check_mask(frame_mask, (b, s, length), c.max_frames_per_segment)
        m, w = c.memory_tokens, c.width

        x = self._embed(tokens).reshape(b, s, length * t, w)  # (B, S, N, W)
        token_mask = frame_mask.repeat_interleave(t, dim=2)  # (B, S, N)
        segment_valid = frame_mask[:, :, 0]  # (B, S)
        # One host sync here instead of one per segment: skip masking entirely when nothing is padded.
        padded = not bool(frame_mask.all())
        memory_mask = torch.ones(b, m, dtype=torch.bool, device=tokens.device)

        initial = self.initial_memory.unsqueeze(0).expand(b, m, w)  # (B, M, W)
        memory = initial
        keys: list[Tensor] = []
        values: list[Tensor] = []
        carried: list[Tensor] = []
        last_tokens = x.new_zeros(b, length * t, w)  # (B, N, W)
        last_mask = torch.zeros(b, length * t, dtype=torch.bool, device=tokens.device)
        for k in range(s):
            key_mask = torch.cat([memory_mask, token_mask[:, k]], dim=1) if padded else None  # (B, M+N)
            updated, out = self._encode(memory if c.use_memory else initial, x[:, k], key_mask)
            retrieved = self._retrieve_parallel(updated, keys, values)
            valid = segment_valid[:, k, None, None]  # (B, 1, 1)
            memory = torch.where(valid, retrieved, memory)
            carried.append(memory)
            last_tokens = torch.where(valid, out, last_tokens)
            last_mask = torch.where(segment_valid[:, k, None], token_mask[:, k], last_mask)

        memories = torch.stack(carried, dim=1)  # (B, S, M, W)
        parts: list[Tensor] = []
        masks: list[Tensor] = []
        if c.readout_uses_memories:
            parts.append(memories.reshape(b, s * m, w))
            masks.append(segment_valid.repeat_interleave(m, dim=1))
        if c.readout_uses_final_memory:
            parts.append(memory)
            masks.append(memory_mask)
        if c.readout_uses_last_segment:
            parts.append(last_tokens)
            masks.append(last_mask)
        if memory_only is not None:
            alone = memory_only.to(device=tokens.device, dtype=torch.bool)[:, None]  # (B, 1)
            masks = [mask & ~alone for mask in masks]
            parts.insert(0, memory)
            masks.insert(0, memory_mask & alone)
        readout, readout_mask = _left_align(torch.cat(parts, dim=1), torch.cat(masks, dim=1))
        return BridgeOutput(readout=readout, readout_mask=readout_mask, memories=memories, memory=memory,
                            num_segments=segment_valid.sum(dim=1))

    def _retrieve_parallel(self, updated: Tensor, keys: list[Tensor], values: list[Tensor]) -> Tensor:
        """Retrieval in ``forward``: append the updated memory's keys/values, attend over all of them."""
        if self.retriever is None:
            return updated
        k, v = self.retriever.project_kv(updated)  # (B, M, W) each
        if not self.config.use_memory:
            return self.retriever.attend(updated, k, v)
        keys.append(k)
        values.append(v)
        # Growing lists + cat keep autograd simple; S is small during training (tens of segments).
        return self.retriever.attend(updated, torch.cat(keys, dim=1), torch.cat(values, dim=1))

    # ------------------------------------------------------------------ streaming path

    def init_state(self, keep_scenes: bool = True) -> BridgeState:
        """A fresh streaming state: initial memory, empty cache and segment table.

        Args:
            keep_scenes: keep every segment's output tokens (readouts with the last segment; what recall needs,
                ``max_frames_per_segment * pool**2 * width`` floats a segment: 98 KB with the embedded default,
                4.7 MB with the published sizes) so ``readout(state, at=k)`` works for earlier segments.
        """
        c = self.config
        p = self.initial_memory
        return BridgeState(
            fingerprint=c.fingerprint(),
            memory=p.detach().clone(),
            cache=RowBuffer((c.memory_tokens, c.width), p.dtype, p.device),
            memories=RowBuffer((c.memory_tokens, c.width), p.dtype, p.device) if c.keeps_memories else None,
            scenes=(RowBuffer((c.max_frames_per_segment * c.tokens_per_frame, c.width), p.dtype, p.device)
                    if c.readout_uses_last_segment and keep_scenes else None),
        )

    @torch.no_grad()
    def step(self, segment: Tensor, state: BridgeState | None = None, start_time: float = 0.0,
             end_time: float = 0.0, start_frame: int | None = None, end_frame: int | None = None) -> BridgeState:
        """Process one finished segment of a stream (inference only: runs without autograd).

        Args:
            segment: (L, T, Dv) pooled tokens of the segment's frames (more than F frames are subsampled evenly).
            state: the state returned by the previous call, or None to start a stream. Updated in place.
            start_time: segment start in seconds (recorded in the segment table).
            end_time: segment end in seconds.
            start_frame: first source frame of the segment; default: right after the previous segment's end frame.
            end_frame: last source frame (inclusive); default: ``start_frame + L - 1``.

        Returns:
            The updated state (the same object when one was passed).
        """
        c = self.config
        if segment.ndim != 3 or segment.shape[0] < 1:
            raise UsageError(f"step expects one segment of shape (L, T, D), got {tuple(segment.shape)}")
        self._check_tokens(segment)
        if state is None:
            state = self.init_state()
        elif state.fingerprint != c.fingerprint():
            raise ModelError("bridge state was made by a bridge with a different config "
                             f"(fingerprint {state.fingerprint}, this bridge {c.fingerprint()})")
        frames = segment.shape[0]
        if frames > c.max_frames_per_segment:
            index = segment_frame_indices(0, frames - 1, c.max_frames_per_segment).to(segment.device)
            segment = segment.index_select(0, index)
        length = segment.shape[0]
        x = self._embed(segment).reshape(1, length * c.tokens_per_frame, c.width)  # (1, N, W)
        memory_in = state.memory if c.use_memory else self.initial_memory
        updated, out = self._encode(memory_in.unsqueeze(0).to(x.dtype), x, None)  # (1, M, W), (1, N, W)
        state.cache.append(updated)
        retrieved = self._retrieve_step(state, updated)  # (1, M, W)
        state.memory = retrieved[0]
        if state.memories is not None:
            state.memories.append(retrieved)
        state.last_tokens = out[0] if c.readout_uses_last_segment else None
        kept = 0
        if state.scenes is not None and state.last_tokens is not None:
            kept = state.last_tokens.shape[0]
            row = state.last_tokens.new_zeros((1, *state.scenes.data.shape[1:]))
            row[0, :kept] = state.last_tokens
            state.scenes.append(row)
        if start_frame is None:
            start_frame = state.segments[-1].end_frame + 1 if state.segments else 0
        if end_frame is None:
            end_frame = start_frame + frames - 1
        state.segments.append(SegmentRecord(float(start_time), float(end_time), int(start_frame), int(end_frame),
                                            kept))
        return state

    def _retrieve_step(self, state: BridgeState, updated: Tensor) -> Tensor:
        """Retrieval in ``step``: keys/values of cached memories are projected once and kept in the state."""
        if self.retriever is None:
            return updated
        k, v = self.retriever.project_kv(updated)  # (1, M, W) each
        if not self.config.use_memory:
            return self.retriever.attend(updated, k, v)
        # Projections made with other weights (training went on, or a loaded state) or in another dtype are stale.
        params = (self.retriever.k_proj.weight, self.retriever.k_proj.bias,
                  self.retriever.v_proj.weight, self.retriever.v_proj.bias)
        token = (id(self.retriever), k.dtype, k.device, *(p._version for p in params))
        fresh = (state.keys is not None and state.values is not None and state.kv_token == token
                 and state.keys.length == state.cache.length - 1)
        if fresh:
            state.keys.append(k)
            state.values.append(v)
        else:
            all_k, all_v = self.retriever.project_kv(state.cache.view())  # (K, M, W) each
            state.keys, state.values = RowBuffer.from_tensor(all_k), RowBuffer.from_tensor(all_v)
            state.kv_token = token
        w = self.config.width
        return self.retriever.attend(
            updated, state.keys.view().reshape(1, -1, w), state.values.view().reshape(1, -1, w))  # (1, M, W)

    def readout(self, state: BridgeState, at: int | None = None) -> Tensor:
        """The readout tokens of a streaming state (what the projector receives).

        Args:
            state: a state that has processed at least one segment.
            at: None for the readout now; a segment index k for the readout exactly as it was right after segment k
                (question-conditioned recall; needs a state that kept its scenes, see ``BridgeState.scenes``).

        Returns:
            (R, W) with R = ``num_readout_tokens`` of the segments seen so far (up to segment ``at``).
        """
        c = self.config
        n = state.num_segments
        if n == 0:
            raise UsageError("the bridge state has no segment yet: call step() first")
        if at is not None and not -n <= at < n:
            raise UsageError(f"segment {at} does not exist: the state has {n} segments")
        k = None if at is None or at % n == n - 1 else at % n  # the latest segment reads out as now
        parts: list[Tensor] = []
        if c.readout_uses_memories or (k is not None and c.readout_uses_final_memory):
            if state.memories is None:
                raise ModelError(f"this bridge state kept no per-segment memories, needed by readout {c.readout!r}")
        if c.readout_uses_memories:
            parts.append(state.memories.view()[: n if k is None else k + 1].reshape(-1, c.width))
        if c.readout_uses_final_memory:
            parts.append(state.memory if k is None else state.memories.view()[k])
        if c.readout_uses_last_segment:
            if k is None:
                if state.last_tokens is None:
                    raise ModelError(f"this bridge state kept no last-segment tokens, needed by readout {c.readout!r}")
                parts.append(state.last_tokens)
            else:
                kept = state.segments[k].tokens
                if state.scenes is None or not kept:
                    raise ModelError("this bridge state kept no earlier scenes (saved by an older version?): "
                                     "watch the video again to recall earlier scenes")
                parts.append(state.scenes.view()[k, :kept])
        return torch.cat(parts, dim=0)

    def num_readout_tokens(self, num_segments: int, segment_lengths: Sequence[int] | None = None) -> int:
        """Readout length R for a clip; see ``BridgeConfig.num_readout_tokens``."""
        return self.config.num_readout_tokens(num_segments, segment_lengths)

    # ------------------------------------------------------------------ checkpoints

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``bridge_config.json`` and ``bridge.safetensors`` into ``directory`` (created if missing)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        tensors = {name: t.detach().contiguous() for name, t in self.state_dict().items()}
        save_file(tensors, str(path / WEIGHTS_NAME), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, *, device: torch.device | str = "cpu") -> MemoryBridge:
        """Load a bridge written by ``save_pretrained``.

        Args:
            directory: folder with ``bridge_config.json`` and ``bridge.safetensors``.
            device: where to put the weights.

        Returns:
            The bridge in eval mode.
        """
        path = Path(directory)
        if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
            raise ModelError(f"{path}: missing {CONFIG_NAME} or {WEIGHTS_NAME}")
        config = BridgeConfig.from_dict(json.loads((path / CONFIG_NAME).read_text(encoding="utf-8")))
        bridge = cls(config, device=device)
        weights = load_file(str(path / WEIGHTS_NAME), device=str(device))
        missing, unexpected = bridge.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise ModelError(f"{path / WEIGHTS_NAME}: weights do not match the config "
                             f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
        return bridge.eval()


def _check_mask(frame_mask: Tensor, shape: tuple[int, int, int], max_frames: int) -> None:
    if frame_mask.dtype != torch.bool or tuple(frame_mask.shape) != shape:
        raise UsageError(f"frame_mask must be bool of shape {shape}, got {frame_mask.dtype} {tuple(frame_mask.shape)}")
    if shape[2] > max_frames:
        raise UsageError(f"segments have {shape[2]} frame slots, more than max_frames_per_segment={max_frames}")
    segment_valid = frame_mask[:, :, 0]
    prefix_frames = bool((frame_mask[:, :, 1:] <= frame_mask[:, :, :-1]).all())
    prefix_segments = bool((segment_valid[:, 1:] <= segment_valid[:, :-1]).all())
    if not (prefix_frames and prefix_segments and bool(segment_valid[:, 0].all())):
        raise UsageError("frame_mask must mark real frames and segments as prefixes, with >= 1 segment per clip")


def _left_align(tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Move each row's real tokens to the front (order kept) and trim the common padding.

    Args:
        tokens: (B, N, W); mask: (B, N) bool.

    Returns:
        (B, R, W) tokens with padding zeroed, (B, R) mask; R = the largest number of real tokens in a row.
    """
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # real positions first, in order
    mask = mask.gather(1, order)
    tokens = tokens.gather(1, order.unsqueeze(-1).expand_as(tokens))
    r = int(mask.sum(dim=1).max())
    mask = mask[:, :r]
    return tokens[:, :r] * mask.unsqueeze(-1).to(tokens.dtype), mask
