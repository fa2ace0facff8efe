"""The Gradio Blocks app: the tabs (one module each, ``tab_*.py``) composed into one page.

Every handler is a plain (generator) function created inside ``with gr.Blocks() as demo`` that consumes the same
generators as the CLI (``videollm.captioning``, ``videollm.memory``, ``videollm.planning``, ...); there is no model
logic here. All model work runs under one shared concurrency id, so requests queue instead of fighting for the CPU.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from . import media, tab_about, tab_image_chat, tab_live, tab_planning, tab_sequence_demos, tab_video_chat, text
from .common import TabContext
from .loading import ModelLoader
from .samples import Samples, find_samples
from .settings import AppLimits


def build_demo(model: Any, *, limits: AppLimits | None = None, model_name: str = "", samples: Samples | None = None,
               workdir: str | os.PathLike | None = None) -> gr.Blocks:
    """Build the app around a model (nothing is launched).

    The page needs no model: with a ``ModelLoader`` that is still loading, the app can be served at once, and each
    request that needs the model shows a "loading the model" status and waits for it.

    Args:
        model: a ``VideoLLM`` with its vision encoder, or a ``ModelLoader`` that gives one.
        limits: upload/duration/queue limits (default ``AppLimits()``).
        model_name: what the About panel says is loaded (checkpoint directory or preset name).
        samples: sample media for the examples (default: the shipped data/samples/world).
        workdir: folder for the app's own files (thumbnails, plots, memory files); a fresh temp folder by default.

    Returns:
        The ``gr.Blocks`` app; ``launch`` in ``videollm_app.server`` serves it with the app's limits.
    """
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="videollm-app-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = TabContext(loader=model if isinstance(model, ModelLoader) else ModelLoader.loaded(model),
                     limits=limits or AppLimits(), samples=samples if samples is not None else find_samples(),
                     workdir=workdir)

    keep = ctx.limits.keep_minutes * 60
    # Visitors' files: the app's own (thumbnails, plots, memories) swept here, Gradio's upload cache by Gradio.
    media.start_sweeper(workdir, keep)
    with gr.Blocks(title="videollm", analytics_enabled=False, delete_cache=(int(min(keep / 4, 600)) or 1,
                                                                               int(keep) or 1)) as demo:
        demo.videollm_limits = ctx.limits  # read by ``server.launch``
        demo.videollm_samples = ctx.samples
        demo.videollm_workdir = ctx.workdir
        gr.HTML(text.HEADER)
        tab_video_chat.build(ctx)
        tab_live.build(ctx)
        tab_image_chat.build(ctx)
        tab_planning.build(ctx)
        tab_sequence_demos.build(ctx)
        tab_about.build(ctx, model_name)
        demo.unload(forget_visitor)
    return demo


def forget_visitor(request: gr.Request) -> None:
    """A visitor closed the page: free their sessions (video memories, image tokens) now.

    Gradio keeps a closed session's state for an hour in case the visitor comes back; with a memory of a few MB per
    visitor, a busy server would grow by that for every visitor of the last hour.
    """
    app = getattr(getattr(request, "request", None), "app", None)
    holder = getattr(app, "state_holder", None)
    if holder is not None and request.session_hash:
        holder.delete_state(request.session_hash)
