"""Streaming state of the memory bridge: carried memory, memory cache, segment table; safetensors save/load."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from videollm.errors import ModelError, OutputError

_FORMAT = "videollm.bridge_state"
_VERSION = "1"


class RowBuffer:
    """Append-only stack of equally shaped rows in a preallocated tensor that doubles when full.

    Appending costs O(rows appended) amortised (no re-packing of earlier rows) and ``view()`` is a zero-copy,
    contiguous prefix of the storage.

    Args:
        row_shape: shape of one row, e.g. (M, W) for one cached memory.
        dtype: element dtype.
        device: storage device.
        capacity: initial number of rows.
    """

    def __init__(self, row_shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str,
                 capacity: int = 16) -> None:
        self.data = torch.empty((max(1, capacity), *row_shape), dtype=dtype, device=device)
        self.length = 0

    @classmethod
    def from_tensor(cls, rows: Tensor, capacity: int | None = None) -> RowBuffer:
        """A buffer holding a copy of ``rows`` (K, *row_shape)."""
        buf = cls(tuple(rows.shape[1:]), rows.dtype, rows.device, capacity or max(16, rows.shape[0]))
        buf.append(rows)
        return buf

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    def append(self, rows: Tensor) -> None:
        """Append (k, *row_shape) rows (cast to the buffer dtype)."""
        need = self.length + rows.shape[0]
        if need > self.data.shape[0]:
            capacity = self.data.shape[0]
            while capacity < need:
                capacity *= 2
            grown = self.data.new_empty((capacity, *self.data.shape[1:]))
            grown[: self.length] = self.data[: self.length]
            self.data = grown
        self.data[self.length: need] = rows
        self.length = need

    def view(self) -> Tensor:
        """(length, *row_shape) view of the stored rows."""
        return self.data[: self.length]

    def to(self, device: torch.device | str) -> RowBuffer:
        """Move the storage (in place) and return self."""
        self.data = self.data.to(device)
        return self


@dataclass
class SegmentRecord:
    """One processed segment: its time span in seconds, its frame span (inclusive) in the source video, and how many
    of its output tokens the state keeps in ``BridgeState.scenes`` (0: none kept, e.g. a state saved before scenes
    were kept)."""

    start_time: float
    end_time: float
    start_frame: int
    end_frame: int
    tokens: int = 0


@dataclass
class BridgeState:
    """Everything the streaming bridge carries from one segment to the next.

    Created by ``MemoryBridge.init_state`` (or the first ``MemoryBridge.step``), updated in place by each ``step``.

    Attributes:
        fingerprint: ``BridgeConfig.fingerprint()`` of the bridge that produced the state.
        memory: (M, W) memory carried into the next segment (after retrieval).
        cache: K cached memories, rows (M, W): each segment's updated memory (bridge-layer output, before retrieval).
        memories: K carried memories, rows (M, W), kept when the readout includes memories (every segment's, or the
            final one: then ``memories[k]`` is the readout's memory as it was right after segment k).
        last_tokens: (L*T, W) bridge output at the last segment's token positions (last_segment readouts), or None.
        scenes: K segments' output tokens, rows (F*T, W) zero-padded (``segments[k].tokens`` of row k are real),
            kept for readouts that include the last segment, so the readout as it was right after any earlier
            segment can be rebuilt (``MemoryBridge.readout(state, at=k)``: question-conditioned recall).
        segments: the segment table, one ``SegmentRecord`` per processed segment.
        keys, values: derived retrieval key/value projections of ``cache`` (rows (M, W)), rebuilt by the bridge when
            missing or stale; never saved.
        kv_token: identifies the weights/dtype ``keys``/``values`` were computed with.
        extra: JSON-serialisable facts stored with the state (the video it watched, its captions, ...).
    """

    fingerprint: str
    memory: Tensor
    cache: RowBuffer
    memories: RowBuffer | None = None
    last_tokens: Tensor | None = None
    scenes: RowBuffer | None = None
    segments: list[SegmentRecord] = field(default_factory=list)
    keys: RowBuffer | None = None
    values: RowBuffer | None = None
    kv_token: tuple[Any, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_segments(self) -> int:
        """Number of segments processed so far."""
        return len(self.segments)

    def cached_memories(self) -> Tensor:
        """(K, M, W) view of the memory cache."""
        return self.cache.view()

    def to(self, device: torch.device | str) -> BridgeState:
        """Move every tensor (in place) and return self."""
        self.memory = self.memory.to(device)
        self.last_tokens = self.last_tokens.to(device) if self.last_tokens is not None else None
        for buf in (self.cache, self.memories, self.scenes, self.keys, self.values):
            if buf is not None:
                buf.to(device)
        return self

    def save(self, path: str | os.PathLike) -> None:
        """Write the state to a safetensors file (tensors + JSON segment table in the header metadata).

        The derived key/value projections are not saved; the bridge recomputes them on the next step.
        """
        tensors = {"memory": self.memory, "cache": self.cache.view()}
        if self.memories is not None:
            tensors["memories"] = self.memories.view()
        if self.last_tokens is not None:
            tensors["last_tokens"] = self.last_tokens
        if self.scenes is not None:
            tensors["scenes"] = self.scenes.view()
        # safetensors refuses views that share storage and non-contiguous tensors: store independent copies.
        tensors = {name: t.detach().contiguous().clone() for name, t in tensors.items()}
        metadata = {
            "format": _FORMAT,
            "version": _VERSION,
            "fingerprint": self.fingerprint,
            "segments": json.dumps([asdict(s) for s in self.segments]),
            "extra": json.dumps(self.extra),
        }
        # Written to a temporary name then renamed, so an interrupted save never leaves a half file.
        tmp = f"{os.fspath(path)}.tmp"
        try:
            save_file(tensors, tmp, metadata=metadata)
            # safetensors creates the file owner-only (0600); give it the mode other output files get (umask).
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, os.fspath(path))
        except OSError as err:  # disk full, read-only folder: no half file stays behind, one line says why
            raise OutputError(path, err) from None
        except Exception as err:  # safetensors reports its own I/O errors as SafetensorError
            if type(err).__name__ != "SafetensorError":
                raise
            text = re.sub(r" \(os error \d+\)$", "", str(err).rsplit("I/O error: ", 1)[-1])
            raise OutputError(path, text) from None
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> BridgeState:
        """Read a state written by ``save``.

        Args:
            path: the safetensors file.
            device: where to put the tensors.

        Returns:
            The state; ``MemoryBridge.step`` checks its fingerprint against the bridge config.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ModelError(f"{path}: no such bridge state file")
        try:
            handle = safe_open(path, framework="pt", device=str(device))
        except Exception as err:  # safetensors raises its own SafetensorError (not an OSError) on bad bytes
            raise ModelError(f"{path}: not a safetensors file ({err.__class__.__name__})") from None
        with handle as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != _FORMAT:
                raise ModelError(f"{path}: not a videollm bridge state file")
            if metadata.get("version") != _VERSION:
                raise ModelError(f"{path}: bridge state version {metadata.get('version')!r} is not supported")
            names = set(f.keys())
            unknown = sorted(names - set(_TENSORS))
            if unknown or not {"memory", "cache"} <= names:
                raise ModelError(f"{path}: damaged memory file (tensors {sorted(names)}; expected memory, cache and "
                                 "optionally memories, last_tokens, scenes)")
            try:
                tensors = {name: f.get_tensor(name) for name in names}
            except Exception as err:  # data shorter than the header declares, and the like
                raise ModelError(f"{path}: damaged memory file ({err.__class__.__name__})") from None
        segments, extra = _check_state(path, metadata, tensors)
        return cls(
            fingerprint=metadata["fingerprint"],
            memory=tensors["memory"],
            cache=RowBuffer.from_tensor(tensors["cache"]),
            memories=RowBuffer.from_tensor(tensors["memories"]) if "memories" in tensors else None,
            last_tokens=tensors.get("last_tokens"),
            scenes=RowBuffer.from_tensor(tensors["scenes"]) if "scenes" in tensors else None,
            segments=segments,
            extra=extra,
        )


#: Tensors a saved state may hold: name -> number of dimensions.
_TENSORS = {"memory": 2, "cache": 3, "memories": 3, "last_tokens": 2, "scenes": 3}


def _check_state(path: str, metadata: dict[str, str], tensors: dict[str, Tensor]) -> tuple[list[SegmentRecord], dict]:
    """The segment table and extra facts of a saved state, after checking that its parts agree (one line on the
    first thing that does not: a memory file is user input and may be damaged or made up)."""

    def damaged(why: str) -> ModelError:
        return ModelError(f"{path}: damaged memory file ({why})")

    for name, t in tensors.items():
        if not t.is_floating_point():
            raise damaged(f"{name} has dtype {str(t.dtype).removeprefix('torch.')}, not floating point")
        if t.dim() != _TENSORS[name]:
            raise damaged(f"{name} has {t.dim()} dimensions, not {_TENSORS[name]}")
        if not bool(torch.isfinite(t).all()):
            raise damaged(f"{name} holds NaN or infinite values")
    width = tensors["memory"].shape[-1]
    row = tuple(tensors["memory"].shape)
    for name in ("cache", "memories"):
        if name in tensors and tuple(tensors[name].shape[1:]) != row:
            raise damaged(f"{name} rows are {tuple(tensors[name].shape[1:])}, the memory is {row}")
    for name in ("last_tokens", "scenes"):
        if name in tensors and tensors[name].shape[-1] != width:
            raise damaged(f"{name} is {tensors[name].shape[-1]} wide, the memory {width}")
    if not isinstance(metadata.get("fingerprint"), str):
        raise damaged("no fingerprint")
    try:
        table = json.loads(metadata.get("segments", ""))
        extra = json.loads(metadata.get("extra", "{}"))
        segments = [SegmentRecord(**rec) for rec in table]
        captions = extra.get("captions", []) if isinstance(extra, dict) else None
        if not isinstance(captions, list) or not all(isinstance(c, dict) for c in captions):
            raise TypeError
        for seg in segments:
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in asdict(seg).values()):
                raise TypeError
    except (json.JSONDecodeError, TypeError):
        raise damaged("its segment table or facts are not what videollm writes") from None
    if len(segments) != tensors["cache"].shape[0]:
        raise damaged(f"{len(segments)} segments but {tensors['cache'].shape[0]} cached memories")
    if "scenes" in tensors:
        if tensors["scenes"].shape[0] != len(segments):
            raise damaged(f"{len(segments)} segments but {tensors['scenes'].shape[0]} kept scenes")
        if any(not 0 <= seg.tokens <= tensors["scenes"].shape[1] for seg in segments):
            raise damaged("a segment claims more tokens than its kept scene holds")
    return segments, extra
