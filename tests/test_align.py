"""The word-alignment auxiliary loss: hand-made cases with known answers, and an alignment-only training run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from videollm.bridge import BridgeConfig
from videollm.errors import UsageError
from videollm.train import TrainConfig, train
from videollm.train.align import (
    MOTION_WORDS,
    NEEDLE_WORD,
    align_loss,
    align_vocab,
    grounded_words,
    scene_words,
    word_id,
    word_targets,
    world_words,
)
from videollm.train.loop import objective
from videollm.world.spec import Background, ObjectSpec, SceneSpec


def _obj(shape: str, colour: str, size: str, motion: str) -> ObjectSpec:
    return ObjectSpec(shape=shape, colour=colour, size=size, motion=motion, radius=0.1, x=0.5, y=0.5)


def test_scene_words_are_the_caption_attributes_in_order() -> None:
    scene = SceneSpec(num_frames=4, background=Background("flat"),
                      objects=(_obj("star", "red", "large", "bounce"), _obj("circle", "red", "small", "static")))
    assert scene_words(scene) == ["large", "red", "star", "bounces", "small", "circle", "still"]
    assert MOTION_WORDS["left"] == "left" and len(set(world_words())) == 3 + 8 + 8 + 8
    needle = SceneSpec(num_frames=2, background=Background("checker"), objects=(_obj("star", "red", "large", "static"),))
    assert scene_words(needle) == ["large", "red", "star", "still", NEEDLE_WORD]
    assert grounded_words() == [*world_words(), NEEDLE_WORD]


def test_align_loss_prefers_tokens_that_look_like_the_words() -> None:
    torch.manual_seed(0)
    emb = torch.randn(50, 16)
    vocab = torch.arange(50)
    targets = [[3, 7], []]  # the second clip has no words and must not count
    mask = torch.ones(2, 4, dtype=torch.bool)
    good = torch.randn(2, 4, 16) * 0.01
    good[0, 0], good[0, 2] = emb[3], emb[7]  # one token per word
    bad = torch.randn(2, 4, 16)
    low, high = align_loss(good, mask, targets, emb, vocab), align_loss(bad, mask, targets, emb, vocab)
    assert low < 0.75 < high  # two targets share one softmax: the best possible loss is log 2 ~ 0.69
    # A masked-out token cannot carry a word.
    masked = mask.clone()
    masked[0, 0] = False
    assert align_loss(good, masked, targets, emb, vocab) > low + 1.0
    # Gradients reach the visual tokens, never the (frozen) embeddings.
    visual = bad.clone().requires_grad_(True)
    table = emb.clone().requires_grad_(True)
    align_loss(visual, mask, targets, table, vocab).backward()
    assert visual.grad is not None and visual.grad[0].abs().sum() > 0 and visual.grad[1].abs().sum() == 0
    assert table.grad is None
    assert align_loss(bad, mask, [[], []], emb, vocab).item() == 0.0


def test_align_vocab_holds_every_world_word() -> None:
    from videollm.config import ModelConfig
    from videollm.lm import load_lm

    _, tokenizer = load_lm(ModelConfig.preset("tiny").lm)
    vocab = align_vocab(tokenizer, len(tokenizer), distractors=64, seed=1)
    ids = set(vocab.tolist())
    assert all(t in ids for t in word_targets(tokenizer, [world_words()])[0])
    assert torch.equal(vocab, align_vocab(tokenizer, len(tokenizer), distractors=64, seed=1))
    assert vocab.tolist() == sorted(ids)
    # recipes without needle clips keep the vocabulary they had; with them it gains the needle word
    assert torch.equal(vocab, align_vocab(tokenizer, len(tokenizer), distractors=64, seed=1, words=world_words()))
    with_needles = align_vocab(tokenizer, len(tokenizer), distractors=64, seed=1, words=grounded_words())
    assert set(with_needles.tolist()) == ids | {word_id(tokenizer, NEEDLE_WORD)}


def _recipe(tmp: Path, **changes) -> TrainConfig:
    base = {"model": "tiny",
            "data": [{"kind": "world", "scenes": 6, "examples": 6, "seed": 3, "max_scenes": 2,
                      "scene_seconds": [1.0, 2.0], "extra_qa_turns": 0}],
            "output_dir": str(tmp / "run"), "cache_dir": str(tmp / "features"), "batch_size": 6, "lr": 1e-2,
            "steps": 12, "schedule": "constant", "save_every": 50, "num_threads": 1, "extract_batch": 16}
    base.update(changes)
    return TrainConfig.from_dict(base)


def test_alignment_only_training_learns_the_words(tmp_path: Path, monkeypatch) -> None:
    import videollm.lm

    def no_lm(*args, **kwargs):
        raise AssertionError("an alignment-only step must not run the LM")

    monkeypatch.setattr(videollm.lm, "lm_loss", no_lm)
    result = train(_recipe(tmp_path, lm_weight=0.0, align_weight=1.0), progress=False)
    assert result.steps == 12
    assert np.mean(result.losses[-3:]) < 0.7 * np.mean(result.losses[:3])


class _FakeModel:
    """Just what ``objective`` reads of a model: a forward returning (no LM loss, visual, mask), the embeddings and
    the bridge config (memory tokens lead the readout)."""

    def __init__(self, visual: torch.Tensor, embeddings: torch.Tensor, readout: str) -> None:
        self.visual, self.embedding = visual, torch.nn.Embedding.from_pretrained(embeddings)
        self.bridge = SimpleNamespace(config=BridgeConfig.from_preset("tiny", readout=readout))
        self.lm = SimpleNamespace(get_input_embeddings=lambda: self.embedding)

    def __call__(self, clips, batch, return_visual: bool = False, return_memories: bool = False):
        return None, self.visual, torch.ones(self.visual.shape[:2], dtype=torch.bool)


def test_memory_alignment_scores_only_the_leading_memory_tokens(tmp_path: Path) -> None:
    torch.manual_seed(0)
    emb = torch.randn(50, 16)
    vocab = torch.arange(50)
    config = _recipe(tmp_path, align_weight=0.0, memory_align_weight=1.0)
    m = BridgeConfig.from_preset("tiny").memory_tokens  # memory_last_segment: M memory tokens, then the segment's
    clips = [[torch.zeros(2, 4, 8)]]  # one clip of one segment: only its length matters here
    targets = ([[]], [[3, 7]], [[]])
    words = torch.randn(1, m + 8, 16)
    words[0, 0], words[0, 1] = emb[3], emb[7]  # the words sit in memory tokens
    in_memory = objective(_FakeModel(words, emb, "memory_last_segment"), clips, None, targets, config, vocab)
    shifted = torch.randn(1, m + 8, 16)
    shifted[0, m], shifted[0, m + 1] = emb[3], emb[7]  # the same words in segment tokens only
    in_segment = objective(_FakeModel(shifted, emb, "memory_last_segment"), clips, None, targets, config, vocab)
    assert in_memory < 0.75 < in_segment  # log 2 ~ 0.69 is the best two words sharing one softmax can do
    assert objective(_FakeModel(words, emb, "memory_last_segment"), clips, None, ([[]], [[]], [[]]), config,
                     vocab) == 0.0


def test_memory_alignment_needs_memory_tokens_in_the_readout(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="memory tokens"):
        train(_recipe(tmp_path, memory_align_weight=1.0), progress=False)  # tiny reads out the last segment only
    with pytest.raises(UsageError):
        _recipe(tmp_path, memory_align_weight=-1.0)


def test_objective_weights_are_validated(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        _recipe(tmp_path, lm_weight=0.0, align_weight=0.0)
    with pytest.raises(UsageError):
        _recipe(tmp_path, align_weight=-1.0)


def test_shipped_configs_recall_the_words_training_aligns() -> None:
    """Recall reads its vocabulary from the checkpoint's config; it must be the alignment vocabulary of training."""
    from videollm.assets import shipped_checkpoint
    from videollm.config import ModelConfig

    for config in (ModelConfig.load(shipped_checkpoint()), ModelConfig.preset("embedded"), ModelConfig.preset("tiny")):
        assert list(config.recall_words) == grounded_words()
