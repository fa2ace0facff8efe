"""Local lmms-eval tasks over the synthetic world's held-out items, for offline runs of the lmms-eval plugin.

``videollm eval lmms-tasks --out DIR`` writes, for the same items ``videollm eval`` scores (same seeds, sizes and
question selection), one JSONL file of documents and one task YAML per task:

- ``videollm_qa``: video QA (attribute, counting, temporal, first/last questions) on held-out videos of training
  length, greedy answers of at most 8 tokens, scored by ``videollm.eval.metrics.answer_correct`` (``videollm eval
  qa``);
- ``videollm_egoplan``: EgoPlan-format next-step multiple choice, the option of least loss (= highest mean
  log-likelihood: ``bench egoplan``'s ``lm_only_accuracy``; the progress tracking of ``videollm.planning`` is not
  part of lmms-eval's multiple-choice interface);
- ``videollm_needle``: needle in a video haystack as real files (a 1 s object needle at a random depth of a
  held-out 60 s haystack), the needle question answered as ``videollm ask`` answers it, scored by
  ``answer_correct``; ``videollm bench niavh`` splices features instead, so these items are not its items;
- ``videollm_visdial``: Visual Dialog rounds, the 100 options ranked by the model; MRR, R@k, mean rank and NDCG as
  ``videollm bench visdial`` computes them (``videollm.eval.visdial``).

Run them with ``python -m lmms_eval --model videollm --include_path DIR --tasks videollm_qa,...``. The YAML files
name their data by absolute path, so DIR works from any working directory; the functions they name live here.
"""

from __future__ import annotations

import ast
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

QA_TYPES = ("attribute", "counting", "temporal", "first_last")
TASKS = ("videollm_qa", "videollm_egoplan", "videollm_visdial", "videollm_needle")
VISDIAL_METRICS = ("mrr", "r@1", "r@5", "r@10", "mean_rank", "ndcg")


# ------------------------------------------------------------------------------------------ functions the YAML names


def doc_to_video(doc: dict) -> list[str]:
    return [doc["video"]]


def doc_to_image(doc: dict) -> list[str]:
    return [doc["image"]]


def qa_process_results(doc: dict, results: Sequence[str]) -> dict[str, Any]:
    """Overall accuracy, and accuracy of the doc's question type (None under the other types' metrics)."""
    from videollm.eval.metrics import answer_correct

    correct = float(answer_correct(results[0], doc["answer"]))
    return {"accuracy": correct, **{t: (correct if doc["type"] == t else None) for t in QA_TYPES}}


def option_losses(results: Sequence[Any]) -> list[float]:
    """Each option's loss from a multiple-choice doc's results: ``(loss, is_greedy)`` pairs, or their ``str()``,
    which is what lmms-eval 0.7.3's evaluator hands over (it turns every non-string model output into a string, so
    its built-in multiple-choice scoring fails for every model; these tasks score their own)."""
    losses = []
    for result in results:
        pair = ast.literal_eval(result) if isinstance(result, str) else result
        losses.append(float(pair[0]))
    return losses


def egoplan_process_results(doc: dict, results: Sequence[Any]) -> dict[str, float]:
    """Accuracy: the option of least loss (highest mean log-likelihood) is the golden one."""
    return {"acc": float(int(np.argmin(option_losses(results))) == int(doc["answer"]))}


def visdial_process_results(doc: dict, results: Sequence[Any]) -> dict[str, Any]:
    """The true answer's rank among the options (the plugin returns each option's loss: lower is better), and the
    round's NDCG where it has dense relevance."""
    from videollm.eval.visdial import gt_rank, ndcg

    scores = [-loss for loss in option_losses(results)]
    rank = gt_rank(scores, int(doc["gt_index"]))
    relevance = doc.get("relevance")
    return {"mrr": 1.0 / rank, "r@1": float(rank <= 1), "r@5": float(rank <= 5), "r@10": float(rank <= 10),
            "mean_rank": float(rank), "ndcg": ndcg(scores, relevance) if relevance else None}


def mean_present(values: Sequence[float | None]) -> float:
    """Mean of the values that are not None (NaN when none is)."""
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.mean(kept)) if kept else math.nan


# ------------------------------------------------------------------------------------------ writing the tasks


def qa_docs(work: Path, videos: int, seed: int, per_type: int = 3) -> list[dict]:
    """``videollm eval qa``'s questions: its held-out videos, ``select_questions`` of each."""
    from videollm.eval.runner import TRAIN_SCENES, heldout_videos, select_questions

    docs = []
    for path in heldout_videos(work / f"videos-x1-s{seed}", videos, seed, TRAIN_SCENES):
        truth = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        for qa in select_questions(truth, per_type):
            docs.append({"id": len(docs), "video": str(path.resolve()), "type": qa["type"],
                         "question": qa["question"], "answer": qa["answer"]})
    return docs


def needle_docs(work: Path, n: int, seed: int, haystack_seconds: float = 60.0) -> list[dict]:
    """Needle in a video haystack as real files: ``n`` held-out haystacks of ``haystack_seconds`` with a 1 s object
    needle at a random depth (``videollm world generate --kind needle --needle object``), asked the needle question."""
    from videollm.world import generate

    folder = work / f"needles-s{seed}-n{n}-h{haystack_seconds:g}"
    paths = [folder / f"needle_{i:06d}.mp4" for i in range(n)]
    if not all(p.is_file() and p.with_suffix(".json").is_file() for p in paths):
        paths = [Path(p) for p in generate(folder, n, seed, heldout=True, kind="needle", needle="object",
                                           haystack_seconds=haystack_seconds)]
    docs = []
    for path in paths:
        info = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["needle"]
        docs.append({"id": len(docs), "video": str(path.resolve()), "question": info["question"],
                     "answer": info["answer"], "depth": float(info["depth"])})
    return docs


def needle_process_results(doc: dict, results: Sequence[str]) -> dict[str, float]:
    from videollm.eval.metrics import answer_correct

    return {"accuracy": float(answer_correct(results[0], doc["answer"]))}


def egoplan_docs(path: Path) -> list[dict]:
    """An EgoPlan-format JSON's items as documents (video by absolute path, options a-d, the golden index)."""
    from videollm.eval.runner import egoplan_question

    items = json.loads(path.read_text(encoding="utf-8"))
    return [{"id": item["sample_id"], "video": str((path.parent / item["video_path"]).resolve()),
             "question": egoplan_question(item), "choices": [item[f"choice_{c}"] for c in "abcd"],
             "answer": "ABCD".index(item["golden_choice_idx"])} for item in items]


def visdial_docs(path: Path) -> list[dict]:
    """One document per VisDial round that ``bench visdial`` ranks: image, question, options, the true answer's
    position, dense relevance (or None) and the dialog so far as chat turns (``history``)."""
    from videollm.eval.visdial import dense_file_for, find_images, load_visdial

    found = find_images(path.parent)
    docs = []
    for dialog in load_visdial(path, dense_file_for(path)):
        history: list[dict[str, str]] = []
        for k, r in enumerate(dialog.rounds):
            if r.options and r.gt_index is not None:
                docs.append({"id": len(docs), "image": str(found[dialog.image_id].resolve()),
                             "image_id": dialog.image_id, "round": k + 1, "question": r.question,
                             "options": list(r.options), "gt_index": int(r.gt_index), "relevance": r.relevance,
                             "history": list(history)})
            if r.answer is None:
                break
            history += [{"role": "user", "content": r.question}, {"role": "assistant", "content": r.answer}]
    return docs


def write_tasks(out: str | os.PathLike, work: str | os.PathLike, videos: int = 8, seed: int | None = None,
                egoplan_items: int = 24, visdial_images: int = 8, needles: int = 8,
                haystack_seconds: float = 60.0) -> list[Path]:
    """Write the four tasks (YAML + JSONL) to ``out``; held-out videos and images are generated under ``work``
    exactly as ``videollm eval`` generates them (the needle videos as ``needle_docs`` writes them). Returns the YAML
    paths."""
    from videollm.eval.suite import EVAL_SEED, egoplan_file, visdial_file

    seed = EVAL_SEED if seed is None else seed
    out, work = Path(out).resolve(), Path(work)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    docs = {"videollm_qa": qa_docs(work, videos, seed),
            "videollm_egoplan": egoplan_docs(egoplan_file(work, egoplan_items, seed)),
            "videollm_visdial": visdial_docs(visdial_file(work, visdial_images, seed)),
            "videollm_needle": needle_docs(work, needles, seed, haystack_seconds)}
    written = []
    for task, rows in docs.items():
        jsonl = data / f"{task}.jsonl"
        jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        yaml = out / f"{task}.yaml"
        yaml.write_text(_YAML[task].format(task=task, data=json.dumps(str(jsonl)), here=__name__), encoding="utf-8")
        written.append(yaml)
    return written


_HEAD = """# Written by `videollm eval lmms-tasks`; the items of `videollm eval` (held-out synthetic world).
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
"""

def _short_answer(process: str, metrics: Sequence[str]) -> str:
    """A question about a video answered in at most 8 greedy tokens (``ANSWER_TOKENS``), scored by ``process``;
    ``accuracy`` is a plain mean, the other metrics leave out the docs they do not apply to."""
    return _HEAD + f"""output_type: generate_until
doc_to_visual: !function {{here}}.doc_to_video
doc_to_text: question
doc_to_target: answer
generation_kwargs:
  max_new_tokens: 8
  until: []
  do_sample: false
process_results: !function {{here}}.{process}
metric_list:
""" + "".join(f"""  - metric: {m}
    aggregation: {"mean" if m == "accuracy" else "!function {here}.mean_present"}
    higher_is_better: true
""" for m in metrics)


def _multiple_choice(visual: str, choices: str, target: str, process: str, metrics: Sequence[str]) -> str:
    """A multiple-choice task scored by ``process`` (the YAML's ``{here}`` is filled in by ``write_tasks``)."""
    head = f"""output_type: multiple_choice
doc_to_visual: !function {{here}}.{visual}
doc_to_text: question
doc_to_choice: {choices}
doc_to_target: {target}
process_results: !function {{here}}.{process}
metric_list:
"""
    return _HEAD + head + "".join(f"""  - metric: {m}
    aggregation: {"mean" if m == "acc" else "!function {here}.mean_present"}
    higher_is_better: {str(m != "mean_rank").lower()}
""" for m in metrics)


_YAML = {
    "videollm_qa": _short_answer("qa_process_results", ["accuracy", *QA_TYPES]),
    "videollm_needle": _short_answer("needle_process_results", ["accuracy"]),
    "videollm_egoplan": _multiple_choice("doc_to_video", "choices", "answer", "egoplan_process_results", ["acc"]),
    "videollm_visdial": _multiple_choice("doc_to_image", "options", "gt_index", "visdial_process_results",
                                         list(VISDIAL_METRICS)),
}


__all__ = ["QA_TYPES", "TASKS", "VISDIAL_METRICS", "doc_to_image", "doc_to_video", "egoplan_docs", "egoplan_process_results", "mean_present",
           "needle_docs", "needle_process_results", "option_losses", "qa_docs", "qa_process_results", "visdial_docs", "visdial_process_results", "write_tasks"]
