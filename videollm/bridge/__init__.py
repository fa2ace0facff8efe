"""Memory bridge: recurrent memory tokens carried scene to scene, retrieval over the memory cache (docs/design.md §3).

Public API::

    from videollm.bridge import BridgeConfig, MemoryBridge, BridgeState, pool_patches, segments_from_ends

    cfg = BridgeConfig.from_preset("published")           # or "tiny"
    bridge = MemoryBridge(cfg)
    tokens = pool_patches(patches, cfg.pool)              # (N, gh, gw, Dv) -> (N, P*P, Dv)
    segs = segments_from_ends(tokens, ends, cfg.max_frames_per_segment)
    out = bridge(segs)                                    # training path: out.readout (1, R, W)
    state = None
    for seg in segs:                                      # streaming path
        state = bridge.step(seg, state, start_time=..., end_time=...)
    bridge.readout(state)                                 # (R, W)
"""

from videollm.bridge.config import MEMORY_INITS, POSITION_EMBEDDINGS, READOUT_MODES, BridgeConfig
from videollm.bridge.layers import AttentionBlock, BridgeLayer, FP32LayerNorm
from videollm.bridge.model import BridgeOutput, MemoryBridge
from videollm.bridge.segments import pad_segments, pool_patches, segment_frame_indices, segments_from_ends
from videollm.bridge.state import BridgeState, RowBuffer, SegmentRecord

__all__ = [
    "MEMORY_INITS",
    "POSITION_EMBEDDINGS",
    "READOUT_MODES",
    "AttentionBlock",
    "BridgeConfig",
    "BridgeLayer",
    "BridgeOutput",
    "BridgeState",
    "FP32LayerNorm",
    "MemoryBridge",
    "RowBuffer",
    "SegmentRecord",
    "pad_segments",
    "pool_patches",
    "segment_frame_indices",
    "segments_from_ends",
]
