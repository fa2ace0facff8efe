"""Questions that span scenes, answered from the video's timeline: its scene captions read in order.

No one scene's readout holds the answer to "how many scenes showed a circle?" or "did the red star appear before
the blue ring?", and the memory tokens carried to the last scene do not either (the evaluation's cross-scene
ablations: full, no memory and no retrieval answer the same). What the memory does keep is every scene: its tokens
(``BridgeState.scenes``) and its caption, generated from that scene's readout once and kept with the memory
(``recall.scene_captions``). A caption names what appeared in the order it appeared, one clause a thing ("a large
red circle moves left; a small blue star ..."), so the captions in scene order are a timeline of the whole video.

``plan`` recognises four kinds of question and reads the timeline:

- **order**, "did the red star appear before (after) the blue ring?": the first clause naming each (all of its
  words in one clause); "yes" or "no" by which comes first. A thing the timeline never names comes last.
- **count**, "how many scenes showed a circle / something red?": the scenes with a clause naming it.
- **n-th time**, "what colour was the square the second time it appeared?": the n-th scene naming the square; the
  model is asked "what colour is the square?" about that scene (its readout, as recall does).
- **after it left**, "what moved right after the green hexagon left?": the scene after the last one naming the
  hexagon; the model is asked what appeared first in it.

Captions come from the model, so the timeline is as good as its captions: a missed object or an extra cut
SceneTiling made changes a count. A question none of the four patterns matches is left to ``recall.plan``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from videollm.recall import clause_words, content_words

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_THING = r"(?:the |a |an )?(?P<{}>[a-z][a-z ]*?)"
_ORDER = re.compile(r"\bdid " + _THING.format("a") + r" (?:appear|show up|come|enter)\s+(?P<rel>before|after|earlier "
                    r"than|later than) " + _THING.format("b") + r"\s*\??\s*$")
_COUNT = re.compile(r"\bhow many (?:different |separate )?(?:scenes|shots) (?:showed|show|shows|had|have|has|"
                    r"contained|contain|contains|with|featured|feature) " + _THING.format("thing") + r"\s*\??\s*$")
_NTH = re.compile(r"\bwhat colou?r was " + _THING.format("thing") + r" the (?P<nth>" + "|".join(_ORDINALS) +
                  r") time (?:it|they) (?:appeared|was shown|showed up|was seen)\s*\??\s*$")
_AFTER_LEFT = re.compile(r"\bwhat (?:moved|appeared|came|was shown|showed up) (?:right |just |immediately )?after "
                         + _THING.format("thing") + r" (?:left|disappeared|went away|was gone)\s*\??\s*$")
# Words that say "anything", not which thing: "how many scenes showed something red?" asks about "red".
_ANY = frozenset("something anything object objects thing things shape shapes".split())

_UNNAMED = 1_000  # where in its scene a located (not named) thing is put: after the named ones

#: What the model is asked about the scene the timeline picks (``Across.ask``).
COLOUR_QUESTION = "what colour is the {}?"
FIRST_QUESTION = "what appeared first?"


@dataclass(frozen=True)
class Across:
    """A question that spans scenes, read from the timeline.

    Attributes:
        kind: "order", "count", "nth" or "after_left".
        answer: the answer when the timeline alone gives it (order, count), else None.
        scene: the scene the model is asked about (nth, after_left), else None.
        ask: the question put to the model about ``scene`` (nth, after_left), else None.
        scenes: the scenes the answer rests on, in order.
    """

    kind: str
    answer: str | None
    scene: int | None
    ask: str | None
    scenes: tuple[int, ...]


def _words(phrase: str) -> set[str]:
    return content_words(phrase) - _ANY


def naming(captions: Sequence[str], phrase: str) -> list[tuple[int, int]]:
    """Every (scene, clause) whose caption clause holds all the content words of ``phrase``, in timeline order."""
    wanted = _words(phrase)
    if not wanted:
        return []
    return [(k, j) for k, caption in enumerate(captions) for j, words in enumerate(clause_words(caption or ""))
            if wanted <= words]


def asks(question: str) -> bool:
    """Whether ``question`` is one of the four kinds (checked before any caption is generated)."""
    q = " ".join(question.lower().split())
    return any(p.search(q) for p in (_ORDER, _COUNT, _NTH, _AFTER_LEFT))


def plan(question: str, captions: Sequence[str], locate: Callable[[str], int | None] | None = None
         ) -> Across | None:
    """The timeline's reading of ``question`` (see the module docstring), or None when it is not one of the four
    kinds (or names nothing the timeline can look for).

    ``locate(phrase)``: the scene that best shows a thing no caption clause names (``recall.plan`` passes the scene
    recall would pick for it: most caption words, then its tokens' word score), or None; order and after-left
    questions use it rather than give up on a thing a caption missed or got a colour wrong.
    """
    q = " ".join(question.lower().split())
    never = (len(captions), 0)  # a thing neither named nor located comes after everything

    def first(phrase: str) -> tuple[int, int]:
        named = naming(captions, phrase)
        if named:
            return named[0]
        k = locate(phrase) if locate is not None else None
        return never if k is None else (k, _UNNAMED)

    if m := _ORDER.search(q):
        if not (_words(m["a"]) and _words(m["b"])):
            return None
        first_a, first_b = first(m["a"]), first(m["b"])
        before = first_a < first_b
        if m["rel"] in ("after", "later than"):
            before = first_b < first_a
        used = tuple(sorted({x[0] for x in (first_a, first_b) if x != never}))
        return Across("order", "yes" if before else "no", None, None, used)
    if m := _COUNT.search(q):
        if not _words(m["thing"]):
            return None
        scenes = tuple(sorted({k for k, _ in naming(captions, m["thing"])}))
        return Across("count", str(len(scenes)), None, None, scenes)
    if m := _NTH.search(q):
        thing = " ".join(sorted(_words(m["thing"])))
        if not thing:
            return None
        scenes = sorted({k for k, _ in naming(captions, thing)})
        n = _ORDINALS.index(m["nth"])
        if n >= len(scenes):
            return None
        return Across("nth", None, scenes[n], COLOUR_QUESTION.format(thing), tuple(scenes[: n + 1]))
    if m := _AFTER_LEFT.search(q):
        named = naming(captions, m["thing"])
        left = named[-1][0] if named else first(m["thing"])[0]
        if left + 1 >= len(captions):
            return None
        return Across("after_left", None, left + 1, FIRST_QUESTION, (left, left + 1))
    return None


__all__ = ["COLOUR_QUESTION", "FIRST_QUESTION", "Across", "asks", "naming", "plan"]
