"""Visual Dialog ranking: the metrics on hand-made cases with known answers, the file readers, the world's dense
annotations, and ``videollm bench visdial`` end to end on the shipped sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from videollm.errors import UsageError
from videollm.eval.visdial import find_images, gt_rank, load_visdial, ndcg, ranking, summarize
from videollm.world.tasks import option_relevance, visdial_dense

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "samples" / "world" / "image" / "visdial_1.0_train.json"


def test_rank_of_the_true_answer() -> None:
    assert gt_rank([0.1, 0.9, 0.5], 0) == 3
    assert gt_rank([0.1, 0.9, 0.5], 1) == 1
    assert gt_rank([0.1, 0.9, 0.5], 2) == 2
    assert gt_rank([1.0, 1.0, 1.0], 2) == 3  # equal scores: option order
    assert ranking([-3.0, -1.0, -2.0]).tolist() == [1, 2, 0]


def test_summary_metrics_by_hand() -> None:
    got = summarize([1, 2, 10, 11], [1.0, math.nan, 0.5])
    assert got["rounds"] == 4
    assert got["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 10 + 1 / 11) / 4)
    assert (got["r@1"], got["r@5"], got["r@10"]) == (0.25, 0.5, 0.75)
    assert got["mean_rank"] == 6.0
    assert got["ndcg"] == 0.75 and got["ndcg_rounds"] == 2  # rounds without relevant options do not count


def test_ndcg_by_hand() -> None:
    relevance = [0.0, 1.0, 0.5, 0.0]  # k = 2 relevant options
    assert ndcg([0.0, 0.9, 0.5, 0.1], relevance) == pytest.approx(1.0)  # the ideal order
    # Order 2, 1, 0, 3: DCG = 0.5 / log2(2) + 1 / log2(3); ideal = 1 / log2(2) + 0.5 / log2(3).
    assert ndcg([0.0, 0.1, 0.9, 0.0], relevance) == pytest.approx((0.5 + 1 / math.log2(3)) / (1 + 0.5 / math.log2(3)))
    assert ndcg([0.9, 0.0, 0.0, 0.8], relevance) == 0.0  # no relevant option in the top k = 2
    assert math.isnan(ndcg([0.1, 0.2], [0.0, 0.0]))


def test_world_dense_relevance() -> None:
    assert option_relevance("red star", "red star") == 1.0
    assert option_relevance("red star", "red") == 0.5
    assert option_relevance("top left", "left") == 0.5
    assert option_relevance("yes", "no") == 0.0
    dialogs = [{"image_id": 13, "dialog": [{"answer": "red", "answer_options": ["blue", "red", "red star"]}] * 10}]
    (dense,) = visdial_dense(dialogs)
    assert dense == {"image_id": 13, "round_id": 4, "gt_relevance": [0.0, 1.0, 0.5]}


def test_load_visdial_and_dense(tmp_path: Path) -> None:
    dialogs = load_visdial(SAMPLE, SAMPLE.with_name("visdial_1.0_train_dense_annotations.json"))
    assert len(dialogs) == 3 and all(len(d.rounds) == 10 for d in dialogs)
    r = dialogs[0].rounds[0]
    assert len(r.options) == 100 and r.options[r.gt_index] == r.answer
    annotated = [(d.image_id, k) for d in dialogs for k, x in enumerate(d.rounds) if x.relevance is not None]
    assert annotated == [(0, 0), (1, 1), (2, 2)]
    assert sorted(find_images(SAMPLE.parent)) == [0, 1, 2]

    data = json.loads(SAMPLE.read_text())
    data["data"]["dialogs"][0]["dialog"][0]["gt_index"] = 100
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="gt_index 100 outside"):
        load_visdial(bad)
    bad.write_text('{"version": "1.0"}')
    with pytest.raises(UsageError, match="not a VisDial v1.0 file"):
        load_visdial(bad)
    dense = tmp_path / "dense.json"
    dense.write_text(json.dumps([{"image_id": 0, "round_id": 1, "gt_relevance": [1.0] * 99}]))
    with pytest.raises(UsageError, match="one relevance per answer option"):
        load_visdial(SAMPLE, dense)


@pytest.mark.slow
def test_bench_visdial_on_the_shipped_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command ranks 100 options a round (the sample's first image, its first 3 rounds, to keep the suite short:
    4 s a round on 2 cores); each recorded rank is what the model's own scores give, NDCG comes from the dense file
    found beside the JSON, and the shipped model ranks the true answers well above chance (MRR ~0.05)."""
    from videollm.cli import main
    from videollm.eval.visdial import score_dialog
    from videollm.memory import build_memory
    from videollm.model import VideoLLM

    data = json.loads(SAMPLE.read_text())
    data["data"]["dialogs"] = [dict(data["data"]["dialogs"][0], dialog=data["data"]["dialogs"][0]["dialog"][:3])]
    short = tmp_path / "visdial_1.0_short.json"
    short.write_text(json.dumps(data))
    dense = json.loads(SAMPLE.with_name("visdial_1.0_train_dense_annotations.json").read_text())[:1]  # round 1
    short.with_name("visdial_1.0_short_dense_annotations.json").write_text(json.dumps(dense))
    out = tmp_path / "out"
    assert main(["bench", "visdial", str(short), "--images", str(SAMPLE.parent), "--out", str(out)]) == 0
    assert "visdial: {" in capsys.readouterr().err
    payload = json.loads((out / "visdial.json").read_text())
    assert payload["images"] == 1 and payload["rounds"] == 3 and payload["ndcg_rounds"] == 1
    assert (out / "visdial.png").is_file()
    assert payload["mrr"] > 0.2 and 0.0 <= payload["ndcg"] <= 1.0

    model = VideoLLM.from_pretrained("default")
    (dialog,) = load_visdial(short)
    visual = model.project_state(build_memory(model, SAMPLE.parent / "image_000000.png"))
    scores = score_dialog(model, visual, dialog)
    assert [r["gt_rank"] for r in payload["records"]] == [gt_rank(s, r.gt_index)
                                                         for s, r in zip(scores, dialog.rounds, strict=True)]


def test_bench_visdial_bad_file_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from videollm.cli import main

    bad = tmp_path / "v.json"
    bad.write_text("[1, 2")
    assert main(["bench", "visdial", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable VisDial JSON file" in err[0]
