"""The "Planning" tab: EgoPlan-style next steps towards a goal, given a video of the progress so far.

Publishes ``/plan_rank`` (the candidates ranked, with their shares) and ``/plan_suggest`` (the model's own step added
to the candidates); the scoring and ranking are ``videollm.planning``.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from videollm import planning
from videollm.errors import UsageError

from . import media
from .chat import ChatSession
from .common import LOADING, TabContext, playable_as_is, status, user_errors

_RANK_HEADERS = ["Rank", "Candidate next step", "Mean log-likelihood", "Share"]


def build(ctx: TabContext) -> None:
    """Add the "Planning" tab to the ``gr.Blocks`` being built (call inside ``with gr.Blocks()``)."""
    with gr.Tab("Planning", id="plan"):
        p_session = ctx.session_state()
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                p_video = playable_as_is(gr.Video(label="Progress so far", sources=["upload"],
                                                  include_audio=True, height=260, elem_id="vl-plan-video"))
                p_goal = gr.Textbox(label="Task goal", placeholder="e.g. line up from left to right: …")
                p_candidates = gr.Textbox(label="Candidate next steps (one per line)", lines=5,
                                          placeholder="place the red star\nplace the blue ring")
                with gr.Row():
                    p_rank = gr.Button("Rank next steps", variant="primary")
                    p_suggest = gr.Button("Suggest a step")
            with gr.Column(scale=3, min_width=420):
                p_status = gr.Markdown("The model scores each candidate as the answer to "
                                       f"“{planning.plan_question('…')}” given the video's memory; when the goal "
                                       "lists its steps (“…: a, then b, then c”), the step after the one the last "
                                       "scene shows done ranks first.",
                                       elem_classes="vl-status")
                p_label = gr.Label(label="Next step", num_top_classes=10)
                p_table = gr.Dataframe(headers=_RANK_HEADERS, datatype=["number", "str", "number", "str"],
                                       interactive=False, wrap=True, label="Scores")
        if ctx.samples.plans:
            gr.Examples([[p.video, p.goal, "\n".join(p.candidates)] for p in ctx.samples.plans],
                        inputs=[p_video, p_goal, p_candidates],
                        label="EgoPlan-style tasks from the synthetic world",
                        elem_id="vl-plan-examples")

        rank, suggest = _handlers(ctx)
        inputs = [p_video, p_goal, p_candidates, p_session]
        p_rank.click(rank, inputs, [p_status, p_label, p_table, p_session], api_name="plan_rank",
                     **ctx.model_events)
        p_suggest.click(suggest, inputs, [p_status, p_candidates, p_session], api_name="plan_suggest",
                        **ctx.model_events)


def _plan_memory(ctx: TabContext, video: str | None, session: ChatSession | None) -> ChatSession:
    """The session of ``video``: the visitor's last one when it is about the same video, else a new memory."""
    from videollm.memory import build_memory

    if session is not None and session.source == str(video):
        return session
    return ChatSession(source=str(video), state=build_memory(ctx.loader.get(), video))


def _handlers(ctx: TabContext) -> tuple[Callable, Callable]:
    """The "Rank next steps" and "Suggest a step" handlers."""

    @user_errors
    def rank(video: str | None, goal: str, candidates: str, session: ChatSession | None):
        steps = planning.candidate_steps(candidates)
        if not goal or not goal.strip():
            raise UsageError("write the task goal first")
        if len(steps) < 2:
            raise UsageError("give at least two candidate steps, one per line (or press Suggest a step)")
        media.check_video(video, ctx.limits)
        if not ctx.loader.ready:
            yield LOADING, gr.skip(), gr.skip(), session
        session = _plan_memory(ctx, video, session)
        ranked = planning.rank_next_steps(ctx.loader.get(), session.state, goal, steps)
        table = [[r.rank, r.step, round(r.score, 4), f"{100 * r.share:.1f}%"] for r in ranked]
        if ranked[0].why:  # progress decided the first place: the shares (log-likelihood) would name another
            yield (status(f"Most likely next step: **{ranked[0].step}**: {ranked[0].why}", "done"),
                   ranked[0].step, table, session)
        else:
            yield (status(f"Most likely next step: **{ranked[0].step}** (by the model's log-likelihood)", "done"),
                   {r.step: r.share for r in ranked}, table, session)

    @user_errors
    def suggest(video: str | None, goal: str, candidates: str, session: ChatSession | None):
        if not goal or not goal.strip():
            raise UsageError("write the task goal first")
        media.check_video(video, ctx.limits)
        if not ctx.loader.ready:
            yield LOADING, gr.skip(), session
        session = _plan_memory(ctx, video, session)
        step = planning.suggest_next_step(ctx.loader.get(), session.state, goal)
        if not step:
            yield status("The model suggested nothing (it may not be trained yet)."), candidates, session
            return
        yield status(f"Suggested: **{step}**", "done"), planning.with_step(candidates, step), session

    return rank, suggest
