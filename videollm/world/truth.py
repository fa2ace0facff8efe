"""Ground truth of a ``VideoSpec``: timing, scenes, template captions and question/answer pairs.

Everything is a pure function of the spec (no randomness), so the same spec always gives byte-identical JSON.
Answers are short and canonical: a colour, shape, size or motion word ("red", "star", "large", "spin"), an object
name ("blue star"), or a number written in digits ("2").
"""

from __future__ import annotations

from collections import Counter

from videollm.world.spec import ObjectSpec, SceneSpec, VideoSpec
from videollm.world.vocab import COLOUR_NAMES, MOTION_PHRASES, SHAPES

FORMAT = "videollm-world/1"
_ORDINALS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth",
    "nineteenth", "twentieth",
)
BACKGROUND_PHRASES = {
    "flat": "a plain background",
    "gradient": "a gradient background",
    "noise": "a textured background",
    "photo": "a photo background",
    "checker": "a checkerboard",
}


def ordinal(n: int) -> str:
    """1 → "first", ..., 20 → "twentieth", 21 → "21st"."""
    if 1 <= n <= len(_ORDINALS):
        return _ORDINALS[n - 1]
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe_object(obj: ObjectSpec) -> str:
    """ "a large red circle moves left" """
    return f"a {obj.size} {obj.colour} {obj.shape} {MOTION_PHRASES[obj.motion]}"


def scene_caption(scene: SceneSpec) -> str:
    """Template caption of a scene, objects in order of appearance: "a large red circle moves left; ..."."""
    if scene.tag == "needle" and scene.text:
        return f'the word "{scene.text}" is written on a checkerboard'
    if scene.tag == "needle":
        return "; ".join(f"a {o.size} {o.colour} {o.shape} on a checkerboard" for o in scene.objects)
    return "; ".join(describe_object(o) for o in scene.objects)


def _r4(x: float) -> float:
    return round(float(x), 4)


def needle_question(scene: SceneSpec) -> tuple[str, str]:
    """(question, answer) of a needle clip: the word written on it, or the colour of its object."""
    if scene.text:
        return "what word was written on the screen?", scene.text
    return f"what colour was the {scene.objects[0].shape} on the checkerboard?", scene.objects[0].colour


def needle_truth(spec: VideoSpec) -> dict | None:
    """The needle clip's span, depth, question and answer, or None when the video has no needle scene."""
    starts = spec.scene_starts
    for k, scene in enumerate(spec.scenes):
        if scene.tag != "needle":
            continue
        start, end = starts[k], starts[k] + scene.num_frames - 1
        hay = spec.num_frames - scene.num_frames
        question, answer = needle_question(scene)
        return {
            "scene": k,
            "start_frame": start,
            "end_frame": end,
            "start_time": _r4(start / spec.fps),
            "end_time": _r4((end + 1) / spec.fps),
            "depth": _r4(start / hay) if hay else 0.0,
            "kind": "text" if scene.text else "object",
            "question": question,
            "answer": answer,
        }
    return None


def _qa(kind: str, question: str, answer: str, **extra: int) -> dict:
    return {"type": kind, "question": question, "answer": answer, **extra}


def video_qa(spec: VideoSpec) -> list[dict]:
    """Question/answer pairs about a video's ordinary scenes, in a fixed order.

    Types: "attribute" (colour/shape/size/motion of a named object), "counting" (objects per scene, scenes, objects
    of a colour), "temporal" (what appeared right after/before an object), "first_last" (first/last object).
    Questions that would be ambiguous (a name shared by two objects) are left out.

    Args:
        spec: the video.

    Returns:
        List of {"type", "question", "answer"} dicts, some with "scene" (0-based index).
    """
    ordinary = [(k, s) for k, s in enumerate(spec.scenes) if not s.tag]
    # Objects in order of appearance across the video (scenes in order, entrances within a scene).
    timeline = [(k, o) for k, s in ordinary for o in s.objects]
    shapes = Counter(o.shape for _, o in timeline)
    colours = Counter(o.colour for _, o in timeline)
    names = Counter(o.name for _, o in timeline)
    qa: list[dict] = []
    for k, o in timeline:
        scoped = "" if shapes[o.shape] == 1 else f" in the {ordinal(k + 1)} scene"
        qa.append(_qa("attribute", f"what colour is the {o.shape}{scoped}?", o.colour, scene=k))
        if colours[o.colour] == 1:
            qa.append(_qa("attribute", f"what shape is the {o.colour} object?", o.shape, scene=k))
        if names[o.name] == 1:
            qa.append(_qa("attribute", f"how big is the {o.name}?", o.size, scene=k))
            qa.append(_qa("attribute", f"how does the {o.name} move?", o.motion, scene=k))
    qa.append(_qa("counting", "how many scenes are there?", str(len(spec.scenes))))
    for k, s in ordinary:
        qa.append(_qa("counting", f"how many objects are in the {ordinal(k + 1)} scene?", str(len(s.objects)),
                      scene=k))
    for colour in sorted(colours):
        qa.append(_qa("counting", f"how many {colour} objects are there?", str(colours[colour])))
    for i, (k, o) in enumerate(timeline):
        if names[o.name] != 1:
            continue
        if i + 1 < len(timeline):
            qa.append(_qa("temporal", f"what appeared right after the {o.name}?", timeline[i + 1][1].name, scene=k))
        if i > 0:
            qa.append(_qa("temporal", f"what appeared right before the {o.name}?", timeline[i - 1][1].name, scene=k))
    if timeline:
        qa.append(_qa("first_last", "what appeared first?", timeline[0][1].name, scene=timeline[0][0]))
        qa.append(_qa("first_last", "what appeared last?", timeline[-1][1].name, scene=timeline[-1][0]))
    return qa


CROSS_SCENE_TYPES: tuple[str, ...] = ("order", "scene_count", "state_change", "after_exit")


def cross_scene_qa(spec: VideoSpec) -> list[dict]:
    """Questions whose answer needs more than one scene of the video, in a fixed order (issue #28).

    Types (``CROSS_SCENE_TYPES``), each about objects in two or more different ordinary scenes:

    - "order": "did the red star appear before the blue ring?" ("yes"/"no"), two objects whose names occur once in
      the video, in different scenes, half the list of such objects apart; each pair is asked both ways round, so a
      video's answers are half "yes" and a constant answer scores 0.5.
    - "scene_count": "how many scenes showed a circle?" / "how many scenes showed something red?", the number of
      ordinary scenes holding at least one such object (every shape and colour the video shows, plus the first
      shape it never shows, answer "0"), listed by increasing count.
    - "state_change": "what colour was the square the second time it appeared?", for each shape shown in two or more
      scenes and each of its appearances after the first ("second", "third", ...); a shape is shown at most once a
      scene, so its n-th time is its n-th scene.
    - "after_exit": "what moved right after the green hexagon left?": an object leaves when its scene ends, and
      "right after" is the next scene; the answer is the object on screen when that scene opens (its first object;
      the others enter later). Asked for objects whose name occurs once, when that first object moves (not
      "static").

    Like ``video_qa``, a pure function of the spec: the same seed gives the same questions. These are kept apart
    from ``video_qa`` (and the ground-truth JSON) so the training data and the existing evaluations stay as they are.

    Args:
        spec: the video.

    Returns:
        List of {"type", "question", "answer"} dicts; "scene" (0-based) where one scene holds the answer, "scenes"
        (0-based) for the scenes an answer depends on.
    """
    ordinary = [(k, s) for k, s in enumerate(spec.scenes) if not s.tag]
    timeline = [(k, o) for k, s in ordinary for o in s.objects]
    names = Counter(o.name for _, o in timeline)
    qa: list[dict] = []

    unique = [(k, o) for k, o in timeline if names[o.name] == 1]
    half = max(1, len(unique) // 2)
    for j, (k, o) in enumerate(unique[:-half]):
        k2, o2 = unique[j + half]
        if k2 == k:
            continue
        # Both orders of each pair, so every video's answers are half "yes"; which comes first alternates.
        pair = [((k, o), (k2, o2)), ((k2, o2), (k, o))]
        for a, b in pair if j % 2 == 0 else pair[::-1]:
            qa.append({"type": "order", "question": f"did the {a[1].name} appear before the {b[1].name}?",
                       "answer": "yes" if a[0] < b[0] else "no", "scenes": [a[0], b[0]]})

    counts = []
    for kind, values, phrase in (("shape", SHAPES, "a {}"), ("colour", COLOUR_NAMES, "something {}")):
        shown = {v: [k for k, s in ordinary if any(getattr(o, kind) == v for o in s.objects)] for v in values}
        absent = [v for v in values if not shown[v]][:1] if kind == "shape" else []
        for v in [v for v in values if shown[v]] + absent:
            counts.append({"type": "scene_count", "question": f"how many scenes showed {phrase.format(v)}?",
                           "answer": str(len(shown[v])), "scenes": shown[v]})
    # Sorted by the count, so that questions picked evenly from the list span the counts, not mostly the commonest.
    qa += sorted(counts, key=lambda q: len(q["scenes"]))

    for shape in SHAPES:
        times = [(k, o) for k, o in timeline if o.shape == shape]
        for n, (k, o) in enumerate(times[1:], start=2):
            qa.append({"type": "state_change",
                       "question": f"what colour was the {shape} the {ordinal(n)} time it appeared?",
                       "answer": o.colour, "scene": k, "scenes": [k2 for k2, _ in times[:n]]})

    for i, (k, s) in enumerate(ordinary[:-1]):
        k_next, s_next = ordinary[i + 1]
        if not s_next.objects or s_next.objects[0].motion == "static":
            continue
        for o in s.objects:
            if names[o.name] == 1:
                qa.append({"type": "after_exit", "question": f"what moved right after the {o.name} left?",
                           "answer": s_next.objects[0].name, "scene": k_next, "scenes": [k, k_next]})
    return qa


def ground_truth(spec: VideoSpec, video: str | None = None) -> dict:
    """The JSON ground truth of a video.

    Args:
        spec: the video.
        video: file name of the rendered video to record (optional).

    Returns:
        A JSON-ready dict: format, video, fps, width, height, num_frames, duration, heldout, cut_frames (last frame
        of each scene but the final one), cut_times (seconds at which the next scene starts), transitions
        ([{frame, time, kind}] with kind "cut" or "fade"), scenes ([{index, start_frame, end_frame, start_time,
        end_time, num_frames, background {kind, name}, tag, caption, objects [...]}]), caption (scene captions
        joined), qa (see ``video_qa``), needle (see ``needle_truth``; only when present), and spec (the full spec,
        enough to re-render every frame with ``VideoSpec.from_dict``).
    """
    fps = spec.fps
    starts = spec.scene_starts
    scenes, transitions = [], []
    for k, (scene, start) in enumerate(zip(spec.scenes, starts, strict=True)):
        end = start + scene.num_frames - 1
        objects = [
            {"name": o.name, "shape": o.shape, "colour": o.colour, "size": o.size, "motion": o.motion,
             "appear_frame": start + o.enter, "appear_time": _r4((start + o.enter) / fps)}
            for o in scene.objects
        ]
        scenes.append({
            "index": k,
            "start_frame": start,
            "end_frame": end,
            "start_time": _r4(start / fps),
            "end_time": _r4((end + 1) / fps),
            "num_frames": scene.num_frames,
            "background": {"kind": scene.background.kind, "name": scene.background.name},
            "tag": scene.tag,
            "caption": scene_caption(scene),
            "objects": objects,
        })
        if k + 1 < len(spec.scenes):
            transitions.append({"frame": end, "time": _r4((end + 1) / fps), "kind": scene.transition})
    truth = {
        "format": FORMAT,
        "video": video,
        "fps": fps,
        "width": spec.width,
        "height": spec.height,
        "num_frames": spec.num_frames,
        "duration": _r4(spec.num_frames / fps),
        "heldout": spec.heldout,
        "cut_frames": [t["frame"] for t in transitions],
        "cut_times": [t["time"] for t in transitions],
        "transitions": transitions,
        "scenes": scenes,
        "caption": ". ".join(s["caption"] for s in scenes),
        "qa": video_qa(spec),
    }
    needle = needle_truth(spec)
    if needle is not None:
        truth["needle"] = needle
    truth["spec"] = spec.to_dict()
    return truth
