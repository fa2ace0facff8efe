"""Question-conditioned recall (videollm.recall): which scene a question names, which scene its words point at,
and that the answer is generated from that scene's readout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videollm.bridge.state import BridgeState, SegmentRecord
from videollm.model import VideoLLM
from videollm.recall import (
    WordScorer,
    answer,
    caption_matches,
    content_words,
    plan,
    scene_captions,
    scene_reference,
)


def table(n: int, seconds: float = 2.0) -> list[SegmentRecord]:
    return [SegmentRecord(k * seconds, (k + 1) * seconds, 0, 0) for k in range(n)]


@pytest.mark.parametrize(("question", "n", "expected"), [
    ("what colour is the circle in the third scene?", 5, 2),
    ("How many objects are in the 21st scene?", 30, 20),
    ("how many objects are in the 21st scene?", 5, 4),  # past the end (missed cuts): the last segment
    ("what happens in scene 4?", 5, 3),
    ("what happens in scene #12?", 5, 4),
    ("what happens in scene 0?", 5, None),
    ("describe the last scene", 5, 4),
    ("what is shown at 0:05?", 5, 2),
    ("what is shown at 1:00:01?", 5, None),
    ("what happens at 7.5 seconds?", 5, 3),
    ("what appeared first?", 5, 0),
    ("what appeared last?", 5, 4),
    ("what appeared first and what appeared last?", 5, None),
    ("what colour is the square?", 5, None),
    ("what colour is the square?", 0, None),
])
def test_scene_reference(question: str, n: int, expected: int | None) -> None:
    assert scene_reference(question, table(n)) == expected


def test_word_scorer_prefers_the_scene_showing_the_words() -> None:
    embeddings = torch.eye(10, 16)  # word i is direction i
    scorer = WordScorer(embeddings, torch.arange(10), grounded={"red": 1, "star": 2, "Large": 3, "spins": 4})
    assert scorer.question_ids("is the LARGE red star red?") == [3, 1, 2]
    moves = WordScorer(embeddings, torch.arange(10), grounded={"right": 5, "star": 2})
    assert moves.question_ids("what appeared right after the star?") == [2]  # the adverb, not the motion
    assert moves.question_ids("what appeared right before the star that moves right?") == [2, 5]
    scenes = [embeddings[[1, 2]] * 3.0, embeddings[[3, 4, 5]], embeddings[[6]]]  # scale must not matter (cosine)
    assert int(scorer.scores(scenes, [3]).argmax()) == 1
    assert int(scorer.scores(scenes, [1, 2]).argmax()) == 0
    assert int(scorer.scores(scenes, [2, 3, 4]).argmax()) == 1  # two of three words beat one
    assert torch.equal(scorer.scores(scenes, []), torch.zeros(3))
    logp = scorer.bag_of_words(scenes)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3))


def watched(model: VideoLLM, n: int = 4):
    cfg = model.bridge.config
    gen = torch.Generator().manual_seed(3)
    state = None
    for k in range(n):
        seg = torch.randn(2, cfg.tokens_per_frame, cfg.vision_dim, generator=gen)
        state = model.bridge.step(seg, state, start_time=2.0 * k, end_time=2.0 * (k + 1))
    return state


def test_state_scores_score_the_recalled_readouts_and_project_each_scene_once(model: VideoLLM, monkeypatch) -> None:
    scorer = WordScorer.for_model(model)
    state = watched(model, 3)
    ids = sorted(set(scorer.grounded.values()))[:2]
    visuals = [model.project_state(state, at=k) for k in range(3)]
    torch.testing.assert_close(scorer.state_scores(model, state, ids), scorer.scores(visuals, ids))
    calls: list[int | None] = []
    real = model.project_state
    monkeypatch.setattr(model, "project_state", lambda st, at=None: calls.append(at) or real(st, at=at))
    scorer.state_scores(model, state, ids)
    assert calls == []  # a follow-up question reuses every scene's row
    cfg = model.bridge.config
    model.bridge.step(torch.randn(2, cfg.tokens_per_frame, cfg.vision_dim), state, start_time=8.0, end_time=10.0)
    grown = scorer.state_scores(model, state, ids)
    assert calls == [3] and grown.shape == (4,)  # the stream grew: only the new scene is projected
    calls.clear()
    scorer.state_scores(model, watched(model, 2), ids)
    assert calls == [0, 1]  # another video starts afresh


class FixedScorer(WordScorer):
    """Every question has grounded word 0; scene ``best`` explains it best."""

    def __init__(self, best: int) -> None:
        self.best = best

    def question_ids(self, question: str) -> list[int]:
        return [0]

    def state_scores(self, model, state, ids) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.tensor(self.best), state.num_segments).float()


def text(model: VideoLLM, state, k: int, question: str, **kwargs) -> str:
    return "".join(model.chat(model.project_state(state, at=k), [], question, max_new_tokens=4, **kwargs))


def test_named_scene_is_answered_from_its_own_readout(model: VideoLLM) -> None:
    state = watched(model)
    question = "what colour is the circle in the second scene?"
    pieces, decision = answer(model, state, question, max_new_tokens=4)
    assert (decision.scene, decision.how, decision.candidates) == (1, "named", (1,))
    assert "".join(pieces) == text(model, state, 1, question)
    # the readout recalled for scene 1 is not the one after the last scene
    assert not torch.allclose(model.project_state(state, at=1), model.project_state(state))


def test_word_match_tries_that_scene_and_the_next_and_keeps_the_surer_answer(model: VideoLLM,
                                                                             monkeypatch) -> None:
    state = watched(model)
    question = "what appeared right after the circle?"
    assert plan(model, state, question, scorer=FixedScorer(1)).candidates == (1, 2)
    assert plan(model, state, question, scorer=FixedScorer(3)).candidates == (3,)  # no scene after the last
    assert plan(model, state, "what appeared right before the circle?", scorer=FixedScorer(1)).candidates == (1, 0)
    decision = plan(model, state, "what colour is the circle?", scorer=FixedScorer(2))
    assert (decision.scene, decision.how, decision.candidates) == (2, "words", (2,))

    # the answer the LM is surer of wins: make the LM's likelihood prefer one scene's readout, then the other
    readouts = {k: model.project_state(state, at=k) for k in (1, 2)}
    score = model.score
    model._word_scorer = FixedScorer(1)
    try:
        for preferred in (1, 2):
            def biased(visual, q, candidates, preferred=preferred):
                bonus = 10.0 if torch.equal(visual, readouts[preferred]) else 0.0
                return score(visual, q, candidates) + bonus

            monkeypatch.setattr(model, "score", biased)
            pieces, decision = answer(model, state, question, max_new_tokens=4, temperature=1.0, seed=0)
            assert decision.scene == preferred
            assert "".join(pieces) == text(model, state, preferred, question, temperature=1.0, seed=0)
    finally:
        model._word_scorer = None


def test_without_recall_or_grounded_words_the_last_readout_answers(model: VideoLLM) -> None:
    state = watched(model)
    model.config.recall = False
    try:
        assert plan(model, state, "what colour is the circle in the first scene?").how == "now"
    finally:
        model.config.recall = True
    # "how many objects are there" names no scene and has no world word
    decision = plan(model, state, "how many objects are there?")
    assert (decision.scene, decision.how) == (3, "now")
    # a memory saved before scenes were kept answers as before, after the last scene
    old = watched(model)
    old.scenes = None
    assert plan(model, old, "what colour is the circle in the first scene?").how == "now"
    # a one-scene video has nothing to choose from
    assert plan(model, watched(model, 1), "what colour is the circle in the first scene?").how == "now"


@pytest.mark.parametrize(("question", "counted"), [
    ("how many scenes are there?", True),
    ("How many shots does the video have?", True),
    ("how many scenes are in this video?", True),
    ("how many scenes?", True),
    ("how many scenes show a red circle?", False),  # a filtered count: no segment count answers it
    ("how many objects are in the 2nd scene?", False),
    ("how many objects are there?", False),
])
def test_questions_about_the_number_of_scenes_are_answered_by_counting(model: VideoLLM, question: str,
                                                                       counted: bool) -> None:
    state = watched(model)  # 4 segments
    pieces, decision = answer(model, state, question, max_new_tokens=4)
    text_ = "".join(pieces)
    assert (decision.how == "counted") == counted
    if counted:
        assert text_ == "4" and decision.candidates == ()
        assert decision.where(state) == "the 4 scenes SceneTiling found"
    model.config.recall = False  # the no-recall ablation answers from the last readout, like any question
    try:
        assert plan(model, state, question).how == "now"
    finally:
        model.config.recall = True


def test_content_words_and_caption_clauses_bind_words_about_one_object() -> None:
    assert content_words("what appeared right after the small red circle?") == {"small", "red", "circle"}
    assert content_words("how does the orange hexagon move?") == {"orange", "hexagon"}
    assert content_words("a large cyan star moves right; two stars") == {"large", "cyan", "star", "move", "right", "two"}
    assert content_words("how many scenes are there?") == set()
    captions = ["a small red square moves left; a large blue circle spins",  # red and circle, in two clauses
                "a medium red circle moves up and a green star grows", "", "a red circle"]
    assert caption_matches("how big is the red circle?", captions).tolist() == [1.0, 2.0, 0.0, 2.0]
    assert caption_matches("what is there?", captions).tolist() == [0.0, 0.0, 0.0, 0.0]
    # the needle question names its clip by the background its caption holds: a haystack star matches one word
    needle = "what colour was the star on the checkerboard?"
    hay = ["a large cyan star moves left", "a large red star on a checkerboard", "a small red circle spins"]
    assert caption_matches(needle, hay).tolist() == [1.0, 2.0, 0.0]


def test_scene_captions_use_stored_ones_caption_the_rest_once_and_keep_them(model: VideoLLM, monkeypatch,
                                                                           tmp_path: Path) -> None:
    state = watched(model)
    state.extra["captions"] = [{"start": 2.0, "end": 4.0, "caption": "a red circle"}]  # scene 1, from a session
    asked = []

    def answer_many(visuals, prompt, max_new_tokens=64, batch_size=32):
        asked.append(len(visuals))
        return [f" caption {len(asked)}.{i}\n" for i in range(len(visuals))]

    monkeypatch.setattr(model, "answer_many", answer_many)
    captions = scene_captions(model, state)
    assert captions == ["caption 1.0", "a red circle", "caption 1.1", "caption 1.2"] and asked == [3]
    assert scene_captions(model, state) == captions and asked == [3]  # kept: nothing captioned again
    assert [c["start"] for c in state.extra["captions"]] == [0.0, 2.0, 4.0, 6.0]
    state.save(tmp_path / "memory.safetensors")  # a saved memory keeps them too
    assert scene_captions(model, BridgeState.load(tmp_path / "memory.safetensors")) == captions and asked == [3]


class NoWords(FixedScorer):
    """A scorer that finds no grounded word in any question."""

    def question_ids(self, question: str) -> list[int]:
        return []

    def state_scores(self, model, state, ids) -> torch.Tensor:
        return torch.zeros(state.num_segments)


def test_plan_prefers_the_scene_whose_caption_binds_the_question_words(model: VideoLLM) -> None:
    state = watched(model)
    captions = ["a red square; a blue circle", "a green star", "a small red circle moves up", "a red circle"]
    state.extra["captions"] = [{"start": 2.0 * k, "end": 2.0 * k + 2.0, "caption": c} for k, c in enumerate(captions)]
    question = "how big is the red circle?"
    # the word scorer prefers scene 0 (red and circle are both there), the captions 2 and 3; of those, the word score
    assert plan(model, state, question, scorer=FixedScorer(0)).scene == 2
    assert plan(model, state, question, scorer=FixedScorer(3)).scene == 3
    # without grounded words the captions alone decide; with neither, the readout after the last scene answers
    assert plan(model, state, "where is the green star?", scorer=NoWords(0)).scene == 1
    assert plan(model, state, "where is the yellow hexagon?", scorer=NoWords(0)).how == "now"
    decision = plan(model, state, "what appeared right after the small red circle?", scorer=FixedScorer(0))
    assert (decision.scene, decision.how, decision.candidates) == (2, "captions", (2, 3))
    model.config.recall_captions = False
    try:
        assert plan(model, state, question, scorer=FixedScorer(0)).scene == 0
    finally:
        model.config.recall_captions = True


def test_a_numbered_scene_is_checked_against_its_neighbours_captions(model: VideoLLM) -> None:
    from videollm.recall import numbered_scene_check

    state = watched(model, 5)
    captions = ["a red square", "a blue circle", "a green star", "a white cross", "a blue circle and a red star"]
    state.extra["captions"] = [{"start": 2.0 * k, "end": 2.0 * k + 2.0, "caption": c} for k, c in enumerate(captions)]
    # a missed cut: "the 4th scene" shows the green star, now segment 2 (an earlier neighbour wins the tie with 4)
    assert plan(model, state, "what colour is the star in the 4th scene?").scene == 2
    assert plan(model, state, "what colour is the cross in the 4th scene?").scene == 3  # it matches: kept
    assert plan(model, state, "what colour is the hexagon in scene 4?").scene == 3  # nothing matches: kept
    assert numbered_scene_check(model, state, "what colour is the circle in the fifth scene?", 4) == 4
    assert numbered_scene_check(model, state, "how many objects are in the 4th scene?", 3) == 3  # no content word
    assert numbered_scene_check(model, state, "what colour is the star in the first scene?", 0) == 0
    assert numbered_scene_check(model, state, "what colour is the star in the last scene?", 4) == 4
    assert numbered_scene_check(model, state, "what colour is the square at 7.5 s?", 3) == 3  # times are exact
    model.config.recall_captions = False
    try:
        assert plan(model, state, "what colour is the star in the 4th scene?").scene == 3
    finally:
        model.config.recall_captions = True


def test_states_keep_scenes_only_when_recall_is_on(model: VideoLLM) -> None:
    from videollm.config import ModelConfig

    assert model.bridge.init_state().scenes is not None
    assert model.bridge.init_state(keep_scenes=False).scenes is None
    assert ModelConfig.preset("videollamb-7b").recall is False  # 4.7 MB a scene at the published sizes: opt in
    assert ModelConfig.preset("embedded").recall is True


SHIPPED = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "embedded"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "world" / "video" / "video_000000.mp4"


@pytest.mark.skipif(not (SHIPPED / "model.safetensors").is_file(), reason="no shipped checkpoint")
def test_shipped_model_recalls_the_scene_a_question_is_about() -> None:
    """The shipped checkpoint's scene tokens point at the words of their own objects: on a shipped 4-scene sample,
    each attribute question about a named object is planned onto the scene that shows it."""
    import json

    from videollm.eval.metrics import overlap_assign
    from videollm.memory import build_memory

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = VideoLLM.from_pretrained(SHIPPED).eval()
        state = build_memory(model, SAMPLE)
    finally:
        torch.set_num_threads(threads)
    truth = json.loads(SAMPLE.with_suffix(".json").read_text())
    spans = [(s.start_time, s.end_time) for s in state.segments]
    scene_of = overlap_assign(spans, [(s["start_time"], s["end_time"]) for s in truth["scenes"]])
    assert scene_of == list(range(len(truth["scenes"])))  # SceneTiling found the true scenes
    questions = [qa for qa in truth["qa"] if qa["type"] == "attribute" and "scene" not in qa["question"]]
    hits = [scene_of[plan(model, state, qa["question"]).scene] == qa["scene"] for qa in questions]
    assert len(hits) >= 10 and sum(hits) >= 0.8 * len(hits), hits
    named = plan(model, state, "how many objects are in the third scene?")
    assert (named.scene, named.how) == (2, "named")


def test_answer_many_equals_greedy_chat_one_by_one_and_remembers(model: VideoLLM, monkeypatch) -> None:
    """The prompt building around ``generate_greedy_batch`` (tested in test_lm) matches ``chat``'s."""
    state = watched(model)
    visuals = [model.project_state(state, at=k) for k in range(4)]
    visuals[1] = visuals[1][:-3]  # prompts of different lengths: the batch is left padded
    question = "Describe the scene."
    alone = ["".join(model.chat(v, [], question, max_new_tokens=6)) for v in visuals]
    assert model.answer_many(visuals, question, max_new_tokens=6, batch_size=3) == alone
    # remembered: readouts seen before are not decoded again, new ones are
    decoded = []
    real = model._answer_batch
    monkeypatch.setattr(model, "_answer_batch", lambda vs, q, n: decoded.append(len(vs)) or real(vs, q, n))
    new = model.project_state(state, at=0) * 2.0
    assert model.answer_many([visuals[2], new, visuals[0]], question, max_new_tokens=6) == [
        alone[2], "".join(model.chat(new, [], question, max_new_tokens=6)), alone[0]]
    assert decoded == [1]
    assert model.answer_many(visuals, question, max_new_tokens=5)[0] == alone[0][:5] and decoded == [1, 4]
