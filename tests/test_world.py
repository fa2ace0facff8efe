"""Tests of the synthetic video world (videollm.world and `videollm world`)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from videollm.cli import main
from videollm.errors import UsageError
from videollm.world import (
    ANSWERS,
    COLOUR_NAMES,
    COLOURS,
    MOTIONS,
    SHAPES,
    VideoSpec,
    WorldConfig,
    decode_frames,
    generate,
    ground_truth,
    heldout_combos,
    is_heldout,
    is_valid_combo,
    make_egoplan_sample,
    make_needle_video,
    needle_object_scene,
    needle_question,
    object_track,
    render_frames,
    render_scene,
    sample_attributes,
    sample_video_spec,
    scene_caption,
    write_samples,
    write_video,
)
from videollm.world.render import scene_brightness
from videollm.world.tasks import NEEDLE_BACKGROUND

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples" / "world"
# Short scenes and no fades keep video tests fast; every boundary is then a hard cut.
SHORT = WorldConfig(scenes=(3, 4), scene_seconds=(1.0, 1.5), fade_prob=0.0)


def _objects(spec: VideoSpec):
    return [o for s in spec.scenes for o in s.objects]


def _interior_point(obj, track, i):
    """A pixel surely inside the object at frame i (a ring's centre is its hole)."""
    x, y, r = track["x"][i], track["y"][i], track["radius"][i]
    return (round(x + 0.76 * r), round(y)) if obj.shape == "ring" else (round(x), round(y))


# ------------------------------------------------------------------------------------------------ held-out split


def test_heldout_split_is_a_latin_square():
    triples = list(itertools.product(SHAPES, COLOUR_NAMES, MOTIONS))
    held = [t for t in triples if is_heldout(*t)]
    assert len(held) == len(triples) // 8
    # Every pair of attributes has exactly one held-out completion.
    for a, b in ((0, 1), (0, 2), (1, 2)):
        counts = {}
        for t in held:
            counts[(t[a], t[b])] = counts.get((t[a], t[b]), 0) + 1
        assert set(counts.values()) == {1} and len(counts) == len(held)
    assert set(heldout_combos()) == {t for t in held if is_valid_combo(t[0], t[2])}
    assert not is_valid_combo("circle", "spin") and not is_valid_combo("ring", "spin")


def test_attribute_sampling_respects_the_split():
    rng = np.random.default_rng(0)
    train = [sample_attributes(rng, heldout=False) for _ in range(2000)]
    held = [sample_attributes(rng, heldout=True) for _ in range(300)]
    assert not any(is_heldout(*t) for t in train)
    assert all(is_heldout(*t) for t in held)
    assert all(is_valid_combo(s, m) for s, _, m in train + held)
    # Independent and broad: every value of every attribute shows up on both sides.
    for k, vocab in enumerate((SHAPES, COLOUR_NAMES, MOTIONS)):
        assert {t[k] for t in train} == set(vocab)
        assert {t[k] for t in held} == set(vocab)


def test_videos_never_cross_the_split():
    for seed in range(12):
        train = sample_video_spec(np.random.default_rng(seed), heldout=False)
        held = sample_video_spec(np.random.default_rng(seed), heldout=True)
        assert not any(is_heldout(o.shape, o.colour, o.motion) for o in _objects(train))
        assert all(is_heldout(o.shape, o.colour, o.motion) for o in _objects(held))
        assert held.heldout and not train.heldout


# ---------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_spec_json_and_frames():
    a = sample_video_spec(np.random.default_rng(7), config=SHORT)
    b = sample_video_spec(np.random.default_rng(7), config=SHORT)
    c = sample_video_spec(np.random.default_rng(8), config=SHORT)
    assert a == b and a != c
    assert json.dumps(ground_truth(a)) == json.dumps(ground_truth(b))
    assert VideoSpec.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    frames_a, frames_b = list(render_frames(a)), list(render_frames(b))
    assert len(frames_a) == a.num_frames
    assert all(x.shape == (224, 224, 3) and x.dtype == np.uint8 for x in frames_a)
    assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b, strict=True))


def test_generate_is_byte_identical(tmp_path):
    cfg = WorldConfig(scenes=(2, 2), scene_seconds=(1.0, 1.0))
    a = generate(tmp_path / "a", 2, seed=3, config=cfg)
    b = generate(tmp_path / "b", 2, seed=3, config=cfg)
    # Sample i does not depend on n or start: a shard reproduces the same files.
    c = generate(tmp_path / "c", 1, seed=3, config=cfg, start=1)
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
        assert pa.with_suffix(".json").read_bytes() == pb.with_suffix(".json").read_bytes()
    assert c[0].name == a[1].name and c[0].read_bytes() == a[1].read_bytes()
    assert a[0].read_bytes() != a[1].read_bytes()


# ------------------------------------------------------------------------------------------ ground truth


def test_cuts_and_scene_times_are_consistent():
    for seed in range(8):
        spec = sample_video_spec(np.random.default_rng(seed))
        gt = ground_truth(spec)
        lengths = [s.num_frames for s in spec.scenes]
        assert gt["num_frames"] == sum(lengths) == spec.num_frames
        assert gt["cut_frames"] == [int(v) - 1 for v in np.cumsum(lengths)[:-1]]
        assert gt["cut_times"] == [round((f + 1) / spec.fps, 4) for f in gt["cut_frames"]]
        assert gt["duration"] == round(spec.num_frames / spec.fps, 4)
        for k, scene in enumerate(gt["scenes"]):
            assert scene["end_frame"] - scene["start_frame"] + 1 == lengths[k]
            assert 2.0 <= scene["end_time"] - scene["start_time"] <= 6.0 + 1e-9
            assert 1 <= len(scene["objects"]) <= 3
            if k:
                assert scene["start_frame"] == gt["scenes"][k - 1]["end_frame"] + 1
            appear = [o["appear_frame"] for o in scene["objects"]]
            assert appear == sorted(set(appear)) and appear[0] == scene["start_frame"]
        assert [t["kind"] for t in gt["transitions"]] == [s.transition for s in spec.scenes[:-1]]
        assert spec.scenes[-1].transition == "end"


def test_captions_and_qa_follow_the_spec():
    spec = sample_video_spec(np.random.default_rng(11), n_scenes=4)
    gt = ground_truth(spec)
    timeline = _objects(spec)
    first = spec.scenes[0].objects[0]
    assert gt["scenes"][0]["caption"].startswith(f"a {first.size} {first.colour} {first.shape} ")
    qa = {q["question"]: q["answer"] for q in gt["qa"]}
    assert qa["what appeared first?"] == timeline[0].name
    assert qa["what appeared last?"] == timeline[-1].name
    assert qa["how many scenes are there?"] == "4"
    assert qa["how many objects are in the second scene?"] == str(len(spec.scenes[1].objects))
    for prev, nxt in itertools.pairwise(timeline):
        assert qa[f"what appeared right after the {prev.name}?"] == nxt.name
        assert qa[f"what appeared right before the {nxt.name}?"] == prev.name
    for o in timeline:
        assert qa[f"how does the {o.name} move?"] == o.motion
    assert {q["type"] for q in gt["qa"]} == {"attribute", "counting", "temporal", "first_last"}
    vocab = set(SHAPES) | set(COLOUR_NAMES) | set(MOTIONS) | {"small", "medium", "large"}
    for q in gt["qa"]:
        if q["type"] == "attribute":
            assert q["answer"] in vocab


def test_rendered_colours_match_the_spec():
    cfg = WorldConfig(scenes=(3, 3), scene_seconds=(1.0, 2.0), fade_prob=0.5)
    checked = 0
    for seed in range(4):
        spec = sample_video_spec(np.random.default_rng(seed), config=cfg)
        for k, scene in enumerate(spec.scenes):
            gain = scene_brightness(spec, k)
            i = int(np.flatnonzero(gain == 1.0)[-1])  # last full-brightness frame: every object is in
            frame = list(render_scene(spec, k))[i]
            for obj in scene.objects:
                tr = object_track(obj, spec.width, spec.height, scene.num_frames, spec.fps)
                x, y = _interior_point(obj, tr, i)
                assert tuple(frame[y, x]) == COLOURS[obj.colour], (seed, k, obj)
                checked += 1
    assert checked >= 12


def test_decoded_video_has_strong_cuts_and_true_colours(tmp_path):
    spec = sample_video_spec(np.random.default_rng(5), config=SHORT)
    path = write_video(spec, tmp_path / "v.mp4")
    frames = np.stack(list(decode_frames(path))).astype(np.float32)  # (T, H, W, 3)
    assert frames.shape == (spec.num_frames, 224, 224, 3)
    rendered = np.stack(list(render_frames(spec))).astype(np.float32)
    mse = float(((frames - rendered) ** 2).mean())
    assert 10 * np.log10(255.0**2 / mse) > 30.0  # PSNR: the file holds the rendered frames
    diffs = np.abs(frames[1:] - frames[:-1]).mean(axis=(1, 2, 3))  # (T-1,) change to the next frame
    cuts = ground_truth(spec)["cut_frames"]
    within = np.delete(diffs, cuts)
    assert diffs[cuts].min() > 20.0
    assert diffs[cuts].min() > 3 * within.max()
    palette = np.array(list(COLOURS.values()), dtype=np.float32)  # (8, 3)
    starts = spec.scene_starts
    for k, scene in enumerate(spec.scenes):
        i = scene.num_frames - 1
        for obj in scene.objects:
            tr = object_track(obj, spec.width, spec.height, scene.num_frames, spec.fps)
            x, y = _interior_point(obj, tr, i)
            pixel = frames[starts[k] + i, y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(0)
            nearest = COLOUR_NAMES[int(np.argmin(np.abs(palette - pixel).sum(1)))]
            assert nearest == obj.colour


def test_fades_darken_the_boundary():
    cfg = WorldConfig(scenes=(3, 3), fade_prob=1.0)
    spec = sample_video_spec(np.random.default_rng(2), config=cfg)
    assert [s.transition for s in spec.scenes] == ["fade", "fade", "end"]
    frames = list(render_scene(spec, 0))
    assert frames[-1].mean() < 0.5 * frames[len(frames) // 2].mean()
    assert scene_brightness(spec, 1)[0] < 1.0 and scene_brightness(spec, 2)[-1] == 1.0


def test_config_validation():
    with pytest.raises(UsageError):
        WorldConfig(width=225)
    with pytest.raises(UsageError):
        WorldConfig(objects=(1, 4))
    with pytest.raises(UsageError):
        make_needle_video(np.random.default_rng(0), depth=1.5)


# ------------------------------------------------------------------------------------------------- tasks


@pytest.mark.parametrize("depth", [0.0, 0.37, 1.0])
def test_needle_position(depth):
    spec = make_needle_video(np.random.default_rng(1), depth, haystack_seconds=24.0)
    gt = ground_truth(spec)
    needle = gt["needle"]
    hay = 24 * 8
    assert spec.num_frames == hay + 8
    assert needle["start_frame"] == round(depth * hay)
    assert needle["end_frame"] - needle["start_frame"] + 1 == 8  # one second
    assert needle["end_time"] - needle["start_time"] == pytest.approx(1.0)
    assert needle["depth"] == pytest.approx(depth, abs=0.01)
    k = needle["scene"]
    scene = spec.scenes[k]
    assert scene.tag == "needle" and needle["answer"] == scene.text
    assert needle["question"] == "what word was written on the screen?"
    # Only the needle scene is a checkerboard, and its frames show it.
    assert [s.background == NEEDLE_BACKGROUND for s in spec.scenes].count(True) == 1
    frame = next(render_scene(spec, k))
    dark = np.all(frame == NEEDLE_BACKGROUND.colours[0], axis=-1).mean()
    assert dark > 0.2
    if k:
        assert gt["transitions"][k - 1]["kind"] == "cut"


def test_object_needle_question():
    spec = make_needle_video(np.random.default_rng(4), 0.5, haystack_seconds=10.0, needle="object")
    needle = ground_truth(spec)["needle"]
    obj = spec.scenes[needle["scene"]].objects[0]
    assert needle["kind"] == "object" and needle["answer"] == obj.colour and obj.shape in needle["question"]


def test_needle_object_scene_is_the_benchmark_needle():
    # make_needle_video draws its object needle with needle_object_scene: the same draws give the same clip, so the
    # needle clips a training pool adds look exactly like the benchmark's
    spec = make_needle_video(np.random.default_rng(4), 0.0, haystack_seconds=0.5, needle="object")
    k = ground_truth(spec)["needle"]["scene"]
    rng = np.random.default_rng(4)
    clip = needle_object_scene(rng, spec.fps)
    assert clip == spec.scenes[k] and clip.background.kind == "checker" and clip.tag == "needle"
    assert scene_caption(clip) == f"a large {clip.objects[0].colour} {clip.objects[0].shape} on a checkerboard"
    assert needle_question(clip) == (f"what colour was the {clip.objects[0].shape} on the checkerboard?",
                                     clip.objects[0].colour)


def test_egoplan_json(tmp_path):
    paths = generate(tmp_path, 3, seed=0, kind="egoplan")
    records = json.loads((tmp_path / "egoplan.json").read_text())
    assert len(records) == 3
    for path, rec in zip(paths, records, strict=True):
        choices = [rec[f"choice_{c}"] for c in "abcd"]
        assert len(set(choices)) == 4
        assert rec["answer"] == rec["choice_" + rec["golden_choice_idx"].lower()]
        assert rec["video_path"] == path.name and path.is_file()
        assert rec["task_goal"] in rec["question"]
        steps = rec["task_progress_metadata"]
        goal = rec["task_goal"].split(": ", 1)[1].split(", then ")
        assert [s["narration_text"] for s in steps] == [f"place the {g}" for g in goal[: len(steps)]]
        assert rec["answer"] == f"place the {goal[len(steps)]}"
        assert steps[0]["start_frame"] == 0
        assert all(b["start_frame"] == a["stop_frame"] + 1 for a, b in itertools.pairwise(steps))
        n_frames = sum(1 for _ in decode_frames(path))
        assert rec["current_observation_frame"] == steps[-1]["stop_frame"] == n_frames - 1


def test_egoplan_options_are_all_goal_steps():
    """The text does not give the answer away: every option names a goal item, the last one placed among them."""
    for seed in range(20):
        sample = make_egoplan_sample(np.random.default_rng(seed))
        assert 4 <= len(sample.goal) <= 5 and 1 <= sample.done < len(sample.goal)
        steps = [f"place the {g}" for g in sample.goal]
        assert set(sample.choices) <= set(steps) and len(set(sample.choices)) == 4
        assert sample.choices[sample.answer_index] == steps[sample.done]
        assert steps[sample.done - 1] in sample.choices
    short = make_egoplan_sample(np.random.default_rng(0), n_steps=3)  # too few goal items: one option from outside
    assert sum(c not in [f"place the {g}" for g in short.goal] for c in short.choices) == 1


def test_egoplan_heldout_movers():
    for seed in range(5):
        held = make_egoplan_sample(np.random.default_rng(seed), heldout=True)
        train = make_egoplan_sample(np.random.default_rng(seed), heldout=False)
        movers = [o for s in held.spec.scenes for o in s.objects if o.motion == "down"]
        assert movers and all(is_heldout(o.shape, o.colour, o.motion) for o in movers)
        assert not any(is_heldout(o.shape, o.colour, o.motion) for s in train.spec.scenes for o in s.objects)


def test_visdial_json(tmp_path):
    paths = generate(tmp_path, 3, seed=1, kind="image")
    data = json.loads((tmp_path / "visdial_1.0_train.json").read_text())
    assert data["version"] == "1.0" and data["split"] == "train"
    questions, answers, dialogs = data["data"]["questions"], data["data"]["answers"], data["data"]["dialogs"]
    assert answers == list(ANSWERS) and len(answers) >= 100
    assert [d["image_id"] for d in dialogs] == [0, 1, 2]
    for path, d in zip(paths, dialogs, strict=True):
        img = cv2.imread(str(path))
        assert img.shape == (224, 224, 3)
        truth = json.loads(path.with_suffix(".json").read_text())
        objects = truth["scenes"][0]["objects"]
        assert all(f"{o['colour']} {o['shape']}" in d["caption"] for o in objects)
        assert len(d["dialog"]) == 10
        asked = [questions[r["question"]] for r in d["dialog"]]
        assert len(set(asked)) == 10 and not any(q.endswith("?") for q in asked)
        for r in d["dialog"]:
            opts = r["answer_options"]
            assert len(opts) == 100 and len(set(opts)) == 100
            assert opts[r["gt_index"]] == r["answer"]
            assert all(0 <= a < len(answers) for a in opts)
        qa = {questions[r["question"]]: answers[r["answer"]] for r in d["dialog"]}
        if "how many objects are there" in qa:
            assert qa["how many objects are there"] == str(len(objects))
        for o in objects:
            if f"what colour is the {o['shape']}" in qa:
                assert qa[f"what colour is the {o['shape']}"] == o["colour"]
    # Dense annotations: one round per image, relevance 1 exactly at the true answer, 0.5 for options sharing a word.
    dense = json.loads((tmp_path / "visdial_1.0_train_dense_annotations.json").read_text())
    assert [(e["image_id"], e["round_id"]) for e in dense] == [(0, 1), (1, 2), (2, 3)]
    for e, d in zip(dense, dialogs, strict=True):
        r = d["dialog"][e["round_id"] - 1]
        rel = e["gt_relevance"]
        assert len(rel) == 100 and rel[r["gt_index"]] == 1.0 and rel.count(1.0) == 1
        truth_words = set(answers[r["answer"]].split())
        assert all((x == 0.5) == (i != r["gt_index"] and bool(set(answers[o].split()) & truth_words))
                   for i, (o, x) in enumerate(zip(r["answer_options"], rel)))


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_generate_and_vocab(tmp_path, capsys):
    out = tmp_path / "held"
    rc = main(["world", "generate", "--out", str(out), "--n", "2", "--seed", "4", "--heldout", "--size", "128x96",
               "--fps", "6", "--scenes", "2", "2", "--scene-seconds", "1", "1"])
    assert rc == 0
    truth = json.loads((out / "video_000001.json").read_text())
    assert truth["heldout"] and truth["width"] == 128 and truth["height"] == 96 and truth["fps"] == 6.0
    assert len(truth["scenes"]) == 2 and truth["num_frames"] == 12
    assert all(is_heldout(o["shape"], o["colour"], o["motion"]) for s in truth["scenes"] for o in s["objects"])
    assert next(decode_frames(out / "video_000001.mp4")).shape == (96, 128, 3)
    capsys.readouterr()
    assert main(["world", "vocab"]) == 0
    vocab = json.loads(capsys.readouterr().out)
    assert vocab["shapes"] == list(SHAPES) and [tuple(c) for c in vocab["heldout"]] == heldout_combos()
    assert main(["world", "generate", "--out", str(out), "--size", "225"]) == 2
    assert "even" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- shipped samples


def test_shipped_samples_regenerate_exactly(tmp_path):
    """data/samples/world is what `videollm world samples` writes: same JSON, same pictures, same frames."""
    write_samples(tmp_path)
    shipped = sorted(p.relative_to(SAMPLES) for p in SAMPLES.rglob("*") if p.is_file() and p.suffix != ".md")
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert shipped == fresh
    size = 0
    for rel in shipped:
        a, b = SAMPLES / rel, tmp_path / rel
        size += a.stat().st_size
        if rel.suffix == ".json":
            assert a.read_bytes() == b.read_bytes(), rel
        elif rel.suffix == ".png":
            # Other CPUs' SIMD maths may round an edge pixel the other way: allow 1 level, nothing more.
            assert np.abs(cv2.imread(str(a)).astype(int) - cv2.imread(str(b))).max() <= 1, rel
        else:
            # Encoder versions may change the bytes; the shipped frames must still be the spec's frames.
            spec = VideoSpec.from_dict(json.loads(a.with_suffix(".json").read_text())["spec"])
            got = np.stack(list(decode_frames(a))).astype(np.float32)
            want = np.stack(list(render_frames(spec))).astype(np.float32)
            assert got.shape == want.shape
            assert 10 * np.log10(255.0**2 / ((got - want) ** 2).mean()) > 30.0, rel
    assert size < 2_000_000
