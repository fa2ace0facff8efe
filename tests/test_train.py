"""Training on the ``tiny`` preset: loss goes down, resume is exact, features are cached, data is deterministic."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from videollm import prompts
from videollm.errors import ModelError, UsageError, VideoError
from videollm.train import (
    FeatureCache,
    TrainConfig,
    VideoFeatures,
    build_model_config,
    lr_at,
    namespace,
    train,
)
from videollm.train.data import WorldExamples, read_conversations
from videollm.feature_cache import video_features

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "checkpoints" / "embedded"


def _recipe(tmp: Path, cache: Path, **changes) -> TrainConfig:
    base = {
        "model": "tiny",
        "data": [{"kind": "world", "scenes": 4, "examples": 4, "seed": 3, "max_scenes": 2,
                  "scene_seconds": [1.0, 2.0], "extra_qa_turns": 1}],
        "output_dir": str(tmp), "cache_dir": str(cache), "batch_size": 4, "lr": 3e-3, "steps": 6,
        "save_every": 2, "num_threads": 1, "extract_batch": 16, "seed": 5,
    }
    base.update(changes)
    return TrainConfig.from_dict(base)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("features")


def test_few_steps_reduce_loss(tmp_path: Path, cache_dir: Path) -> None:
    result = train(_recipe(tmp_path / "run", cache_dir, steps=10, lr=1e-2, schedule="constant"), progress=False)
    assert result.steps == 10 and len(result.losses) == 10
    # The tiny LM is random and frozen: the visual prefix alone can lower its loss only a little.
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3]) - 0.04
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert log["losses"] == pytest.approx(result.losses)

    from videollm.model import VideoLLM
    from videollm.train import export_checkpoint

    shipped = export_checkpoint(tmp_path / "run", tmp_path / "ship")
    full = load_file(str(result.final_dir / "model.safetensors"))
    half = load_file(str(shipped / "model.safetensors"))
    assert all(half[k].dtype == torch.float16 for k in half) and half.keys() == full.keys()
    model = VideoLLM.from_pretrained(shipped, load_vision=False)
    state = model.trained_state_dict()
    for key, value in full.items():
        torch.testing.assert_close(state[key], value.half().float())
    assert (shipped / "loss.png").is_file() and (shipped / "train_log.json").is_file()


def test_lm_fine_tuning_saves_a_loadable_lm(tmp_path: Path, cache_dir: Path) -> None:
    from videollm.model import VideoLLM

    result = train(_recipe(tmp_path / "run", cache_dir, steps=6, train_lm=True, lr=1e-2, schedule="constant"),
                   progress=False)
    assert np.mean(result.losses[-2:]) < np.mean(result.losses[:2]) - 0.5
    model = VideoLLM.from_pretrained(result.final_dir, load_vision=False)
    assert Path(model.config.lm.source) == (result.final_dir / "lm").resolve()
    saved = load_file(str(result.final_dir / "lm" / "model.safetensors"))
    name = next(k for k in saved if k.endswith("q_proj.weight"))
    torch.testing.assert_close(model.lm.state_dict()[name], saved[name])


def test_lora_adapters_train_save_and_load(tmp_path: Path, cache_dir: Path) -> None:
    from videollm.model import VideoLLM

    recipe = _recipe(tmp_path / "run", cache_dir, steps=6, lr=1e-2, schedule="constant",
                     model_overrides={"lm": {"lora_rank": 4, "lora_targets": ["q_proj", "v_proj"]}})
    result = train(recipe, progress=False)
    saved = load_file(str(result.final_dir / "model.safetensors"))
    lora = {k: v for k, v in saved.items() if k.startswith("lm.")}
    # Two adapters (A, B) per targeted projection per layer; B starts at zero and has been trained.
    model = VideoLLM.from_pretrained(result.final_dir, load_vision=False)
    layers = model.lm.config.num_hidden_layers
    assert len(lora) == 2 * 2 * layers and all(".lora_" in k for k in lora)
    assert any(k.endswith("lora_B.default.weight") and v.abs().max() > 0 for k, v in lora.items())
    assert all(not p.requires_grad for k, p in model.lm.named_parameters() if ".lora_" not in k)
    for key, value in lora.items():
        torch.testing.assert_close(model.trained_state_dict()[key], value)
    # The adapters change what the LM computes; without them (a config without LoRA) the weights are refused.
    ids = torch.tensor([[1, 2, 3, 4]])
    plain = VideoLLM.from_pretrained("tiny", load_vision=False)
    with torch.no_grad():
        assert not torch.allclose(model.lm(input_ids=ids).logits, plain.lm(input_ids=ids).logits, atol=1e-4)
    with pytest.raises(ModelError, match="LoRA weights do not match"):
        plain.load_trained(result.final_dir / "model.safetensors")


def test_resume_continues_identically(tmp_path: Path, cache_dir: Path) -> None:
    straight = train(_recipe(tmp_path / "a", cache_dir), progress=False)
    # max_minutes=0 stops right after the first step (a simulated kill after a checkpoint).
    first = train(_recipe(tmp_path / "b", cache_dir, max_minutes=0), progress=False)
    assert first.stopped_early and first.steps == 1
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["step_000001"]
    resumed = train(_recipe(tmp_path / "b", cache_dir), progress=False)
    assert resumed.steps == 6 and resumed.losses[:1] == first.losses
    assert resumed.losses == pytest.approx(straight.losses, abs=1e-6)
    a = load_file(str(tmp_path / "a" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
    with pytest.raises(ModelError, match="different recipe"):
        train(_recipe(tmp_path / "b", cache_dir, lr=1e-2, steps=8), progress=False)


def test_feature_cache_round_trip(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, "space")
    feats = VideoFeatures(torch.randn(3, 8), torch.randn(3, 4, 8), torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64),
                          {"path": "x.mp4", "n": 3})
    cache.put("file:/a b/x.mp4", feats)
    got = cache.get("file:/a b/x.mp4")
    assert torch.equal(got.cls, feats.cls) and torch.equal(got.tokens, feats.tokens)
    assert torch.equal(got.times, feats.times) and got.meta == feats.meta
    assert not cache.has("file:/other.mp4")
    with pytest.raises(ModelError, match="no cached features"):
        cache.get("file:/other.mp4")


def test_namespace_tracks_what_changes_features() -> None:
    cfg = build_model_config(_recipe(Path("/tmp/x"), Path("/tmp/y")))
    other = dataclasses.replace(cfg, bridge=dataclasses.replace(cfg.bridge, pool=3))
    assert namespace(cfg, "fps2.0") != namespace(other, "fps2.0")
    assert namespace(cfg, "fps2.0") != namespace(cfg, "uniform16")
    assert namespace(cfg, "fps2.0") == namespace(build_model_config(_recipe(Path("/a"), Path("/b"))), "fps2.0")


def test_video_features_encode_once(tmp_path: Path, video_factory) -> None:
    video = video_factory(tmp_path / "clip.mp4", n_frames=20, fps=10, size=(64, 48))
    calls = []

    def encode(frames: np.ndarray):
        calls.append(len(frames))
        n = len(frames)
        return torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 4), torch.zeros(n, 2, 4)

    cache = FeatureCache(tmp_path / "c", "ns")
    first = video_features(encode, cache, video, fps=2.0)
    again = video_features(encode, cache, video, fps=2.0)
    assert sum(calls) == first.cls.shape[0] == 4  # 2 s at 2 fps
    assert torch.equal(first.cls, again.cls)
    np.testing.assert_allclose(first.times.numpy(), [0.0, 0.5, 1.0, 1.5])
    # a file replaced at the same path (here: 3 s instead of 2 s) is encoded again, not served stale features
    video_factory(video, n_frames=30, fps=10, size=(64, 48))
    replaced = video_features(encode, cache, video, fps=2.0)
    assert replaced.cls.shape[0] == 6 and sum(calls) == 4 + 6
    with pytest.raises(VideoError, match="no such file"):
        video_features(encode, cache, tmp_path / "missing.mp4", fps=2.0)


def test_world_examples_are_deterministic_and_grounded() -> None:
    from videollm.train.config import WorldSourceConfig
    from videollm.train.data import sample_pool_scene, world_config

    src = WorldSourceConfig(scenes=5, examples=20, seed=1, tasks={"caption": 1.0}, extra_qa_turns=1)
    cfg = world_config(src, fps=2.0)
    pool = [(torch.full((2, 1, 1), float(i)), sample_pool_scene(1, i, cfg)) for i in range(5)]
    examples = WorldExamples(src, pool)
    ex, again = examples[7], examples[7]
    assert ex.messages == again.messages
    assert ex.messages[0]["content"] == f"{prompts.VIDEO}\n{prompts.CAPTION}"
    last = pool[int(ex.segments[-1][0, 0, 0])][1]
    from videollm.world import scene_caption

    assert ex.messages[1]["content"] == scene_caption(last.scenes[0])
    assert len(ex.messages) == 4 and prompts.VIDEO not in ex.messages[2]["content"]
    assert all(not s.heldout for _, s in pool)


def test_world_pool_needle_clips_are_captioned_and_asked_about() -> None:
    from videollm.train.align import NEEDLE_WORD
    from videollm.train.config import WorldSourceConfig
    from videollm.train.data import WorldScenes, needle_key, scene_key
    from videollm.world import scene_caption

    src = WorldSourceConfig(scenes=4, needles=3, examples=60, seed=1, tasks={"caption": 0.5, "qa": 0.5},
                            extra_qa_turns=0)
    scenes = WorldScenes(src, cache=None, fps=2.0, max_frames=4)
    assert scenes.keys == [scene_key(1, False, i) for i in range(4)] + [needle_key(1, i) for i in range(3)]
    specs = [scenes.spec(i) for i in range(7)]
    assert [s.scenes[0].tag for s in specs] == [""] * 4 + ["needle"] * 3
    needle = specs[4].scenes[0]
    assert specs[4].num_frames == 2 and needle.background.kind == "checker" and not specs[4].heldout
    assert specs[4] == scenes.spec(4) and specs[4] != specs[5]  # seeded per index
    examples = WorldExamples(src, [(torch.full((2, 1, 1), float(i)), s) for i, s in enumerate(specs)])
    asked = captioned = 0
    for i in range(len(examples)):
        ex = examples[i]
        last = specs[int(ex.segments[-1][0, 0, 0])].scenes[0]
        if last.tag != "needle":
            assert NEEDLE_WORD not in ex.words
            continue
        assert ex.words[-1] == NEEDLE_WORD and NEEDLE_WORD in ex.memory_words
        question, answer = ex.messages[0]["content"].split("\n")[-1], ex.messages[1]["content"]
        if question == prompts.CAPTION:
            captioned += 1
            assert answer == scene_caption(last)
        else:
            asked += 1
            assert (question, answer) == (f"what colour was the {last.objects[0].shape} on the checkerboard?",
                                          last.objects[0].colour)
    assert asked and captioned
    with pytest.raises(UsageError, match="needles"):
        WorldSourceConfig(needles=-1)


def test_read_conversations_formats(tmp_path: Path) -> None:
    data = [{"video": "a.mp4", "conversations": [{"from": "human", "value": "<video>\nWhat happens?"},
                                                 {"from": "gpt", "value": "A cat jumps."}]},
            {"image": "b.png", "conversations": [{"from": "human", "value": "Describe it."},
                                                 {"from": "gpt", "value": "A dog."}]}]
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(data))
    records = read_conversations(path)
    assert records[0] == {"video": "a.mp4", "messages": [{"role": "user", "content": "<video>\nWhat happens?"},
                                                         {"role": "assistant", "content": "A cat jumps."}]}
    assert records[1]["messages"][0]["content"] == "<video>\nDescribe it."
    lines = tmp_path / "conv.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in data))
    assert read_conversations(lines) == records
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"video": "a.mp4", "conversations": [{"from": "robot", "value": "x"}]}]))
    with pytest.raises(UsageError, match="known 'from'"):
        read_conversations(bad)


def test_conversation_source_trains(tmp_path: Path, cache_dir: Path, video_factory) -> None:
    video_factory(tmp_path / "v.mp4", n_frames=24, fps=8, size=(64, 48), pattern="gradient")
    (tmp_path / "conv.json").write_text(json.dumps([{"video": "v.mp4", "conversations": [
        {"from": "human", "value": "<video>\nWhat is it?"}, {"from": "gpt", "value": "a gradient"}]}]))
    config = _recipe(tmp_path / "run", cache_dir, steps=2, batch_size=1,
                     data=[{"kind": "conversations", "path": str(tmp_path / "conv.json")}])
    result = train(config, progress=False)
    assert result.steps == 2 and all(np.isfinite(result.losses))


def test_lr_schedule_and_recipes() -> None:
    cfg = TrainConfig.from_dict({"data": [{"kind": "world"}], "output_dir": "x", "lr": 1.0, "warmup_ratio": 0.1})
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] < 0.01 and all(a >= b for a, b in itertools.pairwise(lrs[9:]))
    embedded = TrainConfig.load("embedded")
    model_cfg = build_model_config(embedded)
    assert model_cfg.bridge.max_frames_per_segment == embedded.model_overrides["bridge"]["max_frames_per_segment"]
    # The shipped checkpoint's two stages chain: the LM stage starts from the alignment stage's final weights and
    # reads the same cached scene pool.
    assert embedded.lm_weight == 0.0 and embedded.align_weight > 0
    second = TrainConfig.load("embedded-lm")
    assert Path(second.model) == Path(embedded.output_dir) / "final" and second.features_dir == embedded.features_dir
    assert (second.data[0].scenes, second.data[0].seed) == (embedded.data[0].scenes, embedded.data[0].seed)
    assert second.lm_weight > 0 and second.align_weight > 0
    assert second.model_overrides["lm"]["lora_rank"] == 8  # stage 2 adds LoRA adapters to the frozen LM
    published = TrainConfig.load("published")
    assert published.lr == 2e-5 and published.train_lm and published.data[0].num_frames == 16
    with pytest.raises(UsageError, match="unknown field"):
        TrainConfig.from_dict({"data": [{"kind": "world"}], "output_dir": "x", "learning_rate": 1})


@pytest.mark.skipif(not (SHIPPED / "model.safetensors").is_file(), reason="no shipped checkpoint in data/ yet")
def test_shipped_checkpoint_loads() -> None:
    from videollm.model import VideoLLM

    model = VideoLLM.from_pretrained(SHIPPED, load_vision=False)
    assert model.config.name == "embedded"
    weights = load_file(str(SHIPPED / "model.safetensors"))
    assert (SHIPPED / "model.safetensors").stat().st_size < 8 * 2**20
    assert set(weights) == set(model.trained_state_dict())
    # Trained, not a fresh init: the projector's output layer has moved far from N(0, 0.02).
    assert float(weights["projector.2.weight"].std()) > 0.021
    segments = [torch.zeros(2, model.config.bridge.tokens_per_frame, model.config.bridge.vision_dim)]
    visual, _ = model.visual_tokens([segments])
    assert visual.shape[-1] == model.lm.config.hidden_size and torch.isfinite(visual).all()


def test_recorded_experiment_recipes_still_parse() -> None:
    """The not-shipped runs the checkpoint README reports keep loading as recipes (fields renamed later would fail)."""
    recipes = sorted((SHIPPED / "experiments").glob("*.json"))
    assert [p.name for p in recipes] == [
        "folded-needles.json", "memalign-B1.json", "memlast-A.json", "memlast-B2.json", "memory-reader-2.json",
        "memory-reader-3.json", "memory-reader-4.json", "memory-reader.json"]
    folded = TrainConfig.load(recipes[0])
    shipped_stage2 = TrainConfig.load("embedded-lm")
    assert folded.data[0].needles == 400 and shipped_stage2.data[0].needles == 0
    assert (folded.steps, folded.lr, folded.seed) == (shipped_stage2.steps, shipped_stage2.lr, shipped_stage2.seed)
    for path in recipes[1:4]:
        recipe = TrainConfig.load(path)
        assert recipe.model_overrides["bridge"]["readout"] == "memory_last_segment"
        assert recipe.memory_align_weight > 0
    stage = TrainConfig.load(SHIPPED / "experiments" / "memalign-B1.json")
    assert stage.lm_weight == 0 and stage.steps == 600
    readers = [TrainConfig.load(p) for p in recipes[4:]]
    assert all(r.model == "data/checkpoints/embedded" and r.data[0].tasks["across"] > 0 for r in readers)
    assert [r.step_align_weight > 0 for r in readers] == [False, True, True, False]


def test_across_task_asks_a_question_that_spans_the_clip_and_reads_its_memory(tmp_path: Path, cache_dir: Path) -> None:
    """The "across" task: a question of ``cross_scene_qa`` about the composed clip, with its true answer, read out
    as the clip's final memory (memory_only); the clip's types are balanced; training on it runs."""
    from videollm.train.config import WorldSourceConfig
    from videollm.train.data import sample_pool_scene, world_config
    from videollm.world import VideoSpec
    from videollm.world.truth import cross_scene_qa

    src = WorldSourceConfig(scenes=8, examples=40, seed=1, min_scenes=2, max_scenes=5, tasks={"across": 1.0})
    cfg = world_config(src, fps=2.0)
    pool = [(torch.full((2, 1, 1), float(i)), sample_pool_scene(1, i, cfg)) for i in range(8)]
    examples = WorldExamples(src, pool)
    kinds = set()
    for i in range(len(examples)):
        ex = examples[i]
        picks = [int(s[0, 0, 0]) for s in ex.segments]
        scenes = [pool[k][1].scenes[0] for k in picks]
        scenes = [dataclasses.replace(s, transition="cut") for s in scenes[:-1]] + [scenes[-1]]
        first = pool[picks[0]][1]
        truth = cross_scene_qa(VideoSpec(first.width, first.height, first.fps, tuple(scenes), False))
        assert ex.memory_only and len(ex.messages) == 2
        assert len(ex.step_words) == len(scenes) and ex.step_words[-1] == ex.memory_words
        assert all(set(a) <= set(b) for a, b in zip(ex.step_words, ex.step_words[1:]))
        question = ex.messages[0]["content"].removeprefix(f"{prompts.VIDEO}\n")
        match = [q for q in truth if q["question"] == question]
        assert match and match[0]["answer"] == ex.messages[1]["content"]
        kinds.add(match[0]["type"])
    assert {"order", "scene_count"} <= kinds

    recipe = _recipe(tmp_path / "run", cache_dir, steps=2, data=[
        {"kind": "world", "scenes": 4, "examples": 4, "seed": 3, "min_scenes": 2, "max_scenes": 3,
         "scene_seconds": [1.0, 2.0], "tasks": {"across": 1.0, "caption": 1.0}}], align_weight=0.5)
    result = train(recipe, progress=False)
    assert result.steps == 2 and all(np.isfinite(result.losses))
    # The per-step memory loss adds to the same first step's loss (same data, same seed).
    stepped = train(dataclasses.replace(recipe, output_dir=str(tmp_path / "stepped"), step_align_weight=1.0),
                    progress=False)
    assert stepped.losses[0] > result.losses[0] + 1.0
