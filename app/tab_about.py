"""The "About" tab: what the app runs, what its model knows, and the server's limits."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from . import text
from .common import TabContext


def build(ctx: TabContext, model_name: str = "") -> None:
    """Add the "About" tab to the ``gr.Blocks`` being built (call inside ``with gr.Blocks()``).

    Args:
        ctx: the app's build context (its limits are listed).
        model_name: the checkpoint directory or preset name that is loaded; "" leaves that line out.
    """
    limits = ctx.limits
    about = text.ABOUT.format(model_line=model_line(model_name), max_upload_mb=limits.max_upload_mb,
                              max_video_seconds=limits.max_video_seconds, concurrency=limits.concurrency,
                              queue_size=limits.queue_size, keep_minutes=limits.keep_minutes,
                              camera_streams=limits.camera_streams)
    with gr.Tab("About", id="about"):
        gr.Markdown(about, elem_id="vl-about")


def model_line(model_name: str) -> str:
    """The About panel's line on the loaded model: a trained checkpoint directory, or an untrained preset."""
    if not model_name:
        return ""
    line = f"**Loaded now:** `{model_name}`"
    if not Path(model_name).is_dir():
        # A preset name means freshly initialised bridge and projector weights: say so rather than let users guess.
        return line + (" — a preset whose bridge and projector are **not trained**: its captions and answers are "
                       "noise. Load a trained checkpoint directory with `--model DIR`.")
    from videollm.official import is_videollamb_dir, is_vlm_dir

    if is_vlm_dir(model_name):
        from videollm.official.vlm import family_of

        label = family_of(model_name).label
        article = "an" if label[0] in "AEIOU" else "a"
        return line + (f" — {article} {label} video language model as the backbone: it reads each "
                       "scene's frames itself, so the notes on the embedded model above do not apply.")
    if is_videollamb_dir(model_name):
        return line + " — the published VideoLLaMB release."
    return line + " (a trained checkpoint directory)."
