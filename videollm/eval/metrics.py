"""Deterministic scoring against the synthetic world's ground truth (no judge model).

Captions are parsed back into objects with the world's own vocabulary, so "a large red circle moves left; a small
blue star spins" becomes two (size, colour, shape, motion) records; answers are normalised to the world's canonical
answer words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from videollm.world.vocab import (
    COLOUR_NAMES,
    MOTION_PHRASES,
    MOTIONS,
    SHAPES,
    SIZE_NAMES,
)

ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "size", "motion")
_WORD = re.compile(r"[a-z0-9]+")
# Caption phrase → motion name; single-word forms too ("spins", "left") so loose wording still parses.
_MOTION_WORDS: dict[str, str] = {
    **{phrase.split()[-1]: m for m, phrase in MOTION_PHRASES.items() if m not in ("static",)},
    "still": "static", "static": "static", "stays": "static", "spin": "spin", "grow": "grow", "bounce": "bounce",
}
_NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                 "seven": "7", "eight": "8", "nine": "9", "ten": "10"}


def parse_caption(text: str) -> list[dict[str, str | None]]:
    """Objects named in a caption, in order.

    A clause (split on ";", "," or " and ") names one object; in it the first size, colour, shape and motion words
    found are its attributes (None when absent). Clauses without a shape word are dropped.

    Args:
        text: generated caption.

    Returns:
        ``[{"shape", "colour", "size", "motion"}]``.
    """
    objects = []
    for clause in re.split(r";|,|\.|\band\b|\bthen\b", text.lower()):
        words = _WORD.findall(clause)
        obj: dict[str, str | None] = {a: None for a in ATTRIBUTES}
        for i, w in enumerate(words):
            if obj["shape"] is None and w in SHAPES:
                obj["shape"] = w
            elif obj["colour"] is None and w in COLOUR_NAMES:
                obj["colour"] = w
            elif obj["size"] is None and w in SIZE_NAMES:
                obj["size"] = w
            elif obj["motion"] is None and w in _MOTION_WORDS:
                # "moves left": the direction word carries the motion; "moves" alone does not.
                obj["motion"] = _MOTION_WORDS[w]
        if obj["shape"] is not None:
            objects.append(obj)
    return objects


def match_objects(predicted: Sequence[Mapping[str, str | None]],
                  truth: Sequence[Mapping[str, str]]) -> list[tuple[int, int | None]]:
    """Pair every true object with at most one predicted object, greedily by attributes in common.

    Returns:
        ``[(truth_index, predicted_index or None)]`` in truth order.
    """
    pairs = sorted(((sum(p.get(a) == t[a] for a in ATTRIBUTES), -ti, -pi) for ti, t in enumerate(truth)
                    for pi, p in enumerate(predicted)), reverse=True)
    used_t: dict[int, int] = {}
    used_p: set[int] = set()
    for score, nti, npi in pairs:
        ti, pi = -nti, -npi
        if score == 0 or ti in used_t or pi in used_p:
            continue
        used_t[ti] = pi
        used_p.add(pi)
    return [(ti, used_t.get(ti)) for ti in range(len(truth))]


def score_caption(text: str, truth_objects: Sequence[Mapping[str, str]]) -> dict[str, float]:
    """Attribute accuracy of one scene caption.

    Args:
        text: generated caption.
        truth_objects: the scene's objects (dicts with shape, colour, size, motion).

    Returns:
        ``{attribute: correct / true objects}`` for each of ``ATTRIBUTES``, ``"objects"`` (true objects that got a
        predicted partner), ``"count"`` (1.0 when the number of parsed objects equals the truth) and ``"exact"``
        (1.0 when the parsed objects equal the truth as a multiset).
    """
    predicted = parse_caption(text)
    pairs = match_objects(predicted, truth_objects)
    n = max(1, len(truth_objects))
    out = {a: sum(pi is not None and predicted[pi][a] == truth_objects[ti][a] for ti, pi in pairs) / n
           for a in ATTRIBUTES}
    out["objects"] = sum(pi is not None for _, pi in pairs) / n
    out["count"] = float(len(predicted) == len(truth_objects))
    key = lambda o: tuple(str(o[a]) for a in ATTRIBUTES)
    out["exact"] = float(sorted(map(key, predicted)) == sorted(map(key, truth_objects)))
    return out


def normalize_answer(text: str) -> str:
    """Canonical answer: lower case, the world's words only, numbers as digits ("Two." → "2", "the red star" →
    "red star", "it spins" → "spin")."""
    words = [_NUMBER_WORDS.get(w, w) for w in _WORD.findall(text.lower())]
    known = set(COLOUR_NAMES) | set(SHAPES) | set(SIZE_NAMES) | set(MOTIONS)
    picked = []
    for w in words:
        if w.isdigit():
            return w
        if w in _MOTION_WORDS and w not in known:
            w = _MOTION_WORDS[w]
        if w in known:
            picked.append(w)
    return " ".join(picked) if picked else " ".join(words)


def answer_correct(predicted: str, answer: str) -> bool:
    """Whether a generated answer matches the canonical one.

    Object names ("blue star") must match as colour + shape; single words must be the first canonical word of the
    prediction; numbers must be the first number.
    """
    pred = normalize_answer(predicted)
    gold = normalize_answer(answer)
    if " " in gold:
        pw = pred.split()
        return all(w in pw for w in gold.split()) and len(pw) <= len(gold.split()) + 1
    return pred.split()[:1] == [gold]


def mean_by(records: Iterable[Mapping], key: str, value: str) -> dict[str, float]:
    """Mean of ``record[value]`` grouped by ``record[key]`` (sorted keys), plus ``"all"``."""
    groups: dict[str, list[float]] = {}
    for r in records:
        groups.setdefault(str(r[key]), []).append(float(r[value]))
    out = {k: sum(v) / len(v) for k, v in sorted(groups.items())}
    every = [x for v in groups.values() for x in v]
    out["all"] = sum(every) / len(every) if every else float("nan")
    return out


def overlap_assign(spans: Sequence[tuple[float, float]], truth: Sequence[tuple[float, float]]) -> list[int]:
    """For each predicted time span, the index of the true span it overlaps most (ties: the earlier)."""
    out = []
    for s0, s1 in spans:
        overlaps = [max(0.0, min(s1, t1) - max(s0, t0)) for t0, t1 in truth]
        out.append(max(range(len(truth)), key=lambda i: (overlaps[i], -i)))
    return out
