"""Questions that span scenes read from the timeline of scene captions (``videollm.across``): with the world's true
captions every order and count question is answered right and every n-th-time / after-it-left question goes to the
scene holding its answer; through ``recall.answer`` the model is asked about that scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videollm import across
from videollm.model import VideoLLM
from videollm.recall import answer, plan
from videollm.world import WorldConfig, sample_video_spec, scene_caption
from videollm.world.truth import cross_scene_qa


@pytest.mark.parametrize("seed", range(12))
def test_true_captions_answer_every_cross_scene_question(seed: int) -> None:
    spec = sample_video_spec(np.random.default_rng(seed), heldout=seed % 2 == 0, n_scenes=3 + seed % 6,
                             config=WorldConfig(fps=8.0))
    captions = [scene_caption(s) for s in spec.scenes]
    qa = cross_scene_qa(spec)
    assert {q["type"] for q in qa} >= {"order", "scene_count"}
    for q in qa:
        assert across.asks(q["question"]), q
        got = across.plan(q["question"], captions)
        assert got is not None, q
        if q["type"] in ("order", "scene_count"):
            assert (got.answer, got.scene, got.ask) == (q["answer"], None, None), (q, captions)
        elif q["type"] == "state_change":
            shape = q["question"].split()[4]  # "what colour was the <shape> the n-th time it appeared?"
            assert (got.answer, got.scene, got.ask) == (None, q["scene"], f"what colour is the {shape}?"), q
        else:  # after_exit: the scene after the one it left, asked what appeared first
            assert (got.answer, got.scene, got.ask) == (None, q["scene"], across.FIRST_QUESTION), q
        assert set(got.scenes) <= set(q["scenes"]) | {got.scene}, q


def test_phrasings_and_what_the_timeline_cannot_answer() -> None:
    captions = ["a large red circle moves left; a small blue star spins", "a small green hexagon bounces",
                "a large yellow square stays still; a red circle grows", "a small white square moves right"]
    order = across.plan("Did the white square appear AFTER the blue star?", captions)
    assert (order.kind, order.answer, order.scenes) == ("order", "yes", (0, 3))
    assert across.plan("did the blue star appear before the red circle?", captions).answer == "no"  # same scene
    count = across.plan("How many scenes showed something red?", captions)
    assert (count.answer, count.scenes) == ("2", (0, 2))
    assert across.plan("how many scenes had a triangle?", captions).answer == "0"
    nth = across.plan("what colour was the square the second time it appeared?", captions)
    assert (nth.scene, nth.scenes) == (3, (2, 3))
    assert across.plan("what colour was the square the third time it appeared?", captions) is None  # shown twice
    assert across.plan("what moved right after the white square left?", captions) is None  # nothing after it
    for question in ("what colour is the star?", "how many scenes are there?", "what appeared first?",
                     "how many scenes showed something?"):
        assert across.plan(question, captions) is None, question


def test_a_thing_no_caption_names_is_placed_where_recall_finds_it() -> None:
    captions = ["a large red circle moves left", "a small green hexagon bounces", "a blue star spins"]
    question = "did the orange hexagon appear before the red circle?"  # the caption got the hexagon's colour wrong
    assert across.plan(question, captions).answer == "no"  # never named: it comes last
    located = across.plan(question, captions, locate=lambda phrase: 1 if "hexagon" in phrase else None)
    assert (located.answer, located.scenes) == ("no", (0, 1))
    assert across.plan("did the orange hexagon appear before the blue star?", captions,
                       locate=lambda phrase: 1).answer == "yes"
    after = across.plan("what moved right after the orange hexagon left?", captions, locate=lambda phrase: 1)
    assert (after.scene, after.scenes) == (2, (1, 2))


def _watched(model: VideoLLM, captions: list[str]):
    cfg = model.bridge.config
    gen = torch.Generator().manual_seed(3)
    state = None
    for k in range(len(captions)):
        seg = torch.randn(2, cfg.tokens_per_frame, cfg.vision_dim, generator=gen)
        state = model.bridge.step(seg, state, start_time=2.0 * k, end_time=2.0 * (k + 1))
    state.extra["captions"] = [{"start": 2.0 * k, "end": 2.0 * k + 2.0, "caption": c} for k, c in enumerate(captions)]
    return state


def test_recall_answers_from_the_timeline_and_asks_the_model_about_one_scene(model: VideoLLM, monkeypatch) -> None:
    captions = ["a red square; a blue circle", "a green star", "a small yellow square moves up", "a red circle"]
    state = _watched(model, captions)
    pieces, decision = answer(model, state, "how many scenes showed a circle?")
    assert "".join(pieces) == "2" and (decision.how, decision.candidates) == ("timeline", (0, 3))
    assert decision.source(state) == "answered from the scene captions in order (scenes 1, 4 of 4)"
    pieces, _ = answer(model, state, "did the green star appear before the blue circle?")
    assert "".join(pieces) == "no"
    pieces, decision = answer(model, state, "how many scenes showed a hexagon?")
    assert "".join(pieces) == "0"
    assert decision.source(state) == "answered from the scene captions in order (none of the 4 names it)"

    asked = []
    projected = []
    real_project = model.project_state
    monkeypatch.setattr(model, "project_state", lambda st, at=None: projected.append(at) or real_project(st, at=at))
    monkeypatch.setattr(model, "chat", lambda visual, history, question, **kw: asked.append(question) or iter(["x"]))
    pieces, decision = answer(model, state, "what colour was the square the second time it appeared?")
    assert "".join(pieces) == "x" and asked == ["what colour is the square?"] and projected == [2]
    assert (decision.how, decision.scene, decision.candidates) == ("timeline", 2, (0, 2))
    answer(model, state, "what moved right after the green star left?")
    assert asked[-1] == across.FIRST_QUESTION and projected[-1] == 2

    # Recall off (or a question of none of the four kinds): as before.
    assert plan(model, state, "what colour is the star?").how != "timeline"
    model.config.recall = False
    try:
        assert plan(model, state, "how many scenes showed a circle?").how == "now"
    finally:
        model.config.recall = True


def test_memory_reader_answers_from_the_final_memory_alone(model: VideoLLM, monkeypatch) -> None:
    """``cross_reader`` "memory": the LM is asked the user's own question about the projected final carried memory
    (M tokens, the same ones the "across" training task reads), never about one scene; other questions as before;
    ``runner.ablated`` flips it (and combines it with ``no_memory``) and puts everything back."""
    from videollm.eval.runner import ablated

    state = _watched(model, ["a red square; a blue circle", "a green star", "a red circle"])
    seen = []
    monkeypatch.setattr(model, "chat", lambda visual, history, question, **kw: seen.append((visual, question))
                        or iter(["yes"]))
    with ablated(model, "memory_reader"):
        pieces, decision = answer(model, state, "did the green star appear before the blue circle?")
        assert "".join(pieces) == "yes" and decision.how == "memory" and decision.candidates == (0, 1, 2)
        assert decision.source(state) == "answered from the memory carried through all 3 scenes"
        visual, question = seen[-1]
        assert question == "did the green star appear before the blue circle?"
        torch.testing.assert_close(visual, model.projector(state.memory))
        assert visual.shape[0] == model.num_visual_tokens([2], memory_only=True)
        assert plan(model, state, "what colour is the star?").how not in ("memory", "timeline")
    assert model.config.cross_reader == "timeline"
    with ablated(model, "memory_reader+no_memory"):
        assert model.config.cross_reader == "memory" and not model.bridge.config.use_memory
    assert model.config.cross_reader == "timeline" and model.bridge.config.use_memory
    with pytest.raises(ValueError, match="unknown ablation"):
        with ablated(model, "memory_reader+nonsense"):
            pass
