"""A visitor's conversation about one video or image: what it keeps between requests, and how it is shown.

The video and image chat tabs share it; the answers come from ``videollm.captioning.ask``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from .loading import ModelLoader


@dataclass
class ChatSession:
    """What one visitor's conversation about one video or image holds between requests.

    Attributes:
        source: the video/image path (or memory file) the memory was built from.
        state: the ``BridgeState`` (video memory); questions reuse it, nothing is re-encoded.
        history: the dialog so far as the model sees it ({"role", "content"} dicts).
        scenes: (start, end, caption) per scene, for display.
    """

    source: str
    state: Any
    history: list[dict[str, str]] = field(default_factory=list)
    scenes: list[tuple[float, float, str]] = field(default_factory=list)


def display(history: list[dict[str, str]]) -> list[dict[str, str]]:
    """The dialog as the chat shows it: an empty answer says so, and an answer recalled from one scene names it."""
    return [{"role": m["role"], "content": _shown_answer(m) if m["role"] == "assistant" else m["content"]}
            for m in history]


def loading_chat(history: list[dict[str, str]], question: str) -> list[dict[str, str]]:
    """The dialog with ``question`` shown at once and an answer bubble saying that the model is still loading."""
    return display([*history, {"role": "user", "content": question},
                    {"role": "assistant", "content": "_(loading the model…)_"}])


def answer_stream(loader: ModelLoader, session: ChatSession, question: str,
                  max_new_tokens: int) -> Iterator[tuple[str, list[dict[str, str]], ChatSession]]:
    """Stream an answer into the chat: yields (cleared textbox, chat messages, session with the new turn)."""
    from videollm import captioning

    history = [*session.history, {"role": "user", "content": question}]
    answer = ""
    yield "", display([*history, {"role": "assistant", "content": "…"}]), session
    decisions: list[Any] = []
    pieces = captioning.ask(loader.get(), session.state, question, history=_for_model(session.history),
                            max_new_tokens=max_new_tokens, on_recall=decisions.append)
    turn = {"role": "assistant", "content": "", "source": _source(session.state, decisions)}
    for piece in pieces:
        answer += piece
        yield "", display([*history, {**turn, "content": answer or "…"}]), session
    session = replace(session, history=[*history, {**turn, "content": answer}])
    yield "", display(session.history), session


def _answer_text(answer: str) -> str:
    # A model that is not trained yet can emit only whitespace; say so instead of showing an empty bubble.
    return answer if answer.strip() else "_(the model gave an empty answer)_"


def _shown_answer(message: dict[str, str]) -> str:
    # An answer recalled from one scene of a video says which (the "source" key; the model never sees it).
    text = _answer_text(message["content"])
    return f"{text}\n\n*{message['source']}*" if message.get("source") else text


def _for_model(history: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in history]


def _source(state: Any, decisions: list[Any]) -> str:
    """ "answered from scene 2 of 4 (4.5–8.5 s)" for a video of several scenes; "" otherwise."""
    if not decisions or state.num_segments < 2:
        return ""
    return decisions[0].source(state)
