"""Evaluations on held-out synthetic videos: scene captions, video QA, length generalisation, NIAVH, EgoPlan and
the ablation table.

Every evaluation is deterministic (seeded world videos, greedy decoding) and offline. Videos are written as real
H.264 MP4 files and decoded like any user video; their vision features are cached once per file
(``videollm.feature_cache``), so ablations and repeated runs reuse them. Everything else is the product's path:
videos are watched by ``videollm.memory.watch``, scenes captioned by ``videollm.captioning.caption_video`` (the
function ``videollm caption`` runs, same prompt and token bound) and questions answered by ``videollm.recall``
(as ``videollm ask``). One product rule is bypassed: no caption or answer is withheld for a scene the model does
not recognise (``videollm.ood``), so the figures measure the model itself and stay comparable with every earlier
one. On these same videos the rule would withhold 2 of the 141 haystack scenes at 1x, 8x and 32x (one small
diamond on a photograph, in both the 1x and the 8x video 3) and every written-word needle, which the model cannot
read anyway (``python benchmarks/ood.py --split test``). Objects are always drawn from the held-out
shape x colour x motion split (``heldout=True``), which training never sees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from videollm.bridge.state import BridgeState
from videollm.captioning import caption_video
from videollm.eval.metrics import (
    ATTRIBUTES,
    answer_correct,
    mean_by,
    overlap_assign,
    score_caption,
)
from videollm.feature_cache import (
    FeatureCache,
    VideoFeatures,
    namespace,
    video_features,
)
from videollm.memory import EncodedVideo, SceneEvent
from videollm.memory import watch as watch_video
from videollm.scenes import video_end

# Training clips are 1-3 scenes of 2-6 s (recipe ``embedded``): 2 scenes of 4 s on average.
TRAIN_SCENES = 2
SCENE_SECONDS = (2.0, 6.0)
ANSWER_TOKENS = 8
ABLATIONS: tuple[str, ...] = ("full", "no_recall", "no_recall_captions", "no_memory", "no_retrieval",
                              "uniform_segments", "memory_reader", "timeline_reader", "readout=all_memories",
                              "readout=memory", "readout=all_memories_last_segment", "readout=memory_last_segment")


@dataclass
class Case:
    """One evaluation video: its file, ground truth and cached features."""

    path: Path
    truth: dict
    features: VideoFeatures

    @functools.cached_property
    def video(self) -> EncodedVideo:
        """The cached features as the watch path's input, with the file's own frame indices and duration."""
        return encoded_file(self.path, self.features)


@dataclass
class Watched:
    """A video run through segmentation and the bridge.

    Attributes:
        spans: (start, end) seconds of each segment.
        visuals: projected readout after each segment, (R_k, H) each.
        state: the bridge state after the last segment (what questions are answered from).
    """

    spans: list[tuple[float, float]]
    visuals: list[Tensor]
    state: BridgeState | None = None


# ------------------------------------------------------------------------------------------------ videos


def world_config(scenes: int, fps: float = 8.0):
    from videollm.world import WorldConfig

    return WorldConfig(fps=fps, scenes=(scenes, scenes), scene_seconds=SCENE_SECONDS)


def feature_cache(model, work: Path) -> FeatureCache:
    return FeatureCache(work / "features", namespace(model.config, f"fps{model.config.segmentation.fps}"))


def make_cases(model, work: str | os.PathLike, name: str, n: int, seed: int, scenes: int,
               kind: str = "video", **generate_args) -> list[Case]:
    """Write (once) ``n`` held-out videos with ``scenes`` scenes each and return them with cached features.

    Args:
        model: a ``VideoLLM`` with a vision encoder (features not cached yet are encoded once).
        work: working folder (videos under ``<work>/<name>``, features under ``<work>/features``).
        name: sub-folder of this set.
        n: number of videos.
        seed: world seed.
        scenes: scenes per video.
        kind: world sample kind ("video", "egoplan").
        **generate_args: passed to ``videollm.world.generate``.
    """
    work = Path(work)
    paths = heldout_videos(work / name, n, seed, scenes, kind, **generate_args)
    cache = feature_cache(model, work)
    cases = []
    for path in paths:
        truth = json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8"))
        feats = video_features(model.encode_frames, cache, path, model.config.segmentation.fps)
        cases.append(Case(Path(path), truth, feats))
    return cases


def heldout_videos(folder: Path, n: int, seed: int, scenes: int, kind: str = "video",
                   **generate_args) -> list[Path]:
    """The ``n`` held-out videos of ``make_cases`` in ``folder`` (written once; their truth JSON beside them)."""
    from videollm.world import generate

    paths = [folder / f"{kind}_{i:06d}.mp4" for i in range(n)]
    if not all(p.is_file() and p.with_suffix(".json").is_file() for p in paths):
        paths = [Path(p) for p in generate(folder, n, seed, heldout=True, kind=kind, config=world_config(scenes),
                                           **generate_args)]
    return paths


def encoded_file(path: str | os.PathLike, features: VideoFeatures) -> EncodedVideo:
    """A video file's cached features with its frame indices and duration, read from the file's index (no frame is
    decoded), so that ``watch`` sees exactly what it sees when it decodes the file itself."""
    from videollm.io import open_video

    with open_video(path) as reader:
        frame_times, duration = reader.times, float(reader.meta.duration)
    times = features.times.numpy()
    indices = np.searchsorted(frame_times, times - 1e-9)
    if indices.max(initial=0) >= len(frame_times) or not np.allclose(frame_times[indices], times):
        raise ValueError(f"{path}: cached features do not match the file's frames")
    return EncodedVideo(features.cls, features.tokens, indices.astype(np.int64), times, duration)


def encoded_features(model, features: VideoFeatures) -> EncodedVideo:
    """Features not read from one file (spliced needle videos): frame positions for indices, and the end of the
    last scene half a sampling interval after the last frame, as for a live source."""
    times = features.times.numpy()
    return EncodedVideo(features.cls, features.tokens, np.arange(len(times)), times,
                        video_end(float(times[-1]), model.config.segmentation.fps))


def watch(model, video: EncodedVideo) -> Watched:
    """Watch a video as the product does (``videollm.memory.watch``, offline SceneTiling) and keep the projected
    readout after every scene. Scenes are not judged for being recognised (``recognise=False``): the evaluation
    measures what the model answers, never what the product withholds (``videollm.ood``)."""
    spans, visuals = [], []
    event: SceneEvent | None = None
    for event in watch_video(model, video, recognise=False):
        spans.append((event.start, event.end))
        visuals.append(model.project_state(event.state))
    return Watched(spans, visuals, event.state if event is not None else None)


def ask_video(model, watched: Watched, question: str, max_new_tokens: int = ANSWER_TOKENS) -> tuple[str, int]:
    """Greedy answer to one question about a watched video, as the product answers it (``videollm.recall``:
    from the scene the question is about when the model's config has recall on). Returns (answer, scene used)."""
    from videollm.recall import answer

    pieces, decision = answer(model, watched.state, question, max_new_tokens=max_new_tokens)
    return "".join(pieces).strip(), decision.scene


# ------------------------------------------------------------------------------------------------ evaluations


def caption_records(model, cases: Sequence[Case]) -> list[dict]:
    """One record per predicted scene: its caption (``caption_video``, as ``videollm caption``), the true scene it
    overlaps most, and attribute scores."""
    records = []
    for case in cases:
        scenes = caption_video(model, case.path, encoded=case.video, recognise=False).run()
        spans = [(scene.start, scene.end) for scene in scenes]
        truth_spans = [(s["start_time"], s["end_time"]) for s in case.truth["scenes"]]
        for scene, true_index in zip(scenes, overlap_assign(spans, truth_spans), strict=True):
            gold = case.truth["scenes"][true_index]
            records.append({"video": case.path.name, "segment": scene.index, "span": [scene.start, scene.end],
                            "scene": true_index, "caption": scene.caption, "truth": gold["caption"],
                            **score_caption(scene.caption, gold["objects"])})
    return records


def summarize_captions(records: Sequence[dict]) -> dict[str, float]:
    keys = (*ATTRIBUTES, "objects", "count", "exact")
    n = max(1, len(records))
    out = {k: sum(r[k] for r in records) / n for k in keys}
    out["attributes"] = sum(out[a] for a in ATTRIBUTES) / len(ATTRIBUTES)
    out["scenes"] = len(records)
    return out


def select_questions(truth: dict, per_type: int, questions: Callable[[dict], list[dict]] | None = None
                     ) -> list[dict]:
    """Up to ``per_type`` questions of each type, spread evenly over the video's list (deterministic).

    ``questions`` maps the truth to its question list (default: ``truth["qa"]``; ``cross_questions`` for the
    cross-scene types)."""
    by_type: dict[str, list[dict]] = {}
    for qa in truth["qa"] if questions is None else questions(truth):
        by_type.setdefault(qa["type"], []).append(qa)
    picked = []
    for items in by_type.values():
        index = np.unique(np.linspace(0, len(items) - 1, min(per_type, len(items))).round().astype(int))
        picked += [items[i] for i in index]
    return picked


def cross_questions(truth: dict) -> list[dict]:
    """The cross-scene questions of a video (``videollm.world.truth.cross_scene_qa``), from the spec its truth
    records: ground-truth files written before those types existed get them too."""
    from videollm.world import VideoSpec
    from videollm.world.truth import cross_scene_qa

    return cross_scene_qa(VideoSpec.from_dict(truth["spec"]))


def qa_records(model, cases: Sequence[Case], per_type: int = 3,
               questions: Callable[[dict], list[dict]] | None = None) -> list[dict]:
    """Answers to ground-truth questions after the whole video (recalling the scene asked about, see ``ask_video``).
    ``questions``: as in ``select_questions`` (default: the video's ``qa``)."""
    records = []
    for case in cases:
        watched = watch(model, case.video)
        for qa in select_questions(case.truth, per_type, questions):
            pred, scene = ask_video(model, watched, qa["question"])
            records.append({"video": case.path.name, "type": qa["type"], "question": qa["question"],
                            "answer": qa["answer"], "predicted": pred, "scene_used": scene,
                            "correct": float(answer_correct(pred, qa["answer"]))})
    return records


def unknown_switches(variant: str) -> list[str]:
    """The parts of a variant ("a+b" flips both) that are not in ``ABLATIONS``."""
    return [part for part in variant.split("+") if part not in ABLATIONS]


@contextlib.contextmanager
def ablated(model, variant: str) -> Iterator[None]:
    """Flip one switch of the loaded model (same trained weights) for the duration of the block.

    Variants: ``full``, ``no_recall`` (questions answered from the readout after the last scene, never from the scene
    they are about), ``no_recall_captions`` (recall matches scene tokens only, not scene captions), ``no_memory``
    (every segment starts from the initial memory), ``no_retrieval`` (the carried memory skips the cross-attention
    over the cache), ``uniform_segments`` (fixed chunks instead of SceneTiling), ``memory_reader`` /
    ``timeline_reader`` (questions that span scenes read from the final memory / the scene captions,
    ``ModelConfig.cross_reader``), ``readout=<mode>``; several joined with "+" flip them all
    (``memory_reader+no_memory``).
    """
    parts = variant.split("+")
    if unknown := unknown_switches(variant):
        raise ValueError(f"unknown ablation {unknown[0]!r}")
    bridge_cfg, seg_cfg, retriever = model.bridge.config, model.config.segmentation, model.bridge.retriever
    recall, recall_captions, reader = model.config.recall, model.config.recall_captions, model.config.cross_reader
    try:
        for part in parts:
            if part == "no_recall":
                model.config.recall = False
            elif part == "no_recall_captions":
                model.config.recall_captions = False
            elif part == "no_memory":
                model.bridge.config = dataclasses.replace(model.bridge.config, use_memory=False)
            elif part == "no_retrieval":
                model.bridge.config = dataclasses.replace(model.bridge.config, retrieval=False)
                model.bridge.retriever = None
            elif part == "uniform_segments":
                model.config.segmentation = dataclasses.replace(seg_cfg, mode="uniform")
            elif part in ("memory_reader", "timeline_reader"):
                model.config.cross_reader = part.split("_")[0]
            elif part.startswith("readout="):
                model.bridge.config = dataclasses.replace(model.bridge.config, readout=part.split("=", 1)[1])
        yield
    finally:
        model.bridge.config, model.config.segmentation, model.bridge.retriever = bridge_cfg, seg_cfg, retriever
        model.config.recall, model.config.recall_captions = recall, recall_captions
        model.config.cross_reader = reader


def needle_records(model, haystacks: Sequence[tuple[str, Case]], needles: Sequence[Case],
                   depths: Sequence[float], read_text: bool = False) -> list[dict]:
    """NIAVH by feature splicing: each needle clip's decoded features are inserted into each haystack's decoded
    features at the true scene boundary nearest to each depth (the vision encoder sees frames one at a time, so
    this equals encoding the spliced video), then the needle question is asked after the whole video.

    With ``read_text`` each scene of the spliced video also gets the text RapidOCR reads in its middle sampled
    frame (taken from the haystack or needle file it came from; ``videollm.ocr``), as ``ask --text`` would."""
    reader = _SplicedFrames() if read_text else None
    records = []
    for label, hay in haystacks:
        times = hay.features.times.numpy()
        bounds = np.array([0.0] + [s["end_time"] for s in hay.truth["scenes"]])
        duration = float(bounds[-1])
        for depth in depths:
            cut_time = bounds[int(np.argmin(np.abs(bounds - depth * duration)))]
            at = int(np.searchsorted(times, cut_time - 1e-6))
            for needle in needles:
                info = needle.truth["needle"]
                nt = needle.features.times.numpy()
                keep = (nt >= info["start_time"]) & (nt < info["end_time"])
                feats = _splice(hay.features, needle.features, torch.from_numpy(keep), at)
                watched = watch(model, encoded_features(model, feats))
                if reader is not None:
                    sources = ([(hay.path, t) for t in times[:at]] + [(needle.path, t) for t in nt[keep]]
                               + [(hay.path, t) for t in times[at:]])
                    reader.attach(watched.state, sources)
                pred, scene = ask_video(model, watched, info["question"])
                records.append({"haystack": label, "depth": float(depth), "needle": needle.path.name,
                                "question": info["question"], "answer": info["answer"], "predicted": pred,
                                "scene_used": scene,
                                "correct": float(answer_correct(pred, info["answer"]))})
    if reader is not None:
        reader.close()
    return records


class _SplicedFrames:
    """The text of each scene of a spliced video: its middle sample's frame, read from the file it came from
    (each frame read once: the haystack's scenes recur across depths and needles)."""

    def __init__(self) -> None:
        self._readers: dict[Path, Any] = {}
        self._texts: dict[tuple[Path, int], str] = {}

    def attach(self, state, sources: Sequence[tuple[Path, float]]) -> None:
        from videollm import ocr

        texts = []
        for seg in state.segments:
            path, t = sources[ocr.keyframe(seg.start_frame, seg.end_frame)]
            if path not in self._readers:
                from videollm.io import open_video

                self._readers[path] = open_video(path)
            reader = self._readers[path]
            index = max(0, int(np.searchsorted(reader.times, t + 1e-6)) - 1)  # the frame on screen at t
            if (path, index) not in self._texts:
                self._texts[(path, index)] = " ".join(ocr.read_frame(reader.read([index])[0]))
            texts.append(self._texts[(path, index)])
        ocr.attach(state, texts)

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()


def _splice(hay: VideoFeatures, needle: VideoFeatures, keep: Tensor, at: int) -> VideoFeatures:
    """Insert the kept needle frames before haystack frame ``at``; later haystack times shift by the needle."""
    step = float(hay.times[1] - hay.times[0]) if len(hay.times) > 1 else 0.5
    n = int(keep.sum())
    before = float(hay.times[at - 1]) if at else -step
    needle_times = before + step * torch.arange(1, n + 1, dtype=torch.float64)  # (n,)
    times = torch.cat([hay.times[:at], needle_times, hay.times[at:] + n * step])
    return VideoFeatures(torch.cat([hay.cls[:at], needle.cls[keep], hay.cls[at:]]),
                         torch.cat([hay.tokens[:at], needle.tokens[keep], hay.tokens[at:]]), times)


def egoplan_question(item: dict) -> str:
    """What the model is asked about an EgoPlan item: the product's planning question (``videollm.planning``, as the
    app's Planning tab asks it) for the item's ``task_goal``; the item's own ``question`` when it has no goal."""
    from videollm.planning import plan_question

    goal = item.get("task_goal")
    return plan_question(goal) if goal else item["question"]


def egoplan_records(model, path: str | os.PathLike, cache: FeatureCache) -> list[dict]:
    """EgoPlan-Bench multiple choice: the progress video is watched, the four options are ranked as the app's
    Planning tab ranks them (``videollm.planning.rank_next_steps``: progress from the last scene's caption, then
    mean log-likelihood) and the first is the model's answer. Each record also has the answer of the
    log-likelihood alone (``lm_only``) and without the video (``no_video``: the same question and options, no
    visual tokens), which tells what the text alone gives."""
    from videollm.errors import UsageError
    from videollm.planning import rank_next_steps

    path = Path(path)
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: cannot read EgoPlan JSON ({err.__class__.__name__})") from None
    records = []
    for item in items:
        video = path.parent / item["video_path"]
        feats = video_features(model.encode_frames, cache, video, model.config.segmentation.fps)
        state = watch(model, encoded_file(video, feats)).state
        choices = [item[f"choice_{c}"] for c in "abcd"]
        question = egoplan_question(item)
        if item.get("task_goal"):
            ranked = rank_next_steps(model, state, item["task_goal"], choices)
            by_step = {r.step: r.score for r in ranked}
            scores = [by_step[c] for c in choices]
            pick, why = "ABCD"[choices.index(ranked[0].step)], ranked[0].why
        else:
            scores = model.score(model.project_state(state), question, choices).float().tolist()
            pick, why = "ABCD"[int(np.argmax(scores))], ""
        lm_pick = "ABCD"[int(np.argmax(scores))]
        blind = model.score(None, question, choices).float().tolist()
        blind_pick = "ABCD"[int(np.argmax(blind))]
        golden = item["golden_choice_idx"]
        records.append({"sample_id": item["sample_id"], "predicted": pick, "golden": golden, "why": why,
                        "scores": [float(s) for s in scores], "correct": float(pick == golden),
                        "lm_only_predicted": lm_pick, "lm_only_correct": float(lm_pick == golden),
                        "no_video_predicted": blind_pick, "no_video_correct": float(blind_pick == golden)})
    return records


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default); (nan, nan) for n = 0."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


__all__ = [
    "ABLATIONS",
    "TRAIN_SCENES",
    "Case",
    "Watched",
    "ablated",
    "ask_video",
    "caption_records",
    "cross_questions",
    "egoplan_question",
    "egoplan_records",
    "feature_cache",
    "heldout_videos",
    "make_cases",
    "mean_by",
    "needle_records",
    "qa_records",
    "select_questions",
    "summarize_captions",
    "unknown_switches",
    "watch",
    "wilson_interval",
    "world_config",
]
