"""The composed model on the ``tiny`` preset: parallel vs streaming paths, checkpoints, persisted memory, errors."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from videollm.config import ModelConfig
from videollm.errors import ModelError
from videollm.memory import build_memory, load_memory, save_memory, watch
from videollm.model import VideoLLM

SAMPLE = Path(__file__).resolve().parents[1] / "data/samples/world/video/video_000000.mp4"


@pytest.fixture(scope="module")
def model() -> VideoLLM:
    torch.manual_seed(0)
    return VideoLLM.from_pretrained("tiny").eval()


@pytest.fixture(scope="module")
def features(model: VideoLLM):
    from videollm.io import open_video

    with open_video(SAMPLE) as reader:
        batch = reader.sample_uniform(24)
    cls, tokens = model.encode_frames(batch.frames)
    return cls, tokens


def _with_config(model: VideoLLM, **bridge) -> VideoLLM:
    cfg = ModelConfig.from_dict(model.config.to_dict())
    cfg.bridge = dataclasses.replace(cfg.bridge, **bridge)
    other = VideoLLM(cfg, model.lm, model.tokenizer, model.vision)
    return other.eval()


def test_encode_shapes(model: VideoLLM, features) -> None:
    cls, tokens = features
    assert cls.shape == (24, 384) and cls.dtype == torch.float32
    assert tokens.shape == (24, model.config.bridge.pool ** 2, 384)


@pytest.mark.parametrize("readout", ["last_segment", "all_memories", "memory", "all_memories_last_segment",
                                     "memory_last_segment"])
def test_streaming_steps_equal_parallel_forward(model: VideoLLM, features, readout: str) -> None:
    m = _with_config(model, readout=readout)
    ends, segments = m.split(*features)
    assert ends[-1] == 23 and len(segments) == len(ends)
    with torch.no_grad():
        visual, mask = m.visual_tokens([segments])  # (1, R, H)
    state = None
    for seg in segments:
        state = m.bridge.step(seg, state)
    streamed = m.project_state(state)
    assert mask.sum() == streamed.shape[0] == m.num_visual_tokens([s.shape[0] for s in segments])
    torch.testing.assert_close(visual[0][mask[0]], streamed, atol=1e-5, rtol=1e-5)


def test_gradients_reach_bridge_and_projector_only(model: VideoLLM, features) -> None:
    m = _with_config(model, dropout=0.0)
    m.train()
    _, segments = m.split(*features)
    n = m.num_visual_tokens([s.shape[0] for s in segments])
    example = m.processor.build_training_example(
        [{"role": "user", "content": "<video>\nDescribe the video."}, {"role": "assistant", "content": "a red star"}], n)
    loss = m([segments], m.processor.collate([example]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.projector.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.bridge.parameters())
    assert all(p.grad is None for p in m.lm.parameters())
    assert all(p.grad is None for p in m.vision.parameters())


def test_placeholder_count_mismatch_raises(model: VideoLLM, features) -> None:
    _, segments = model.split(*features)
    n = model.num_visual_tokens([s.shape[0] for s in segments])
    example = model.processor.build_training_example(
        [{"role": "user", "content": "<video>\nhi"}, {"role": "assistant", "content": "red"}], n + 1)
    with pytest.raises(ModelError, match="visual tokens"):
        model([segments], model.processor.collate([example]))


def test_save_load_roundtrip_gives_identical_outputs(model: VideoLLM, features, tmp_path: Path) -> None:
    with torch.no_grad():
        for p in model.bridge.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["config.json", "model.safetensors"]
    size = (tmp_path / "ckpt" / "model.safetensors").stat().st_size
    trained = sum(v.numel() * v.element_size() for v in model.trained_state_dict().values())
    assert size < trained + 64 * 1024  # only bridge + projector: frozen parts are referenced, not copied
    loaded = VideoLLM.from_pretrained(tmp_path / "ckpt")
    _, segments = model.split(*features)
    with torch.no_grad():
        a, _ = model.visual_tokens([segments])
        b, _ = loaded.visual_tokens([segments])
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_persisted_memory_answers_without_video(model: VideoLLM, tmp_path: Path) -> None:
    state = build_memory(model, SAMPLE)
    assert state.extra["video"] == str(SAMPLE) and state.num_segments >= 2
    path = tmp_path / "video.memory.safetensors"
    save_memory(state, path)
    # The memory file gets the mode any other output gets (safetensors alone would make it owner-only).
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    loaded = load_memory(path, model)
    assert [dataclasses.astuple(s) for s in loaded.segments] == [dataclasses.astuple(s) for s in state.segments]
    torch.testing.assert_close(model.project_state(loaded), model.project_state(state))
    first = "".join(model.chat(model.project_state(state), [], "What happens?", max_new_tokens=8))
    again = "".join(model.chat(model.project_state(loaded), [], "What happens?", max_new_tokens=8))
    assert first == again


def test_memory_from_another_config_is_refused(model: VideoLLM, tmp_path: Path) -> None:
    state = build_memory(model, SAMPLE)
    save_memory(state, tmp_path / "m.safetensors")
    other = _with_config(model, memory_tokens=8)
    with pytest.raises(ModelError, match="different model configuration"):
        load_memory(tmp_path / "m.safetensors", other)


def test_streaming_watch_matches_offline_scene_count(model: VideoLLM) -> None:
    from videollm.io import open_video

    offline = build_memory(model, SAMPLE)
    with open_video(SAMPLE) as reader:
        events = list(watch(model, reader.iter_fps(2.0, batch_size=4), online=True))
    assert [e.index for e in events] == list(range(len(events)))
    assert events[-1].state.num_segments == len(events)
    spans = [(e.start, e.end) for e in events]
    assert all(a < b for a, b in spans) and all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    assert abs(len(events) - offline.num_segments) <= 1


@pytest.mark.parametrize("feature", ["cls", "histogram"])
def test_offline_file_encodes_only_the_bridge_frames(model: VideoLLM, feature: str, monkeypatch) -> None:
    """Watching a file offline scans it for the segmentation features, then encodes only each scene's bridge frames
    (at most F a scene, read back by index); the scenes and the memory equal those from every frame encoded up
    front, so memory does not hold every frame's tokens."""
    from videollm.io import open_video

    cfg = ModelConfig.from_dict(model.config.to_dict())
    cfg.segmentation.feature = feature
    m = VideoLLM(cfg, model.lm, model.tokenizer, model.vision).eval()
    with open_video(SAMPLE) as reader:
        # Offline over batches: every frame encoded up front.
        everything = list(watch(m, reader.iter_fps(2.0, batch_size=16), duration=reader.meta.duration))
        sampled = np.concatenate([b.indices for b in reader.iter_fps(2.0, batch_size=64)])
    encoded: list[int] = []
    real = m.frame_tokens
    monkeypatch.setattr(m, "frame_tokens", lambda frames: encoded.append(len(frames)) or real(frames))
    if feature == "cls":
        # The CLS scan encodes every frame anyway and keeps the tokens of a short video: nothing is read twice.
        kept = list(watch(m, SAMPLE))
        assert encoded == [] and [(e.start, e.end) for e in kept] == [(e.start, e.end) for e in everything]
        torch.testing.assert_close(kept[-1].state.memory, everything[-1].state.memory, atol=1e-4, rtol=1e-4)
        monkeypatch.setattr("videollm.memory.SCAN_TOKEN_BUDGET", 0)  # a long video: the bridge frames are re-read
    scanned = list(watch(m, SAMPLE))
    assert [(e.start_frame, e.end_frame) for e in scanned] == [(e.start_frame, e.end_frame) for e in everything]
    assert [(e.start, e.end) for e in scanned] == [(e.start, e.end) for e in everything]
    assert len(scanned) >= 2
    in_scene = [int(((sampled >= e.start_frame) & (sampled <= e.end_frame)).sum()) for e in everything]
    assert encoded == [min(cfg.bridge.max_frames_per_segment, n) for n in in_scene]
    assert sum(in_scene) == len(sampled) > sum(encoded)
    torch.testing.assert_close(scanned[-1].state.memory, everything[-1].state.memory, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(m.project_state(scanned[-1].state), m.project_state(everything[-1].state),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["histogram", "uniform"])
def test_online_watch_encodes_only_the_bridge_frames(model: VideoLLM, mode: str, monkeypatch) -> None:
    """Streaming with histogram (or uniform) segmentation keeps the open scene's frames resized to the encoder's
    input and encodes only its bridge frames when it closes; the memory equals the one from every frame encoded as
    it arrives (the bridge stepped on the same frames' tokens)."""
    from videollm.bridge import segment_frame_indices
    from videollm.io import open_video

    cfg = ModelConfig.from_dict(model.config.to_dict())
    cfg.segmentation.feature = "histogram"
    cfg.segmentation.mode = "uniform" if mode == "uniform" else "scenetiling"
    cfg.segmentation.uniform_len = 5
    m = VideoLLM(cfg, model.lm, model.tokenizer, model.vision).eval()
    with open_video(SAMPLE) as reader:
        frames = np.concatenate([b.frames for b in reader.iter_fps(2.0, batch_size=64)])
        sampled = np.concatenate([b.indices for b in reader.iter_fps(2.0, batch_size=64)])
    every = m.encode_frames(frames)[1]  # (N, P*P, Dv): every sampled frame encoded
    encoded: list[int] = []
    real = m.frame_tokens
    monkeypatch.setattr(m, "frame_tokens", lambda x: encoded.append(len(x)) or real(x))
    monkeypatch.setattr(m, "encode_frames", lambda x: pytest.fail("a frame was encoded as it arrived"))
    monkeypatch.setattr("videollm.memory.EAGER_WAIT", float("inf"))  # a busy CI machine must not look idle
    events = list(watch(m, SAMPLE, online=True))
    assert len(events) >= 2
    reference = m.bridge.init_state(keep_scenes=cfg.recall)
    for e in events:
        positions = np.flatnonzero((sampled >= e.start_frame) & (sampled <= e.end_frame))
        keep = positions[segment_frame_indices(0, len(positions) - 1, cfg.bridge.max_frames_per_segment).numpy()]
        m.bridge.step(every[keep], reference, start_time=e.start, end_time=e.end, start_frame=e.start_frame,
                      end_frame=e.end_frame)
    in_scene = [int(((sampled >= e.start_frame) & (sampled <= e.end_frame)).sum()) for e in events]
    assert encoded == [min(cfg.bridge.max_frames_per_segment, n) for n in in_scene]
    assert sum(in_scene) == len(sampled) > sum(encoded)
    torch.testing.assert_close(events[-1].state.memory, reference.memory, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(m.project_state(events[-1].state), m.project_state(reference), atol=1e-4, rtol=1e-4)
    # What is buffered per frame is the encoder's input, whatever the video's size.
    assert tuple(m.encoder_input(frames[:1]).shape) == (1, 3, m.vision.image_size, m.vision.image_size)


def test_uniform_segmentation_switch(model: VideoLLM, features) -> None:
    cfg = ModelConfig.from_dict(model.config.to_dict())
    cfg.segmentation.mode = "uniform"
    m = VideoLLM(cfg, model.lm, model.tokenizer, model.vision)
    ends, _ = m.split(*features)
    assert ends == [3, 7, 11, 15, 19, 23]


def test_histogram_segmentation_feature(model: VideoLLM) -> None:
    """segmentation.feature "histogram": encode_frames returns the frames' colour histograms for SceneTiling (the
    bridge tokens are unchanged), the feature cache gets its own namespace, and the sample's true cuts are found."""
    import json

    import scenetiling
    from videollm.errors import UsageError
    from videollm.io import open_video
    from videollm.segmentation import SegmentationConfig
    from videollm.feature_cache import namespace

    cfg = ModelConfig.from_dict(model.config.to_dict())
    cfg.segmentation.feature, cfg.segmentation.min_len = "histogram", 2
    m = VideoLLM(cfg, model.lm, model.tokenizer, model.vision).eval()
    with open_video(SAMPLE) as reader:
        batches = list(reader.iter_fps(cfg.segmentation.fps))
    frames = torch.cat([torch.from_numpy(b.frames) for b in batches]).numpy()
    times = [t for b in batches for t in b.times]
    hist, tokens = m.encode_frames(frames)
    torch.testing.assert_close(hist, scenetiling.hsv_histograms(frames))
    torch.testing.assert_close(tokens, model.encode_frames(frames)[1])
    ends, _ = m.split(hist, tokens)
    cuts = [0.5 * (times[e] + times[e + 1]) for e in ends[:-1]]
    truth = json.loads(SAMPLE.with_suffix(".json").read_text())["cut_times"]
    assert scenetiling.boundary_f1(cuts, truth, tol=1.0) == 1.0, (cuts, truth)
    assert namespace(cfg, "fps2") != namespace(model.config, "fps2")
    with pytest.raises(UsageError, match="segmentation feature"):
        SegmentationConfig(feature="edges")


def test_no_memory_switch_makes_segments_independent(model: VideoLLM, features) -> None:
    m = _with_config(model, use_memory=False, readout="memory")
    _, segments = m.split(*features)
    with torch.no_grad():
        alone, _ = m.visual_tokens([segments[-1:]])
        after, _ = m.visual_tokens([segments])
    torch.testing.assert_close(alone, after, atol=1e-5, rtol=1e-5)


def test_projector_lm_width_mismatch_is_a_clear_error(model: VideoLLM) -> None:
    cfg = ModelConfig.from_dict(model.config.to_dict())
    cfg.projector = dataclasses.replace(cfg.projector, out_dim=65)
    with pytest.raises(ModelError, match="LM hidden size"):
        VideoLLM(cfg, model.lm, model.tokenizer, model.vision)


def test_loading_opens_no_network_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    VideoLLM.from_pretrained("tiny")


def test_preset_configs_roundtrip(tmp_path: Path) -> None:
    from videollm.config import preset_names

    assert {"tiny", "embedded", "videollamb-7b"} <= set(preset_names())
    for name in preset_names():
        cfg = ModelConfig.preset(name)
        cfg.save(tmp_path / name)
        assert ModelConfig.load(tmp_path / name).to_dict() == cfg.to_dict()
    big = ModelConfig.preset("videollamb-7b").bridge
    assert (big.width, big.heads, big.ffn, big.memory_tokens, big.pool, big.max_frames_per_segment) == \
        (1024, 8, 4096, 32, 12, 8)


def test_online_watch_encodes_frames_as_they_arrive_from_a_paced_source(model: VideoLLM, monkeypatch) -> None:
    """When the process sits idle waiting for frames (a webcam, a file in real time), histogram streaming encodes
    each frame as it arrives, so a closing scene waits for no encoder work; the memory is the same."""
    import time as _time

    from videollm.io import open_video

    cfg = ModelConfig.from_dict(model.config.to_dict())
    cfg.segmentation.feature = "histogram"
    m = VideoLLM(cfg, model.lm, model.tokenizer, model.vision).eval()
    with open_video(SAMPLE) as reader:
        batches = list(reader.iter_fps(2.0, batch_size=1))
        duration = reader.meta.duration
    fast = list(watch(m, iter(batches), online=True, duration=duration))

    def paced():
        for batch in batches:
            # Idle, as between a webcam's frames (0.5 s at 2 fps); well above EAGER_WAIT, since torch's OpenMP
            # threads may spin (and count as CPU time) for a while after the last encode.
            _time.sleep(0.3)
            yield batch

    encoded: list[int] = []
    real = m.frame_tokens
    monkeypatch.setattr(m, "frame_tokens", lambda x: encoded.append(len(x)) or real(x))
    slow = list(watch(m, paced(), online=True, duration=duration))
    assert encoded == [1] * len(batches)  # every frame once, as it arrived; nothing at scene ends
    assert [(e.start, e.end) for e in slow] == [(e.start, e.end) for e in fast]
    torch.testing.assert_close(slow[-1].state.memory, fast[-1].state.memory, atol=1e-4, rtol=1e-4)
