"""The lmms-eval plugin: its registration, the local tasks' scoring on hand-made results, and ``python -m lmms_eval
--model videollm`` end to end on the four local tasks, item by item equal to the product's own path."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from videollm.errors import UsageError
from videollm.eval import lmms_tasks

pytest.importorskip("lmms_eval", reason="lmms-eval is not installed (make install-test installs it)")


def test_entry_point_registers_the_model() -> None:
    from lmms_eval.models import get_model

    from videollm.eval.lmms_model import VideoLLMEval

    assert get_model("videollm") is VideoLLMEval
    assert VideoLLMEval.is_simple


def test_unknown_model_args_are_a_usage_error() -> None:
    from videollm.eval.lmms_model import VideoLLMEval

    with pytest.raises(UsageError, match="unknown modle"):
        VideoLLMEval(modle="embedded")
    with pytest.raises(UsageError, match="max_new_tokens"):
        VideoLLMEval(max_new_tokens=0)


def test_qa_results_by_type() -> None:
    doc = {"type": "counting", "answer": "3"}
    assert lmms_tasks.qa_process_results(doc, ["3"]) == {
        "accuracy": 1.0, "attribute": None, "counting": 1.0, "temporal": None, "first_last": None}
    assert lmms_tasks.qa_process_results(doc, ["two"])["counting"] == 0.0
    assert lmms_tasks.mean_present([1.0, None, 0.0, None, 0.5]) == 0.5
    assert math.isnan(lmms_tasks.mean_present([None, None]))


def test_multiple_choice_results_as_pairs_or_their_strings() -> None:
    # lmms-eval 0.7.3 hands over str() of each (loss, is_greedy) pair; both forms read the same.
    pairs = [(2.5, False), (0.75, True), (1.0, False)]
    assert lmms_tasks.option_losses(pairs) == [2.5, 0.75, 1.0]
    assert lmms_tasks.option_losses([str(p) for p in pairs]) == [2.5, 0.75, 1.0]
    assert lmms_tasks.egoplan_process_results({"answer": 1}, [str(p) for p in pairs]) == {"acc": 1.0}
    assert lmms_tasks.egoplan_process_results({"answer": 0}, pairs) == {"acc": 0.0}


def test_visdial_results_by_hand() -> None:
    # Losses 3, 1, 2, 4: the order is options 1, 2, 0, 3; the true answer (option 0) ranks 3rd.
    results = [(3.0, False), (1.0, True), (2.0, False), (4.0, False)]
    doc = {"gt_index": 0, "relevance": [1.0, 0.0, 0.5, 0.0]}
    got = lmms_tasks.visdial_process_results(doc, results)
    assert (got["mrr"], got["r@1"], got["r@5"], got["mean_rank"]) == (pytest.approx(1 / 3), 0.0, 1.0, 3.0)
    # k = 2 relevant options; the model's top two are options 1 (0.0) and 2 (0.5): DCG 0.5 / log2(3).
    assert got["ndcg"] == pytest.approx((0.5 / math.log2(3)) / (1.0 + 0.5 / math.log2(3)))
    assert lmms_tasks.visdial_process_results({"gt_index": 1, "relevance": None}, results)["ndcg"] is None


@pytest.mark.slow
def test_lmms_eval_runs_the_local_tasks_like_videollm_eval(tmp_path: Path) -> None:
    """``python -m lmms_eval --model videollm`` on the four local tasks (--limit 8, offline, the shipped model):
    each answer, option loss and rank equals what ``videollm eval``'s functions (and ``videollm ask`` for the
    needle) give on the same items."""
    from videollm.eval import suite
    from videollm.eval.runner import TRAIN_SCENES, egoplan_records, feature_cache, make_cases, qa_records
    from videollm.eval.visdial import run_visdial
    from videollm.assets import resolve_model
    from videollm.model import VideoLLM

    tasks, work, out = tmp_path / "tasks", tmp_path / "work", tmp_path / "out"
    yamls = lmms_tasks.write_tasks(tasks, work, videos=1, egoplan_items=2, visdial_images=1, needles=1,
                                   haystack_seconds=16.0)
    assert sorted(p.stem for p in yamls) == sorted(lmms_tasks.TASKS)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run(
        [sys.executable, "-m", "lmms_eval", "--model", "videollm", "--model_args", "model=default",
         "--include_path", str(tasks), "--tasks", ",".join(lmms_tasks.TASKS), "--limit", "8",
         "--output_path", str(out), "--log_samples"],
        capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results_file,) = out.rglob("*_results.json")
    results = json.loads(results_file.read_text())["results"]
    samples = {task: [json.loads(line) for line in next(out.rglob(f"*_samples_{task}.jsonl")).read_text().splitlines()]
               for task in lmms_tasks.TASKS}

    model = VideoLLM.from_pretrained(resolve_model("default")).eval()
    seed = suite.EVAL_SEED
    # Video QA: the same 8 questions answered identically.
    qa = qa_records(model, make_cases(model, work, f"videos-x1-s{seed}", 1, seed, TRAIN_SCENES))[:8]
    got = sorted(samples["videollm_qa"], key=lambda s: s["doc_id"])
    assert [s["filtered_resps"] for s in got] == [r["predicted"] for r in qa]
    assert results["videollm_qa"]["accuracy,none"] == pytest.approx(sum(r["correct"] for r in qa) / len(qa))
    # EgoPlan: each option's loss is minus bench egoplan's mean log-likelihood; the accuracy of those scores alone
    # (lmms-eval decides multiple choice by the losses; the app's progress tracking is not part of it).
    ego = egoplan_records(model, suite.egoplan_file(work, 2, seed), feature_cache(model, work))
    got = sorted(samples["videollm_egoplan"], key=lambda s: s["doc_id"])
    for sample, record in zip(got, ego, strict=True):
        losses = lmms_tasks.option_losses(sample["filtered_resps"])
        assert losses == pytest.approx([-s for s in record["scores"]], abs=1e-4)
        assert sample["acc"] == record["lm_only_correct"]
    assert results["videollm_egoplan"]["acc,none"] == pytest.approx(sum(r["lm_only_correct"] for r in ego) / len(ego))
    # VisDial: the first 8 rounds of the image rank the true answer where bench visdial ranks it.
    ref = run_visdial(model, suite.visdial_file(work, 1, seed), limit=1)["records"][:8]
    got = sorted(samples["videollm_visdial"], key=lambda s: s["doc_id"])
    assert [round(1 / s["mrr"]) for s in got] == [r["gt_rank"] for r in ref]
    assert results["videollm_visdial"]["mean_rank,none"] == pytest.approx(sum(r["gt_rank"] for r in ref) / len(ref))
    # Needle: the answer videollm ask gives (the video watched from its file, recall, 8 tokens).
    from videollm.captioning import ask, open_memory

    (doc,) = [json.loads(line) for line in (tasks / "data" / "videollm_needle.jsonl").read_text().splitlines()]
    (sample,) = samples["videollm_needle"]
    answer = "".join(ask(model, open_memory(model, doc["video"]), doc["question"], max_new_tokens=8)).strip()
    assert sample["filtered_resps"] == answer and sample["target"] == doc["answer"]
