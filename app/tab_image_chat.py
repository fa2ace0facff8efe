"""The "Image chat" tab: a multi-turn dialog about one image, encoded once as a one-frame video.

Publishes ``/ask_image`` and ``/clear_image``; the answers come from ``videollm.captioning.ask``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import gradio as gr

from videollm.errors import UsageError

from . import media
from .chat import ChatSession, answer_stream, loading_chat
from .common import TabContext, user_errors


def build(ctx: TabContext) -> None:
    """Add the "Image chat" tab to the ``gr.Blocks`` being built (call inside ``with gr.Blocks()``)."""
    with gr.Tab("Image chat", id="image"):
        i_session = ctx.session_state()
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                i_image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=300)
                if ctx.samples.images:
                    gr.Examples([[p] for p in ctx.samples.images], inputs=[i_image], label="Sample images")
            with gr.Column(scale=3, min_width=420):
                i_chat = gr.Chatbot(label="Visual dialog", height=340,
                                    placeholder="A multi-turn conversation grounded in the image and the dialog "
                                                "so far.")
                with gr.Row():
                    i_question = gr.Textbox(placeholder="Ask about the image, e.g. What colour is the ring?",
                                            show_label=False, scale=5)
                    i_send = gr.Button("Send", variant="primary", scale=1, min_width=90)
                    i_clear = gr.Button("Clear", scale=1, min_width=90)

        i_args = dict(fn=_ask_handler(ctx), inputs=[i_image, i_question, i_session],
                      outputs=[i_question, i_chat, i_session], **ctx.model_events)
        i_send.click(api_name="ask_image", **i_args)
        i_question.submit(api_name=False, **i_args)
        i_clear.click(_clear_image_chat, [i_session], [i_chat, i_session], api_name="clear_image", queue=False)
        i_image.change(lambda: ([], None), None, [i_chat, i_session], api_name=False, queue=False)


def _ask_handler(ctx: TabContext) -> Callable:
    """The "Send" handler: encodes a new image once, then streams the answer into the dialog."""

    @user_errors
    def ask_image(image: str | None, question: str, session: ChatSession | None):
        path = str(media.check_image(image, ctx.limits))
        if not question or not question.strip():
            raise UsageError("type a question first")
        if session is None or session.source != path:
            from videollm.memory import build_memory

            if not ctx.loader.ready:
                yield "", loading_chat([], question.strip()), session
            # An image is a one-frame video: the same encode → one segment → bridge step → readout path.
            session = ChatSession(source=path, state=build_memory(ctx.loader.get(), path))
        yield from answer_stream(ctx.loader, session, question.strip(), ctx.limits.max_new_tokens)

    return ask_image


def _clear_image_chat(session: ChatSession | None):
    # The image's memory stays: a cleared dialog about the same image needs no new encode.
    return [], (replace(session, history=[]) if session is not None else None)
