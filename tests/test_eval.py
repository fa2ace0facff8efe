"""Evaluation metrics on hand-made cases with known answers, and the runners' plumbing on the ``tiny`` preset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from videollm import captioning
from videollm.eval import (
    answer_correct,
    mean_by,
    normalize_answer,
    overlap_assign,
    parse_caption,
    runner,
    score_caption,
    suite,
)
from videollm.train import VideoFeatures

RED_CIRCLE = {"shape": "circle", "colour": "red", "size": "large", "motion": "left"}
BLUE_STAR = {"shape": "star", "colour": "blue", "size": "small", "motion": "spin"}


def test_parse_caption_reads_the_world_grammar() -> None:
    assert parse_caption("a large red circle moves left; a small blue star spins") == [RED_CIRCLE, BLUE_STAR]
    assert parse_caption("A medium white ring stays still.") == [
        {"shape": "ring", "colour": "white", "size": "medium", "motion": "static"}]
    assert parse_caption("a green hexagon grows and a cyan cross bounces") == [
        {"shape": "hexagon", "colour": "green", "size": None, "motion": "grow"},
        {"shape": "cross", "colour": "cyan", "size": None, "motion": "bounce"}]
    assert parse_caption("something moves up") == []


def test_score_caption_known_answers() -> None:
    truth = [RED_CIRCLE, BLUE_STAR]
    perfect = score_caption("a small blue star spins; a large red circle moves left", truth)
    assert perfect == {"shape": 1.0, "colour": 1.0, "size": 1.0, "motion": 1.0, "objects": 1.0, "count": 1.0,
                       "exact": 1.0}
    wrong_colour = score_caption("a large green circle moves left; a small blue star spins", truth)
    assert wrong_colour["colour"] == 0.5 and wrong_colour["shape"] == 1.0 and wrong_colour["exact"] == 0.0
    missing = score_caption("a large red circle moves left", truth)
    assert missing["shape"] == 0.5 and missing["objects"] == 0.5 and missing["count"] == 0.0
    extra = score_caption("a large red circle moves left; a small blue star spins; a tiny red square", truth)
    assert extra["shape"] == 1.0 and extra["count"] == 0.0 and extra["exact"] == 0.0
    # One predicted object can only be credited once.
    twice = score_caption("a large red circle moves left", [RED_CIRCLE, dict(RED_CIRCLE, size="small")])
    assert twice["shape"] == 0.5 and twice["size"] == 0.5
    assert score_caption("", truth)["shape"] == 0.0


def test_answers_normalise_to_canonical_words() -> None:
    assert normalize_answer("Two.") == "2" and normalize_answer("3 scenes") == "3"
    assert normalize_answer("The blue star.") == "blue star"
    assert answer_correct("red", "red") and answer_correct("It is red.", "red")
    assert not answer_correct("orange", "red") and not answer_correct("", "red")
    assert answer_correct("it spins", "spin") and answer_correct("stays still", "static")
    assert answer_correct("the blue star", "blue star") and not answer_correct("blue circle", "blue star")
    assert not answer_correct("blue star and red circle and green cross", "blue star")
    assert answer_correct("two", "2") and not answer_correct("3", "2")


def test_mean_by_and_overlap_assign() -> None:
    records = [{"type": "a", "correct": 1.0}, {"type": "a", "correct": 0.0}, {"type": "b", "correct": 1.0}]
    assert mean_by(records, "type", "correct") == {"a": 0.5, "b": 1.0, "all": pytest.approx(2 / 3)}
    truth = [(0.0, 4.0), (4.0, 9.0), (9.0, 12.0)]
    assert overlap_assign([(0.0, 3.5), (3.5, 9.5), (9.5, 12.0)], truth) == [0, 1, 2]
    assert overlap_assign([(0.0, 12.0)], truth) == [1]


def test_select_questions_per_type() -> None:
    truth = {"qa": [{"type": "attribute", "question": f"q{i}", "answer": "red"} for i in range(7)]
             + [{"type": "counting", "question": "how many scenes are there?", "answer": "2"}]}
    picked = runner.select_questions(truth, 3)
    assert [q["question"] for q in picked] == ["q0", "q3", "q6", "how many scenes are there?"]


def test_splice_inserts_needle_frames_at_the_cut() -> None:
    hay = VideoFeatures(torch.zeros(6, 2), torch.zeros(6, 1, 2), torch.arange(6, dtype=torch.float64) * 0.5)
    needle = VideoFeatures(torch.ones(4, 2), torch.ones(4, 1, 2), torch.arange(4, dtype=torch.float64) * 0.5)
    out = runner._splice(hay, needle, torch.tensor([False, True, True, False]), at=3)
    assert out.cls[:, 0].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    assert out.times.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]


@pytest.fixture(scope="module")
def tiny():
    from videollm.model import VideoLLM

    torch.manual_seed(0)
    return VideoLLM.from_pretrained("tiny").eval()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evalwork")


def test_runners_score_known_answers(tiny, work: Path, monkeypatch) -> None:
    cases = runner.make_cases(tiny, work, "v", 1, seed=3, scenes=2)
    assert cases[0].truth["heldout"] and cases[0].path.suffix == ".mp4"
    truth = cases[0].truth
    # An oracle that answers from the ground truth must score 1.0; one that always says "purple" scores exactly
    # the share of questions whose answer is "purple".
    answers = {qa["question"]: qa["answer"] for qa in truth["qa"]}
    monkeypatch.setattr(runner, "ask_video", lambda model, watched, q, n=8: (answers[q], 0))
    records = runner.qa_records(tiny, cases, per_type=2)
    assert records and all(r["correct"] == 1.0 for r in records)
    monkeypatch.setattr(runner, "ask_video", lambda model, watched, q, n=8: ("purple", 0))
    records = runner.qa_records(tiny, cases, per_type=2)
    assert sum(r["correct"] for r in records) == sum(r["answer"] == "purple" for r in records)


def test_caption_eval_with_oracle_captions(tiny, work: Path, monkeypatch) -> None:
    cases = runner.make_cases(tiny, work, "v", 1, seed=3, scenes=2)
    scenes = cases[0].truth["scenes"]
    watched = runner.watch(tiny, cases[0].video)
    assigned = overlap_assign(watched.spans, [(s["start_time"], s["end_time"]) for s in scenes])
    captions = iter(scenes[k]["caption"] for k in assigned)
    monkeypatch.setattr(captioning, "generate_captions",
                        lambda model, visuals, prompt, n: [next(captions) for _ in visuals])
    summary = runner.summarize_captions(runner.caption_records(tiny, cases))
    assert summary["attributes"] == 1.0 and summary["exact"] == 1.0 and summary["scenes"] == len(watched.spans)


def test_ablation_switches_restore(tiny) -> None:
    before = (tiny.bridge.config, tiny.config.segmentation, tiny.bridge.retriever)
    with runner.ablated(tiny, "no_retrieval"):
        assert tiny.bridge.retriever is None
    with runner.ablated(tiny, "no_recall"):
        assert tiny.config.recall is False
    assert tiny.config.recall is True
    with runner.ablated(tiny, "no_recall_captions"):
        assert tiny.config.recall_captions is False and tiny.config.recall is True
    assert tiny.config.recall_captions is True
    with runner.ablated(tiny, "uniform_segments"):
        assert tiny.config.segmentation.mode == "uniform"
    with runner.ablated(tiny, "readout=memory"):
        assert tiny.num_visual_tokens([3]) == tiny.config.bridge.memory_tokens
    assert (tiny.bridge.config, tiny.config.segmentation, tiny.bridge.retriever) == before
    with pytest.raises(ValueError), runner.ablated(tiny, "no_such_switch"):
        pass


def test_wilson_interval_by_hand() -> None:
    # 60 of 240: p = 0.25; centre (p + z^2/2n) / (1 + z^2/n), half z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n).
    z, n, p = 1.959964, 240, 0.25
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (
        1 + z * z / n)
    assert runner.wilson_interval(60, 240) == pytest.approx((centre - half, centre + half))
    assert runner.wilson_interval(60, 240) == pytest.approx((0.1994, 0.3084), abs=1e-4)
    lo, hi = runner.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)  # never below 0, unlike the normal interval
    assert all(math.isnan(x) for x in runner.wilson_interval(0, 0))


def test_egoplan_and_niavh_write_json_and_png(tiny, work: Path, tmp_path: Path) -> None:
    ego = suite.run_egoplan(tiny, tmp_path, work, n=2)
    assert ego["items"] == 2 and 0.0 <= ego["accuracy"] <= 1.0
    assert all(len(r["scores"]) == 4 and r["predicted"] in "ABCD" for r in ego["records"])
    lo, hi = ego["ci95"]
    assert lo <= ego["accuracy"] <= hi and 0.0 <= ego["no_video_accuracy"] <= 1.0
    niavh = suite.run_niavh(tiny, tmp_path, work, multipliers=(1,), depths=(0.0, 1.0), needles=1)
    assert len(niavh["accuracy"]) == 1 and len(niavh["accuracy"][0]) == 2
    saved = json.loads((tmp_path / "niavh.json").read_text())
    assert saved["depths"] == [0.0, 1.0] and (tmp_path / "niavh.png").stat().st_size > 1000
    assert (tmp_path / "egoplan.png").is_file()


def test_text_needles_are_read_wherever_they_are(tiny, work: Path, tmp_path: Path) -> None:
    """A written word spliced at the start and the end of a haystack is answered with the word RapidOCR reads in the
    needle's scene (the haystack has no writing), whatever the LM: the tiny one here."""
    from videollm import ocr

    if not ocr.available():
        pytest.skip("RapidOCR is not installed")
    niavh = suite.run_niavh(tiny, tmp_path, work, multipliers=(1,), depths=(0.0, 1.0), needles=1, needle="text")
    assert niavh["needle"] == "text" and niavh["accuracy"] == [[1.0, 1.0]]
    assert all(r["question"] == "what word was written on the screen?" for r in niavh["records"])
    assert (tmp_path / "niavh-text.json").is_file() and (tmp_path / "niavh-text.png").is_file()


@pytest.mark.slow
def test_eval_captions_are_the_caption_commands(work: Path, capsys) -> None:
    """The evaluation scores exactly what ``videollm caption`` prints for the same video and the shipped model: same
    scenes, spans and captions (the captions are real ones, so a difference in prompt or token bound shows)."""
    from videollm.cli import main
    from videollm.model import VideoLLM

    shipped = VideoLLM.from_pretrained("default").eval()
    cases = runner.make_cases(shipped, work, "shipped", 1, seed=3, scenes=3)
    records = runner.caption_records(shipped, cases)
    assert main(["caption", str(cases[0].path)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    scenes = [r for r in printed if "caption" in r]
    assert len(scenes) == len(records) >= 2
    for got, rec in zip(scenes, records, strict=True):
        assert got["caption"] == rec["caption"] and len(got["caption"].split()) >= 3
        assert [got["start"], got["end"]] == pytest.approx(rec["span"], abs=1e-3)


@pytest.mark.slow
def test_batched_scene_captions_equal_one_at_a_time() -> None:
    """``caption_video`` captions ``batch`` scenes together: with the shipped model the captions, spans and the
    captions recorded in the memory are those of one caption per scene."""
    from videollm.captioning import caption_video
    from videollm.model import VideoLLM

    shipped = VideoLLM.from_pretrained("default").eval()
    samples = sorted((Path(__file__).resolve().parents[1] / "data/samples/world/video").glob("*.mp4"))
    for video in samples:
        alone = caption_video(shipped, video, batch=1)
        together = caption_video(shipped, video, batch=8)
        one, many = alone.run(), together.run()
        assert len(one) >= 3
        assert [(s.index, s.start, s.end, s.caption) for s in many] == [(s.index, s.start, s.end, s.caption)
                                                                        for s in one]
        assert together.state.extra["captions"] == alone.state.extra["captions"]
        assert all(s.latency > 0 for s in many)
