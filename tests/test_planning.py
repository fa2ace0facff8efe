"""videollm.planning: candidate steps in and out of text, the softmax ranking, and the model calls (with a stand-in)."""

from __future__ import annotations

import math

import pytest
import torch

from videollm import planning, prompts


def test_candidate_steps_and_with_step_round_trip() -> None:
    assert planning.candidate_steps("  place the red star \n\n place the blue ring\n  \n") == [
        "place the red star", "place the blue ring"]
    assert planning.candidate_steps(None) == [] and planning.candidate_steps("") == []
    assert planning.with_step("a\nb", "c") == "a\nb\nc"
    assert planning.with_step(None, "c") == "c" and planning.with_step("", "c") == "c"
    assert planning.candidate_steps(planning.with_step("a\n\nb", "c")) == ["a", "b", "c"]


def test_plan_question_is_the_trained_prompt() -> None:
    assert planning.plan_question("  stack the cubes.  ") == prompts.PLAN.format(goal="stack the cubes")
    assert planning.plan_question("…") == "Goal: …. What is the next step?"


def test_rank_by_score_orders_best_first_with_softmax_shares() -> None:
    ranked = planning.rank_by_score(["a", "b", "c"], [-2.0, -0.5, -1.0])
    assert [(r.rank, r.step, r.score) for r in ranked] == [(1, "b", -0.5), (2, "c", -1.0), (3, "a", -2.0)]
    expected = torch.softmax(torch.tensor([-0.5, -1.0, -2.0], dtype=torch.float64), dim=0).tolist()
    assert [r.share for r in ranked] == pytest.approx(expected, rel=1e-12)
    assert math.fsum(r.share for r in ranked) == pytest.approx(1.0)


def test_rank_by_score_edge_cases() -> None:
    # Scores far below zero must not underflow to 0/0; equal scores keep the candidates' order.
    ranked = planning.rank_by_score(["x", "y"], [-5000.0, -5000.0])
    assert [r.step for r in ranked] == ["x", "y"] and [r.share for r in ranked] == [0.5, 0.5]
    assert planning.rank_by_score([], []) == []
    with pytest.raises(ValueError, match="2 steps but 1 scores"):
        planning.rank_by_score(["x", "y"], [0.0])


class _Model:
    """Just what planning calls on a VideoLLM: the readout, multiple-choice scores and chat."""

    def __init__(self, scores: list[float], answer: list[str]) -> None:
        self.scores, self.answer, self.calls = scores, answer, []

    def project_state(self, state):
        return ("visual", state)

    def score(self, visual, question, candidates):
        self.calls.append(("score", visual, question, candidates))
        return torch.tensor(self.scores, dtype=torch.bfloat16)

    def chat(self, visual, history, question, max_new_tokens):
        self.calls.append(("chat", visual, history, question, max_new_tokens))
        return iter(self.answer)


def test_rank_next_steps_scores_the_candidates_against_the_memory() -> None:
    model = _Model([-1.5, -0.25], [])
    ranked = planning.rank_next_steps(model, "memory", "tidy up.", ("wipe", "sweep"))
    assert [r.step for r in ranked] == ["sweep", "wipe"] and ranked[0].score == -0.25
    assert model.calls == [("score", ("visual", "memory"), prompts.PLAN.format(goal="tidy up"), ["wipe", "sweep"])]


def test_suggest_next_step_keeps_the_first_line_of_the_answer() -> None:
    model = _Model([], [" place the ", "red star\nthen the ring"])
    assert planning.suggest_next_step(model, "memory", "line up") == "place the red star"
    assert model.calls[0][1:] == (("visual", "memory"), [], prompts.PLAN.format(goal="line up"),
                                  planning.SUGGEST_TOKENS)
    assert planning.suggest_next_step(_Model([], ["  ", "\n"]), "memory", "line up") == ""


def test_goal_steps_and_progress_from_the_last_caption() -> None:
    goal = "build a tower from the bottom up: green triangle, then orange cross, then blue star"
    assert planning.goal_steps(goal) == ["green triangle", "orange cross", "blue star"]
    assert planning.goal_steps("stack the cubes") == ["stack the cubes"]
    assert planning.goal_steps("wash; dry, then fold.") == ["wash", "dry", "fold"]
    got = planning.progress_from_captions(goal, ["a small green triangle moves down", "a medium orange cross moves down"])
    assert (got.last, got.scene, got.next_step) == (1, 1, "blue star")
    # Only the last caption counts.
    assert planning.progress_from_captions(goal, ["a small orange cross moves down", "a green triangle"]).last == 0
    # Colour and shape bound in one clause: "orange cross" (2 words) beats "green triangle" (1) and "blue star" (0).
    assert planning.progress_from_captions(goal, ["a green cross; a small orange cross"]).last == 1
    assert planning.progress_from_captions(goal, ["a small blue star stays still"]).next_step is None
    assert planning.progress_from_captions(goal, ["a green star moves left"]) is None  # two steps tie at one word
    assert planning.progress_from_captions(goal, ["a red ring"]) is None  # nothing matches
    assert planning.progress_from_captions("stack the cubes", ["cubes"]) is None  # no list of steps
    assert planning.progress_from_captions(goal, []) is None
    assert planning.names_step("place the blue star", "blue star")
    assert not planning.names_step("place the blue ring", "blue star")


class _Segment:
    def __init__(self, start: float, end: float) -> None:
        self.start_time, self.end_time = start, end


class _State:
    """A memory whose two scenes were captioned already (so scene_captions calls no model)."""

    def __init__(self, captions: list[str]) -> None:
        self.segments = [_Segment(2.0 * k, 2.0 * k + 2.0) for k in range(len(captions))]
        self.extra = {"captions": [{"start": 2.0 * k, "end": 2.0 * k + 2.0, "caption": c}
                                   for k, c in enumerate(captions)]}


def test_rank_next_steps_puts_the_step_after_the_last_one_shown_first() -> None:
    goal = "line up from left to right: green triangle, then orange cross, then blue star, then cyan circle"
    candidates = ["place the orange cross", "place the blue star", "place the cyan circle", "place the green triangle"]
    state = _State(["a small green triangle moves down", "a small orange cross moves down"])
    model = _Model([-0.5, -2.0, -1.0, -3.0], [])
    ranked = planning.rank_next_steps(model, state, goal, candidates)
    assert [r.step for r in ranked] == ["place the blue star", "place the orange cross", "place the cyan circle",
                                        "place the green triangle"]
    assert ranked[0].score == -2.0 and "orange cross" in ranked[0].why and "scene 2" in ranked[0].why
    assert not ranked[1].why
    assert math.fsum(r.share for r in ranked) == pytest.approx(1.0)
    # The last caption names no goal step unambiguously: the log-likelihood order alone.
    ranked = planning.rank_next_steps(model, _State(["a small green star moves down"]), goal, candidates)
    assert [r.step for r in ranked] == ["place the orange cross", "place the cyan circle", "place the blue star",
                                        "place the green triangle"] and not any(r.why for r in ranked)
