"""Question-conditioned recall: answer a question from the readout of the scene it is about.

The readout after a whole video shows the LLM the last scene (plus what the memory carried), so a question about
an early scene of a long video asks the LLM to read something it was never shown. The bridge state keeps every
scene's output tokens (``BridgeState.scenes``), so the readout exactly as it was right after any earlier scene can be
rebuilt (``MemoryBridge.readout(state, at=k)``) at no vision cost. Recall picks that scene:

1. **A scene the question names**: "in the third scene", "scene 12", "the 21st scene", "the last scene", a time
   ("at 1:05", "at 65 s"), or "first"/"last" on their own ("what appeared first?"). A numbered scene is checked
   against the captions of the segments next to it (``numbered_scene_check``): a cut SceneTiling missed shifts the
   numbering.
2. **Otherwise the scene whose caption and tokens best match the question.** First, the scene with a caption clause
   holding the most of the question's content words (``caption_matches``: clauses bind a colour to its shape, a bag
   of words cannot); captions come from the captioning session that built the memory, or are generated once, in
   batches, and kept in the memory (``scene_captions``; ``"recall_captions": false`` in ``config.json`` skips
   them). Among scenes matching as many words, the one whose tokens best explain the question's grounded words: each
   scene's projected tokens are scored against the LM's embeddings of a fixed vocabulary, pooled over tokens
   (log-sum-exp, as the word-alignment training loss does), and normalised over that
   vocabulary; a scene's score is the summed log-probability of the question's words among the words the bridge
   was aligned to (``ModelConfig.recall_words``). A question about what came after (before) something is answered from
   that scene and from the next (previous) one, which may show the answer, and the answer the LLM is surer of (mean
   token log-likelihood) wins; any other question from that scene alone.
3. **Nothing to go on** (no scene named, no caption or grounded word matches): the readout now, as without recall.

A question about the number of scenes ("how many scenes are there?") spans the whole video, and no one scene's
readout holds the answer (the LLM answered "1" to every such question of the 8x and 32x evaluation videos): recall
answers it with the number of segments SceneTiling cut the video into (``SCENE_COUNT``, ``how="counted"``).
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from videollm.bridge.state import BridgeState, SegmentRecord
from videollm.errors import UsageError

_ORDINAL_WORDS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth",
    "nineteenth", "twentieth",
)
_ORDINAL = "|".join(_ORDINAL_WORDS)
_SCENE_ORDINAL = re.compile(
    rf"\b(?:(?P<word>{_ORDINAL}|last|final)|(?P<num>\d+)(?:st|nd|rd|th))\s+(?:scene|shot|segment)\b")
_SCENE_NUMBER = re.compile(r"\b(?:scene|shot|segment)\s+(?:number\s+)?#?(?P<num>\d+)\b")
_CLOCK = re.compile(r"\b(?:at|around)\s+(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{2}(?:\.\d+)?)\b")
_SECONDS = re.compile(r"\b(?:at|around)\s+(?P<s>\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)\b")
_FIRST = re.compile(r"\bfirst\b")
_LAST = re.compile(r"\b(?:last|final)\b")


def scene_reference(question: str, segments: Sequence[SegmentRecord]) -> int | None:
    """The segment a question names explicitly, or None.

    Args:
        question: the user's question.
        segments: the state's segment table (times in seconds).

    Returns:
        A segment index in ``[0, len(segments))``, or None when the question names no scene or there are no
        segments. A scene number past the end gives the last segment: when SceneTiling misses a cut (two similar
        scenes in a row) the video has fewer segments than scenes, and "the 64th scene" of 64 is then the last.
    """
    n = len(segments)
    if n == 0:
        return None
    q = question.lower()
    if m := _SCENE_ORDINAL.search(q):
        if m["word"] in ("last", "final"):
            return n - 1
        k = _ORDINAL_WORDS.index(m["word"]) + 1 if m["word"] else int(m["num"])
        return min(k, n) - 1 if k >= 1 else None
    if m := _SCENE_NUMBER.search(q):
        k = int(m["num"])
        return min(k, n) - 1 if k >= 1 else None
    seconds = None
    if m := _CLOCK.search(q):
        seconds = int(m["h"] or 0) * 3600 + int(m["m"]) * 60 + float(m["s"])
    elif m := _SECONDS.search(q):
        seconds = float(m["s"])
    if seconds is not None:
        for k, seg in enumerate(segments):
            if seg.start_time <= seconds < seg.end_time:
                return k
        return n - 1 if seconds >= segments[-1].end_time and seconds < segments[-1].end_time + 1.0 else None
    first, last = bool(_FIRST.search(q)), bool(_LAST.search(q))
    if first != last:
        return 0 if first else n - 1
    return None


SCENE_COUNT = re.compile(
    r"\bhow many (?:different |distinct |separate )?(?:scenes|shots)"
    r"(?: are there| (?:are |were )?(?:there )?in (?:the|this) (?:video|clip)| does (?:the|this) (?:video|clip) (?:have|"
    r"contain))?\s*\??\s*$"
)


_ADVERB_RIGHT = re.compile(r"\bright\s+(after|before)\b")
_AFTER = re.compile(r"\b(?:after|next|following|then)\b")
_BEFORE = re.compile(r"\b(?:before|previous|preceding|prior)\b")


def neighbours(question: str) -> tuple[int, ...]:
    """Offsets of the scenes to try around the best word match: a question about what came after (before) something
    may be answered by the scene after (before) the one that shows it, so both are tried; otherwise only that one.

    (Measured and not kept: "before" questions answered from the matched scene alone, whose readout carries the
    previous scene through the memory: 1x / 8x / 32x temporal 0.50 / 0.31 / 0.25 against 0.56 / 0.25 / 0.19 on the
    length evaluation; and, with captions, "after" answered from the next scene only when the thing is the last one
    its scene's caption lists: better on 8x / 32x, worse on 1x, within a few questions.)
    """
    q = question.lower()
    if _AFTER.search(q):
        return (0, 1)
    if _BEFORE.search(q):
        return (0, -1)
    return (0,)


class WordScorer:
    """Scores scenes against a question by the LM-embedding words their projected tokens point at.

    Args:
        embeddings: (V, H) the LM's input embedding matrix.
        vocab: (K,) sorted token ids a scene's bag of words is normalised over.
        grounded: the words that count when a question contains them, each with its token id (in ``vocab``).
        temperature: cosine temperature (the alignment loss's).
    """

    def __init__(self, embeddings: Tensor, vocab: Tensor, grounded: Mapping[str, int],
                 temperature: float = 0.05) -> None:
        self.vocab = vocab.to(torch.int64).cpu()
        self.words = F.normalize(embeddings.detach()[self.vocab].float().cpu(), dim=-1)  # (K, H)
        self.grounded = {w.lower(): int(i) for w, i in grounded.items()}
        self.temperature = temperature
        self._lock = threading.Lock()  # the app may answer several visitors at once
        self._held: weakref.ref | None = None  # the state whose scene rows are kept (see ``state_scores``)
        self._rows: list[Tensor] = []

    @classmethod
    def for_model(cls, model) -> WordScorer:
        """The scorer of a ``VideoLLM``: its LM's embeddings and the words its checkpoint grounds
        (``ModelConfig.recall_words``, the training alignment vocabulary)."""
        from videollm.lm.words import word_id, word_vocab

        words = model.config.recall_words
        embeddings = model.lm.get_input_embeddings().weight
        vocab = word_vocab(model.tokenizer, embeddings.shape[0], words)
        return cls(embeddings, vocab, {w: word_id(model.tokenizer, w) for w in words})

    def question_ids(self, question: str) -> list[int]:
        """Token ids of the grounded words ``question`` contains, in order, without repeats.

        "right" in "right after" / "right before" is an adverb, not the motion "moves right": it is not counted (it
        made the scorer prefer scenes with something moving right for every "what appeared right after X?").
        """
        ids: list[int] = []
        for word in re.findall(r"[a-z]+", _ADVERB_RIGHT.sub(r"\1", question.lower())):
            i = self.grounded.get(word)
            if i is not None and i not in ids:
                ids.append(i)
        return ids

    def bag_of_words(self, visuals: Sequence[Tensor]) -> Tensor:
        """(S, K) log-probability of each vocabulary word under each scene's projected tokens (R_s, H)."""
        rows = []
        for v in visuals:
            sims = F.normalize(v.detach().float().cpu(), dim=-1) @ self.words.T / self.temperature  # (R, K)
            rows.append(torch.logsumexp(sims, dim=0))
        return torch.log_softmax(torch.stack(rows), dim=-1)

    def scores(self, visuals: Sequence[Tensor], ids: Sequence[int]) -> Tensor:
        """(S,) summed log-probability of the word ids under each scene (zeros when ``ids`` is empty)."""
        if not ids:
            return torch.zeros(len(visuals))
        return self._sum(self.bag_of_words(visuals), ids)

    def state_scores(self, model, state: BridgeState, ids: Sequence[int]) -> Tensor:
        """``scores`` of every scene of a bridge state (``model.project_state(state, at=k)``).

        A scene's bag of words never changes once the scene is in the state (states only grow), so the rows of the
        latest state are kept: follow-up questions about the same video, or the same stream grown by new scenes,
        project and score only the scenes not seen yet.
        """
        if not ids:
            return torch.zeros(state.num_segments)
        with self._lock:
            if self._held is None or self._held() is not state:
                self._held, self._rows = weakref.ref(state), []
            for k in range(len(self._rows), state.num_segments):
                self._rows.append(self.bag_of_words([model.project_state(state, at=k)])[0])
            rows = torch.stack(self._rows)
        return self._sum(rows, ids)

    def _sum(self, logp: Tensor, ids: Sequence[int]) -> Tensor:
        cols = torch.searchsorted(self.vocab, torch.tensor(sorted(ids), dtype=torch.int64))
        return logp[:, cols].sum(-1)


# Words that say what is asked, not which scene it is about ("how big is ...", "what appeared right after ...").
_FRAME_TEXT = """
a an the this that these those it its there here what which who whom whose how many much when where why
is are was were be been being am do does did has have had can could will would should may might
of in on at to for from by with about into onto over under than then and or not no yes any some
appear appeared appears happen happens happened see seen show shows shown video clip scene scenes shot
after before first last colour color shape size big move moving object objects thing things
"""
_FRAME_WORDS = frozenset(_FRAME_TEXT.split())
_CLAUSE = re.compile(r"[;,.]|\band\b|\bwhile\b|\bthen\b")
_CAPTIONING = threading.Lock()


def content_words(text: str) -> set[str]:
    """The words of ``text`` that can tell one scene from another: lower case, question-frame and function words
    dropped, a final "s" stripped from longer words so that "moves" matches "move" and "stars" "star"."""
    words = re.findall(r"[a-z]+", _ADVERB_RIGHT.sub(r"\1", text.lower()))
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
            for w in words if w not in _FRAME_WORDS}


def clauses(caption: str) -> list[str]:
    """The clauses of a caption (split at ";", ",", ".", "and", "while", "then"): one thing each."""
    return [clause.strip() for clause in _CLAUSE.split(caption) if clause.strip()]


def clause_words(caption: str) -> list[set[str]]:
    """The content words of each clause of a caption (``clauses``)."""
    return [content_words(clause) for clause in clauses(caption)]


def _clause_matches(asked: set[str], caption: str) -> list[int]:
    return [len(asked & words) for words in clause_words(caption)]


def caption_matches(question: str, captions: Sequence[str]) -> Tensor:
    """(S,) for each scene caption, the most words of the question that one of its clauses holds.

    Clauses (split at ";", ",", "." and "and") describe one thing each, so "the red circle" matches a scene captioned
    "a red circle moves left" by two words and one captioned "a red square; a blue circle" by one: the caption binds
    the colour to the shape, which a bag of words over the scene cannot.
    """
    asked = content_words(question)
    return torch.tensor([max(_clause_matches(asked, caption), default=0) for caption in captions],
                        dtype=torch.float32)


def scene_captions(model, state: BridgeState, max_new_tokens: int | None = None) -> list[str]:
    """A caption of every scene of ``state``, in segment order.

    Captions a captioning session stored in ``state.extra["captions"]`` (matched to segments by start time) are
    used as they are; the scenes without one are captioned now from their recalled readouts, in batches, and stored
    there too, so follow-up questions and a memory file saved afterwards do not caption them again. A scene the
    model does not recognise (``videollm.ood``) has the empty caption: no question's words match it.
    """
    from videollm import ood
    from videollm.captioning import CAPTION_TOKENS, clean_caption
    from videollm.prompts import CAPTION

    with _CAPTIONING:  # two visitors of the app asking about one memory caption its scenes once
        stored = state.extra.setdefault("captions", [])
        by_start = {round(float(c["start"]), 3): c["caption"] for c in stored if "start" in c and "caption" in c}
        starts = [round(seg.start_time, 3) for seg in state.segments]
        missing = [k for k, t in enumerate(starts) if t not in by_start]
        unknown = [k for k in missing if ood.recognised(state, k) is False]
        missing = [k for k in missing if k not in unknown]
        texts = []
        if missing:
            visuals = [model.project_state(state, at=k) for k in missing]
            texts = model.answer_many(visuals, CAPTION, max_new_tokens=max_new_tokens or CAPTION_TOKENS)
        for k, text in [*zip(missing, texts, strict=True), *((k, None) for k in unknown)]:
            by_start[starts[k]] = "" if text is None else clean_caption(text)
            kept = {"start": starts[k], "end": round(state.segments[k].end_time, 3), "caption": by_start[starts[k]]}
            stored.append(kept if text is not None else {**kept, "recognised": False})
        if missing or unknown:
            stored.sort(key=lambda c: float(c.get("start", 0.0)))
        return [by_start[t] for t in starts]


@dataclass
class Recalled:
    """What recall decided for one question.

    Attributes:
        scene: index of the segment whose readout the answer was read from.
        how: "named" (the question names it), "captions" (its words match a clause of that scene's caption best),
            "read" / "heard" (a question about what is written / said, answered with the scene's text read on
            screen / its words spoken, ``read_answer``),
            "words" (no caption matches: best word match of the scene tokens), "now" (the readout after the last
            scene), "counted" (a question about the number of scenes, answered by counting them; no readout), or
            "timeline" (a question that spans scenes, read from the scene captions in order, ``videollm.across``), or
            "memory" (a question that spans scenes, read by the LM from the final carried memory alone;
            ``ModelConfig.cross_reader``).
        candidates: the segments whose readouts were tried (for "timeline": the scenes the answer rests on; for
            "memory": every scene).
        reading: the answer the timeline gives by itself ("timeline" order and count questions), else None.
        ask: the question put to the model about ``scene`` instead of the user's ("timeline" questions that need
            one scene's readout), else None.
    """

    scene: int
    how: str
    candidates: tuple[int, ...]
    reading: str | None = None
    ask: str | None = None

    def where(self, state: BridgeState) -> str:
        """ "scene 2 of 4 (4.5–8.5 s)": the scene answered from, in the state's segment table."""
        if self.how == "counted":
            return f"the {state.num_segments} scenes SceneTiling found"
        seg = state.segments[self.scene]
        return f"scene {self.scene + 1} of {state.num_segments} ({seg.start_time:.1f}–{seg.end_time:.1f} s)"

    def source(self, state: BridgeState, why: bool = False) -> str:
        """ "answered from scene 2 of 4 (4.5–8.5 s)" or "answered by counting the 4 scenes SceneTiling found";
        ``why`` adds how the scene was chosen ("answered from the scene it names: scene 2 of 4 ...")."""
        if self.how == "counted":
            return f"answered by counting {self.where(state)}"
        if self.how in ("read", "heard"):
            return f"answered from {_HOW[self.how]} {self.where(state)}"
        if self.how == "memory":
            return f"answered from the memory carried through all {state.num_segments} scenes"
        if self.how == "timeline":
            if not self.candidates:
                return f"answered from the scene captions in order (none of the {state.num_segments} names it)"
            scenes = ", ".join(str(k + 1) for k in self.candidates)
            return f"answered from the scene captions in order (scenes {scenes} of {state.num_segments})"
        return f"answered from {_HOW[self.how]}: {self.where(state)}" if why else f"answered from {self.where(state)}"


_HOW = {"read": "the text read on screen in", "heard": "the words said in", "named": "the scene it names", "captions": "the scene its words match in the scene captions",
        "words": "the scene its words match", "now": "the last scene"}


@dataclass
class SceneMatch:
    """How well one scene matches a question or search query.

    Attributes:
        scene: segment index.
        words: the most query words one clause of the scene's caption holds (0 without captions).
        score: summed log-probability of the query's grounded words under the scene's tokens (``WordScorer``), or
            None when the query has no grounded word.
    """

    scene: int
    words: int
    score: float | None


def rank_scenes(model, state: BridgeState, query: str, scorer: WordScorer | None = None) -> list[SceneMatch]:
    """Every scene of ``state``, the best match for ``query`` first: most caption words, then the better word score,
    then the earlier scene. Captions missing from the memory are generated once (``scene_captions``) unless the
    model's config has ``recall_captions`` off or the query has no content word.

    Raises:
        UsageError: the state kept no scene tokens (a memory saved with recall off), so no scene can be scored.
    """
    if state.scenes is None:
        raise UsageError("this memory was saved without its scenes' tokens (recall off): search the video itself")
    n = state.num_segments
    scorer = scorer or model.word_scorer()
    ids = scorer.question_ids(query)
    words = model.config.recall_captions and bool(content_words(query))
    matches = caption_matches(query, scene_captions(model, state)) if words else torch.zeros(n)
    scores = scorer.state_scores(model, state, ids)  # zeros without grounded words
    order = sorted(range(n), key=lambda k: (-float(matches[k]), -float(scores[k]), k))
    return [SceneMatch(k, int(matches[k]), float(scores[k]) if ids else None) for k in order]


NUMBERED_SLACK = 2  # segments either side of a numbered scene that its caption check considers


def numbered_scene_check(model, state: BridgeState, question: str, named: int) -> int:
    """The segment of a scene the question numbers ("the circle in the 40th scene"), checked against the captions.

    Scene numbers count the video's scenes, and a cut SceneTiling missed (two similar scenes in a row) shifts every
    later scene one segment down. When the question also says what it is about and the numbered segment's caption
    holds fewer of those words than a segment up to ``NUMBERED_SLACK`` away, that one is taken: the nearest, earlier
    first (a missed cut moves scenes down). A scene named by time, "last" or "first", or a question without content
    words, is taken as named.
    """
    q = question.lower()
    m = _SCENE_ORDINAL.search(q) or _SCENE_NUMBER.search(q)
    numbered = m is not None and not (m.re is _SCENE_ORDINAL and m["word"] in ("first", "last", "final"))
    if not numbered or not model.config.recall_captions:
        return named
    asked = content_words(_SCENE_ORDINAL.sub(" ", _SCENE_NUMBER.sub(" ", q)))
    if not asked:
        return named
    order = [named] + [named + s * d for d in range(1, NUMBERED_SLACK + 1) for s in (-1, 1)]
    order = [k for k in order if 0 <= k < state.num_segments]
    captions = scene_captions(model, state)
    matches = caption_matches(" ".join(sorted(asked)), [captions[k] for k in order])
    return order[int(matches.argmax())]  # argmax: the first of the best, so the named one on a tie


def plan(model, state: BridgeState, question: str, scorer: WordScorer | None = None) -> Recalled:
    """Which scene(s) to answer ``question`` from (see the module docstring and ``neighbours``)."""
    n = state.num_segments
    kept = state.scenes is not None and (state.memories is not None or not model.bridge.config.keeps_memories)
    if model.config.recall and SCENE_COUNT.search(question.lower()):
        return Recalled(n - 1, "counted", ())
    if n <= 1 or not model.config.recall or not kept:  # a state saved before scenes were kept cannot recall
        return Recalled(n - 1, "now", (n - 1,))
    from videollm import across  # (it reads captions with this module's clause helpers)

    if model.config.cross_reader == "memory" and across.asks(question):
        return Recalled(n - 1, "memory", tuple(range(n)))
    if model.config.recall_captions and across.asks(question):
        def locate(phrase: str) -> int | None:
            best = rank_scenes(model, state, phrase, scorer)[0]
            return None if best.words == 0 and best.score is None else best.scene

        timeline = across.plan(question, scene_captions(model, state), locate)
        if timeline is not None:
            scene = timeline.scene if timeline.scene is not None else (timeline.scenes or (n - 1,))[-1]
            return Recalled(scene, "timeline", timeline.scenes, reading=timeline.answer, ask=timeline.ask)
    named = scene_reference(question, state.segments)
    if named is not None:
        named = numbered_scene_check(model, state, question, named)
        return Recalled(named, "named", (named,))
    top = rank_scenes(model, state, question, scorer)[0]
    if top.words == 0 and top.score is None:
        return Recalled(n - 1, "now", (n - 1,))
    best = top.scene
    how = "captions" if top.words > 0 else "words"
    return Recalled(best, how, tuple(best + d for d in neighbours(question) if 0 <= best + d < n))


_WRITTEN = re.compile(r"\b(written|writes?|wrote|text|words?|signs?|titles?|reads?)\b", re.IGNORECASE)
_ONE_WORD = re.compile(r"\bword\b", re.IGNORECASE)
_SAID = re.compile(r"\b(said|say|says|saying|spoken|speaks?|spoke|mention(?:s|ed)?|talk(?:s|ed)?|hear|heard)\b",
                   re.IGNORECASE)


def read_answer(state: BridgeState, question: str, decision: Recalled) -> tuple[Recalled, str] | None:
    """A question about what is written or said, answered from the text read on screen (``videollm.ocr``) or the
    words spoken (``videollm.speech``) kept in the memory; None when the question is about neither or the memory has
    none. The scene is the one recall chose when it holds text (or speech), else the one nearest to it that does;
    a question about one written word looks among the scenes that show a single word first.
    """
    from videollm import ocr, speech

    if _WRITTEN.search(question):
        texts = ocr.texts_of(state)
        how, per_scene = "read", texts
    elif _SAID.search(question):
        how, per_scene = "heard", speech.scene_texts(state)
    else:
        return None
    if not per_scene or not any(per_scene):
        return None
    having = [i for i, t in enumerate(per_scene) if t]
    if how == "read" and _ONE_WORD.search(question):
        # "What word ...?" asks for one word: a scene showing one (a title, a sign) before a page of print.
        having = [i for i in having if len(per_scene[i].split()) == 1] or having
    scene = min(having, key=lambda i: (abs(i - decision.scene), i))
    return Recalled(scene, how, (scene,)), per_scene[scene]


def answer(model, state: BridgeState, question: str, history: Sequence[Mapping[str, str]] = (),
           max_new_tokens: int = 64, **generate_kwargs) -> tuple[Iterator[str], Recalled]:
    """Answer ``question`` about a watched video from the scene it is about.

    Args:
        model: a ``VideoLLM``.
        state: the video's bridge state.
        question: the new user message.
        history: earlier turns (see ``VideoLLM.chat``).
        max_new_tokens: generation bound.
        **generate_kwargs: ``temperature``, ``top_p``, ``seed``, ``stop``.

    Returns:
        (iterator of answer pieces, the recall decision). With one candidate scene the answer streams token by
        token; with two, both are generated and the one with the higher mean log-likelihood is returned whole; a
        question about the number of scenes is answered with it. A scene the model does not recognise
        (``videollm.ood``) is not asked about: when no candidate is recognised, the answer says so
        (``ood.NOT_RECOGNISED_ANSWER``); its text and speech still answer questions about them.
    """
    from videollm import ood

    decision = plan(model, state, question)
    if decision.how == "counted":
        return iter([str(state.num_segments)]), decision
    if decision.how == "memory":
        return model.chat(model.project_memory(state), list(history), question, max_new_tokens=max_new_tokens,
                          **generate_kwargs), decision
    if decision.how == "timeline":
        if decision.reading is not None:
            return iter([decision.reading]), decision
        if ood.recognised(state, decision.scene) is False:
            return iter([ood.NOT_RECOGNISED_ANSWER]), decision
        visual = model.project_state(state, at=decision.scene)
        return model.chat(visual, list(history), decision.ask, max_new_tokens=max_new_tokens,
                          **generate_kwargs), decision
    read = read_answer(state, question, decision)
    if read is not None:
        return iter([read[1]]), read[0]
    known = tuple(k for k in decision.candidates if ood.recognised(state, k) is not False)
    if not known:
        return iter([ood.NOT_RECOGNISED_ANSWER]), decision
    if known != decision.candidates:
        decision = Recalled(known[0], decision.how, known)
    if len(decision.candidates) == 1:
        visual = model.project_state(state, at=decision.scene)
        return model.chat(visual, list(history), question, max_new_tokens=max_new_tokens, **generate_kwargs), decision
    tried = []
    for k in decision.candidates:
        visual = model.project_state(state, at=k)
        text = "".join(model.chat(visual, list(history), question, max_new_tokens=max_new_tokens, **generate_kwargs))
        score = float(model.score(visual, question, [text])[0]) if text.strip() else float("-inf")
        tried.append((score, -len(tried), k, text))  # ties: the earlier candidate
    _, _, scene, best = max(tried)
    decision = Recalled(scene, decision.how, decision.candidates)
    return iter([best] if best else []), decision


__all__ = ["Recalled", "SceneMatch", "WordScorer", "answer", "caption_matches", "content_words", "neighbours",
           "numbered_scene_check", "plan", "rank_scenes", "scene_captions", "scene_reference"]
