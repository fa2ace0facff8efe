"""Ground truth of a ``VideoSpec``: timing, scenes, template captions and question/answer pairs.

Everything is a pure function of the spec (no randomness), so the same spec always gives byte-identical JSON.
Answers are short and canonical: a colour, shape, size or motion word ("red", "star", "large", "spin"), an object
name ("blue star"), or a number written in digits ("2").
"""

from __future__ import annotations

from collections import Counter

from videollm.world.spec import ObjectSpec, SceneSpec, VideoSpec
from videollm.world.vocab import MOTION_PHRASES

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
