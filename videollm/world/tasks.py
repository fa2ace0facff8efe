"""Task-shaped samples built from the world: needle-in-a-haystack videos, EgoPlan-style step tasks and
VisDial-style image dialogs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from videollm.errors import UsageError
from videollm.world.render import render_scene
from videollm.world.sample import (
    finish_scenes,
    sample_attributes,
    sample_background,
    sample_objects,
    sample_scene,
)
from videollm.world.spec import EXTENT, Background, ObjectSpec, SceneSpec, VideoSpec, WorldConfig
from videollm.world.vocab import COLOUR_NAMES, NEEDLE_WORDS, SHAPES, SIZE_NAMES, SIZES, is_heldout

# ---------------------------------------------------------------------------------------------------------------
# Needle in a haystack
# ---------------------------------------------------------------------------------------------------------------

NEEDLE_KINDS = ("text", "object")
# Ordinary scenes never use a checkerboard, so the needle clip stands out from any haystack.
NEEDLE_BACKGROUND = Background("checker", colours=((25, 25, 25), (205, 205, 205)))


def _partition(rng: np.random.Generator, total: int, lo: int, hi: int) -> list[int]:
    """Split ``total`` frames into scene lengths near [lo, hi] (one shorter scene when total < lo)."""
    if total <= 0:
        return []
    if total < lo:
        return [total]
    n = int(rng.integers(math.ceil(total / hi), max(math.ceil(total / hi), total // lo) + 1))
    weights = rng.uniform(lo, hi, n)
    lengths = np.floor(weights * total / weights.sum()).astype(int)
    lengths[: total - int(lengths.sum())] += 1  # hand out the rounding remainder
    return [int(v) for v in lengths]


def needle_frames(fps: float) -> int:
    """Frames of a needle clip: 1 second."""
    return max(1, round(fps))


def needle_object_scene(rng: np.random.Generator, fps: float, heldout: bool = False,
                        transition: str = "cut") -> SceneSpec:
    """An object needle clip: one large still object centred on the checkerboard for 1 s (caption "a large red star
    on a checkerboard", question "what colour was the star on the checkerboard?").

    Args:
        rng: the random generator (draws the shape and colour).
        fps: frame rate of the video it goes in.
        heldout: the object from the held-out split.
        transition: how the clip ends.
    """
    shape, colour, _ = sample_attributes(rng, heldout, motion="static")
    obj = ObjectSpec(shape=shape, colour=colour, size="large", motion="static", radius=SIZES["large"], x=0.5, y=0.5)
    return SceneSpec(needle_frames(fps), NEEDLE_BACKGROUND, (obj,), transition, tag="needle")


def make_needle_video(
    rng: np.random.Generator,
    depth: float,
    haystack_seconds: float = 60.0,
    needle: str = "text",
    config: WorldConfig | None = None,
    heldout: bool = False,
) -> VideoSpec:
    """A long haystack of ordinary scenes with a 1-second needle clip inserted at ``depth``.

    The needle is a checkerboard (never used by the haystack) showing either a word ("text") or one large still
    object ("object"); hard cuts surround it. ``ground_truth(spec)["needle"]`` gives its span, depth, question and
    answer.

    Args:
        rng: the random generator.
        depth: where the needle starts, as a fraction of the haystack (0 = first frame, 1 = after the last).
        haystack_seconds: haystack length, not counting the needle.
        needle: "text" or "object".
        config: sampler settings for the haystack scenes.
        heldout: haystack objects (and the needle object) from the held-out split.

    Returns:
        The video spec.
    """
    config = WorldConfig() if config is None else config
    if not 0.0 <= depth <= 1.0:
        raise UsageError(f"needle depth must be in [0, 1], got {depth}")
    if needle not in NEEDLE_KINDS:
        raise UsageError(f"needle kind must be one of {', '.join(NEEDLE_KINDS)}, got {needle!r}")
    fps = config.fps
    hay = max(1, round(haystack_seconds * fps))
    before = round(depth * hay)
    lo, hi = (max(2, round(s * fps)) for s in config.scene_seconds)
    used: set[tuple[str, str]] = set()
    scenes: list[SceneSpec] = []
    for n in _partition(rng, before, lo, hi):
        scenes.append(sample_scene(rng, config, heldout, used, n, scenes[-1] if scenes else None))
    if scenes and scenes[-1].transition != "cut":
        s = scenes[-1]
        scenes[-1] = SceneSpec(s.num_frames, s.background, s.objects, "cut", s.text, s.tag)
    n_needle = needle_frames(fps)
    if needle == "text":
        word = NEEDLE_WORDS[int(rng.integers(len(NEEDLE_WORDS)))]
        scenes.append(SceneSpec(n_needle, NEEDLE_BACKGROUND, (), "cut", text=word, tag="needle"))
    else:
        scenes.append(needle_object_scene(rng, fps, heldout))
    for n in _partition(rng, hay - before, lo, hi):
        # Right after the needle any background will do: no ordinary scene is a checkerboard.
        previous = None if scenes[-1].tag == "needle" else scenes[-1]
        scenes.append(sample_scene(rng, config, heldout, used, n, previous))
    return VideoSpec(config.width, config.height, float(fps), finish_scenes(scenes), heldout)


# ---------------------------------------------------------------------------------------------------------------
# EgoPlan-style step tasks
# ---------------------------------------------------------------------------------------------------------------

ARRANGEMENTS = ("tower", "row")
EGOPLAN_QUESTION = (
    "Considering the progress shown in the video and my current observation in the last frame, "
    "what action should I take next in order to {goal}?"
)


@dataclass(frozen=True)
class EgoPlanSample:
    """A goal, a video of its first ``done`` steps, and the next-step question.

    Args:
        spec: the video: one scene per step performed, each ending with the item in place.
        arrangement: "tower" (stacked bottom to top) or "row" (left to right).
        goal: item names ("red square", ...) in the order they must be placed.
        done: steps shown in the video (1 <= done < len(goal)).
        choices: four candidate next steps ("place the blue circle").
        answer_index: index of the right choice.
    """

    spec: VideoSpec
    arrangement: str
    goal: tuple[str, ...]
    done: int
    choices: tuple[str, str, str, str]
    answer_index: int

    @property
    def task_goal(self) -> str:
        items = ", then ".join(self.goal)
        if self.arrangement == "tower":
            return f"build a tower from the bottom up: {items}"
        return f"line up from left to right: {items}"


def step_text(name: str) -> str:
    """Narration of one step: "place the red square"."""
    return f"place the {name}"


def make_egoplan_sample(
    rng: np.random.Generator,
    config: WorldConfig | None = None,
    heldout: bool = False,
    n_steps: int | None = None,
) -> EgoPlanSample:
    """Draw a goal of 4-5 placements (fewer where the frame holds fewer) and a video of the first steps (each a
    1.5-2.5 s scene).

    In every step scene the new item drops from the top into its place while the items placed before stay still.
    With ``heldout`` the dropped items are held-out (shape, colour, "down") triples.

    The next step follows from the video alone: every option names an item of the goal (the one placed last, then
    others, earlier or later, at random), so the goal's text does not tell the answer from the distractors; only
    the items already in place do. Items outside the goal fill the options only when the goal has under 4 items.

    Args:
        rng: the random generator.
        config: frame size and fps (scene and object counts do not apply).
        heldout: which side of the held-out split the moving items come from.
        n_steps: goal length; drawn from 3 up to what fits in the frame when None.

    Returns:
        The sample.
    """
    config = WorldConfig() if config is None else config
    w, h, fps = config.width, config.height, config.fps
    arrangement = ARRANGEMENTS[int(rng.integers(len(ARRANGEMENTS)))]
    radius = SIZES["small"]
    r_px = radius * min(w, h)
    margin = r_px * EXTENT + 2.0
    pitch = 2 * r_px * EXTENT + 3.0
    fit = int(((h if arrangement == "tower" else w) - 2 * margin) // pitch) + 1
    max_steps = min(5, fit)
    if n_steps is None:
        n_steps = int(rng.integers(min(4, max_steps), max_steps + 1))
    if not 2 <= n_steps <= max_steps:
        raise UsageError(f"EgoPlan goals need 2..{max_steps} steps at {w}x{h}, got {n_steps}")
    items: list[tuple[str, str]] = []
    while len(items) < n_steps:
        # Placed items stay in view as still objects, so in training both the "down" and "static" triples must
        # be training combos.
        shape, colour, _ = sample_attributes(rng, heldout, motion="down")
        if (colour, shape) in items or (not heldout and is_heldout(shape, colour, "static")):
            continue
        items.append((colour, shape))
    if arrangement == "tower":
        slots = [(0.5, (h - margin - k * pitch) / h) for k in range(n_steps)]
    else:
        left = (w - (n_steps - 1) * pitch) / 2
        slots = [((left + k * pitch) / w, 0.62) for k in range(n_steps)]
    done = int(rng.integers(1, n_steps))
    background = sample_background(rng, config)
    scenes = []
    for k in range(done):
        placed = tuple(
            ObjectSpec(shape=s, colour=c, size="small", motion="static", radius=radius, x=round(x, 4), y=round(y, 4))
            for (c, s), (x, y) in zip(items[:k], slots[:k], strict=True)
        )
        (c, s), (x, y) = items[k], slots[k]
        top = margin / h
        mover = ObjectSpec(shape=s, colour=c, size="small", motion="down", radius=radius, x=round(x, 4),
                           y=round(top, 4), dy=round(y - top, 4))
        n = max(2, round(rng.uniform(1.5, 2.5) * fps))
        scenes.append(SceneSpec(n, background, (*placed, mover), "cut", tag="step"))
    spec = VideoSpec(w, h, float(fps), finish_scenes(scenes), heldout)
    names = [f"{c} {s}" for c, s in items]
    gold = step_text(names[done])
    # Distractors: the step just done, then other goal steps at random; outside items only for short goals.
    others = [done - 1] + [int(i) for i in rng.permutation(n_steps) if i not in (done, done - 1)]
    pool = [step_text(names[i]) for i in others[:3]]
    while len(pool) < 3:
        shape, colour, _ = sample_attributes(rng, heldout, motion="down")
        cand = step_text(f"{colour} {shape}")
        if f"{colour} {shape}" not in names and cand not in pool:
            pool.append(cand)
    choices = [gold, *pool[:3]]
    order = rng.permutation(4)
    shuffled = tuple(choices[i] for i in order)
    return EgoPlanSample(spec, arrangement, tuple(names), done, shuffled, int(np.argmax(order == 0)))


def egoplan_record(sample: EgoPlanSample, sample_id: str, video_path: str) -> dict:
    """An EgoPlan-Bench-style record (its field names, plus ``video_path`` and ``heldout``).

    Args:
        sample: the sample.
        sample_id: unique id.
        video_path: where the video was written (relative to the JSON is most portable).

    Returns:
        dict with sample_id, video_source, video_id, video_path, task_goal, question, choice_a..choice_d,
        golden_choice_idx ("A".."D"), answer, task_start_frame, current_observation_frame, task_progress_metadata
        ([{narration_text, start_frame, stop_frame}] per step shown), heldout.
    """
    starts = sample.spec.scene_starts
    progress = [
        {"narration_text": step_text(sample.goal[k]), "start_frame": starts[k],
         "stop_frame": starts[k] + scene.num_frames - 1}
        for k, scene in enumerate(sample.spec.scenes)
    ]
    letters = "ABCD"
    return {
        "sample_id": sample_id,
        "video_source": "videollm-world",
        "video_id": video_path.rsplit("/", 1)[-1].rsplit(".", 1)[0],
        "video_path": video_path,
        "task_goal": sample.task_goal,
        "question": EGOPLAN_QUESTION.format(goal=sample.task_goal),
        **{f"choice_{letters[i].lower()}": c for i, c in enumerate(sample.choices)},
        "golden_choice_idx": letters[sample.answer_index],
        "answer": sample.choices[sample.answer_index],
        "task_start_frame": 0,
        "current_observation_frame": sample.spec.num_frames - 1,
        "task_progress_metadata": progress,
        "heldout": sample.spec.heldout,
    }


# ---------------------------------------------------------------------------------------------------------------
# Images with VisDial v1.0-style dialogs
# ---------------------------------------------------------------------------------------------------------------

VISDIAL_ROUNDS = 10
VISDIAL_OPTIONS = 100
_BACKGROUND_WORDS = {"flat": "plain", "gradient": "gradient", "noise": "textured", "photo": "photo"}
_POSITIONS = ("centre", "left", "right", "top", "bottom", "top left", "top right", "bottom left", "bottom right")
# Every answer any dialog can have, in a fixed order: VisDial's data.answers (answer_options index into it).
ANSWERS: tuple[str, ...] = (
    ("yes", "no", "0", "1", "2", "3", *COLOUR_NAMES, *SHAPES, *SIZE_NAMES, *_POSITIONS, *_BACKGROUND_WORDS.values())
    + tuple(f"{c} {s}" for c in COLOUR_NAMES for s in SHAPES)
)


def make_image_spec(rng: np.random.Generator, config: WorldConfig | None = None, heldout: bool = False) -> VideoSpec:
    """A one-frame spec (1-3 still objects on a background) for single-image samples.

    Args:
        rng: the random generator.
        config: frame size and objects per image.
        heldout: objects are held-out (shape, colour, "static") triples.

    Returns:
        A spec with one scene of one frame; render it with ``render_image``.
    """
    config = WorldConfig() if config is None else config
    n = int(rng.integers(config.objects[0], config.objects[1] + 1))
    objects = sample_objects(rng, n, 1, config, heldout, motion="static", stagger=False)
    scene = SceneSpec(1, sample_background(rng, config), objects, "end")
    return VideoSpec(config.width, config.height, float(config.fps), (scene,), heldout)


def render_image(spec: VideoSpec) -> np.ndarray:
    """The first frame of a spec's first scene, (H, W, 3) uint8 RGB."""
    return next(render_scene(spec, 0))


def _position(obj: ObjectSpec) -> str:
    col = "left" if obj.x < 0.4 else "right" if obj.x > 0.6 else "centre"
    row = "top" if obj.y < 0.4 else "bottom" if obj.y > 0.6 else "middle"
    if row == "middle":
        return col
    return row if col == "centre" else f"{row} {col}"


def image_caption(spec: VideoSpec) -> str:
    """ "a large red circle and a small blue star on a gradient background" """
    scene = spec.scenes[0]
    parts = [f"a {o.size} {o.colour} {o.shape}" for o in scene.objects]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{listed} on a {_BACKGROUND_WORDS[scene.background.kind]} background"


def image_dialog(rng: np.random.Generator, spec: VideoSpec) -> list[tuple[str, str]]:
    """Ten (question, answer) rounds about an image's objects.

    Every object gets its colour, size and position asked; the rest are counting, background and yes/no
    questions (half about absent things). VisDial style: lower case, no question mark.

    Args:
        rng: the random generator.
        spec: a spec from ``make_image_spec``.

    Returns:
        ``VISDIAL_ROUNDS`` (question, answer) pairs; every answer is in ``ANSWERS``.
    """
    objs = spec.scenes[0].objects
    colours = [o.colour for o in objs]
    must = [("how many objects are there", str(len(objs)))]
    for o in objs:
        must += [(f"what colour is the {o.shape}", o.colour), (f"how big is the {o.shape}", o.size),
                 (f"where is the {o.shape}", _position(o))]
        if colours.count(o.colour) == 1:
            must.append((f"what shape is the {o.colour} object", o.shape))
    extra = [("what is the background", _BACKGROUND_WORDS[spec.scenes[0].background.kind])]
    extra += [(f"is there a {s}", "yes" if s in {o.shape for o in objs} else "no") for s in SHAPES]
    extra += [(f"is there anything {c}", "yes" if c in colours else "no") for c in COLOUR_NAMES]
    extra += [(f"how many {c} objects are there", str(colours.count(c))) for c in sorted(set(colours))]
    extra += [(f"is there a {o.name}", "yes") for o in objs]
    picked = must[:VISDIAL_ROUNDS] + [extra[i] for i in rng.permutation(len(extra))]
    unique = list(dict.fromkeys(picked))[:VISDIAL_ROUNDS]
    return [unique[i] for i in rng.permutation(len(unique))]


def visdial_json(dialogs: list[dict], split: str) -> dict:
    """Assemble VisDial v1.0 JSON from dialogs written with string questions and answers.

    Args:
        dialogs: [{"image_id": int, "caption": str, "dialog": [{"question": str, "answer": str,
            "answer_options": [100 str], "gt_index": int}]}].
        split: the split name recorded in the file.

    Returns:
        {"version": "1.0", "split", "data": {"questions", "answers", "dialogs"}} where every question, answer and
        answer option is an index into data.questions / data.answers (``ANSWERS``, in that order).
    """
    answer_id = {a: i for i, a in enumerate(ANSWERS)}
    questions: dict[str, int] = {}
    out = []
    for d in dialogs:
        rounds = []
        for r in d["dialog"]:
            qid = questions.setdefault(r["question"], len(questions))
            rounds.append({"question": qid, "answer": answer_id[r["answer"]],
                           "answer_options": [answer_id[a] for a in r["answer_options"]], "gt_index": r["gt_index"]})
        out.append({"image_id": d["image_id"], "caption": d["caption"], "dialog": rounds})
    return {"version": "1.0", "split": split,
            "data": {"questions": list(questions), "answers": list(ANSWERS), "dialogs": out}}


def option_relevance(answer: str, option: str) -> float:
    """Dense relevance of one answer option to a round whose true answer is ``answer`` (VisDial's ``gt_relevance``:
    there, the share of annotators who accepted the option): 1 for the answer itself, 0.5 for an option that shares
    a word with it ("red" for "red star", "left" for "top left"), 0 otherwise."""
    if option == answer:
        return 1.0
    return 0.5 if set(option.split()) & set(answer.split()) else 0.0


def visdial_dense(dialogs: list[dict]) -> list[dict]:
    """VisDial v1.0 dense annotations for dialogs in the ``visdial_dialog`` form: one round per image (round
    ``image_id % 10 + 1``, 1-based as in VisDial), with ``option_relevance`` of each of its answer options.

    Returns:
        [{"image_id", "round_id", "gt_relevance": [float] * len(answer_options)}].
    """
    out = []
    for d in dialogs:
        k = d["image_id"] % len(d["dialog"])
        r = d["dialog"][k]
        out.append({"image_id": d["image_id"], "round_id": k + 1,
                    "gt_relevance": [option_relevance(r["answer"], o) for o in r["answer_options"]]})
    return out


def visdial_dialog(rng: np.random.Generator, spec: VideoSpec, image_id: int) -> dict:
    """One dialog entry (strings, not yet indices) with 100 shuffled answer options per round.

    Args:
        rng: the random generator.
        spec: a spec from ``make_image_spec``.
        image_id: the image's id.

    Returns:
        {"image_id", "caption", "dialog": [{"question", "answer", "answer_options", "gt_index"}] * 10}.
    """
    rounds = []
    for question, answer in image_dialog(rng, spec):
        others = [a for a in ANSWERS if a != answer]
        options = [answer] + [others[i] for i in rng.choice(len(others), VISDIAL_OPTIONS - 1, replace=False)]
        order = rng.permutation(VISDIAL_OPTIONS)
        rounds.append({"question": question, "answer": answer, "answer_options": [options[i] for i in order],
                       "gt_index": int(np.argmax(order == 0))})
    return {"image_id": image_id, "caption": image_caption(spec), "dialog": rounds}
