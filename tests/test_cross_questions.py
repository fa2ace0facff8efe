"""Cross-scene questions (issue #28): their ground truth on a hand-checked video, their balance, and `videollm eval
cross` end to end on the ``tiny`` preset."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from videollm.eval import runner, suite
from videollm.world import WorldConfig, ground_truth, sample_video_spec, scene_caption
from videollm.world.truth import CROSS_SCENE_TYPES, cross_scene_qa


def _spec(seed: int, scenes: int):
    return sample_video_spec(np.random.default_rng(seed), heldout=True, n_scenes=scenes, config=WorldConfig(fps=8.0))


def test_cross_scene_truth_on_a_hand_checked_video() -> None:
    spec = _spec(0, 4)
    assert [scene_caption(s) for s in spec.scenes] == [
        "a large blue ring bounces; a medium red diamond bounces",
        "a small white star bounces",
        "a small cyan hexagon bounces; a large orange ring grows",
        "a large red circle moves left; a medium cyan cross spins",
    ]
    qa = cross_scene_qa(spec)
    answers = {q["question"]: q["answer"] for q in qa}
    assert len(answers) == len(qa)  # no question asked twice
    # Order: each pair both ways round.
    assert answers["did the blue ring appear before the cyan hexagon?"] == "yes"
    assert answers["did the cyan hexagon appear before the blue ring?"] == "no"
    assert answers["did the orange ring appear before the red diamond?"] == "no"
    assert answers["did the white star appear before the red circle?"] == "yes"
    assert answers["did the cyan cross appear before the cyan hexagon?"] == "no"
    # Scenes showing a shape / colour: rings in scenes 1 and 3, red in 1 and 4, cyan in 3 and 4; no square.
    assert answers["how many scenes showed a ring?"] == "2"
    assert answers["how many scenes showed something red?"] == "2"
    assert answers["how many scenes showed something cyan?"] == "2"
    assert answers["how many scenes showed a star?"] == "1"
    assert answers["how many scenes showed a square?"] == "0"
    assert "how many scenes showed a triangle?" not in answers  # one absent shape only
    # The ring is blue in scene 1, orange in scene 3.
    assert answers["what colour was the ring the second time it appeared?"] == "orange"
    assert not any("third time" in q for q in answers)
    # The next scene's first object (the others enter later).
    assert answers["what moved right after the blue ring left?"] == "white star"
    assert answers["what moved right after the red diamond left?"] == "white star"
    assert answers["what moved right after the white star left?"] == "cyan hexagon"
    assert answers["what moved right after the orange ring left?"] == "red circle"
    assert not any("cyan cross left" in q or "red circle left" in q for q in answers)  # the last scene has no next
    assert Counter(q["type"] for q in qa) == {"order": 8, "scene_count": 12, "state_change": 1, "after_exit": 5}


def test_cross_scene_questions_are_deterministic_balanced_and_span_scenes() -> None:
    counts: Counter[str] = Counter()
    for seed in range(6):
        spec = _spec(100 + seed, 16)
        qa = cross_scene_qa(spec)
        assert qa == cross_scene_qa(_spec(100 + seed, 16))
        assert {q["type"] for q in qa} == set(CROSS_SCENE_TYPES)
        order = [q["answer"] for q in qa if q["type"] == "order"]
        assert order.count("yes") == order.count("no") > 0
        for q in qa:
            if q["type"] in ("order", "after_exit"):
                assert len(set(q["scenes"])) == 2  # two different scenes
            if q["type"] == "state_change":
                assert len(q["scenes"]) >= 2 and q["scene"] == q["scenes"][-1]
            if q["type"] == "scene_count":
                counts[q["answer"]] += 1
                assert int(q["answer"]) == len(q["scenes"])
    assert len(counts) >= 4 and counts["1"] < sum(counts.values()) / 2  # counts are not mostly 1


def test_cross_questions_read_from_a_truth_file() -> None:
    spec = _spec(0, 4)
    truth = json.loads(json.dumps(ground_truth(spec)))
    assert runner.cross_questions(truth) == cross_scene_qa(spec)
    assert "cross_qa" not in truth and {q["type"] for q in truth["qa"]} == {"attribute", "counting", "temporal",
                                                                            "first_last"}


@pytest.fixture(scope="module")
def tiny():
    import torch

    from videollm.model import VideoLLM

    torch.manual_seed(0)
    return VideoLLM.from_pretrained("tiny").eval()


def test_run_cross_scores_an_oracle_and_writes_the_table(tiny, tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "work"
    cases = runner.make_cases(tiny, work, "videos-x2-s1000", 1, 1000, 2 * runner.TRAIN_SCENES)
    answers = {q["question"]: q["answer"] for q in runner.cross_questions(cases[0].truth)}
    monkeypatch.setattr(runner, "ask_video", lambda model, watched, q, n=8: (answers[q], 0))
    payload = suite.run_cross(tiny, tmp_path, work, multipliers=(2,), videos=(1,),
                              variants=("full", "no_memory"), per_type=2)
    assert payload["accuracy"]["full"]["2x"]["all"] == 1.0 == payload["accuracy"]["no_memory"]["2x"]["all"]
    assert set(payload["questions"]["2x"]) - {"all"} <= set(CROSS_SCENE_TYPES)
    assert payload["questions"]["2x"]["all"] == len(payload["records"]["full"]["2x"])
    table = (tmp_path / "cross.md").read_text()
    assert "| 2x | order | 2 | 1.00 | 1.00 |" in table and "| 2x | all |" in table
    assert (tmp_path / "cross.png").is_file()


def test_eval_cross_command_end_to_end(tmp_path: Path, capsys) -> None:
    from videollm.cli import main

    out = tmp_path / "out"
    assert main(["eval", "cross", "--model", "tiny", "--out", str(out), "--lengths", "1", "--videos", "1",
                 "--variants", "full,no_recall", "--per-type", "1"]) == 0
    saved = json.loads((out / "cross.json").read_text())
    assert saved["variants"] == ["full", "no_recall"] and saved["multipliers"] == [1] and saved["videos"] == [1]
    assert saved["questions"]["1x"]["all"] == len(saved["records"]["no_recall"]["1x"]) > 0
    assert "| 1x | all |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["eval", "cross", "--model", "tiny", "--out", str(out), "--lengths", "1,x"])
    assert main(["eval", "cross", "--model", "tiny", "--out", str(out), "--variants", "full,no_such"]) == 2
    assert main(["eval", "cross", "--model", "tiny", "--out", str(out), "--lengths", "1,8",
                 "--length-videos", "2"]) == 2
