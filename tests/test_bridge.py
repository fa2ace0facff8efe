"""Tests of the memory bridge (videollm.bridge) and the projector (videollm.projector), on the tiny preset (CPU)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videollm.bridge import (
    READOUT_MODES,
    AttentionBlock,
    BridgeConfig,
    BridgeState,
    MemoryBridge,
    RowBuffer,
    pad_segments,
    pool_patches,
    segment_frame_indices,
    segments_from_ends,
)
from videollm.errors import ModelError, UsageError
from videollm.projector import ProjectorConfig, build_projector

ABLATIONS = {
    "default": {},
    "no_memory": {"use_memory": False},
    "no_retrieval": {"retrieval": False},
    "learned_positions": {"position_embedding": "learned"},
    "temporal_diff": {"temporal_diff": True},
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_bridge(seed: int = 0, **overrides: object) -> MemoryBridge:
    """Tiny bridge with every parameter random (so that no block is an identity by accident), in eval mode."""
    cfg = BridgeConfig.from_preset("tiny", **{"memory_init": "normal", **overrides})
    torch.manual_seed(seed)
    bridge = MemoryBridge(cfg)
    with torch.no_grad():
        for p in bridge.parameters():
            p.normal_(0.0, 0.3) if p.ndim > 1 else p.uniform_(0.5, 1.5)
    return bridge.eval()


def make_segments(lengths: list[int], seed: int = 1, cfg: BridgeConfig | None = None) -> list[Tensor]:
    cfg = cfg or BridgeConfig.from_preset("tiny")
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, cfg.tokens_per_frame, cfg.vision_dim, generator=gen) for n in lengths]


def run_steps(bridge: MemoryBridge, segments: list[Tensor]) -> BridgeState:
    state = None
    for k, seg in enumerate(segments):
        state = bridge.step(seg, state, start_time=float(k), end_time=k + 0.5)
    return state


# ---------------------------------------------------------------------------------------------------- config


def test_presets_and_serialisation_round_trip() -> None:
    published = BridgeConfig.from_preset("published")
    assert (published.width, published.heads, published.ffn, published.memory_tokens) == (1024, 8, 4096, 32)
    assert (published.pool, published.max_frames_per_segment, published.tokens_per_frame) == (12, 8, 144)
    assert published.ln_eps == 1e-12 and published.dropout == 0.1
    tiny = BridgeConfig.from_preset("tiny", readout="memory")
    again = BridgeConfig.from_dict(tiny.to_dict())
    assert again == tiny
    assert again.fingerprint() == tiny.fingerprint()
    assert BridgeConfig.from_dict({**tiny.to_dict(), "memory_tokens": 5}).fingerprint() != tiny.fingerprint()
    # dropout does not change what an eval bridge computes, so states stay compatible across it.
    assert BridgeConfig.from_dict({**tiny.to_dict(), "dropout": 0.0}).fingerprint() == tiny.fingerprint()


@pytest.mark.parametrize("bad", [
    {"width": 30, "heads": 4},
    {"heads": 3},
    {"retrieval_heads": 5},
    {"dropout": 1.0},
    {"readout": "everything"},
    {"memory_tokens": 0},
    {"pool": 1.5},
    {"position_embedding": "sinusoidal"},
    {"memory_init": "ones"},
])
def test_config_validation(bad: dict) -> None:
    with pytest.raises(ModelError):
        BridgeConfig.from_preset("tiny", **bad)


def test_unknown_config_field_and_preset() -> None:
    with pytest.raises(ModelError, match="unknown field"):
        BridgeConfig.from_dict({"vision_dim": 8, "widht": 32})
    with pytest.raises(ModelError, match="no preset"):
        BridgeConfig.from_preset("huge")


def test_input_projection_only_when_widths_differ() -> None:
    assert isinstance(MemoryBridge(BridgeConfig.from_preset("tiny")).input_proj, nn.Linear)
    assert isinstance(MemoryBridge(BridgeConfig.from_preset("tiny", vision_dim=32)).input_proj, nn.Identity)


# ---------------------------------------------------------------------------------------------------- input helpers


def test_temporal_diff_embeds_each_frame_with_its_change_since_the_previous_one() -> None:
    bridge = make_bridge(temporal_diff=True)
    assert make_bridge().diff_proj is None
    seg = make_segments([3])[0]  # (L, T, D)
    embedded = bridge._embed(seg)
    base = bridge.input_proj(seg)
    proj = bridge.diff_proj
    torch.testing.assert_close(embedded[0], base[0] + proj.bias)  # first frame: no previous frame, zero change
    for t in (1, 2):
        torch.testing.assert_close(embedded[t], base[t] + proj(seg[t] - seg[t - 1]))


def test_pool_patches_matches_adaptive_avg_pool() -> None:
    patches = torch.randn(3, 7, 5, 6)  # awkward grid: windows overlap unevenly
    pooled = pool_patches(patches, 3)
    assert pooled.shape == (3, 9, 6)
    reference = nn.AdaptiveAvgPool2d(3)(patches.permute(0, 3, 1, 2))  # (N, D, 3, 3)
    torch.testing.assert_close(pooled, reference.flatten(2).transpose(1, 2))
    # token order is row-major over the pooled grid
    torch.testing.assert_close(pooled[:, 1], patches[:, 0:3, 1:4].mean(dim=(1, 2)))  # rows 0..2, cols 1..3


@pytest.mark.parametrize("start,end", [(0, 0), (0, 7), (3, 20), (10, 10 + 99), (5, 12)])
def test_segment_frame_indices_published_rule(start: int, end: int) -> None:
    got = segment_frame_indices(start, end, 8)
    published = torch.linspace(start, end, min(8, end - start + 1), dtype=torch.int).long()
    assert torch.equal(got, published)
    assert got[0] == start and got[-1] == end
    assert len(got) == min(8, end - start + 1)


def test_segments_from_ends_cuts_and_subsamples() -> None:
    frames = torch.arange(20.0).view(20, 1, 1).expand(20, 4, 2)  # frame i holds value i
    segs = segments_from_ends(frames, [2, 3, 19], max_frames=4)
    assert [s.shape[0] for s in segs] == [3, 1, 4]
    assert segs[0][:, 0, 0].tolist() == [0, 1, 2]
    assert segs[1][:, 0, 0].tolist() == [3]
    assert segs[2][:, 0, 0].tolist() == [4, 9, 14, 19]
    with pytest.raises(UsageError):
        segments_from_ends(frames, [5, 3], max_frames=4)
    with pytest.raises(UsageError):
        segments_from_ends(frames, [25], max_frames=4)


# ---------------------------------------------------------------------------------------------------- forward / step


@pytest.mark.parametrize("readout", READOUT_MODES)
def test_forward_shapes_dtypes_and_readout_count(readout: str) -> None:
    bridge = make_bridge(readout=readout)
    cfg = bridge.config
    lengths = [2, 5, 1, 4]  # 5 and 4 exceed F=3 and are subsampled
    out = bridge(make_segments(lengths))
    expected = cfg.num_readout_tokens(len(lengths), lengths)
    assert out.readout.shape == (1, expected, cfg.width) and out.readout.dtype == torch.float32
    assert out.readout_mask.shape == (1, expected) and bool(out.readout_mask.all())
    assert out.memories.shape == (1, len(lengths), cfg.memory_tokens, cfg.width)
    assert out.memory.shape == (1, cfg.memory_tokens, cfg.width)
    assert out.num_segments.tolist() == [len(lengths)]
    assert bridge.num_readout_tokens(len(lengths), lengths) == expected
    assert expected == {
        "last_segment": 3 * 4,
        "all_memories": 4 * 4,
        "memory": 4,
        "all_memories_last_segment": 4 * 4 + 3 * 4,
        "memory_last_segment": 4 + 3 * 4,
    }[readout]
    assert cfg.num_memory_readout_tokens(len(lengths)) == {
        "last_segment": 0, "all_memories": 4 * 4, "memory": 4, "all_memories_last_segment": 4 * 4,
        "memory_last_segment": 4}[readout]
    if readout == "memory_last_segment":
        # the final memory leads, then the last segment's tokens: the same as the two readouts it joins
        memory = make_bridge(readout="memory")
        memory.load_state_dict(bridge.state_dict())
        last = make_bridge(readout="last_segment")
        last.load_state_dict(bridge.state_dict())
        segments = make_segments(lengths)
        torch.testing.assert_close(
            out.readout[0], torch.cat([memory(segments).readout[0], last(segments).readout[0]]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("ablation", list(ABLATIONS))
@pytest.mark.parametrize("readout", READOUT_MODES)
def test_step_matches_forward(readout: str, ablation: str) -> None:
    bridge = make_bridge(readout=readout, **ABLATIONS[ablation])
    segments = make_segments([2, 3, 1, 5, 3])
    out = bridge(segments)
    state = run_steps(bridge, segments)
    streamed = bridge.readout(state)
    assert streamed.shape[0] == bridge.num_readout_tokens(len(segments), [s.shape[0] for s in segments])
    torch.testing.assert_close(streamed, out.readout[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(state.memory, out.memory[0], rtol=0, atol=1e-5)
    if state.memories is not None:
        torch.testing.assert_close(state.memories.view(), out.memories[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("readout", READOUT_MODES)
def test_readout_at_earlier_segment_equals_stopping_there(readout: str) -> None:
    """Recall: the readout rebuilt for segment k of a longer stream equals the readout of the stream cut after k."""
    bridge = make_bridge(readout=readout)
    segments = make_segments([2, 5, 1, 3])  # 5 > F = 3: the kept scene is the subsampled one
    state = run_steps(bridge, segments)
    for k in range(len(segments)):
        alone = bridge.readout(run_steps(bridge, segments[: k + 1]))
        torch.testing.assert_close(bridge.readout(state, at=k), alone, rtol=0, atol=1e-6)
    torch.testing.assert_close(bridge.readout(state, at=-1), bridge.readout(state), rtol=0, atol=0)
    with pytest.raises(UsageError, match="segment 4 does not exist"):
        bridge.readout(state, at=4)
    if bridge.config.readout_uses_last_segment:
        cfg = bridge.config
        assert state.scenes.view().shape == (4, cfg.max_frames_per_segment * cfg.tokens_per_frame, cfg.width)
        assert [s.tokens for s in state.segments] == [min(n, 3) * cfg.tokens_per_frame for n in (2, 5, 1, 3)]


def test_readout_at_needs_kept_scenes() -> None:
    bridge = make_bridge(readout="last_segment")
    state = run_steps(bridge, make_segments([2, 3]))
    state.scenes = None  # as in a state saved before scenes were kept
    torch.testing.assert_close(bridge.readout(state, at=1), bridge.readout(state), rtol=0, atol=0)
    with pytest.raises(ModelError, match="kept no earlier scenes"):
        bridge.readout(state, at=0)


def test_gradients_reach_every_parameter() -> None:
    bridge = make_bridge(readout="all_memories_last_segment", position_embedding="learned",
                         temporal_diff=True).train()
    out = bridge(make_segments([2, 3, 2]))
    (out.readout.square().mean() + out.memory.mean()).backward()
    for name, p in bridge.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_dropout_only_in_training() -> None:
    bridge = make_bridge(readout="all_memories_last_segment")
    segments = make_segments([2, 3])
    torch.testing.assert_close(bridge(segments).readout, bridge(segments).readout, rtol=0, atol=0)
    bridge.train()
    torch.manual_seed(1)
    first = bridge(segments).readout
    torch.manual_seed(2)
    assert not torch.allclose(first, bridge(segments).readout)


def test_no_memory_ablation_equals_fresh_start_per_segment() -> None:
    bridge = make_bridge(readout="all_memories", use_memory=False)
    segments = make_segments([2, 1, 3])
    out = bridge(segments)
    for k, seg in enumerate(segments):
        alone = bridge.step(seg, None)
        torch.testing.assert_close(out.memories[0, k], alone.memory, rtol=0, atol=1e-5)
    # and memory does carry information in the default configuration
    with_memory = make_bridge(readout="all_memories")
    carried = with_memory(segments).memories[0, 1]
    assert not torch.allclose(carried, with_memory.step(segments[1], None).memory, atol=1e-3)


def _reference_attention(block: AttentionBlock, x: Tensor, kv: Tensor, heads: int) -> Tensor:
    """Explicit softmax attention + post-LN residual, independent of scaled_dot_product_attention."""
    n, w = x.shape
    hd = w // heads
    q = (x @ block.q_proj.weight.T + block.q_proj.bias).view(n, heads, hd).transpose(0, 1)  # (H, Nq, hd)
    k = (kv @ block.k_proj.weight.T + block.k_proj.bias).view(-1, heads, hd).transpose(0, 1)  # (H, Nk, hd)
    v = (kv @ block.v_proj.weight.T + block.v_proj.bias).view(-1, heads, hd).transpose(0, 1)
    probs = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd), dim=-1)
    out = (probs @ v).transpose(0, 1).reshape(n, w) @ block.out_proj.weight.T + block.out_proj.bias
    return F.layer_norm(x + out, (w,), block.norm.weight, block.norm.bias, block.norm.eps)


def test_step_matches_explicit_reference() -> None:
    """Bridge layer + retrieval against a hand-written reference of the published computation."""
    bridge = make_bridge(readout="memory")
    cfg = bridge.config
    segments = make_segments([2, 3, 1])
    state = run_steps(bridge, segments)
    memory = bridge.initial_memory.detach()
    cache = []
    with torch.no_grad():
        for seg in segments:
            x = seg.reshape(-1, cfg.vision_dim) @ bridge.input_proj.weight.T + bridge.input_proj.bias
            h = torch.cat([memory, x])
            layer = bridge.layers[0]
            h = _reference_attention(layer.attention, h, h, cfg.heads)
            ffn = F.gelu(h @ layer.ffn_in.weight.T + layer.ffn_in.bias) @ layer.ffn_out.weight.T + layer.ffn_out.bias
            h = F.layer_norm(h + ffn, (cfg.width,), layer.norm.weight, layer.norm.bias, cfg.ln_eps)
            updated = h[: cfg.memory_tokens]
            cache.append(updated)
            memory = _reference_attention(bridge.retriever, updated, torch.cat(cache), cfg.retrieval_heads)
    torch.testing.assert_close(bridge.readout(state), memory, rtol=0, atol=1e-5)
    torch.testing.assert_close(state.cached_memories(), torch.stack(cache), rtol=0, atol=1e-5)


def test_retrieval_is_not_a_no_op() -> None:
    with_retrieval = make_bridge(readout="memory")
    without = MemoryBridge(BridgeConfig.from_preset("tiny", readout="memory", memory_init="normal",
                                                    retrieval=False)).eval()
    missing, unexpected = without.load_state_dict(with_retrieval.state_dict(), strict=False)
    assert not missing and all(k.startswith("retriever.") for k in unexpected)
    segments = make_segments([2, 2, 2])
    a, b = with_retrieval(segments).readout, without(segments).readout
    assert (a - b).abs().max() > 1e-2
    # the retrieved memory depends on past cache entries, not only on the current one
    state = run_steps(with_retrieval, segments[:2])
    other = run_steps(with_retrieval, segments[:2])
    other.cache.view()[0].add_(1.0)
    other.keys = None  # force re-projection of the edited cache
    assert not torch.allclose(with_retrieval.step(segments[2], state).memory,
                              with_retrieval.step(segments[2], other).memory, atol=1e-4)


def test_zero_initial_memory_keeps_memory_tokens_identical() -> None:
    """The published zero init: identical memory tokens stay identical through the bridge (why "normal" exists)."""
    bridge = make_bridge(readout="memory")
    with torch.no_grad():
        bridge.initial_memory.zero_()
    memory = bridge(make_segments([2, 3, 1])).memory[0]  # (M, W)
    torch.testing.assert_close(memory, memory[:1].expand_as(memory), rtol=0, atol=1e-5)
    assert memory.std(dim=1).min() > 0.1  # not trivially zero


def test_cache_growth_and_kv_reuse() -> None:
    bridge = make_bridge(readout="all_memories")
    segments = make_segments([1] * 20)
    state = None
    for k, seg in enumerate(segments):
        state = bridge.step(seg, state)
        assert state.cache.length == k + 1 == state.num_segments
        assert state.keys.length == k + 1 and state.memories.length == k + 1
    assert state.cache.data.shape[0] == 32  # 16 doubled once
    with torch.no_grad():
        expected_keys, _ = bridge.retriever.project_kv(state.cached_memories())
    torch.testing.assert_close(state.keys.view(), expected_keys, rtol=0, atol=1e-6)
    assert state.segments[5].start_frame == 5 and state.segments[5].end_frame == 5
    # changing the retrieval weights makes the kept projections stale: they are rebuilt, not reused
    with torch.no_grad():
        bridge.retriever.k_proj.weight.mul_(2.0)
        state = bridge.step(segments[0], state)
        expected_keys, _ = bridge.retriever.project_kv(state.cached_memories())
    torch.testing.assert_close(state.keys.view(), expected_keys, rtol=0, atol=1e-6)


def test_row_buffer_appends_without_repacking() -> None:
    buf = RowBuffer((2, 3), torch.float32, "cpu", capacity=4)
    buf.append(torch.zeros(1, 2, 3))
    ptr = buf.view().data_ptr()
    buf.append(torch.ones(3, 2, 3))
    assert buf.view().data_ptr() == ptr and buf.length == 4
    buf.append(torch.full((1, 2, 3), 2.0))
    assert buf.data.shape[0] == 8 and buf.view()[:, 0, 0].tolist() == [0, 1, 1, 1, 2]


def test_state_save_load_round_trip(tmp_path: Path) -> None:
    bridge = make_bridge(readout="all_memories_last_segment")
    segments = make_segments([2, 3, 1, 2])
    state = run_steps(bridge, segments[:3])
    path = tmp_path / "state.safetensors"
    state.save(path)
    loaded = BridgeState.load(path)
    assert loaded.segments == state.segments and loaded.fingerprint == state.fingerprint
    torch.testing.assert_close(bridge.readout(loaded), bridge.readout(state), rtol=0, atol=0)
    torch.testing.assert_close(loaded.cached_memories(), state.cached_memories(), rtol=0, atol=0)
    torch.testing.assert_close(bridge.readout(loaded, at=0), bridge.readout(state, at=0), rtol=0, atol=0)
    # continuing from the reloaded state (key/value projections rebuilt) equals continuing the live one
    continued = bridge.readout(bridge.step(segments[3], loaded, 3.0, 4.0))
    torch.testing.assert_close(continued, bridge.readout(bridge.step(segments[3], state, 3.0, 4.0)),
                               rtol=0, atol=1e-6)
    other = make_bridge(readout="memory")
    with pytest.raises(ModelError, match="different config"):
        other.step(segments[0], BridgeState.load(path))


def test_state_load_rejects_other_files(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(ModelError, match="not a videollm bridge state"):
        BridgeState.load(path)
    with pytest.raises(ModelError):
        BridgeState.load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("temporal_diff", [False, True])
def test_padded_batch_matches_unpadded(temporal_diff: bool) -> None:
    bridge = make_bridge(readout="all_memories_last_segment", position_embedding="learned",
                         temporal_diff=temporal_diff)
    clips = [make_segments([1, 3, 2], seed=2), make_segments([5], seed=3), make_segments([2, 2, 1, 1], seed=4)]
    tokens, frame_mask = pad_segments(clips, bridge.config.max_frames_per_segment)
    assert tokens.shape[:3] == (3, 4, 3) and frame_mask.sum().item() == 6 + 3 + 6
    out = bridge(tokens, frame_mask)
    for b, clip in enumerate(clips):
        alone = bridge(clip)
        real = out.readout[b][out.readout_mask[b]]
        assert real.shape[0] == bridge.num_readout_tokens(len(clip), [s.shape[0] for s in clip])
        torch.testing.assert_close(real, alone.readout[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(out.memory[b], alone.memory[0], rtol=0, atol=1e-5)
        assert not out.readout[b][~out.readout_mask[b]].any()  # padding is zero
    assert out.num_segments.tolist() == [3, 1, 4]


def test_bad_inputs_raise_usage_errors() -> None:
    bridge = make_bridge()
    with pytest.raises(UsageError):
        bridge.step(torch.randn(2, 9, 24), None)  # wrong tokens per frame
    with pytest.raises(UsageError):
        bridge(torch.randn(1, 2, 4, 4, 24))  # more frame slots than F
    mask = torch.tensor([[[True, False], [True, True]]])
    with pytest.raises(UsageError, match="prefix"):
        bridge(torch.randn(1, 2, 2, 4, 24), torch.tensor([[[False, True], [True, True]]]))
    assert bridge(torch.randn(1, 2, 2, 4, 24), mask).readout.shape[1] == 2 * 4
    with pytest.raises(UsageError):
        bridge.readout(bridge.init_state())
    with pytest.raises(UsageError, match="frame count"):
        bridge.num_readout_tokens(3)  # last_segment readout needs the last segment's length
    assert make_bridge(readout="all_memories").num_readout_tokens(3) == 3 * 4


def test_bf16_autocast_close_to_fp32() -> None:
    bridge = make_bridge(readout="all_memories_last_segment")
    segments = make_segments([2, 3])
    reference = bridge(segments).readout
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = bridge(segments).readout
        state = run_steps(bridge, segments)
    assert out.dtype == torch.float32 and state.memory.dtype == torch.float32  # residual stream stays fp32
    assert state.keys.dtype == torch.bfloat16
    cosine = F.cosine_similarity(out.flatten(), reference.flatten(), dim=0)
    assert cosine > 0.99


def test_save_and_load_pretrained(tmp_path: Path) -> None:
    bridge = make_bridge(readout="memory", position_embedding="learned")
    bridge.save_pretrained(tmp_path / "bridge")
    loaded = MemoryBridge.from_pretrained(tmp_path / "bridge")
    assert loaded.config == bridge.config and not loaded.training
    segments = make_segments([2, 1])
    torch.testing.assert_close(loaded(segments).readout, bridge(segments).readout, rtol=0, atol=0)
    with pytest.raises(ModelError):
        MemoryBridge.from_pretrained(tmp_path / "nothing")


# ---------------------------------------------------------------------------------------------------- projector


@pytest.mark.parametrize("kind,n_linear", [("linear_gelu", 1), ("mlp2", 2)])
def test_projector_kinds(kind: str, n_linear: int) -> None:
    cfg = ProjectorConfig(in_dim=32, out_dim=48, kind=kind)
    assert ProjectorConfig.from_dict(cfg.to_dict()) == cfg
    projector = build_projector(cfg)
    assert sum(isinstance(m, nn.Linear) for m in projector.modules()) == n_linear
    x = torch.randn(2, 5, 32)
    y = projector(x)
    assert y.shape == (2, 5, 48)
    if kind == "linear_gelu":
        torch.testing.assert_close(y, F.gelu(projector[0](x)))


def test_projector_config_validation() -> None:
    with pytest.raises(ModelError):
        ProjectorConfig(in_dim=32, out_dim=48, kind="qformer")
    with pytest.raises(ModelError):
        ProjectorConfig(in_dim=0, out_dim=48)
    with pytest.raises(ModelError, match="unknown field"):
        ProjectorConfig.from_dict({"in_dim": 1, "out_dim": 2, "hidden": 3})


def test_memory_only_clips_read_out_their_final_memory_alone() -> None:
    """The "across" training task: a clip flagged memory_only is read out as its final carried memory (what
    ``VideoLLM.project_memory`` shows at question time); the other clips of the batch keep the configured readout."""
    bridge = make_bridge(readout="last_segment")
    clips = [make_segments([2, 3, 1]), make_segments([3, 2], seed=4)]
    tokens, mask = pad_segments(clips, bridge.config.max_frames_per_segment)
    plain = bridge(tokens, mask)
    mixed = bridge(tokens, mask, torch.tensor([True, False]))
    m = bridge.config.memory_tokens
    assert int(mixed.readout_mask[0].sum()) == m
    torch.testing.assert_close(mixed.readout[0, :m], plain.memory[0], rtol=0, atol=0)
    torch.testing.assert_close(mixed.readout[0, :m], run_steps(bridge, clips[0]).memory, rtol=0, atol=1e-5)
    n = int(plain.readout_mask[1].sum())
    assert int(mixed.readout_mask[1].sum()) == n
    torch.testing.assert_close(mixed.readout[1, :n], plain.readout[1, :n], rtol=0, atol=0)
