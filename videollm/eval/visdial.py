"""Visual Dialog answer ranking, scored the way the VisDial v1.0 evaluation defines it.

A VisDial v1.0 file (``{"version", "split", "data": {"questions", "answers", "dialogs"}}``) gives each image a dialog
of rounds; each round has a question, its answer, 100 answer options (indices into ``data.answers``) and
``gt_index``, the position of the true answer among them. Dense annotations (a separate file, a list of
``{"image_id", "round_id", "gt_relevance"}`` with 1-based ``round_id``) give one round per image a relevance for
every option.

The model ranks a round's options by its mean log-likelihood of each as the answer (``VideoLLM.score``) to the
round's question about the image (visual tokens from the same watch path as ``videollm ask IMAGE``) after the
dialog so far (earlier questions with their true answers, as chat turns; the image caption is not used). Metrics:

* rank of the true answer (1 = first; equal scores are ordered by option position);
* R@1, R@5, R@10: share of rounds whose true answer ranks within the top k; MRR: mean of 1 / rank; mean rank;
* NDCG over the densely annotated rounds: with k the number of options of non-zero relevance, the discounted gain
  sum_{i<k} rel(option at rank i + 1) / log2(i + 2) of the model's order, divided by that of the best order.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videollm.errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
RECALL_AT = (1, 5, 10)


@dataclass
class VisDialRound:
    """One round: the question, its true answer (None where the file withholds it), the answer options, the true
    answer's position among them (None where withheld) and the options' dense relevance (None if not annotated)."""

    question: str
    answer: str | None
    options: list[str]
    gt_index: int | None
    relevance: list[float] | None = None


@dataclass
class VisDialDialog:
    image_id: int
    caption: str
    rounds: list[VisDialRound] = field(default_factory=list)


def load_visdial(path: str | os.PathLike, dense: str | os.PathLike | None = None) -> list[VisDialDialog]:
    """Read a VisDial v1.0 file (and its dense annotations, if given) into dialogs of strings.

    Raises:
        UsageError: the file is missing or not in the VisDial v1.0 layout (one line saying what is wrong).
    """
    data = _read_json(path, "VisDial JSON")
    try:
        questions, answers = data["data"]["questions"], data["data"]["answers"]
        dialogs = []
        for d in data["data"]["dialogs"]:
            rounds = []
            for r in d["dialog"]:
                options = [answers[i] for i in r.get("answer_options", [])]
                answer = answers[r["answer"]] if "answer" in r else None
                gt = r.get("gt_index")
                if gt is not None and not 0 <= gt < len(options):
                    raise UsageError(f"{path}: image {d['image_id']}: gt_index {gt} outside its {len(options)} options")
                rounds.append(VisDialRound(questions[r["question"]], answer, options, gt))
            dialogs.append(VisDialDialog(int(d["image_id"]), d.get("caption", ""), rounds))
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise UsageError(f"{path}: not a VisDial v1.0 file ({type(err).__name__}: {err})") from None
    if dense is not None:
        by_id = {d.image_id: d for d in dialogs}
        for entry in _read_json(dense, "VisDial dense annotations"):
            try:
                dialog, k, relevance = by_id.get(int(entry["image_id"])), int(entry["round_id"]) - 1, entry["gt_relevance"]
            except (KeyError, TypeError, ValueError):
                raise UsageError(f"{dense}: not VisDial dense annotations") from None
            if dialog is None:
                continue
            if not 0 <= k < len(dialog.rounds) or len(relevance) != len(dialog.rounds[k].options):
                raise UsageError(f"{dense}: image {dialog.image_id} round {k + 1}: "
                                 "no such round, or not one relevance per answer option")
            dialog.rounds[k].relevance = [float(x) for x in relevance]
    return dialogs


def _read_json(path: str | os.PathLike, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: not a readable {what} file ({type(err).__name__})") from None


def dense_file_for(path: str | os.PathLike) -> Path | None:
    """``<stem>_dense_annotations.json`` beside a VisDial file, if there is one."""
    candidate = Path(path).with_name(f"{Path(path).stem}_dense_annotations.json")
    return candidate if candidate.is_file() else None


def find_images(folder: str | os.PathLike) -> dict[int, Path]:
    """Images of a folder by the number their name ends with (``image_000003.png``,
    ``VisualDialog_val2018_000000000003.jpg`` -> 3)."""
    found = {}
    for p in sorted(Path(folder).iterdir()):
        match = re.search(r"(\d+)$", p.stem)
        if p.suffix.lower() in IMAGE_SUFFIXES and match:
            found[int(match.group(1))] = p
    return found


# --------------------------------------------------------------------------------------------------- metrics


def ranking(scores: Sequence[float]) -> np.ndarray:
    """Option positions best first: descending score, equal scores in option order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def gt_rank(scores: Sequence[float], gt_index: int) -> int:
    """Rank (1 = best) of option ``gt_index`` under ``ranking``."""
    return int(np.flatnonzero(ranking(scores) == gt_index)[0]) + 1


def ndcg(scores: Sequence[float], relevance: Sequence[float]) -> float:
    """NDCG at k = the number of options with non-zero relevance (VisDial v1.0); 1.0 for the ideal order, and
    NaN when no option is relevant."""
    rel = np.asarray(relevance, dtype=np.float64)
    k = int((rel > 0).sum())
    if k == 0:
        return math.nan
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    got = float((rel[ranking(scores)[:k]] * discounts).sum())
    best = float((np.sort(rel)[::-1][:k] * discounts).sum())
    return got / best


def summarize(ranks: Sequence[int], ndcgs: Sequence[float]) -> dict[str, float | int]:
    """MRR, R@1/5/10 and mean rank over ``ranks``; mean NDCG over the (non-NaN) ``ndcgs``."""
    r = np.asarray(ranks, dtype=np.float64)
    n = [x for x in ndcgs if not math.isnan(x)]
    out: dict[str, float | int] = {"rounds": len(r), "mrr": float((1.0 / r).mean()) if len(r) else math.nan}
    for k in RECALL_AT:
        out[f"r@{k}"] = float((r <= k).mean()) if len(r) else math.nan
    out["mean_rank"] = float(r.mean()) if len(r) else math.nan
    out["ndcg"] = float(np.mean(n)) if n else math.nan
    out["ndcg_rounds"] = len(n)
    return out


# --------------------------------------------------------------------------------------------------- running


def score_dialog(model, visual, dialog: VisDialDialog) -> list[list[float]]:
    """Each round's option scores (empty for a round without options), history = earlier rounds' true answers."""
    history: list[dict[str, str]] = []
    scores = []
    for r in dialog.rounds:
        scores.append(model.score(visual, r.question, r.options, history).float().tolist() if r.options else [])
        if r.answer is None:
            break  # later rounds would need an answer the file withholds
        history += [{"role": "user", "content": r.question}, {"role": "assistant", "content": r.answer}]
    return scores


def run_visdial(model, path: str | os.PathLike, images: str | os.PathLike | None = None,
                dense: str | os.PathLike | None = None, limit: int | None = None) -> dict[str, Any]:
    """Rank every round's answer options of a VisDial v1.0 file; returns the metrics and one record per round.

    Args:
        model: a ``VideoLLM``.
        path: the VisDial JSON.
        images: folder of the images (default: the JSON's folder), found by ``find_images``.
        dense: dense annotations (default: ``dense_file_for(path)``).
        limit: at most this many dialogs (images), in file order.
    """
    from videollm.memory import build_memory

    t0 = time.perf_counter()
    dense = dense if dense is not None else dense_file_for(path)
    dialogs = load_visdial(path, dense)[:limit]
    folder = Path(images) if images is not None else Path(path).parent
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such image folder")
    found = find_images(folder)
    missing = [d.image_id for d in dialogs if d.image_id not in found]
    if missing:
        raise UsageError(f"{folder}: no image for image_id {', '.join(map(str, missing[:5]))}"
                         f"{' ...' if len(missing) > 5 else ''} (names must end with the id)")
    records, ranks, ndcgs = [], [], []
    for dialog in dialogs:
        visual = model.project_state(build_memory(model, found[dialog.image_id]))
        for k, (r, scores) in enumerate(zip(dialog.rounds, score_dialog(model, visual, dialog))):
            if not scores:
                continue
            record: dict[str, Any] = {"image_id": dialog.image_id, "round": k + 1, "question": r.question,
                                      "top": r.options[int(ranking(scores)[0])]}
            if r.gt_index is not None:
                record["gt_rank"] = gt_rank(scores, r.gt_index)
                ranks.append(record["gt_rank"])
            if r.relevance is not None:
                record["ndcg"] = ndcg(scores, r.relevance)
                ndcgs.append(record["ndcg"])
            records.append(record)
    return {"eval": "visdial", "file": str(path), "dense": None if dense is None else str(dense),
            "images": len(dialogs), **summarize(ranks, ndcgs), "seconds": time.perf_counter() - t0,
            "records": records}
