"""Next-step planning over a video's memory (EgoPlan-style): rank candidate steps, or let the model suggest one.

Both ask ``prompts.PLAN``, the question the model is trained and evaluated with. Nothing here imports torch: the web
app imports this module while it builds its page, before the model (and torch) is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from videollm import prompts

#: Longest suggested step, in tokens: a step is a short phrase ("place the red star").
SUGGEST_TOKENS = 24


@dataclass(frozen=True)
class RankedStep:
    """One candidate next step with its place among the others.

    Attributes:
        rank: 1 for the most likely step.
        step: the candidate's text.
        score: the model's mean log-likelihood of the step as the answer.
        share: the softmax of ``score`` over all candidates (the shares sum to 1).
    """

    rank: int
    step: str
    score: float
    share: float


def plan_question(goal: str) -> str:
    """The planning question for ``goal`` (surrounding spaces and a trailing full stop dropped)."""
    return prompts.PLAN.format(goal=goal.strip().rstrip("."))


def candidate_steps(text: str | None) -> list[str]:
    """The candidate steps written one per line in ``text``: each line stripped, empty lines dropped."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def with_step(text: str | None, step: str) -> str:
    """``text`` (candidate steps, one per line) with ``step`` added as its last line."""
    return "\n".join([*(text or "").splitlines(), step]).strip()


def rank_by_score(steps: Sequence[str], scores: Sequence[float]) -> list[RankedStep]:
    """Order candidate steps by score, best first, with each one's softmax share.

    Args:
        steps: the candidates.
        scores: one score per candidate (higher is more likely), e.g. mean log-likelihoods.

    Returns:
        One ``RankedStep`` per candidate, best first; equal scores keep the candidates' order.
    """
    if len(steps) != len(scores):
        raise ValueError(f"{len(steps)} steps but {len(scores)} scores")
    if not steps:
        return []
    top = max(scores)
    # Shifted by the best score so that exp never overflows (log-likelihoods are negative, often large).
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    order = sorted(range(len(steps)), key=lambda i: -scores[i])
    return [RankedStep(rank=r + 1, step=steps[i], score=float(scores[i]), share=weights[i] / total)
            for r, i in enumerate(order)]


def rank_next_steps(model: Any, state: Any, goal: str, steps: Sequence[str]) -> list[RankedStep]:
    """Rank candidate next steps towards ``goal`` given the progress remembered in ``state``.

    Args:
        model: a ``VideoLLM``.
        state: the video's memory (``BridgeState``), e.g. from ``videollm.memory.build_memory``.
        goal: the task goal, in words.
        steps: the candidate next steps.

    Returns:
        The candidates best first (see ``rank_by_score``), scored by ``VideoLLM.score``.
    """
    scores = model.score(model.project_state(state), plan_question(goal), list(steps))
    return rank_by_score(list(steps), scores.float().cpu().tolist())


def suggest_next_step(model: Any, state: Any, goal: str, max_new_tokens: int = SUGGEST_TOKENS) -> str:
    """The model's own next step towards ``goal``: the first line of its answer, or "" when it gives none."""
    answer = "".join(model.chat(model.project_state(state), [], plan_question(goal), max_new_tokens=max_new_tokens))
    lines = answer.strip().splitlines()
    return lines[0].strip() if lines else ""
